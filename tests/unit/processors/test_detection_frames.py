"""Decoding frames for the detector: reduced JPEG decodes and boxes in original pixels."""

from __future__ import annotations

import io
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from PIL import Image

from processors.detection.detections import Detections, box_iou
from processors.detection.engine import NanoDetEngine
from processors.detection.frames import Frame, decode_for, jpeg_size, reduction_for
from processors.model_catalogue import NANODET
from processors.modelstore import load, provision
from processors.openvino_runtime import OpenVinoRuntime
from visionlog.settings import Settings


@pytest.fixture(scope="module")
def engine() -> Iterator[NanoDetEngine]:
    settings = Settings()
    provision(NANODET, settings)  # a no-op when cached
    yield NanoDetEngine(load(NANODET, settings), OpenVinoRuntime.from_settings(settings))


def jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


def bus_bytes() -> bytes:
    return load("sample-photos").path("bus.jpg").read_bytes()


def full_decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, np.uint8)


def matched(reference: Detections, found: Detections, min_iou: float) -> None:
    """Same objects: the same labels, and each box overlapping a box of its class."""
    assert sorted(found.labels()) == sorted(reference.labels())
    overlaps = box_iou(reference.boxes, found.boxes)
    for row, label in enumerate(reference.labels()):
        same_class = [i for i, other in enumerate(found.labels()) if other == label]
        assert max(overlaps[row, same_class]) >= min_iou, (label, reference.boxes[row])


def test_jpeg_size_reads_the_header_only() -> None:
    assert jpeg_size(bus_bytes()) == (810, 1080)
    assert jpeg_size(jpeg(np.zeros((37, 91, 3), np.uint8))) == (91, 37)
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok and jpeg_size(png.tobytes()) is None
    assert jpeg_size(b"\xff\xd8\xff\xe0 not really a jpeg") is None
    assert jpeg_size(b"") is None


@pytest.mark.parametrize(
    ("orientation", "sideways"), [(1, False), (3, False), (6, True), (8, True)]
)
def test_exif_orientation_is_applied_as_opencv_applies_it(orientation: int, sideways: bool) -> None:
    pixels = np.zeros((300, 500, 3), np.uint8)
    pixels[:, :100] = 255  # a white band on the left, to see the turn
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", exif=exif.tobytes())
    data = buffer.getvalue()
    decoded = full_decode(data)
    assert jpeg_size(data) == (decoded.shape[1], decoded.shape[0])
    assert (decoded.shape[:2] == (500, 300)) is sideways
    frame = decode_for(data, lambda w, h: (60.0, 60.0))
    assert frame is not None and frame.scale == 0.25
    assert (frame.width, frame.height) == (decoded.shape[1], decoded.shape[0])
    # The reduced picture is the full one, smaller: same orientation.
    smaller = cv2.resize(
        decoded, (frame.image.shape[1], frame.image.shape[0]), interpolation=cv2.INTER_AREA
    )
    assert np.abs(smaller.astype(int) - frame.image.astype(int)).mean() < 8


def test_reduction_keeps_what_the_model_resolves() -> None:
    def stretched(width: int, height: int) -> tuple[float, float]:
        return float(min(width, 416)), float(min(height, 416))

    assert reduction_for(810, 1080, stretched) == 2  # 405 x 540: 97 % of 416 across
    assert reduction_for(1280, 720, stretched) == 1  # 640 x 360: only 87 % of 416 high
    assert reduction_for(1920, 1080, stretched) == 2
    assert reduction_for(3840, 2160, stretched) == 4
    assert reduction_for(8000, 8000, stretched) == 8
    assert reduction_for(400, 300, stretched) == 1


def test_small_and_non_jpeg_images_decode_in_full(engine: NanoDetEngine) -> None:
    small = np.full((240, 320, 3), 90, np.uint8)
    frame = decode_for(jpeg(small), engine.source_size)
    assert frame is not None and frame.scale == 1.0 and frame.image.shape == (240, 320, 3)
    ok, png = cv2.imencode(".png", np.zeros((2000, 2000, 3), np.uint8))
    assert ok
    frame = decode_for(png.tobytes(), engine.source_size)
    assert frame is not None and frame.scale == 1.0 and (frame.width, frame.height) == (2000, 2000)
    assert decode_for(b"\xff\xd8\xff\xe0 not really a jpeg", engine.source_size) is None
    # No source size: the reduced decode is off (processors.detection_reduced_decode).
    frame = decode_for(bus_bytes(), None)
    assert frame is not None and frame.scale == 1.0 and frame.image.shape == (1080, 810, 3)


def test_reduced_bus_photo_gives_the_same_detections(engine: NanoDetEngine) -> None:
    # The earlier path: full decode, then detection.
    full = engine.detect(full_decode(bus_bytes()), 0.35)
    frame = decode_for(bus_bytes(), engine.source_size)
    assert frame is not None
    assert frame.scale == 0.5 and frame.image.shape == (540, 405, 3)
    assert (frame.width, frame.height) == (810, 1080)
    reduced, _ = engine.detect_frame(frame, 0.35)
    # Measured: IoU 0.90-0.99, the lowest for the person cut by the right edge.
    matched(full, reduced, min_iou=0.85)
    np.testing.assert_allclose(np.sort(reduced.scores), np.sort(full.scores), atol=0.06)
    assert reduced.boxes[:, 0::2].max() <= 810 and reduced.boxes[:, 1::2].max() <= 1080


def test_boxes_of_a_reduced_large_frame_come_out_in_its_own_pixels(
    engine: NanoDetEngine,
) -> None:
    bus = full_decode(bus_bytes())
    large = cv2.resize(bus, (1620, 2160), interpolation=cv2.INTER_CUBIC)
    frame = decode_for(jpeg(large, 95), engine.source_size)
    assert frame is not None
    assert frame.scale == 0.25 and (frame.width, frame.height) == (1620, 2160)
    found, _ = engine.detect_frame(frame, 0.35)
    reference = engine.detect(bus, 0.35)
    halved = Detections(
        found.boxes / 2.0, found.scores, found.class_ids, found.class_names, found.model
    )
    matched(reference, halved, min_iou=0.85)


def test_frames_from_the_image_cache_are_used_in_full(engine: NanoDetEngine) -> None:
    bus = full_decode(bus_bytes())
    found, inference_ms = engine.detect_frame(Frame.of(bus), 0.35)
    assert inference_ms > 0
    np.testing.assert_allclose(found.boxes, engine.detect(bus, 0.35).boxes, atol=1e-3)


def test_big_endian_exif_orientation_is_read_too() -> None:
    # An APP1 segment in Motorola byte order: orientation 6 (turned 90 degrees clockwise).
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01"
    tiff += b"\x00\x06\x00\x00" + b"\x00\x00\x00\x00"
    payload = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    plain = jpeg(np.zeros((120, 200, 3), np.uint8))
    data = plain[:2] + segment + plain[2:]
    decoded = full_decode(data)
    assert decoded.shape[:2] == (200, 120)
    assert jpeg_size(data) == (120, 200)
