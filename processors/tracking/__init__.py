"""Multi-object tracking across the frames of a video or camera stream."""

from processors.tracking.assignment import match_by_cost, solve_assignment
from processors.tracking.tracker import (
    TRACKER_NAME,
    ByteTracker,
    TrackerConfig,
    TrackSnapshot,
    TrackState,
)

__all__ = [
    "TRACKER_NAME",
    "ByteTracker",
    "TrackSnapshot",
    "TrackState",
    "TrackerConfig",
    "match_by_cost",
    "solve_assignment",
]
