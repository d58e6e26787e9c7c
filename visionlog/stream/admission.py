"""Admission of live frames: the newest frame of a source wins, stale frames are skipped.

A latency-critical stage never queues a camera's frames. Per source (camera) it works on at
most one frame; a frame that arrives meanwhile waits in a one-place slot, and a newer one
replaces it (the replaced frame is *superseded*). When the stage is free it takes the slot's
frame, unless the frame has become older than the source's bound (*stale*). Every frame
ends up analysed or skipped with its reason: nothing is queued without bound, nothing
disappears uncounted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Lane(Generic[T]):
    running: bool = False
    waiting: T | None = None


@dataclass
class Offer(Generic[T]):
    """What to do after a frame was offered: start the lane's runner, skip a replaced one."""

    start: bool = False
    superseded: T | None = None


@dataclass
class LatestWins(Generic[T]):
    """Per-source lanes of one latency-critical stage (pure bookkeeping, no I/O).

    A lane holds at most one waiting frame. Its runner takes the waiting frame only when the
    stage has a free place, so the frame it starts on is always the newest one."""

    lanes: dict[str, _Lane[T]] = field(default_factory=dict)

    def offer(self, source: str, frame: T) -> Offer[T]:
        lane = self.lanes.setdefault(source, _Lane())
        replaced, lane.waiting = lane.waiting, frame
        start = not lane.running
        lane.running = True
        return Offer(start=start, superseded=replaced)

    def take(self, source: str) -> T | None:
        """The runner is free: the newest waiting frame, or None (the runner stops)."""
        lane = self.lanes.get(source)
        if lane is None:
            return None
        frame, lane.waiting = lane.waiting, None
        if frame is None:
            lane.running = False
        return frame

    def waiting(self) -> int:
        return sum(1 for lane in self.lanes.values() if lane.waiting is not None)


def stale_reason(age_ms: float, bound_ms: float) -> str | None:
    """Why a frame of this age may not be analysed any more, or None while it is fresh."""
    if age_ms > bound_ms:
        return f"stale: {age_ms:.0f} ms old, bound {bound_ms:.0f} ms"
    return None


def superseded_reason(frame_index: int, newer_index: int) -> str:
    return f"superseded: frame {newer_index} arrived before the stage was free"
