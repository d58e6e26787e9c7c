"""The live worker against the real broker: fresh frames analysed, stale ones skipped with
their reason, and track ids that survive a worker killed in the middle of a stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from processors.modelstore import load
from tests.integration.processors.conftest import TopicsUnderTest
from tests.integration.processors.workers import Workers, wait_for_events
from visionlog.blobstore import PROCESSED, BlobStore
from visionlog.codec import DecodedEvent
from visionlog.envelope import Envelope
from visionlog.schemas import get_catalog
from visionlog.stream.headers import new_trace_id


@pytest.fixture
def workers(topics_under_test: TopicsUnderTest, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(topics_under_test, tmp_path)
    yield running
    running.stop()


class Camera:
    """Publishes a live camera's frames: the bus photo, shifted a little per frame."""

    def __init__(self, topics: TopicsUnderTest, blobs: BlobStore, profile: str = "live") -> None:
        self.topics = topics
        self.blobs = blobs
        self.profile = profile
        self.camera_id = f"cam-{uuid.uuid4().hex[:6]}"
        self.media_id = str(uuid.uuid4())
        photo = cv2.imread(str(load("sample-photos").path("bus.jpg")))
        assert photo is not None
        self.photo: np.ndarray = photo

    def frame(self, index: int, *, age_s: float = 0.0, max_age_ms: int | None = None) -> None:
        shift = np.array([[1, 0, 3 * index], [0, 1, 0]], np.float32)
        height, width = self.photo.shape[:2]
        moved = cv2.warpAffine(self.photo, shift, (width, height))
        ok, jpeg = cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        ref = self.blobs.put_bytes(
            PROCESSED, f"{self.media_id}/frames/test/{index:08d}.jpg", jpeg.tobytes(), "image/jpeg"
        )
        envelope = Envelope(
            event_type="FrameCaptured",
            schema_version=get_catalog().event("FrameCaptured").version,
            producer="tests/0",
            correlation_id=self.media_id,
            tenant_id="tests",
            trace_id=new_trace_id(),
        )
        self.topics.publish(
            "FrameCaptured",
            {
                "envelope": envelope.as_record(),
                "media_id": self.media_id,
                "camera_id": self.camera_id,
                "frame_index": index,
                "timestamp_ms": index * 200,
                "captured_at": datetime.now(UTC) - timedelta(seconds=age_s),
                "width": width,
                "height": height,
                "image": dict(ref),
                "source_fps": 15.0,
                "sampling_fps": 5.0,
                "profile": self.profile,
                "max_age_ms": max_age_ms,
            },
        )

    def mine(self, event: DecodedEvent) -> bool:
        return bool(event.record.get("media_id") == self.media_id)


def _detections(
    camera: Camera, topics: TopicsUnderTest, last: int, workers: Workers
) -> dict[int, list[dict[str, Any]]]:
    """Detections per frame once the frame `last` is analysed (the newest frame of a camera
    is never superseded; earlier ones may be)."""

    def upto(event: DecodedEvent) -> bool:
        return camera.mine(event) and int(event.record["item"]["frame_index"]) == last

    assert wait_for_events(topics, "ObjectsDetected", upto, 1, 120, workers), workers.logs()[-3000:]
    found = wait_for_events(topics, "ObjectsDetected", camera.mine, 1, 10, workers)
    return {int(e.record["item"]["frame_index"]): e.record["detections"] for e in found}


@pytest.mark.timeout(300)
def test_a_stale_frame_is_skipped_with_its_reason_and_a_fresh_one_analysed(
    topics_under_test: TopicsUnderTest, workers: Workers, ctx: Any
) -> None:
    camera = Camera(topics_under_test, ctx.blobs)
    workers.start("processors", "worker", "live")
    camera.frame(0, age_s=10.0)
    camera.frame(1, age_s=0.0, max_age_ms=60_000)

    reports = wait_for_events(topics_under_test, "EventProcessed", camera.mine, 2, 120, workers)
    by_frame = {r.record["item_label"]: r.record for r in reports}
    [stale] = by_frame["frame-00000000"]["outcomes"]
    assert stale["stage"] == "detection"
    assert stale["status"] == "SKIPPED"
    assert stale["reason"].startswith("stale: ")
    assert "bound 2000 ms" in stale["reason"]
    fresh = {o["stage"]: o for o in by_frame["frame-00000001"]["outcomes"]}
    assert fresh["detection"]["status"] == "DONE"
    assert fresh["tracking"]["status"] == "DONE"
    detected = _detections(camera, topics_under_test, 1, workers)
    assert list(detected) == [1]
    assert {d["class_name"] for d in detected[1]} >= {"person", "bus"}
    assert all(d["track_id"] is not None for d in detected[1] if d["confidence"] >= 0.6)

    # The camera's analysis health counts the skip.
    health = wait_for_events(
        topics_under_test, "CameraAnalysisReported", camera.mine, 1, 60, workers
    )
    latest = health[-1].record
    assert latest["frames_skipped_stale"] >= 1
    assert latest["frames_analysed"] >= 1
    assert latest["camera_id"] == camera.camera_id


@pytest.mark.timeout(400)
def test_track_ids_survive_a_worker_killed_in_the_middle_of_a_stream(
    topics_under_test: TopicsUnderTest, workers: Workers, ctx: Any
) -> None:
    camera = Camera(topics_under_test, ctx.blobs)
    first = workers.start(
        "processors",
        "worker",
        "live",
        PROCESSORS__LIVE_MAX_AGE_MS="600000",
        PROCESSORS__SESSION_TIMEOUT_S="6",
    )
    for index in range(6):
        camera.frame(index)
        time.sleep(0.3)
    before = _detections(camera, topics_under_test, 5, workers)
    # Let the changelog of the last frames reach the broker, then kill without a goodbye.
    time.sleep(2.0)
    workers.kill(first)

    workers.start(
        "processors",
        "worker",
        "live",
        PROCESSORS__LIVE_MAX_AGE_MS="600000",
        PROCESSORS__SESSION_TIMEOUT_S="6",
    )
    for index in range(6, 12):
        camera.frame(index)
        time.sleep(0.3)
    after = _detections(camera, topics_under_test, 11, workers)

    def ids(detections: list[dict[str, Any]]) -> set[int]:
        return {d["track_id"] for d in detections if d["class_name"] == "bus" and d["track_id"]}

    buses_before = ids(before[5])
    buses_after = ids(after[11])
    assert buses_before, before[5]
    # The same bus keeps its id across the restart.
    assert buses_before & buses_after, (before[5], after[11])


@pytest.mark.timeout(300)
def test_heavy_camera_stages_run_and_report_only_for_cameras_that_ask_for_them(
    topics_under_test: TopicsUnderTest, workers: Workers, ctx: Any
) -> None:
    plain = Camera(topics_under_test, ctx.blobs)
    masked = Camera(topics_under_test, ctx.blobs, profile="live-anonymised")
    workers.start("processors", "worker", "vision")
    plain.frame(0, max_age_ms=120_000)
    masked.frame(0, max_age_ms=120_000)

    # A report for the stage that ran; none for those the profile leaves out (nobody waits
    # for a camera frame's completion).
    [report] = wait_for_events(topics_under_test, "EventProcessed", masked.mine, 1, 180, workers)
    [outcome] = report.record["outcomes"]
    assert outcome["stage"] == "anonymise"
    assert outcome["status"] in ("DONE", "NOT_APPLICABLE")
    # The masked camera's frame counts as analysed whether or not a face was found.
    health = wait_for_events(topics_under_test, "CameraAnalysisReported", masked.mine, 1, 60)
    assert health[-1].record["frames_analysed"] == 1
    assert health[-1].record["worker"] == "vision"

    # The plain camera asks for none of the vision worker's stages: no report, no health.
    assert len(wait_for_events(topics_under_test, "EventProcessed", masked.mine, 2, 5)) == 1
    assert wait_for_events(topics_under_test, "EventProcessed", plain.mine, 1, 5) == []
    assert wait_for_events(topics_under_test, "CameraAnalysisReported", plain.mine, 1, 5) == []
