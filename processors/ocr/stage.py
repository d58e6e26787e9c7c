"""The OCR stage: MediaUploaded images and PageRendered pages in, TextRecognized out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.memory import release_freed_memory
from processors.ocr.geometry import Image
from processors.ocr.pipeline import OcrPipeline
from processors.ocr.record import text_recognized_fields
from processors.stage import (
    Outgoing,
    PermanentStageError,
    StageContext,
    derived_envelope,
    item_ref,
)

STAGE_NAME = "ocr"
OCR_PROFILES = frozenset({"ocr", "full"})


def _item_identity(event: Mapping[str, Any]) -> str | None:
    """Identity of the image inside its media item, or None when the event is not for OCR."""
    event_type = event["envelope"]["event_type"]
    if event_type == "PageRendered":
        return f"page-{event['page_number']}"
    if event_type == "MediaUploaded":
        if event["media_kind"] != "IMAGE" or event["profile"] not in OCR_PROFILES:
            return None  # PDFs and videos arrive again as PageRendered / FrameCaptured
        return "original"
    raise PermanentStageError(f"the OCR stage does not consume {event_type} events")


def read_page(pipeline: OcrPipeline, image: Image) -> dict[str, Any]:
    """The TextRecognized fields the OCR yields for a decoded page (the benchmark times
    this same call)."""
    return text_recognized_fields(pipeline.read(image))


def text_recognized(
    event: Mapping[str, Any], image: Image, pipeline: OcrPipeline, identity: str
) -> Outgoing:
    """The TextRecognized event for one decoded image of `event`."""
    try:
        fields = read_page(pipeline, image)
    except ValueError as error:
        raise PermanentStageError(
            f"cannot read text from media {event['media_id']}: {error}"
        ) from error
    engine = pipeline.engine
    record = {
        "envelope": derived_envelope(event, "TextRecognized", STAGE_NAME, engine.version, identity),
        "media_id": event["media_id"],
        "item": item_ref(event),
        **fields,
        "models": engine.model_refs(),
    }
    return Outgoing("TextRecognized", record, key=str(event["media_id"]))


def recognise_text(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """Stage entry point: OCR of an uploaded image (profiles ocr and full) or a PDF page."""
    identity = _item_identity(event)
    if identity is None:
        return []
    image = ctx.load_image(item_ref(event)["image"])
    # The worker's pipeline reads several pages at once (one per stage thread, up to
    # `processors.ocr_parallel_pages`); no lock around it.
    try:
        return [text_recognized(event, image, ctx.engines.ocr(), identity)]
    finally:
        # A page's line crops and batches are freed now; without a trim glibc keeps the
        # largest pages' peak resident for the worker's life.
        del image
        release_freed_memory()
