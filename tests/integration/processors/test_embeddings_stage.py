"""The embedding stage against the real MinIO of the local stack."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from processors.embeddings.stage import embed
from processors.modelstore import load
from processors.stage import PermanentStageError, StageContext
from tests.factories import sample_event
from tests.processor_factories import (
    assert_valid,
    detections_event,
    item,
    new_media_id,
    text_event,
)
from visionlog.blobstore import ORIGINALS
from visionlog.schemas import get_catalog


def _photo(name: str = "bus.jpg") -> np.ndarray:
    image = cv2.imread(str(load("sample-photos").path(name)), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _store_photo(ctx: StageContext, media_id: str, name: str = "bus.jpg") -> dict[str, Any]:
    data = load("sample-photos").path(name).read_bytes()
    return dict(ctx.blobs.put_bytes(ORIGINALS, f"tests/{media_id}/{name}", data, "image/jpeg"))


def _checked(outgoing: list[Any]) -> list[dict[str, Any]]:
    records = []
    for out in outgoing:
        assert out.event_type == "EmbeddingComputed"
        assert_valid("EmbeddingComputed", out.record)
        assert out.record["normalized"] is True
        assert np.linalg.norm(out.record["vector"]) == pytest.approx(1.0, abs=1e-4)
        assert out.key == out.record["media_id"]
        records.append(out.record)
    return records


def test_image_upload_and_frame_get_one_image_embedding(ctx: StageContext) -> None:
    media_id = new_media_id()
    original = _store_photo(ctx, media_id)
    upload = sample_event(
        get_catalog(), "MediaUploaded", media_id=media_id, media_kind="IMAGE", original=original
    )
    (record,) = _checked(embed(upload, ctx))
    assert record["target"] == "IMAGE" and record["target_index"] is None
    assert record["item"]["image"] == original and record["box"] is None
    assert record["model"] == ctx.engines.image_embedder().model_ref()
    expected = ctx.engines.image_embedder().embed(_photo())
    assert np.allclose(record["vector"], expected, atol=1e-6)
    assert record["envelope"]["causation_id"] == upload["envelope"]["event_id"]
    (again,) = embed(upload, ctx)
    assert again.record["envelope"]["event_id"] == record["envelope"]["event_id"]

    frame = sample_event(
        get_catalog(), "FrameCaptured", media_id=media_id, image=original, frame_index=42
    )
    (frame_record,) = _checked(embed(frame, ctx))
    assert frame_record["item"]["frame_index"] == 42
    assert frame_record["envelope"]["event_id"] != record["envelope"]["event_id"]

    pdf = sample_event(get_catalog(), "MediaUploaded", media_id=media_id, media_kind="PDF")
    assert embed(pdf, ctx) == []


def test_each_detection_gets_a_crop_embedding(ctx: StageContext) -> None:
    media_id = new_media_id()
    ref = item(media_id, image=_store_photo(ctx, media_id))
    event = detections_event(
        media_id,
        ref,
        [
            ("person", 0.9, (50.0, 400.0, 250.0, 900.0), 5.0),
            ("bus", 0.8, (20.0, 230.0, 800.0, 760.0), None),
        ],
        size=(810, 1080),
    )
    records = _checked(embed(event, ctx))
    assert [r["target"] for r in records] == ["OBJECT_CROP", "OBJECT_CROP"]
    assert [r["target_index"] for r in records] == [0, 1]
    assert [r["class_name"] for r in records] == ["person", "bus"]
    assert records[1]["box"] == {"x_min": 20.0, "y_min": 230.0, "x_max": 800.0, "y_max": 760.0}
    assert len({r["envelope"]["event_id"] for r in records}) == 2
    crop = _photo()[400:900, 50:250]
    crops = ctx.engines.object_embedder()
    assert np.allclose(records[0]["vector"], crops.embed(crop), atol=1e-6)
    # Crops are embedded at their own, smaller input: a vector space apart from whole images.
    assert records[0]["model"] == crops.model_ref() != ctx.engines.image_embedder().model_ref()

    # A box with no pixels inside the image has nothing to embed; the others still count.
    mixed = detections_event(
        media_id,
        ref,
        [("cat", 0.5, (900, 0, 950, 50), None), ("person", 0.9, (50.0, 400.0, 250.0, 900.0), 5.0)],
        size=(810, 1080),
    )
    (kept,) = _checked(embed(mixed, ctx))
    assert kept["target_index"] == 1 and kept["class_name"] == "person"
    assert np.allclose(kept["vector"], records[0]["vector"], atol=1e-6)
    no_size = detections_event(media_id, ref, [("cat", 0.5, (1, 1, 9, 9), None)], size=(0, 0))
    with pytest.raises(PermanentStageError, match="no image size"):
        embed(no_size, ctx)
    empty = detections_event(media_id, ref, [], size=(810, 1080))
    assert embed(empty, ctx) == []


def test_each_text_block_gets_a_text_embedding(ctx: StageContext) -> None:
    media_id = new_media_id()
    ref = item(media_id, page=2)  # text blocks need no image download
    event = text_event(
        media_id,
        ref,
        [
            [[("Invoice", (10, 10, 80, 30)), ("4711", (90, 10, 130, 30))]],
            [[("   ", (10, 50, 20, 60))]],
            [[("Total", (10, 80, 60, 100)), ("99", (70, 80, 90, 100))]],
        ],
    )
    records = _checked(embed(event, ctx))
    assert [r["target_index"] for r in records] == [0, 2]  # the blank block is not embedded
    assert [r["text"] for r in records] == ["Invoice 4711", "Total 99"]
    assert records[0]["box"] == {"x_min": 10.0, "y_min": 10.0, "x_max": 130.0, "y_max": 30.0}
    assert records[0]["model"]["name"] == "all-minilm-l6-v2"
    expected = ctx.engines.text_embedder().embed(["Invoice 4711"])[0]
    assert np.allclose(records[0]["vector"], expected, atol=1e-5)


def test_unsupported_events_are_permanent_errors(ctx: StageContext) -> None:
    event = sample_event(get_catalog(), "CodesDecoded")
    with pytest.raises(PermanentStageError, match="not CodesDecoded"):
        embed(event, ctx)
