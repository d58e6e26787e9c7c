"""Distances from known heights and pairwise spatial relations between detected objects.

Pinhole camera: an object of real height H metres that appears h pixels tall is
f * H / h metres away, with f the focal length in pixels. Positions across the image use
the image centre as the principal point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from processors.spatial.heights import class_height_m

LEFT_OF, RIGHT_OF, IN_FRONT_OF, BEHIND, NEAR = (
    "LEFT_OF",
    "RIGHT_OF",
    "IN_FRONT_OF",
    "BEHIND",
    "NEAR",
)
# Objects this close to each other (metres, between their nearest sides) are "near".
NEAR_M = 1.5
# One object is in front of another when it is at least this much (relatively) closer.
DEPTH_MARGIN = 0.15
# Boxes touching the top or bottom edge (pixels) are cut off: their height says too little.
EDGE_PX = 1.0


@dataclass(frozen=True)
class PlacedObject:
    """A detection in image pixels with its estimated distance (None when unknown)."""

    class_name: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    confidence: float = 1.0
    distance_m: float | None = None

    @property
    def width(self) -> float:
        return self.x_max - self.x_min

    @property
    def height(self) -> float:
        return self.y_max - self.y_min

    @property
    def centre_x(self) -> float:
        return (self.x_min + self.x_max) / 2


@dataclass(frozen=True)
class Relation:
    subject: int
    predicate: str
    object: int


def estimate_distance_m(
    class_name: str,
    box_height_px: float,
    focal_length_px: float | None,
    *,
    box_top_px: float | None = None,
    box_bottom_px: float | None = None,
    image_height_px: float | None = None,
) -> float | None:
    """f * H / h, or None for unknown classes, no focal length, or boxes cut by the frame."""
    real_height = class_height_m(class_name)
    if real_height is None or focal_length_px is None or focal_length_px <= 0:
        return None
    if box_height_px <= 1:
        return None
    if box_top_px is not None and box_top_px <= EDGE_PX:
        return None
    if (
        box_bottom_px is not None
        and image_height_px is not None
        and box_bottom_px >= image_height_px - EDGE_PX
    ):
        return None
    return focal_length_px * real_height / box_height_px


def horizontal_position(centre_x: float, image_width: float) -> str:
    """`left`, `centre` or `right`: the third of the image the centre falls in."""
    if centre_x < image_width / 3:
        return "left"
    if centre_x > 2 * image_width / 3:
        return "right"
    return "centre"


def _lateral_extent_m(
    item: PlacedObject, image_width: float, focal_length_px: float
) -> tuple[float, float]:
    assert item.distance_m is not None
    scale = item.distance_m / focal_length_px
    centre = image_width / 2
    return (item.x_min - centre) * scale, (item.x_max - centre) * scale


def _interval_gap(first: tuple[float, float], second: tuple[float, float]) -> float:
    return max(0.0, max(first[0], second[0]) - min(first[1], second[1]))


def are_near(
    first: PlacedObject,
    second: PlacedObject,
    image_width: float,
    focal_length_px: float | None,
) -> bool:
    """Nearest sides within NEAR_M metres; without distances, a small gap for their size."""
    if first.distance_m is not None and second.distance_m is not None and focal_length_px:
        lateral = _interval_gap(
            _lateral_extent_m(first, image_width, focal_length_px),
            _lateral_extent_m(second, image_width, focal_length_px),
        )
        depth = abs(first.distance_m - second.distance_m)
        return math.hypot(lateral, depth) <= NEAR_M
    gap = _interval_gap((first.x_min, first.x_max), (second.x_min, second.x_max))
    size = max(first.height, second.height)
    same_ground = abs(first.y_max - second.y_max) <= 0.25 * size
    return same_ground and gap <= 0.5 * min(first.height, second.height)


def depth_order(first: PlacedObject, second: PlacedObject) -> int:
    """-1 when `first` is in front of `second`, 1 when behind, 0 when neither is clear."""
    if first.distance_m is not None and second.distance_m is not None:
        if first.distance_m < second.distance_m * (1 - DEPTH_MARGIN):
            return -1
        if second.distance_m < first.distance_m * (1 - DEPTH_MARGIN):
            return 1
        return 0
    # On a ground plane, what stands lower in the image is closer to the camera.
    margin = 0.1 * max(first.height, second.height)
    if first.y_max > second.y_max + margin:
        return -1
    if second.y_max > first.y_max + margin:
        return 1
    return 0


def side_order(first: PlacedObject, second: PlacedObject) -> int:
    """-1 when `first` is left of `second`, 1 when right of it, 0 when they overlap a lot."""
    overlap = min(first.x_max, second.x_max) - max(first.x_min, second.x_min)
    if overlap > 0.5 * min(first.width, second.width):
        return 0
    return -1 if first.centre_x < second.centre_x else 1


def relations(
    objects: Sequence[PlacedObject],
    image_width: float,
    focal_length_px: float | None,
) -> list[Relation]:
    """For each pair (i < j): side, depth and nearness relations with i as the subject."""
    found: list[Relation] = []
    for i, first in enumerate(objects):
        for j in range(i + 1, len(objects)):
            second = objects[j]
            side = side_order(first, second)
            if side:
                found.append(Relation(i, LEFT_OF if side < 0 else RIGHT_OF, j))
            depth = depth_order(first, second)
            if depth:
                found.append(Relation(i, IN_FRONT_OF if depth < 0 else BEHIND, j))
            if are_near(first, second, image_width, focal_length_px):
                found.append(Relation(i, NEAR, j))
    return found


def relation_between(
    subject: PlacedObject,
    anchor: PlacedObject,
    image_width: float,
    focal_length_px: float | None,
) -> set[str]:
    """All predicates that hold for `subject` relative to `anchor`."""
    return {
        relation.predicate
        for relation in relations([subject, anchor], image_width, focal_length_px)
    }
