"""One retry policy for every consumer: permanent failures fail at once, outages of a
store are waited out for a bounded time, other failures are retried a few times.

Built on tenacity; the disposition of each failure comes from `visionlog.errors.classify`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from visionlog.errors import Disposition, classify

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    # Unexpected (transient) failures: this many attempts in all.
    max_attempts: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    # Outages (a store or the log unreachable): keep trying this long before giving up.
    outage_deadline_s: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** max(0, attempt - 1)))


@dataclass
class Attempted(Generic[T]):
    """The result of a call with retries: its value, or the last failure."""

    value: T | None
    error: BaseException | None
    attempts: int
    seconds: float
    # True when the caller's deadline (not the policy) ended the retries.
    deadline_passed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def disposition(self) -> Disposition | None:
        return None if self.error is None else classify(self.error)


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    give_up: Callable[[BaseException], bool] | None = None,
) -> Attempted[T]:
    """Call until it succeeds or the policy (or the absolute `deadline` on `clock`) says stop.

    Never raises what `call` raises: the failure is returned, classified, for the caller to
    dead-letter or skip. `on_retry(attempt, error, delay)` is told before each wait;
    `give_up(error)` ends the retries for a failure the caller knows not to repeat.
    """
    started = clock()
    passed = False

    def should_stop(state: RetryCallState) -> bool:
        nonlocal passed
        error = state.outcome.exception() if state.outcome else None
        if error is None:
            return True
        attempt = state.attempt_number
        wait = policy.delay(attempt)
        if deadline is not None and clock() + wait > deadline:
            passed = True
            return True
        disposition = classify(error)
        if disposition is Disposition.PERMANENT or (give_up is not None and give_up(error)):
            return True
        if disposition is Disposition.OUTAGE:
            return clock() + wait - started > policy.outage_deadline_s
        return attempt >= policy.max_attempts

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                on_retry(state.attempt_number, error, policy.delay(state.attempt_number))

    retrying = Retrying(
        stop=should_stop,
        wait=lambda state: policy.delay(state.attempt_number),
        retry=retry_if_exception(
            lambda error: (
                classify(error) is not Disposition.PERMANENT
                and not (give_up is not None and give_up(error))
            )
        ),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    attempts = 0
    try:
        for attempt in retrying:
            attempts = attempt.retry_state.attempt_number
            with attempt:
                value = call()
    except Exception as error:
        return Attempted(None, error, attempts, clock() - started, passed)
    return Attempted(value, None, attempts, clock() - started)
