"""Detections: NMS, filtering, letterbox mapping and record conversion (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from processors.detection.detections import Detections, ImageTransform, box_iou, nms_indices
from processors.detection.preprocess import letterbox, stretch, to_nchw

NAMES = ("person", "car", "dog")


def make(boxes: list[list[float]], scores: list[float], classes: list[int]) -> Detections:
    return Detections(
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        scores=np.array(scores, np.float32),
        class_ids=np.array(classes, np.int64),
        class_names=NAMES,
        model={"name": "test", "version": "1", "source": "tests"},
    )


def test_box_iou_of_known_overlaps() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0, 0.0], rtol=1e-6)


def test_nms_suppresses_overlaps_within_a_class_only() -> None:
    found = make(
        [[0, 0, 100, 100], [5, 5, 105, 105], [0, 0, 100, 100], [300, 300, 400, 400]],
        [0.6, 0.9, 0.8, 0.5],
        [0, 0, 1, 0],
    )
    kept = found.nms(0.5)
    # The 0.9 person suppresses the 0.6 person; the car on the same spot survives.
    assert kept.scores.tolist() == pytest.approx([0.9, 0.8, 0.5])
    assert kept.labels() == ["person", "car", "person"]
    assert nms_indices(found.boxes, found.scores, found.class_ids, 0.99).tolist() == [1, 2, 0, 3]


def test_nms_threshold_decides_partial_overlaps() -> None:
    found = make([[0, 0, 10, 10], [5, 0, 15, 10]], [0.9, 0.8], [2, 2])  # IoU 1/3
    assert len(found.nms(0.3)) == 1
    assert len(found.nms(0.4)) == 2


def test_filter_by_score_and_class() -> None:
    found = make([[0, 0, 1, 1]] * 4, [0.2, 0.5, 0.7, 0.9], [0, 1, 2, 0])
    assert found.filter(0.5).scores.tolist() == pytest.approx([0.5, 0.7, 0.9])
    assert found.filter(0.3, ["person", "dog"]).labels() == ["dog", "person"]
    with pytest.raises(ValueError, match="unknown classes"):
        found.filter(0.0, ["unicorn"])


def test_inconsistent_arrays_and_unknown_class_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        Detections(
            np.zeros((2, 4), np.float32), np.zeros(1, np.float32), np.zeros(2, np.int64), NAMES
        )
    with pytest.raises(ValueError, match="class ids"):
        make([[0, 0, 1, 1]], [0.5], [3])


def test_records_round_trip_sorted_by_confidence() -> None:
    found = make([[1, 2, 3, 4], [10, 20, 30, 40]], [0.4, 0.8], [2, 1]).sorted()
    records = found.to_records()
    assert [r["class_name"] for r in records] == ["car", "dog"]
    assert records[0]["box"] == {"x_min": 10.0, "y_min": 20.0, "x_max": 30.0, "y_max": 40.0}
    assert records[0]["track_id"] is None and records[0]["distance_m"] is None
    back = Detections.from_records(records)
    np.testing.assert_allclose(back.boxes, found.boxes)
    np.testing.assert_allclose(back.scores, found.scores)
    assert back.labels() == found.labels()
    assert Detections.from_records([], NAMES).boxes.shape == (0, 4)


def test_letterbox_maps_boxes_back_to_the_original() -> None:
    image = np.zeros((300, 600, 3), np.uint8)
    image[100:200, 150:300] = 255  # a white rectangle
    boxed, transform = letterbox(image, 320, 320)
    assert boxed.shape == (320, 320, 3)
    assert transform.pad_x == 0 and transform.pad_y == 80
    ys, xs = np.nonzero(boxed[:, :, 0] > 127)
    model_box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    original = transform.to_original(model_box, 600, 300)
    np.testing.assert_allclose(original[0], [150, 100, 300, 200], atol=2.0)
    # Boxes reaching into the padding are clipped to the image.
    clipped = transform.to_original(np.array([[-10, 0, 400, 320]], np.float32), 600, 300)
    np.testing.assert_allclose(clipped[0], [0, 0, 600, 300])


def test_stretch_and_normalisation() -> None:
    image = np.full((100, 50, 3), (10, 20, 30), np.uint8)
    resized, transform = stretch(image, 40, 40)
    assert transform == ImageTransform(0.8, 0.4)
    tensor = to_nchw(resized, (10.0, 20.0, 30.0), (2.0, 2.0, 2.0), swap_rb=False)
    assert tensor.shape == (1, 3, 40, 40) and tensor.dtype == np.float32
    assert np.abs(tensor).max() == 0.0
    swapped = to_nchw(resized, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), swap_rb=True)
    assert swapped[0, :, 0, 0].tolist() == [30.0, 20.0, 10.0]
    with pytest.raises(ValueError, match="BGR uint8"):
        stretch(np.zeros((10, 10), np.uint8), 4, 4)
