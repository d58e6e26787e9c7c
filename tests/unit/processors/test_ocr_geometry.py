"""Pure geometry and decoding helpers of the OCR package."""

from __future__ import annotations

import numpy as np
import pytest

from processors.ocr.detection import DetectorParams, boxes_from_probability, detector_size
from processors.ocr.geometry import (
    crop_quad,
    offset_convex_polygon,
    order_quad,
    polygon_area,
    sub_quad,
    transform_points,
    unclip,
)
from processors.ocr.orientation import dominant_direction
from processors.ocr.recognition import (
    charset_from_metadata,
    ctc_greedy_decode,
    recogniser_batch,
)


def test_offset_of_a_rectangle_grows_every_side() -> None:
    rect = np.array([[10, 10], [50, 10], [50, 30], [10, 30]], dtype=np.float64)
    grown = offset_convex_polygon(rect, 2.0)
    assert polygon_area(grown) == pytest.approx(44 * 24)
    assert grown[:, 0].min() == pytest.approx(8)
    assert grown[:, 1].max() == pytest.approx(32)


def test_offset_does_not_depend_on_winding() -> None:
    rect = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=np.float64)
    assert polygon_area(offset_convex_polygon(rect[::-1], 1.0)) == pytest.approx(144)


def test_offset_of_a_rotated_square_keeps_its_shape() -> None:
    diamond = np.array([[0, -10], [10, 0], [0, 10], [-10, 0]], dtype=np.float64)
    grown = offset_convex_polygon(diamond, 1.0)
    side = np.linalg.norm(grown[0] - grown[1])
    assert side == pytest.approx(np.hypot(10, 10) + 2.0)


def test_unclip_uses_area_over_perimeter() -> None:
    rect = np.array([[0, 0], [100, 0], [100, 10], [0, 10]], dtype=np.float64)
    distance = 1000 * 1.5 / 220
    grown = unclip(rect, 1.5)
    assert grown[:, 1].max() == pytest.approx(10 + distance)


def test_order_quad_starts_top_left_clockwise() -> None:
    shuffled = np.array([[50, 30], [10, 10], [10, 30], [50, 10]], dtype=np.float64)
    assert order_quad(shuffled).tolist() == [[10, 10], [50, 10], [50, 30], [10, 30]]


def test_sub_quad_takes_a_share_of_the_width() -> None:
    quad = np.array([[0, 0], [100, 0], [100, 20], [0, 20]], dtype=np.float64)
    part = sub_quad(quad, 0.25, 0.5)
    assert part.tolist() == [[25, 0], [50, 0], [50, 20], [25, 20]]


def test_transform_points_applies_a_homography() -> None:
    shift = np.array([[1, 0, 5], [0, 1, -2], [0, 0, 1]], dtype=np.float64)
    moved = transform_points(np.array([[1.0, 1.0]]), shift)
    assert moved.tolist() == [[6.0, -1.0]]


def test_crop_quad_rectifies_a_tilted_region() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 20:80] = 255
    crop = crop_quad(image, np.array([[20, 40], [80, 40], [80, 60], [20, 60]], dtype=np.float64))
    assert crop.shape == (20, 60, 3)
    assert crop[2:-2, 2:-2].min() == 255


def test_detector_size_is_a_multiple_of_32_within_limits() -> None:
    params = DetectorParams(max_side=960, min_side=64)
    assert detector_size(2000, 1000, params) == (960, 480)
    width, height = detector_size(333, 20, params)
    assert width % 32 == 0 and height % 32 == 0 and height >= 64


def test_probability_map_becomes_boxes_in_image_pixels() -> None:
    probability = np.zeros((64, 128), np.float32)
    probability[20:30, 10:90] = 0.9
    boxes = boxes_from_probability(probability, 256, 128, DetectorParams())
    assert len(boxes) == 1
    quad = boxes[0].quad
    # Grown beyond the kernel, then scaled by 2 to the image.
    assert quad[:, 0].min() < 20 and quad[:, 0].max() > 178
    assert quad[:, 1].min() < 40 and quad[:, 1].max() > 58
    assert boxes[0].score == pytest.approx(0.9, abs=0.01)


def test_faint_or_tiny_regions_are_not_boxes() -> None:
    probability = np.zeros((64, 128), np.float32)
    probability[20:30, 10:90] = 0.4  # above the binary threshold, below the box threshold
    probability[50:52, 10:12] = 0.9  # too small
    assert boxes_from_probability(probability, 128, 64, DetectorParams()) == []


def test_charset_has_blank_first_and_space_last() -> None:
    charset = charset_from_metadata("a\nb\nä\n")
    assert charset == ["", "a", "b", "ä", " "]
    with pytest.raises(ValueError, match="empty"):
        charset_from_metadata("")


def _one_hot(indices: list[int], classes: int, score: float = 0.9) -> np.ndarray:
    matrix = np.full((len(indices), classes), (1 - score) / (classes - 1), np.float32)
    matrix[np.arange(len(indices)), indices] = score
    return matrix


def test_ctc_collapses_repeats_and_drops_blanks() -> None:
    charset = ["", "a", "b", "l", " "]
    # "al l" with a doubled l kept apart by a blank, and repeats collapsed.
    steps = [1, 1, 0, 3, 3, 0, 4, 3, 0, 0]
    decoded = ctc_greedy_decode(_one_hot(steps, 5), charset)
    assert decoded.text == "al l"
    assert decoded.confidences == pytest.approx((0.9, 0.9, 0.9, 0.9))
    # Run centres: a over steps 0-1, l over 3-4, space at 6, l at 7 (of 10 steps).
    assert decoded.positions == pytest.approx((0.1, 0.4, 0.65, 0.75))


def test_ctc_positions_are_scaled_to_the_unpadded_crop() -> None:
    decoded = ctc_greedy_decode(_one_hot([1, 0, 0, 0], 3), ["", "x", " "], used_fraction=0.5)
    assert decoded.positions == pytest.approx((0.25,))


def test_ctc_rejects_classes_outside_the_charset() -> None:
    with pytest.raises(ValueError, match="outside"):
        ctc_greedy_decode(_one_hot([5], 6), ["", "a"])


def test_recogniser_batch_pads_to_the_widest_crop() -> None:
    narrow = np.full((24, 24, 3), 255, np.uint8)
    wide = np.full((24, 480, 3), 255, np.uint8)
    batch, used = recogniser_batch([narrow, wide])
    assert batch.shape == (2, 3, 48, 960)
    assert used == pytest.approx([48 / 960, 1.0])
    assert batch[0, :, :, 48:].max() == 0.0  # padding
    assert batch[0, :, :, :48].min() == pytest.approx(1.0)  # white normalised to 1


def _line_quad(angle_degrees: float, length: float = 200.0, height: float = 20.0) -> np.ndarray:
    """A line-shaped rectangle whose reading direction points at `angle_degrees`."""
    radians = np.radians(angle_degrees)
    along = np.array([np.cos(radians), np.sin(radians)]) * length
    across = np.array([-np.sin(radians), np.cos(radians)]) * height
    start = np.array([500.0, 500.0])
    return np.array([start, start + along, start + along + across, start + across])


@pytest.mark.parametrize(
    ("angle", "quarter", "skew"),
    [
        (0.0, 0, 0.0),
        (6.0, 0, 6.0),
        (-8.0, 0, -8.0),
        (90.0, 1, 0.0),
        (84.0, 1, -6.0),
        (175.0, 0, -5.0),
    ],
)
def test_dominant_direction_splits_quarter_turns_and_skew(
    angle: float, quarter: int, skew: float
) -> None:
    quads = [_line_quad(angle + jitter) for jitter in (-0.3, 0.0, 0.2)]
    quads.append(_line_quad(angle + 40, length=30))  # a short blob does not vote
    direction = dominant_direction(quads)
    assert direction.quarter_turns == quarter
    assert direction.skew == pytest.approx(skew, abs=0.5)
    assert direction.support == 3


def test_no_lines_means_no_rotation() -> None:
    assert dominant_direction([]).quarter_turns == 0
    assert dominant_direction([_line_quad(30, length=20)]).skew == 0.0
