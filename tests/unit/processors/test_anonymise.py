"""Faces and drawn licence plates are found and made unreadable; the stages store the copies."""

from __future__ import annotations

from functools import cache
from typing import Any

import cv2
import numpy as np
import pytest

from processors.anonymise.boxes import Box, iou, non_max_suppression
from processors.anonymise.centerface import network_size
from processors.anonymise.faces import FaceDetector
from processors.anonymise.keys import redacted_image_key, redacted_text_key
from processors.anonymise.plates import detect_plates
from processors.anonymise.redact import redact
from processors.modelstore import load
from processors.openvino_runtime import OpenVinoRuntime
from visionlog.settings import get_settings


@cache
def detector() -> FaceDetector:
    return FaceDetector(OpenVinoRuntime.from_settings(get_settings()))


@cache
def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(load("sample-photos").path(name)))
    assert image is not None
    return image


def car_with_plate(plate_width: int, text: str = "B VL 2024") -> tuple[np.ndarray, Box]:
    """A drawn car (body, roof, window, wheels) with a white plate holding dark characters."""
    image = np.full((500, 800, 3), (150, 160, 150), np.uint8)
    cv2.rectangle(image, (0, 375), (800, 500), (90, 90, 90), -1)
    cv2.rectangle(image, (150, 230), (650, 390), (160, 60, 30), -1)
    cv2.rectangle(image, (230, 170), (570, 240), (160, 60, 30), -1)
    cv2.rectangle(image, (250, 182), (550, 230), (210, 200, 170), -1)
    for centre_x in (240, 560):
        cv2.circle(image, (centre_x, 390), 45, (20, 20, 20), -1)
    plate_height = plate_width * 2 // 9
    x0, y0 = 400 - plate_width // 2, 305
    cv2.rectangle(image, (x0, y0), (x0 + plate_width, y0 + plate_height), (255, 255, 255), -1)
    cv2.rectangle(image, (x0, y0), (x0 + plate_width, y0 + plate_height), (0, 0, 0), 2)
    scale = plate_height / 40
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    origin = (x0 + (plate_width - text_w) // 2, y0 + (plate_height + text_h) // 2)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2, cv2.LINE_AA)
    return image, Box(x0, y0, x0 + plate_width, y0 + plate_height)


def sharpness(image: np.ndarray, box: Box) -> float:
    x0, y0, x1, y1 = box.pixel_bounds()
    gray = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


# --- faces ----------------------------------------------------------------------------


def test_network_size_is_a_multiple_of_32_and_bounded() -> None:
    assert network_size(1280, 720, 1280) == (1280, 736)
    assert network_size(810, 1080, 640) == (480, 640)
    assert network_size(10, 10, 1280) == (32, 32)


def test_both_faces_in_zidane() -> None:
    faces = detector().detect(photo("zidane.jpg"))
    assert len(faces) == 2
    # The two men's heads: one right of centre at the top, one in the middle.
    right, middle = sorted(faces, key=lambda box: -box.x_min)
    assert 850 < right.x_min < 1000 and right.y_max < 330 and right.score > 0.6
    assert 500 < middle.x_min < 620 and 200 < middle.y_min < 320 and middle.score > 0.6
    for face in faces:
        assert 0.6 < face.width / face.height < 1.1


def test_faces_in_bus_photo_are_small_and_at_head_height() -> None:
    faces = detector().detect(photo("bus.jpg"))
    assert len(faces) >= 2
    for face in faces:
        assert face.height < 120
        assert 350 < face.y_min < 550


def test_no_faces_on_a_drawn_car() -> None:
    image, _ = car_with_plate(180)
    assert detector().detect(image) == []


def test_blurred_faces_are_no_longer_found() -> None:
    image = photo("zidane.jpg")
    faces = detector().detect(image)
    for method in ("BLUR", "PIXELATE"):
        assert detector().detect(redact(image, faces, method)) == [], method


# --- plates ---------------------------------------------------------------------------


@pytest.mark.parametrize("plate_width", [120, 180, 260])
def test_drawn_plate_is_found(plate_width: int) -> None:
    image, plate = car_with_plate(plate_width)
    found = detect_plates(image)
    assert len(found) == 1
    assert iou(found[0], plate) > 0.8


def test_plate_search_limited_to_vehicles() -> None:
    image, _ = car_with_plate(180)
    car = Box(150, 170, 650, 435)
    assert len(detect_plates(image, vehicles=[car])) == 1
    elsewhere = Box(0, 0, 140, 200)
    assert detect_plates(image, vehicles=[elsewhere]) == []
    # A box with no vehicle at all: no plate either.
    assert detect_plates(image, vehicles=[]) == []


def test_blank_plate_without_characters_is_not_a_plate() -> None:
    image, _ = car_with_plate(180, text="")
    assert detect_plates(image) == []


def test_no_plates_in_the_sample_photos() -> None:
    assert detect_plates(photo("zidane.jpg")) == []
    assert detect_plates(photo("bus.jpg")) == []


# --- redaction ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["BLUR", "PIXELATE", "FILL"])
def test_redaction_removes_detail_only_inside_padded_boxes(method: Any) -> None:
    image, plate = car_with_plate(260)
    redacted = redact(image, [plate], method, padding=0.1)
    assert redacted is not image
    assert sharpness(redacted, plate) < 0.1 * sharpness(image, plate)
    padded = plate.padded(0.1)
    x0, y0, x1, y1 = padded.pixel_bounds()
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(redacted[outside], image[outside])
    # The plate text is gone: no plate is found any more.
    assert detect_plates(redacted) == []


def test_blur_strength_grows_with_box_size() -> None:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    small, large = Box(10, 10, 40, 40), Box(100, 100, 380, 380)
    redacted = redact(noise, [small, large], "BLUR", padding=0.0)
    for box in (small, large):
        x0, y0, x1, y1 = box.pixel_bounds()
        assert redacted[y0:y1, x0:x1].std() < 0.15 * noise[y0:y1, x0:x1].std()


def test_redaction_rejects_bad_arguments() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown redaction method"):
        redact(image, [], "SMUDGE")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="padding"):
        redact(image, [], "BLUR", padding=-1)


def test_boxes_outside_the_image_are_clipped() -> None:
    image = np.full((50, 50, 3), 200, np.uint8)
    redacted = redact(image, [Box(-20, -20, 10, 10), Box(60, 60, 90, 90)], "FILL", padding=0)
    assert (redacted[:10, :10] == 0).all()
    assert (redacted[10:, 10:] == 200).all()


def test_non_max_suppression_keeps_best_of_overlaps() -> None:
    boxes = [Box(0, 0, 10, 10, 0.5), Box(1, 1, 11, 11, 0.9), Box(50, 50, 60, 60, 0.3)]
    assert non_max_suppression(boxes, 0.3) == [boxes[1], boxes[2]]


def test_blob_keys_use_the_shared_item_label() -> None:
    media_id = "3f1c"
    image: dict[str, Any] = {"media_id": media_id, "page_number": None, "frame_index": None}
    page = {**image, "page_number": 3}
    frame = {**image, "frame_index": 120}
    assert redacted_image_key(image) == ("media-processed", "3f1c/redacted/original.jpg")
    assert redacted_image_key(frame) == ("media-processed", "3f1c/redacted/frame-00000120.jpg")
    assert redacted_text_key(page) == ("exports", "3f1c/redacted-text/page-0003.txt")


def test_pixel_bounds_round_outwards() -> None:
    assert Box(1.2, 2.7, 3.1, 4.0).pixel_bounds() == (1, 2, 4, 4)
    assert Box(0.0, 0.0, 10.0, 10.0).pixel_bounds() == (0, 0, 10, 10)
