"""Naming and geometry shared by the renderers: item labels, export keys, polygon bounds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

Event = dict[str, Any]
Box = tuple[float, float, float, float]

ORIGINAL = "original"


def item_label(item: Mapping[str, Any] | None) -> str:
    """Folder name of an item under the exports layout: original, page-0003, frame-00000042."""
    if item is None:
        return ORIGINAL
    if item.get("page_number") is not None:
        return f"page-{int(item['page_number']):04d}"
    if item.get("frame_index") is not None:
        return f"frame-{int(item['frame_index']):08d}"
    return ORIGINAL


def item_sort_key(item: Mapping[str, Any] | None) -> tuple[int, int]:
    """Whole item first, then pages by number, then frames by index."""
    if item is None:
        return (0, 0)
    if item.get("page_number") is not None:
        return (1, int(item["page_number"]))
    if item.get("frame_index") is not None:
        return (2, int(item["frame_index"]))
    return (0, 0)


def item_title(item: Mapping[str, Any] | None) -> str:
    """Human-readable name of an item for report headings."""
    if item is None:
        return "Original"
    if item.get("page_number") is not None:
        return f"Page {int(item['page_number'])}"
    if item.get("frame_index") is not None:
        title = f"Frame {int(item['frame_index'])}"
        if item.get("frame_timestamp_ms") is not None:
            title += f" ({int(item['frame_timestamp_ms']) / 1000:.3f} s)"
        return title
    return "Original"


def export_key(media_id: str, label: str, stem: str, extension: str) -> str:
    """Object key in the exports bucket: {media_id}/{item}/{stem}.{ext}."""
    return f"{media_id}/{label}/{stem}.{extension}"


def polygon_bounds(points: Iterable[Mapping[str, Any]]) -> Box:
    """Axis-aligned bounds (x_min, y_min, x_max, y_max) of a polygon."""
    xs: list[float] = []
    ys: list[float] = []
    for point in points:
        xs.append(float(point["x"]))
        ys.append(float(point["y"]))
    if not xs:
        raise ValueError("a polygon needs at least one point")
    return (min(xs), min(ys), max(xs), max(ys))


def box_tuple(box: Mapping[str, Any]) -> Box:
    """A BoundingBox record as (x_min, y_min, x_max, y_max)."""
    return (float(box["x_min"]), float(box["y_min"]), float(box["x_max"]), float(box["y_max"]))


def occurred_at_ms(event: Mapping[str, Any]) -> int:
    """The envelope's occurred_at as milliseconds since the epoch (datetime or int)."""
    occurred = event["envelope"]["occurred_at"]
    if isinstance(occurred, datetime):
        return int(occurred.timestamp() * 1000)
    return int(occurred)


def event_type(event: Mapping[str, Any]) -> str:
    return str(event["envelope"]["event_type"])


def event_id(event: Mapping[str, Any]) -> str:
    return str(event["envelope"]["event_id"])
