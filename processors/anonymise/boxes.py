"""Axis-aligned boxes with a score: overlap, suppression, padding and clipping."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Box:
    """A region in pixels of an image (right and bottom edges exclusive) and its confidence."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return max(0.0, self.x_max - self.x_min)

    @property
    def height(self) -> float:
        return max(0.0, self.y_max - self.y_min)

    @property
    def area(self) -> float:
        return self.width * self.height

    def padded(self, fraction: float) -> Box:
        """Grown by `fraction` of its size on every side."""
        dx, dy = self.width * fraction, self.height * fraction
        return Box(self.x_min - dx, self.y_min - dy, self.x_max + dx, self.y_max + dy, self.score)

    def clipped(self, width: int, height: int) -> Box:
        return Box(
            min(max(self.x_min, 0.0), float(width)),
            min(max(self.y_min, 0.0), float(height)),
            min(max(self.x_max, 0.0), float(width)),
            min(max(self.y_max, 0.0), float(height)),
            self.score,
        )

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x_min * sx, self.y_min * sy, self.x_max * sx, self.y_max * sy, self.score)

    def pixel_bounds(self) -> tuple[int, int, int, int]:
        """Integer x0, y0, x1, y1 covering the box (rounded outwards)."""
        return (
            math.floor(self.x_min),
            math.floor(self.y_min),
            math.ceil(self.x_max),
            math.ceil(self.y_max),
        )

    def as_record(self) -> dict[str, Any]:
        """The BoundingBox record of the event schemas."""
        return {"x_min": self.x_min, "y_min": self.y_min, "x_max": self.x_max, "y_max": self.y_max}

    @classmethod
    def from_record(cls, record: dict[str, Any], score: float = 1.0) -> Box:
        return cls(
            float(record["x_min"]),
            float(record["y_min"]),
            float(record["x_max"]),
            float(record["y_max"]),
            score,
        )


def iou(first: Box, second: Box) -> float:
    inter_w = min(first.x_max, second.x_max) - max(first.x_min, second.x_min)
    inter_h = min(first.y_max, second.y_max) - max(first.y_min, second.y_min)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    return inter / (first.area + second.area - inter)


def non_max_suppression(boxes: Sequence[Box], iou_threshold: float) -> list[Box]:
    """Highest-scoring boxes first, dropping any that overlap a kept one too much."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.score, reverse=True):
        if all(iou(box, other) <= iou_threshold for other in kept):
            kept.append(box)
    return kept
