"""Stages: anonymise images (faces, plates) and mask personal data in recognised text."""

from __future__ import annotations

from typing import Any

import cv2

from processors.anonymise.boxes import Box
from processors.anonymise.keys import redacted_image_key, redacted_text_key
from processors.anonymise.pii import mask_pii
from processors.anonymise.plates import detect_plates, plate_model_ref
from processors.anonymise.redact import RedactionMethod, redact
from processors.stage import (
    PROCESSORS_VERSION,
    Outgoing,
    StageContext,
    derived_envelope,
    image_item,
)

STAGE_NAME = "anonymise"
GENERATOR = f"processors.{STAGE_NAME}/{PROCESSORS_VERSION}"
JPEG_QUALITY = 90


def _redaction_settings(ctx: StageContext) -> tuple[RedactionMethod, float, float]:
    tuning = ctx.settings.processors
    return tuning.redaction_method, tuning.redaction_padding, tuning.face_score_threshold


def _region(kind: str, box: Box) -> dict[str, Any]:
    return {"kind": kind, "box": box.as_record(), "confidence": float(box.score)}


def redact_media(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """MediaUploaded (images), PageRendered or FrameCaptured -> MediaRedacted.

    The anonymised copy is stored at media-processed/{media_id}/redacted/{item}.jpg.
    """
    item = image_item(event)
    if item is None:
        return []
    method, padding, threshold = _redaction_settings(ctx)
    image = ctx.load_image(item["image"])
    detector = ctx.engines.faces()
    faces = detector.detect(image)
    plates = detect_plates(image)
    redacted = redact(image, [*faces, *plates], method, padding)
    ok, encoded = cv2.imencode(".jpg", redacted, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding of the redacted image failed")
    bucket, key = redacted_image_key(item)
    stored = ctx.blobs.put_bytes(bucket, key, encoded.tobytes(), "image/jpeg")
    models = [detector.model_ref(), plate_model_ref()]
    record = {
        "envelope": derived_envelope(
            event,
            "MediaRedacted",
            STAGE_NAME,
            method,
            padding,
            threshold,
            *(f"{m['name']}={m['version']}" for m in models),
        ),
        "media_id": event["media_id"],
        "item": item,
        "redacted_image": dict(stored),
        "method": method,
        "regions": [_region("FACE", box) for box in faces]
        + [_region("LICENCE_PLATE", box) for box in plates],
        "redacted_text": None,
        "pii_counts": {},
        "models": models,
    }
    return [Outgoing("MediaRedacted", record, str(event["media_id"]))]


def mask_text(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """TextRecognized -> OutputGenerated (REDACTED_TEXT).

    The masked full text is stored at exports/{media_id}/redacted-text/{item}.txt.
    """
    if event["envelope"]["event_type"] != "TextRecognized":
        return []
    masked = mask_pii(str(event["full_text"]))
    bucket, key = redacted_text_key(event["item"])
    stored = ctx.blobs.put_bytes(
        bucket, key, masked.text.encode("utf-8"), "text/plain; charset=utf-8"
    )
    record = {
        "envelope": derived_envelope(event, "OutputGenerated", STAGE_NAME, "REDACTED_TEXT"),
        "media_id": event["media_id"],
        "item": event["item"],
        "kind": "REDACTED_TEXT",
        "output": dict(stored),
        "source_event_ids": [event["envelope"]["event_id"]],
        "generator": GENERATOR,
    }
    return [Outgoing("OutputGenerated", record, str(event["media_id"]))]
