"""The embedding stage: whole images, object crops and OCR text blocks to vectors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from processors.embeddings.crops import crop_box
from processors.stage import (
    Outgoing,
    PermanentStageError,
    StageContext,
    derived_envelope,
    item_ref,
)

STAGE_NAME = "embeddings"
_BOX_KEYS = ("x_min", "y_min", "x_max", "y_max")

log = logging.getLogger(__name__)


def _record(
    source: Mapping[str, Any],
    item: Mapping[str, Any],
    target: str,
    index: int | None,
    vector: np.ndarray,
    model: Mapping[str, Any],
    box: Mapping[str, Any] | None = None,
    class_name: str | None = None,
    text: str | None = None,
) -> Outgoing:
    identity = (target, "whole" if index is None else index, model["name"], model["version"])
    record = {
        "envelope": derived_envelope(source, "EmbeddingComputed", STAGE_NAME, *identity),
        "media_id": str(source["media_id"]),
        "item": dict(item),
        "target": target,
        "target_index": index,
        "box": None if box is None else {key: float(box[key]) for key in _BOX_KEYS},
        "class_name": class_name,
        "text": text,
        "vector": [float(value) for value in vector],
        "normalized": True,
        "model": dict(model),
    }
    return Outgoing(event_type="EmbeddingComputed", record=record, key=str(source["media_id"]))


def _embed_image(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    item = item_ref(event)
    image = ctx.load_image(item["image"])
    embedder = ctx.engines.image_embedder()
    return [_record(event, item, "IMAGE", None, embedder.embed(image), embedder.model_ref())]


def _embed_crops(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """One OBJECT_CROP embedding per detection whose box covers pixels of the image.

    A box with (almost) no area inside the image (a sliver at its edge) has nothing to
    embed; it is skipped and logged, and the other detections keep their embeddings.
    """
    item = event["item"]
    detections = event["detections"]
    if not detections:
        return []
    image = ctx.load_image(item["image"])
    size = (int(event["image_width"]), int(event["image_height"]))
    if size[0] <= 0 or size[1] <= 0:
        raise PermanentStageError(
            f"ObjectsDetected {event['envelope']['event_id']} has no image size: {size}"
        )
    embedder = ctx.engines.object_embedder()
    model = embedder.model_ref()
    outgoing = []
    for index, detection in enumerate(detections):
        try:
            crop = crop_box(image, detection["box"], size)
        except ValueError as exc:
            log.warning(
                "ObjectsDetected %s detection %d not embedded: %s",
                event["envelope"]["event_id"],
                index,
                exc,
            )
            continue
        outgoing.append(
            _record(
                event,
                item,
                "OBJECT_CROP",
                index,
                embedder.embed(crop),
                model,
                box=detection["box"],
                class_name=str(detection["class_name"]),
            )
        )
    return outgoing


def _bounds(polygon: list[Mapping[str, Any]]) -> dict[str, float] | None:
    if not polygon:
        return None
    xs = [float(point["x"]) for point in polygon]
    ys = [float(point["y"]) for point in polygon]
    return {"x_min": min(xs), "y_min": min(ys), "x_max": max(xs), "y_max": max(ys)}


def _embed_text(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    # Blank blocks carry no meaning to embed; they keep their index for the others.
    blocks = [
        (index, block) for index, block in enumerate(event["blocks"]) if str(block["text"]).strip()
    ]
    if not blocks:
        return []
    embedder = ctx.engines.text_embedder()
    vectors = embedder.embed([str(block["text"]) for _, block in blocks])
    model = embedder.model_ref()
    return [
        _record(
            event,
            event["item"],
            "TEXT_BLOCK",
            index,
            vector,
            model,
            box=_bounds(block["polygon"]),
            text=str(block["text"]),
        )
        for (index, block), vector in zip(blocks, vectors, strict=True)
    ]


def embed(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """EmbeddingComputed events for an image upload, a frame, detections or OCR text."""
    kind = event["envelope"]["event_type"]
    if kind == "MediaUploaded":
        # PDFs and videos are embedded per page or frame, not as the container file.
        return _embed_image(event, ctx) if event["media_kind"] == "IMAGE" else []
    if kind == "FrameCaptured":
        return _embed_image(event, ctx)
    if kind == "ObjectsDetected":
        if not ctx.settings.processors.object_embeddings:
            return []
        return _embed_crops(event, ctx)
    if kind == "TextRecognized":
        return _embed_text(event, ctx)
    raise PermanentStageError(
        f"embed handles MediaUploaded, FrameCaptured, ObjectsDetected and TextRecognized, "
        f"not {kind}"
    )
