"""The detection stage on real blobs in MinIO: records match the ObjectsDetected contract."""

from __future__ import annotations

import uuid
from typing import Any

import cv2
import numpy as np
import pytest
from fastavro.validation import validate

from processors.detection.stage import detect_objects
from processors.model_catalogue import NANODET
from processors.modelstore import load, provision
from processors.stage import PermanentStageError, StageContext
from tests.factories import sample_event
from visionlog.blobstore import ORIGINALS, BlobRef, BlobStore
from visionlog.schemas import get_catalog
from visionlog.settings import Settings


@pytest.fixture(scope="module")
def ctx(settings: Settings, initialised: object) -> StageContext:
    provision(NANODET, settings)
    blobs = BlobStore.from_settings(settings.minio)
    blobs.ensure_buckets((ORIGINALS,))
    return StageContext(settings=settings, blobs=blobs)


def store(ctx: StageContext, data: bytes, content_type: str = "image/jpeg") -> BlobRef:
    key = f"tests/detection/{uuid.uuid4().hex}"
    return ctx.blobs.put_bytes(ORIGINALS, key, data, content_type)


def upload_event(ref: BlobRef, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"media_kind": "IMAGE", "profile": "vision", "original": dict(ref)}
    values.update(fields)
    return sample_event(get_catalog(), "MediaUploaded", **values)


def frame_event(ref: BlobRef, frame_index: int) -> dict[str, Any]:
    return sample_event(
        get_catalog(),
        "FrameCaptured",
        image=dict(ref),
        frame_index=frame_index,
        timestamp_ms=frame_index * 40,
        camera_id="gate-1",
        width=810,
        height=1080,
    )


def bus_ref(ctx: StageContext) -> BlobRef:
    return store(ctx, load("sample-photos").path("bus.jpg").read_bytes())


def test_uploaded_image_yields_a_valid_objects_detected(ctx: StageContext) -> None:
    event = upload_event(bus_ref(ctx))
    [out] = detect_objects(event, ctx)
    assert out.event_type == "ObjectsDetected" and out.key == event["media_id"]
    record = out.record
    assert validate(record, get_catalog().event("ObjectsDetected").parsed, raise_errors=True)
    assert (record["image_width"], record["image_height"]) == (810, 1080)
    assert record["model"] == load(NANODET).model_ref()
    assert record["score_threshold"] == pytest.approx(
        ctx.settings.processors.detection_score_threshold
    )
    assert record["inference_ms"] > 0
    labels = [d["class_name"] for d in record["detections"]]
    assert "bus" in labels and labels.count("person") >= 3
    focal = ctx.settings.processors.focal_length_px
    whole_people = [
        d
        for d in record["detections"]
        if d["class_name"] == "person" and d["box"]["y_min"] > 2 and d["box"]["y_max"] < 1078
    ]
    assert whole_people
    for person in whole_people:
        height = person["box"]["y_max"] - person["box"]["y_min"]
        # A person 1.7 m tall whose box is `height` pixels high, seen with focal length f.
        assert person["distance_m"] == pytest.approx(focal * 1.7 / height, rel=1e-3)
    scores = [d["confidence"] for d in record["detections"]]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= record["score_threshold"]
    envelope = record["envelope"]
    assert envelope["causation_id"] == event["envelope"]["event_id"]
    assert envelope["correlation_id"] == event["envelope"]["correlation_id"]
    assert envelope["producer"].startswith("processors.detection/")
    # Reprocessing the same event gives the same id (deterministic envelope).
    [again] = detect_objects(event, ctx)
    assert again.record["envelope"]["event_id"] == envelope["event_id"]


def test_frames_are_detected_with_their_item(ctx: StageContext) -> None:
    event = frame_event(bus_ref(ctx), 12)
    [out] = detect_objects(event, ctx)
    assert out.record["item"]["frame_index"] == 12
    assert out.record["item"]["camera_id"] == "gate-1"
    assert validate(out.record, get_catalog().event("ObjectsDetected").parsed, raise_errors=True)


def test_empty_scene_is_a_valid_empty_result(ctx: StageContext) -> None:
    ok, jpeg = cv2.imencode(".jpg", np.full((200, 300, 3), 90, np.uint8))
    assert ok
    [out] = detect_objects(upload_event(store(ctx, jpeg.tobytes())), ctx)
    assert out.record["detections"] == []
    assert (out.record["image_width"], out.record["image_height"]) == (300, 200)


def test_skipped_inputs(ctx: StageContext) -> None:
    ref = bus_ref(ctx)
    assert detect_objects(upload_event(ref, profile="ocr"), ctx) == []
    assert detect_objects(upload_event(ref, media_kind="PDF"), ctx) == []
    page = sample_event(get_catalog(), "PageRendered", image=dict(ref))
    assert detect_objects(page, ctx) == []
    with pytest.raises(PermanentStageError, match="does not handle TextRecognized"):
        detect_objects(sample_event(get_catalog(), "TextRecognized"), ctx)


def test_corrupt_image_is_a_permanent_error(ctx: StageContext) -> None:
    ref = store(ctx, b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(PermanentStageError, match="not a decodable image"):
        detect_objects(upload_event(ref), ctx)
