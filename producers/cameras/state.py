"""A camera's lifecycle state and a consistent reading of its counters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CameraState(StrEnum):
    UNKNOWN = "UNKNOWN"
    CONNECTING = "CONNECTING"
    STREAMING = "STREAMING"
    RECONNECTING = "RECONNECTING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class CameraSnapshot:
    """A consistent reading of one camera's state and counters."""

    state: CameraState
    frames_captured: int
    frames_published: int
    frames_dropped: int
    reconnects: int
    errors: int
    last_error: str | None
    slot_high_water: int
