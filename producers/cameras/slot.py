"""Latest-frame-wins backpressure between a camera's capture and publishing threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from producers.cameras.sources import RawFrame


@dataclass(frozen=True)
class CapturedFrame:
    sequence: int  # grab counter of the capture thread
    captured_at: datetime  # wall clock, UTC, milliseconds
    monotonic_s: float
    raw: RawFrame
    source_fps: float | None


class LatestFrameSlot:
    """Holds at most one unsent frame: a newer frame replaces it and counts as dropped."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._closed = False
        self.dropped = 0
        self.high_water = 0

    def put(self, frame: CapturedFrame) -> bool:
        """Store the frame; True when it replaced (dropped) an unsent one."""
        with self._condition:
            if self._closed:
                # Captured after the publisher stopped: never sent.
                self.dropped += 1
                return True
            replaced = self._frame is not None
            if replaced:
                self.dropped += 1
            self._frame = frame
            self.high_water = max(self.high_water, self.occupancy)
            self._condition.notify()
            return replaced

    def take(self, timeout: float) -> CapturedFrame | None:
        """The newest unsent frame, waiting up to timeout; None when none came or closed."""
        with self._condition:
            if self._frame is None and not self._closed:
                self._condition.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    @property
    def occupancy(self) -> int:
        return 0 if self._frame is None else 1

    def close(self) -> None:
        """No more frames: an unsent frame left in the slot is discarded, counted as dropped
        (captured = dropped + published, exactly)."""
        with self._condition:
            self._closed = True
            if self._frame is not None:
                self._frame = None
                self.dropped += 1
            self._condition.notify_all()

    def drop(self) -> None:
        """A taken frame that could not be published counts as dropped too."""
        with self._condition:
            self.dropped += 1
