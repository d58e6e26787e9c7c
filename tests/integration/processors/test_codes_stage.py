"""The codes stage against the real MinIO: images in, deterministic CodesDecoded out."""

from __future__ import annotations

import uuid
from typing import Any

import cv2
import fastavro
import numpy as np
import pytest

from processors.codes.decoders import decoder_labels
from processors.codes.stage import decode_codes
from processors.stage import PermanentStageError, StageContext
from tests.factories import sample_event
from tests.unit.processors.test_codes import (
    canvas,
    code128_modules,
    paste,
    render_linear,
    render_qr,
)
from visionlog.blobstore import ORIGINALS
from visionlog.schemas import get_catalog


def _uploaded_image(ctx: StageContext, image: np.ndarray, **fields: Any) -> dict[str, Any]:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    media_id = str(uuid.uuid4())
    ref = ctx.blobs.put_bytes(ORIGINALS, f"{media_id}/original.png", encoded.tobytes(), "image/png")
    event: dict[str, Any] = {"media_kind": "IMAGE", "original": dict(ref), **fields}
    return sample_event(get_catalog(), "MediaUploaded", media_id=media_id, **event)


def test_stage_emits_a_valid_deterministic_codes_decoded(ctx: StageContext) -> None:
    image = canvas(900, 400)
    paste(image, render_qr("stage-qr", 6), 20, 20)
    paste(image, render_linear(code128_modules("STAGE-128"), 3, 150), 300, 120)
    event = _uploaded_image(ctx, image)
    first = decode_codes(event, ctx)
    again = decode_codes(event, ctx)
    assert len(first) == 1
    outgoing = first[0]
    assert outgoing.event_type == "CodesDecoded"
    assert outgoing.key == event["media_id"]
    record = outgoing.record
    fastavro.validation.validate(
        record, get_catalog().event("CodesDecoded").parsed, raise_errors=True
    )
    assert sorted(code["text"] for code in record["codes"]) == ["STAGE-128", "stage-qr"]
    assert record["decoders"] == decoder_labels()
    assert [model["name"] for model in record["models"]] == [
        "opencv-qr",
        "opencv-barcode",
        "zxing-cpp",
    ]
    assert record["item"]["image"] == event["original"]
    assert record["envelope"]["causation_id"] == event["envelope"]["event_id"]
    assert record["envelope"]["event_id"] == again[0].record["envelope"]["event_id"]


def test_stage_skips_pdf_uploads_and_rejects_corrupt_images(ctx: StageContext) -> None:

    pdf_event = _uploaded_image(ctx, canvas(10, 10), media_kind="PDF")
    assert decode_codes(pdf_event, ctx) == []
    assert decode_codes(sample_event(get_catalog(), "TextRecognized"), ctx) == []
    media_id = str(uuid.uuid4())
    ref = ctx.blobs.put_bytes(ORIGINALS, f"{media_id}/bad.jpg", b"\xff\xd8garbage", "image/jpeg")
    corrupt = sample_event(get_catalog(), "MediaUploaded", media_id=media_id, media_kind="IMAGE",
                           original=dict(ref))  # fmt: skip
    with pytest.raises(PermanentStageError, match="not a decodable image"):
        decode_codes(corrupt, ctx)
