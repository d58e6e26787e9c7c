"""Distances from known heights and relations between boxes, checked against geometry."""

from __future__ import annotations

import pytest

from processors.spatial.geometry import (
    BEHIND,
    IN_FRONT_OF,
    LEFT_OF,
    NEAR,
    RIGHT_OF,
    PlacedObject,
    Relation,
    are_near,
    estimate_distance_m,
    horizontal_position,
    relations,
)
from processors.spatial.heights import CLASS_HEIGHTS_M, class_height_m

FOCAL = 1000.0


def _box_for(class_name: str, distance_m: float, centre_x: float, bottom: float) -> PlacedObject:
    """The box a pinhole camera with FOCAL would see for an object at that distance."""
    height_px = FOCAL * CLASS_HEIGHTS_M[class_name] / distance_m
    width_px = 0.4 * height_px
    return PlacedObject(
        class_name, centre_x - width_px / 2, bottom - height_px, centre_x + width_px / 2, bottom
    )


@pytest.mark.parametrize(("class_name", "distance"), [("person", 6.0), ("bus", 25.0), ("car", 3.0)])
def test_distance_inverts_the_pinhole_projection(class_name: str, distance: float) -> None:
    box = _box_for(class_name, distance, 500, 600)
    assert estimate_distance_m(class_name, box.height, FOCAL) == pytest.approx(distance)


def test_distance_scales_with_focal_length_and_halves_when_twice_as_tall() -> None:
    near = estimate_distance_m("person", 340, FOCAL)
    far = estimate_distance_m("person", 170, FOCAL)
    assert near == pytest.approx(5.0)
    assert far == pytest.approx(10.0)
    assert estimate_distance_m("person", 340, 2 * FOCAL) == pytest.approx(10.0)


def test_no_distance_without_what_it_needs() -> None:
    assert estimate_distance_m("pizza", 100, FOCAL) is None  # height not fixed
    assert estimate_distance_m("person", 100, None) is None
    assert estimate_distance_m("person", 100, 0) is None
    assert estimate_distance_m("person", 0.5, FOCAL) is None
    # Cut off by the frame: the visible height is not the object's height.
    assert estimate_distance_m("person", 300, FOCAL, box_top_px=0.0) is None
    assert estimate_distance_m("person", 300, FOCAL, box_bottom_px=720, image_height_px=720) is None
    assert estimate_distance_m("person", 300, FOCAL, box_top_px=5, box_bottom_px=305,
                               image_height_px=720) == pytest.approx(FOCAL * 1.7 / 300)  # fmt: skip


def test_height_table_covers_common_classes() -> None:
    for name in ("person", "car", "bus", "truck", "bicycle", "motorcycle", "dog", "cat"):
        assert class_height_m(name) is not None
    assert class_height_m(" Person ") == 1.7
    assert all(0.0 < height < 6.0 for height in CLASS_HEIGHTS_M.values())


def test_horizontal_thirds() -> None:
    assert horizontal_position(100, 900) == "left"
    assert horizontal_position(450, 900) == "centre"
    assert horizontal_position(800, 900) == "right"


def test_side_depth_and_near_with_distances() -> None:
    person = _box_for("person", 6.0, 300, 700)
    bus = _box_for("bus", 12.0, 800, 650)
    rel = relations([person, bus], 1280, FOCAL)
    assert Relation(0, LEFT_OF, 1) in rel
    assert Relation(0, IN_FRONT_OF, 1) in rel
    assert not any(r.predicate == NEAR for r in rel)


def test_depth_from_box_bottoms_without_distances() -> None:
    front = PlacedObject("thing", 100, 300, 200, 600)
    back = PlacedObject("thing", 110, 250, 190, 400)
    assert relations([back, front], 1280, None) == [Relation(0, BEHIND, 1)]


def test_right_of_and_no_side_relation_when_boxes_overlap() -> None:
    left = PlacedObject("car", 0, 100, 200, 200)
    right = PlacedObject("car", 600, 100, 800, 200)
    overlapping = PlacedObject("car", 50, 100, 240, 200)
    assert Relation(0, RIGHT_OF, 1) in relations([right, left], 1280, None)
    assert not any(
        r.predicate in (LEFT_OF, RIGHT_OF) for r in relations([left, overlapping], 1280, None)
    )


def test_near_in_metres() -> None:
    # Two people side by side at 5 m: 1 m apart laterally (200 px at f=1000).
    first = _box_for("person", 5.0, 500, 600)
    beside = _box_for("person", 5.0, 500 + first.width + 200, 600)
    far_aside = _box_for("person", 5.0, 500 + first.width + 800, 600)
    behind = _box_for("person", 9.0, 500, 500)
    placed = [
        PlacedObject(**{**item.__dict__, "distance_m": d})
        for item, d in ((first, 5.0), (beside, 5.0), (far_aside, 5.0), (behind, 9.0))
    ]
    assert are_near(placed[0], placed[1], 1280, FOCAL)
    assert not are_near(placed[0], placed[2], 1280, FOCAL)
    assert not are_near(placed[0], placed[3], 1280, FOCAL)


def test_near_in_pixels_without_distances() -> None:
    first = PlacedObject("thing", 100, 100, 200, 300)
    touching = PlacedObject("thing", 210, 110, 300, 305)
    distant = PlacedObject("thing", 700, 100, 800, 300)
    higher = PlacedObject("thing", 210, 0, 300, 150)
    assert are_near(first, touching, 1280, None)
    assert not are_near(first, distant, 1280, None)
    assert not are_near(first, higher, 1280, None)
