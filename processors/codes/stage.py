"""Stage: scan an uploaded image, rendered page or captured frame for codes."""

from __future__ import annotations

from typing import Any

from processors.codes.decoders import decode_image, decoder_labels, decoder_model_refs
from processors.stage import Outgoing, StageContext, derived_envelope, image_item

STAGE_NAME = "codes"


def decode_codes(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """MediaUploaded (images only), PageRendered or FrameCaptured -> CodesDecoded."""
    item = image_item(event)
    if item is None:
        return []
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
