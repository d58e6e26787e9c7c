"""Stage: follow objects across the frames of a video or camera (ObjectsDetected → TrackUpdated).

Tracker state lives in this process, one tracker per stream (media id, camera and detection
model), least recently used streams evicted beyond ``MAX_STREAMS``. Kafka keys every event
by its media id, so one stream's frames reach one worker in order. Recovery: the state is
not persisted; after a restart or an eviction the first frame seen starts a fresh tracker
whose ids cannot collide with earlier ones (see `processors.tracking.tracker`). A frame
delivered twice gets the same answer again; an earlier frame than the last one means the
stream is being replayed, so its tracker restarts from that frame.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from processors.detection.detections import Detections
from processors.stage import Outgoing, PermanentStageError, StageContext, derived_envelope
from processors.tracking.tracker import TRACKER_NAME, ByteTracker, TrackSnapshot

STAGE_NAME = "tracking"
MAX_STREAMS = 1024

StreamKey = tuple[str, str | None, str, str]


@dataclass
class _Stream:
    tracker: ByteTracker = field(default_factory=ByteTracker)
    last_frame_index: int | None = None
    last_outputs: list[Outgoing] = field(default_factory=list)


_streams: OrderedDict[StreamKey, _Stream] = OrderedDict()
_streams_lock = threading.Lock()


def stream_key(event: dict[str, Any]) -> StreamKey:
    item = event["item"]
    model = event["model"]
    return (str(item["media_id"]), item["camera_id"], str(model["name"]), str(model["version"]))


def _stream(key: StreamKey) -> _Stream:
    stream = _streams.get(key)
    if stream is None:
        stream = _Stream()
        _streams[key] = stream
        while len(_streams) > MAX_STREAMS:
            _streams.popitem(last=False)
    _streams.move_to_end(key)
    return stream


def reset_streams() -> None:
    """Forget every stream (as after a restart)."""
    with _streams_lock:
        _streams.clear()


def track_record(snapshot: TrackSnapshot) -> dict[str, Any]:
    x1, y1, x2, y2 = snapshot.box
    return {
        "track_id": snapshot.track_id,
        "class_name": snapshot.class_name,
        "box": {"x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2},
        "confidence": snapshot.confidence,
        "state": snapshot.state.value,
        "first_frame_index": snapshot.first_frame_index,
        "hits": snapshot.hits,
    }


def update_tracks(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """TrackUpdated for the ObjectsDetected of a frame; stills and pages are skipped."""
    event_type = event["envelope"]["event_type"]
    if event_type != "ObjectsDetected":
        raise PermanentStageError(f"tracking does not handle {event_type} events")
    frame_index = event["item"]["frame_index"]
    if frame_index is None:
        return []
    try:
        detections = Detections.from_records(event["detections"])
    except (KeyError, ValueError) as error:
        raise PermanentStageError(f"malformed detections in {event_type}: {error}") from error
    with _streams_lock:
        stream = _stream(stream_key(event))
        if stream.last_frame_index is not None:
            if frame_index == stream.last_frame_index:
                return list(stream.last_outputs)
            if frame_index < stream.last_frame_index:
                stream.tracker = ByteTracker()
        snapshots = stream.tracker.update(detections, int(frame_index))
        record = {
            "envelope": derived_envelope(event, "TrackUpdated", STAGE_NAME, TRACKER_NAME),
            "media_id": event["media_id"],
            "item": dict(event["item"]),
            "tracks": [track_record(s) for s in snapshots],
            "tracker": TRACKER_NAME,
        }
        outputs = [Outgoing(event_type="TrackUpdated", record=record, key=event["media_id"])]
        stream.last_frame_index = int(frame_index)
        stream.last_outputs = outputs
        return list(outputs)
