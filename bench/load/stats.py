"""Latency statistics: nearest-rank percentiles and per-minute buckets (pure, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MINUTE_MS = 60_000


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence: the smallest value with at least
    `fraction` of the values at or below it (p99 of 100 values is the 99th, not an
    interpolation, so it is always a latency that really happened)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction} outside (0, 1]")
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class LatencyStats:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, values_ms: Iterable[float]) -> LatencyStats | None:
        """None when there are no values: "no data" stays distinct from a zero latency."""
        ordered = sorted(values_ms)
        if not ordered:
            return None
        return cls(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.99), ordered[-1])


@dataclass(frozen=True)
class MinuteLatency:
    minute: int  # 1-based minute of the load; 0 = warm-up before the load started
    stats: LatencyStats | None
    # Frames captured in the minute that were never analysed (skipped or still missing).
    unanalysed: int


def minute_of(at_ms: int, start_ms: int, minutes: int) -> int:
    """1-based minute of the load an instant falls in; 0 before the start. Instants after
    the last minute (the tail of a stopping camera) count to the last minute."""
    if at_ms < start_ms:
        return 0
    return min(minutes, (at_ms - start_ms) // MINUTE_MS + 1)


def per_minute(
    samples: Iterable[tuple[int, float | None]], start_ms: int, minutes: int
) -> list[MinuteLatency]:
    """Latency per minute of the load from (captured at, latency or None) samples.

    A None latency is a frame that was captured but never analysed. The warm-up row
    (minute 0) is there only when frames were captured before the start.
    """
    latencies: dict[int, list[float]] = {minute: [] for minute in range(1, minutes + 1)}
    unanalysed: dict[int, int] = dict.fromkeys(latencies, 0)
    for at_ms, latency in samples:
        minute = minute_of(at_ms, start_ms, minutes)
        latencies.setdefault(minute, [])
        unanalysed.setdefault(minute, 0)
        if latency is None:
            unanalysed[minute] += 1
        else:
            latencies[minute].append(latency)
    return [
        MinuteLatency(minute, LatencyStats.of(latencies[minute]), unanalysed[minute])
        for minute in sorted(latencies)
    ]


def counts_per_minute(instants_ms: Iterable[int], start_ms: int, until_ms: int) -> list[int]:
    """How many instants fall in each whole or partial minute from start to until
    (instants before the start count to the first minute)."""
    if until_ms <= start_ms:
        return []
    buckets = [0] * math.ceil((until_ms - start_ms) / MINUTE_MS)
    for at_ms in instants_ms:
        index = max(0, at_ms - start_ms) // MINUTE_MS
        if index < len(buckets):
            buckets[index] += 1
    return buckets


def growth_percent(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before <= 0:
        return None
    return (after - before) / before * 100
