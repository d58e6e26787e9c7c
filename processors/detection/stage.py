"""Stage: detect objects in uploaded images and captured frames (→ ObjectsDetected)."""

from __future__ import annotations

import threading
from typing import Any

from processors.detection.engine import DetectorEngine, create_detector
from processors.spatial.geometry import estimate_distance_m
from processors.stage import (
    Outgoing,
    PermanentStageError,
    StageContext,
    derived_envelope,
    item_ref,
)
from visionlog.settings import Settings

STAGE_NAME = "detection"
DETECTION_PROFILES = frozenset({"vision", "full"})

_engine: DetectorEngine | None = None
_engine_key: tuple[object, ...] | None = None
_engine_lock = threading.Lock()


def _engine_config(settings: Settings) -> tuple[object, ...]:
    tuning = settings.processors
    return (
        tuning.yolo_model_path,
        tuning.yolo_class_names_path,
        tuning.inference_threads,
        settings.cache_dir,
    )


def detector(settings: Settings) -> DetectorEngine:
    """The process-wide engine, created on first use and again when its settings change."""
    global _engine, _engine_key
    key = _engine_config(settings)
    with _engine_lock:
        if _engine is None or _engine_key != key:
            _engine = create_detector(settings)
            _engine_key = key
        return _engine


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


def detect_objects(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """ObjectsDetected for an IMAGE upload (profile vision or full) or a captured frame."""
    if not wants_detection(event):
        return []
    item = item_ref(event)
    image = ctx.load_image(item["image"])
    engine = detector(ctx.settings)
    threshold = ctx.settings.processors.detection_score_threshold
    found, inference_ms = engine.detect_timed(image, threshold)
    height, width = image.shape[:2]
    record = {
        "envelope": derived_envelope(
            event, "ObjectsDetected", STAGE_NAME, engine.model_ref["version"]
        ),
        "media_id": event["media_id"],
        "item": item,
        "image_width": int(width),
        "image_height": int(height),
        "detections": with_distances(
            found.to_records(), ctx.settings.processors.focal_length_px, float(height)
        ),
        "model": dict(engine.model_ref),
        "score_threshold": float(threshold),
        "inference_ms": float(inference_ms),
    }
    return [Outgoing(event_type="ObjectsDetected", record=record, key=event["media_id"])]
