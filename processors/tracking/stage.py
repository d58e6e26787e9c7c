"""Tracking: follow objects across the frames of a video or camera, in the detection step.

Tracking runs right after detection, in the same worker, as a stateful transform: the
runtime hands it each frame's ObjectsDetected in key order (one camera's or one video's
frames in sequence) before publishing, and it fills every detection's `track_id` and adds
a TrackUpdated. So every published detection carries its track id, and no second trip
through Kafka sits between a frame and its tracks.

State: the tracker of each stream (media id; one tracker per detection model) lives in the
context's keyed state, a faust table whose changelog topic survives worker restarts and
recycling: after a restart the same objects keep their track ids. A frame delivered again
(a redelivery after a crash) gets the same answer from a short memory of recent frames; a
frame older than the tracker's last one and not remembered is published without track ids.

Camera frame indexes restart with every camera producer run: when a camera's index falls
back, the stream is rebased onto the tracker's count, so tracks go on instead of restarting.
"""

from __future__ import annotations

from typing import Any

import orjson

from processors.detection.detections import Detections
from processors.stage import Outgoing, PermanentStageError, StageContext, derived_envelope
from processors.tracking.tracker import TRACKER_NAME, ByteTracker, TrackSnapshot, TrackState
from visionlog import contracts

STAGE_NAME = "tracking"
STATE_VERSION = 1
# Recent frames remembered per stream, to answer a redelivered frame identically.
RECENT_FRAMES = 64


def model_key(event: dict[str, Any]) -> str:
    model = event["model"]
    return f"{model['name']}@{model['version']}"


# The tracker's states as the contract spells them.
_STATES: dict[TrackState, contracts.TrackState] = {
    TrackState.NEW: "NEW",
    TrackState.TRACKED: "TRACKED",
    TrackState.LOST: "LOST",
    TrackState.REMOVED: "REMOVED",
}


def track_record(snapshot: TrackSnapshot) -> contracts.Track:
    x1, y1, x2, y2 = snapshot.box
    return {
        "track_id": snapshot.track_id,
        "class_name": snapshot.class_name,
        "box": {"x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2},
        "confidence": snapshot.confidence,
        "state": _STATES[snapshot.state],
        "first_frame_index": snapshot.first_frame_index,
        "hits": snapshot.hits,
    }


def frame_tick(event: dict[str, Any], stream: dict[str, Any], last: int | None) -> int | None:
    """The frame's position in its stream, or None when it is too old to track.

    A video's frame index is its position. A camera's index restarts with each producer
    run; an index at or below the last one means a new run, and the stream's base moves so
    that the count goes on."""
    item = event["item"]
    index = int(item["frame_index"])
    base = int(stream.get("base", 0))
    if last is not None and index + base <= last:
        if not item.get("camera_id"):
            return None
        base = last + 1 - index
        stream["base"] = base
    return index + base


def _load(ctx: StageContext, media_id: str) -> dict[str, Any]:
    raw = ctx.state.get(media_id)
    if not raw:
        return {"version": STATE_VERSION, "models": {}}
    state: dict[str, Any] = orjson.loads(raw)
    if state.get("version") != STATE_VERSION:
        return {"version": STATE_VERSION, "models": {}}
    return state


def _with_track_ids(event: dict[str, Any], ids: list[int | None]) -> dict[str, Any]:
    detections = [
        {**detection, "track_id": track_id}
        for detection, track_id in zip(event["detections"], ids, strict=True)
    ]
    return {**event, "detections": detections}


def update_tracks(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """ObjectsDetected of a frame → the same event with track ids, and a TrackUpdated.

    Stills and pages pass through unchanged."""
    event_type = event["envelope"]["event_type"]
    if event_type != "ObjectsDetected":
        raise PermanentStageError(f"tracking does not handle {event_type} events")
    media_id = str(event["media_id"])
    unchanged = [Outgoing("ObjectsDetected", event, media_id)]
    frame_index = event["item"]["frame_index"]
    if frame_index is None:
        return unchanged
    try:
        detections = Detections.from_records(event["detections"])
    except (KeyError, ValueError) as error:
        raise PermanentStageError(f"malformed detections in {event_type}: {error}") from error
    state = _load(ctx, media_id)
    stream: dict[str, Any] = state["models"].setdefault(model_key(event), {"recent": {}})
    event_id = str(event["envelope"]["event_id"])
    recent: dict[str, list[int | None]] = stream["recent"]
    tracker = ByteTracker.from_state(stream["tracker"]) if "tracker" in stream else ByteTracker()
    if event_id in recent:
        ids = recent[event_id]
        snapshots = None
    else:
        tick = frame_tick(event, stream, tracker.last_frame_index)
        if tick is None:
            # Older than the video's last tracked frame and not remembered: untrackable.
            return unchanged
        snapshots = tracker.update(detections, tick)
        ids = tracker.assignments(len(detections))
        recent[event_id] = ids
        while len(recent) > RECENT_FRAMES:
            recent.pop(next(iter(recent)))
        stream["tracker"] = tracker.to_state()
        ctx.state.put(media_id, orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY))
    enriched = _with_track_ids(event, ids)
    outputs = [Outgoing("ObjectsDetected", enriched, media_id)]
    if snapshots is None:
        snapshots = [t.snapshot() for t in tracker.active()]
    record = {
        "envelope": derived_envelope(event, "TrackUpdated", STAGE_NAME, TRACKER_NAME),
        "media_id": event["media_id"],
        "item": dict(event["item"]),
        "tracks": [track_record(s) for s in snapshots],
        "tracker": TRACKER_NAME,
    }
    outputs.append(Outgoing("TrackUpdated", record, media_id))
    return outputs
