"""Multi-object tracking by detection, associating confident and weak detections apart.

Each update predicts every track with its Kalman filter, then associates in three rounds
with optimal (Hungarian) matching on IoU, class-aware:

1. confirmed tracks (tracked or lost) with confident detections;
2. still-unmatched tracked objects with low-score detections (an occluded object's score
   drops; using these keeps its track instead of losing it);
3. tentative (new, unconfirmed) tracks with the remaining confident detections.

Unmatched confident detections start tentative tracks, confirmed after ``confirm_hits``
detections; a tentative track that misses is removed, a confirmed one becomes lost and is
removed after ``max_lost_updates`` updates without a detection.

Track ids are ``start_frame * 1_000_000 + n`` where ``start_frame`` is the frame index the
tracker started at: a tracker rebuilt after a restart never reuses an earlier id, and a
replay from the same frame reproduces the same ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

from processors.detection.detections import Detections, box_iou
from processors.tracking.assignment import match_by_cost
from processors.tracking.kalman import BoxKalman

TRACKER_NAME = "bytetrack/visionlog-0.1"
TRACK_ID_BLOCK = 1_000_000
STATE_VERSION = 1
# A long gap is not extrapolated frame by frame: after this many the motion model is moot.
_MAX_PREDICTED_STEPS = 10


class TrackState(Enum):
    NEW = "NEW"
    TRACKED = "TRACKED"
    LOST = "LOST"
    REMOVED = "REMOVED"


@dataclass(frozen=True)
class TrackerConfig:
    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float = 0.6
    # Minimum IoU of a pair in each round.
    match_iou: float = 0.2
    low_score_match_iou: float = 0.5
    tentative_match_iou: float = 0.3
    confirm_hits: int = 2
    max_lost_updates: int = 30


Box = tuple[float, float, float, float]


def _as_box(values: npt.ArrayLike) -> Box:
    x1, y1, x2, y2 = (float(v) for v in np.asarray(values).reshape(4))
    return (x1, y1, x2, y2)


@dataclass(frozen=True)
class TrackSnapshot:
    """A track as it stands after one update."""

    track_id: int
    class_id: int
    class_name: str
    box: Box
    confidence: float
    state: TrackState
    first_frame_index: int
    hits: int


@dataclass
class Track:
    track_id: int
    class_id: int
    class_name: str
    filter: BoxKalman
    first_frame_index: int
    state: TrackState = TrackState.NEW
    hits: int = 1
    confidence: float = 0.0
    missed_updates: int = 0
    # The matched detection's box this update; None when the box is only predicted.
    observed_box: Box | None = None
    # Index of the detection matched (or started) this update; None when predicted.
    detection_index: int | None = None

    def snapshot(self) -> TrackSnapshot:
        return TrackSnapshot(
            track_id=self.track_id,
            class_id=self.class_id,
            class_name=self.class_name,
            box=self.observed_box or _as_box(self.filter.box),
            confidence=self.confidence,
            state=self.state,
            first_frame_index=self.first_frame_index,
            hits=self.hits,
        )


@dataclass
class ByteTracker:
    """Tracks of one stream (a video or a camera); feed it frames in order."""

    config: TrackerConfig = field(default_factory=TrackerConfig)
    tracks: list[Track] = field(default_factory=list)
    last_frame_index: int | None = None
    _start_frame: int | None = None
    _issued: int = 0

    def _next_id(self) -> int:
        self._issued += 1
        return (self._start_frame or 0) * TRACK_ID_BLOCK + self._issued

    def _associate(
        self,
        tracks: list[Track],
        detections: Detections,
        candidates: list[int],
        min_iou: float,
    ) -> tuple[list[Track], list[int]]:
        """Match ``tracks`` to the ``candidates`` detections; update matched tracks.

        Returns the unmatched tracks and the unmatched candidate indices.
        """
        if not tracks or not candidates:
            return tracks, candidates
        predicted = np.array([t.filter.box for t in tracks], dtype=np.float32)
        iou = box_iou(predicted, detections.boxes[candidates])
        same_class = (
            np.array([t.class_id for t in tracks])[:, None]
            == (detections.class_ids[candidates][None, :])
        )
        cost = np.where(same_class, 1.0 - iou, 2.0)
        pairs, free_tracks, free_dets = match_by_cost(cost, 1.0 - min_iou)
        for track_index, det_index in pairs:
            track = tracks[track_index]
            detection = candidates[det_index]
            box = detections.boxes[detection]
            track.filter.update(box)
            track.observed_box = _as_box(box)
            track.detection_index = int(detection)
            track.confidence = float(detections.scores[detection])
            track.hits += 1
            track.missed_updates = 0
            # A tentative track is confirmed by its ``confirm_hits``-th detection.
            if track.state is not TrackState.NEW or track.hits >= self.config.confirm_hits:
                track.state = TrackState.TRACKED
        return [tracks[i] for i in free_tracks], [candidates[i] for i in free_dets]

    def update(self, detections: Detections, frame_index: int) -> list[TrackSnapshot]:
        """Advance to `frame_index`; the snapshots of every track this frame touched.

        Frames may be skipped (a live camera's stale frames): the motion model is predicted
        once per missing frame, up to a few, so a gap does not look like a jump."""
        if self.last_frame_index is not None and frame_index <= self.last_frame_index:
            raise ValueError(
                f"frame {frame_index} is not after the last tracked frame {self.last_frame_index}"
            )
        steps = 1 if self.last_frame_index is None else frame_index - self.last_frame_index
        if self._start_frame is None:
            self._start_frame = frame_index
        self.last_frame_index = frame_index
        config = self.config
        for track in self.tracks:
            for _ in range(min(max(steps, 1), _MAX_PREDICTED_STEPS)):
                track.filter.predict()
            track.observed_box = None
            track.detection_index = None
        scores = detections.scores
        high = [int(i) for i in np.nonzero(scores >= config.high_score)[0]]
        low = [
            int(i)
            for i in np.nonzero((scores >= config.low_score) & (scores < config.high_score))[0]
        ]
        confirmed = [t for t in self.tracks if t.state is not TrackState.NEW]
        tentative = [t for t in self.tracks if t.state is TrackState.NEW]

        unmatched, high = self._associate(confirmed, detections, high, config.match_iou)
        still_tracked = [t for t in unmatched if t.state is TrackState.TRACKED]
        lost_already = [t for t in unmatched if t.state is TrackState.LOST]
        unmatched_tracked, _ = self._associate(
            still_tracked, detections, low, config.low_score_match_iou
        )
        unmatched_tentative, high = self._associate(
            tentative, detections, high, config.tentative_match_iou
        )

        for track in unmatched_tracked + lost_already:
            track.state = TrackState.LOST
            track.confidence = 0.0
            track.missed_updates += 1
            if track.missed_updates > config.max_lost_updates:
                track.state = TrackState.REMOVED
        for track in unmatched_tentative:
            track.state = TrackState.REMOVED
            track.confidence = 0.0
        for index in high:
            if scores[index] < config.new_track_score:
                continue
            class_id = int(detections.class_ids[index])
            self.tracks.append(
                Track(
                    track_id=self._next_id(),
                    class_id=class_id,
                    class_name=detections.class_names[class_id],
                    filter=BoxKalman.start(detections.boxes[index]),
                    first_frame_index=frame_index,
                    confidence=float(scores[index]),
                    observed_box=_as_box(detections.boxes[index]),
                    detection_index=index,
                )
            )
        snapshots = [t.snapshot() for t in self.tracks]
        self.tracks = [t for t in self.tracks if t.state is not TrackState.REMOVED]
        return snapshots

    def active(self) -> list[Track]:
        """Tracks currently followed (new, tracked or lost)."""
        return list(self.tracks)

    def assignments(self, count: int) -> list[int | None]:
        """Track id of each of the last update's `count` detections (None: no track)."""
        ids: list[int | None] = [None] * count
        for track in self.tracks:
            if track.detection_index is not None and track.detection_index < count:
                ids[track.detection_index] = track.track_id
        return ids

    def to_state(self) -> dict[str, Any]:
        """Everything needed to continue after a restart: JSON-able values, the filters'
        arrays as numpy arrays (orjson writes them natively, much faster than lists)."""
        return {
            "version": STATE_VERSION,
            "last_frame_index": self.last_frame_index,
            "start_frame": self._start_frame,
            "issued": self._issued,
            "tracks": [
                {
                    "track_id": t.track_id,
                    "class_id": t.class_id,
                    "class_name": t.class_name,
                    "mean": t.filter.mean,
                    "covariance": t.filter.covariance,
                    "first_frame_index": t.first_frame_index,
                    "state": t.state.value,
                    "hits": t.hits,
                    "confidence": t.confidence,
                    "missed_updates": t.missed_updates,
                }
                for t in self.tracks
            ],
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], config: TrackerConfig | None = None
    ) -> ByteTracker:
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"tracker state version {state.get('version')!r} is not {STATE_VERSION}"
            )
        tracker = cls(config or TrackerConfig())
        tracker.last_frame_index = state["last_frame_index"]
        tracker._start_frame = state["start_frame"]
        tracker._issued = int(state["issued"])
        tracker.tracks = [
            Track(
                track_id=int(t["track_id"]),
                class_id=int(t["class_id"]),
                class_name=str(t["class_name"]),
                filter=BoxKalman(
                    np.asarray(t["mean"], dtype=np.float64),
                    np.asarray(t["covariance"], dtype=np.float64),
                ),
                first_frame_index=int(t["first_frame_index"]),
                state=TrackState(t["state"]),
                hits=int(t["hits"]),
                confidence=float(t["confidence"]),
                missed_updates=int(t["missed_updates"]),
            )
            for t in state["tracks"]
        ]
        return tracker
