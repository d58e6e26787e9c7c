"""Stage: scan an uploaded image, rendered page or captured frame for codes."""

from __future__ import annotations

from typing import Any

from processors.codes.decoders import decode_image, decoder_labels, decoder_model_refs
from processors.stage import (
    Outgoing,
    StageContext,
    derived_envelope,
    item_ref,
)

STAGE_NAME = "codes"
_IMAGE_EVENTS = {"MediaUploaded", "PageRendered", "FrameCaptured"}


def decode_codes(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """MediaUploaded (images only), PageRendered or FrameCaptured -> CodesDecoded."""
    event_type = event["envelope"]["event_type"]
    if event_type not in _IMAGE_EVENTS:
        return []
    # PDFs and videos are scanned page by page and frame by frame, not as uploads.
    if event_type == "MediaUploaded" and event["media_kind"] != "IMAGE":
        return []
    item = item_ref(event)
    image = ctx.load_image(item["image"])
    labels = decoder_labels()
    codes = decode_image(image)
    record = {
        "envelope": derived_envelope(event, "CodesDecoded", STAGE_NAME, *labels),
        "media_id": event["media_id"],
        "item": item,
        "codes": [code.as_record() for code in codes],
        "decoders": labels,
        "models": decoder_model_refs(),
    }
    return [Outgoing("CodesDecoded", record, str(event["media_id"]))]
