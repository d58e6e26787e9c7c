"""Detections as CSV, one row per box."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from processors.outputs.items import box_tuple, event_type
from processors.stage import item_label

CSV_COLUMNS = (
    "media",
    "item",
    "class",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
    "distance",
)
# A leading = + - @ makes spreadsheets evaluate a cell as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _safe_text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def render_detections_csv(events: Sequence[Mapping[str, Any]]) -> bytes:
    """UTF-8 CSV with a header row; boxes in pixels, distance in metres (empty if unknown)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for event in events:
        if event_type(event) != "ObjectsDetected":
            raise ValueError(
                f"detections CSV needs ObjectsDetected events, got {event_type(event)}"
            )
        label = item_label(event["item"])
        for detection in event["detections"]:
            x_min, y_min, x_max, y_max = box_tuple(detection["box"])
            distance = detection.get("distance_m")
            writer.writerow(
                (
                    _safe_text(str(event["media_id"])),
                    label,
                    _safe_text(str(detection["class_name"])),
                    f"{float(detection['confidence']):.4f}",
                    f"{x_min:.1f}",
                    f"{y_min:.1f}",
                    f"{x_max:.1f}",
                    f"{y_max:.1f}",
                    "" if distance is None else f"{float(distance):.2f}",
                )
            )
    return buffer.getvalue().encode("utf-8")
