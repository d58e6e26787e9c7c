"""Naming and geometry shared by the renderers: item order and titles, export keys, bounds.

Items are named in keys by `processors.stage.item_label`, like every other derived blob.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

Event = dict[str, Any]
Box = tuple[float, float, float, float]


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
