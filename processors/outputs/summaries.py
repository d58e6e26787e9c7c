"""Compact, JSON-safe summaries of result events: what reports show, small enough to keep.

The combined report folds every stored result of an item into these summaries rather than
keeping whole events (a video has thousands of frames).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from processors.outputs.items import (
    box_tuple,
    event_id,
    event_type,
    occurred_at_ms,
    polygon_bounds,
)
from processors.outputs.text_export import reading_order_text

Summary = dict[str, Any]

# Events whose results belong to one item (page, frame or the original).
ITEM_RESULT_TYPES = (
    "TextRecognized",
    "ObjectsDetected",
    "CodesDecoded",
    "SceneDescribed",
    "MediaRedacted",
)
RESULT_TYPES = (*ITEM_RESULT_TYPES, "TrackUpdated")


def _model(model: Mapping[str, Any]) -> dict[str, str]:
    return {"name": str(model["name"]), "version": str(model["version"])}


def _rounded_box(box: tuple[float, float, float, float]) -> list[float]:
    return [round(value, 1) for value in box]


def _text(event: Mapping[str, Any]) -> Summary:
    blocks = sorted(event["blocks"], key=lambda block: int(block["reading_order"]))
    return {
        "text": reading_order_text(event),
        "blocks": [
            {
                "text": str(block["text"]),
                "confidence": round(float(block["confidence"]), 4),
                "language": block.get("language"),
                "box": _rounded_box(polygon_bounds(block["polygon"])) if block["polygon"] else None,
            }
            for block in blocks
        ],
        "models": [_model(model) for model in event["models"]],
    }


def _detections(event: Mapping[str, Any]) -> Summary:
    return {
        "detections": [
            {
                "class_name": str(detection["class_name"]),
                "confidence": round(float(detection["confidence"]), 4),
                "box": _rounded_box(box_tuple(detection["box"])),
                "distance_m": None
                if detection.get("distance_m") is None
                else round(float(detection["distance_m"]), 2),
                "track_id": detection.get("track_id"),
            }
            for detection in event["detections"]
        ],
        "models": [_model(event["model"])],
    }


def _codes(event: Mapping[str, Any]) -> Summary:
    return {
        "codes": [
            {"symbology": str(code["symbology"]), "text": str(code["text"])}
            for code in event["codes"]
        ],
        "models": [{"name": str(decoder), "version": ""} for decoder in event["decoders"]],
    }


def _scene(event: Mapping[str, Any]) -> Summary:
    return {
        "sentences": {str(key): str(value) for key, value in sorted(event["sentences"].items())},
        "object_count": len(event["objects"]),
        "models": [],
    }


def _redaction(event: Mapping[str, Any]) -> Summary:
    kinds = Counter(_enum_name(region["kind"]) for region in event["regions"])
    return {
        "method": _enum_name(event["method"]),
        "regions": dict(sorted(kinds.items())),
        "pii_counts": {str(k): int(v) for k, v in sorted(event["pii_counts"].items())},
        "redacted_image": f"{event['redacted_image']['bucket']}/{event['redacted_image']['key']}",
        "models": [_model(model) for model in event["models"]],
    }


def _enum_name(value: object) -> str:
    # fastavro decodes enums to their symbol; tolerate Enum members too.
    return str(getattr(value, "value", value))


_SUMMARISERS = {
    "TextRecognized": _text,
    "ObjectsDetected": _detections,
    "CodesDecoded": _codes,
    "SceneDescribed": _scene,
    "MediaRedacted": _redaction,
}


def summarise(event: Mapping[str, Any]) -> Summary:
    """Summary of one item result event, with its id and time for ordering."""
    kind = event_type(event)
    summariser = _SUMMARISERS.get(kind)
    if summariser is None:
        raise ValueError(f"no summary for {kind}; expected one of {', '.join(ITEM_RESULT_TYPES)}")
    return {
        "event_id": event_id(event),
        "occurred_at_ms": occurred_at_ms(event),
        **summariser(event),
    }
