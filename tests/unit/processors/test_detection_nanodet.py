"""NanoDet: the pure decoder on crafted outputs, and the real model on the sample photos."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import pytest

from processors.detection.coco import COCO_CLASSES
from processors.detection.detections import Detections, box_iou
from processors.detection.engine import NanoDetEngine
from processors.detection.nanodet import (
    NANODET_BINS,
    NANODET_MEAN,
    NANODET_STD,
    decode_nanodet,
    group_outputs,
)
from processors.detection.preprocess import UInt8Image, stretch, to_nchw
from processors.model_catalogue import NANODET
from processors.modelstore import load, provision
from processors.openvino_runtime import EngineTuning, OpenVinoRuntime
from visionlog.settings import Settings


def crafted_outputs(cell: int, stride: int, sides: list[int]) -> list[np.ndarray]:
    """NanoDet-shaped outputs with one confident cell whose distributions peak at ``sides``."""
    outputs = []
    for level in (8, 16, 32):
        cells = (416 // level) ** 2
        scores = np.zeros((1, cells, 80), np.float32)
        dists = np.zeros((1, cells, 4 * NANODET_BINS), np.float32)
        if level == stride:
            scores[0, cell, 5] = 0.9
            for side, bin_index in enumerate(sides):
                dists[0, cell, side * NANODET_BINS + bin_index] = 50.0  # softmax ~ one-hot
        outputs += [dists, scores]
    return outputs


def test_decoder_measures_sides_from_the_cell_centre() -> None:
    # Stride 16: 26 columns; cell 3 * 26 + 5 lies at column 5, row 3, centre (88, 56).
    outputs = crafted_outputs(3 * 26 + 5, 16, [2, 1, 4, 3])
    levels = group_outputs(outputs, 416, 416, 80)
    assert [level.stride for level in levels] == [8, 16, 32]
    found = decode_nanodet(levels, 416, 416, COCO_CLASSES, 0.5)
    assert found.labels() == ["bus"]
    np.testing.assert_allclose(found.boxes[0], [88 - 32, 56 - 16, 88 + 64, 56 + 48], atol=1e-3)
    assert decode_nanodet(levels, 416, 416, COCO_CLASSES, 0.95).boxes.shape == (0, 4)


def test_incomplete_outputs_are_rejected() -> None:
    outputs = crafted_outputs(0, 8, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="incomplete"):
        group_outputs(outputs[:-1], 416, 416, 80)
    with pytest.raises(ValueError, match="matches no stride"):
        group_outputs([np.zeros((1, 7, 80), np.float32)], 416, 416, 80)


@pytest.fixture(scope="module")
def engine() -> Iterator[NanoDetEngine]:
    settings = Settings()
    provision(NANODET, settings)  # a no-op when cached
    yield NanoDetEngine(load(NANODET, settings), OpenVinoRuntime.from_settings(settings))


def photo(name: str) -> UInt8Image:
    image = cv2.imread(str(load("sample-photos").path(name)), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, np.uint8)


def best_iou(found: Detections, label: str, box: Sequence[float]) -> float:
    candidates = found.filter(classes=[label])
    if len(candidates) == 0:
        return 0.0
    return float(box_iou(np.array([box], np.float32), candidates.boxes).max())


def test_bus_photo_finds_the_bus_and_the_people(engine: NanoDetEngine) -> None:
    found = engine.detect(photo("bus.jpg"), 0.35)
    assert found.model["name"] == "nanodet-coco"
    assert found.scores.tolist() == sorted(found.scores.tolist(), reverse=True)
    labels = found.labels()
    assert labels.count("bus") == 1
    assert 3 <= labels.count("person") <= 5
    bus_score = float(found.filter(classes=["bus"]).scores[0])
    assert 0.65 <= bus_score <= 0.9
    # Boxes checked by eye on the photo (810 x 1080).
    assert best_iou(found, "bus", [15, 228, 805, 740]) > 0.85
    for person in ([50, 398, 245, 905], [222, 405, 345, 860], [668, 395, 810, 880]):
        assert best_iou(found, "person", person) > 0.7, person


def test_zidane_photo_finds_two_people(engine: NanoDetEngine) -> None:
    found = engine.detect(photo("zidane.jpg"), 0.35)
    assert found.labels() == ["person", "person"]
    assert best_iou(found, "person", [125, 200, 1150, 720]) > 0.8
    assert best_iou(found, "person", [745, 40, 1145, 720]) > 0.7


def test_batch_matches_single_images_and_blank_images_are_empty(engine: NanoDetEngine) -> None:
    images = [photo("bus.jpg"), np.full((240, 320, 3), 127, np.uint8), photo("zidane.jpg")]
    batch = engine.detect_batch(images, 0.35)
    assert len(batch) == len(images)
    assert len(batch[1]) == 0
    for image, found in zip(images, batch, strict=True):
        single = engine.detect(image, 0.35)
        assert found.labels() == single.labels()
        np.testing.assert_allclose(found.boxes, single.boxes, atol=0.5)
        np.testing.assert_allclose(found.scores, single.scores, atol=1e-3)


def test_a_bad_image_fails_the_batch_and_the_engine_stays_usable(engine: NanoDetEngine) -> None:
    bus = photo("bus.jpg")
    grey = np.zeros((240, 320), np.uint8)
    with pytest.raises(ValueError, match="BGR uint8"):
        engine.detect_batch([bus, bus, grey], 0.35)
    [again] = engine.detect_batch([bus], 0.35)
    assert again.labels() == engine.detect(bus, 0.35).labels()


def test_normalisation_in_the_graph_matches_the_numpy_reference(engine: NanoDetEngine) -> None:
    # The compiled model takes u8 BGR pixels and normalises them itself; the raw IR fed
    # the numpy-normalised tensor (the earlier path) must give the same outputs.
    settings = Settings()
    runtime = OpenVinoRuntime.from_settings(settings)
    raw = runtime.compile(
        runtime.read_model(load(NANODET, settings).path("nanodet-ir.xml")), EngineTuning()
    )
    resized, _ = stretch(photo("bus.jpg"), engine.input_width, engine.input_height)
    reference = raw(to_nchw(resized, NANODET_MEAN, NANODET_STD, swap_rb=False))
    in_graph = engine.infer(np.ascontiguousarray(resized[None]))
    for index, output in enumerate(in_graph):
        np.testing.assert_allclose(output, reference[index], atol=1e-4)
