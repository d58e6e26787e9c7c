"""Stage: detect objects in uploaded images and captured frames (→ ObjectsDetected)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from processors.detection.engine import DetectorEngine
from processors.detection.frames import Frame, load_frame
from processors.spatial.geometry import estimate_distance_m
from processors.stage import (
    Outgoing,
    PermanentStageError,
    StageContext,
    derived_envelope,
    item_ref,
)
from visionlog.settings import ProcessorSettings

STAGE_NAME = "detection"
DETECTION_PROFILES = frozenset({"vision", "full"})


def wants_detection(event: dict[str, Any]) -> bool:
    """Whether the event is an image this stage analyses (pages and non-images are not)."""
    event_type = event["envelope"]["event_type"]
    if event_type == "FrameCaptured":
        return True
    if event_type == "MediaUploaded":
        return event["media_kind"] == "IMAGE" and event["profile"] in DETECTION_PROFILES
    if event_type == "PageRendered":
        return False
    raise PermanentStageError(f"detection does not handle {event_type} events")


def with_distances(
    detections: list[dict[str, Any]], focal_length_px: float | None, image_height: float
) -> list[dict[str, Any]]:
    """Fills distance_m from the class's typical height, where the class has one."""
    for detection in detections:
        box = detection["box"]
        detection["distance_m"] = estimate_distance_m(
            detection["class_name"],
            box["y_max"] - box["y_min"],
            focal_length_px,
            box_top_px=box["y_min"],
            box_bottom_px=box["y_max"],
            image_height_px=image_height,
        )
    return detections


def source_size_for(
    engine: DetectorEngine, tuning: ProcessorSettings
) -> Callable[[int, int], tuple[float, float]] | None:
    """What the detector resolves of an image, for a reduced decode (None: decode in full)."""
    return engine.source_size if tuning.detection_reduced_decode else None


def detect_in_frame(
    engine: DetectorEngine, frame: Frame, tuning: ProcessorSettings
) -> dict[str, Any]:
    """The ObjectsDetected fields for a decoded frame (the benchmark times this same call)."""
    threshold = tuning.detection_score_threshold
    found, inference_ms = engine.detect_frame(frame, threshold)
    return {
        "image_width": frame.width,
        "image_height": frame.height,
        "detections": with_distances(
            found.to_records(), tuning.focal_length_px, float(frame.height)
        ),
        "model": dict(engine.model_ref),
        "score_threshold": float(threshold),
        "inference_ms": float(inference_ms),
    }


def detect_objects(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """ObjectsDetected for an IMAGE upload (profile vision or full) or a captured frame."""
    if not wants_detection(event):
        return []
    item = item_ref(event)
    engine = ctx.engines.detector()
    tuning = ctx.settings.processors
    frame = load_frame(ctx, item["image"], source_size_for(engine, tuning))
    record = {
        "envelope": derived_envelope(
            event, "ObjectsDetected", STAGE_NAME, engine.model_ref["version"]
        ),
        "media_id": event["media_id"],
        "item": item,
        **detect_in_frame(engine, frame, tuning),
    }
    return [Outgoing(event_type="ObjectsDetected", record=record, key=event["media_id"])]
