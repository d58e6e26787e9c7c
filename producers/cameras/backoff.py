"""Reconnect delays for a failing camera source."""

from __future__ import annotations

import random


class Backoff:
    """Exponential delays with jitter: each delay is drawn from [(1 - jitter) d, d]."""

    def __init__(
        self,
        initial_s: float,
        maximum_s: float,
        *,
        multiplier: float = 2.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be within 0..1, got {jitter}")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.multiplier = multiplier
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = self.initial_s * self.multiplier**self.attempt
        if ceiling < self.maximum_s:
            # Growing the exponent past the maximum would overflow a float after about a
            # thousand attempts, which a camera that keeps reconnecting reaches in hours.
            self.attempt += 1
        return min(ceiling, self.maximum_s) * (1 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0
