"""Licence plates: OpenCV's plate cascade plus a plate-shape heuristic.

The heuristic looks for what every plate has: a light, filled rectangle with a plate's
aspect ratio that holds a row of dark, character-sized marks. When vehicle detections are
given, hits must lie inside a vehicle (or just below its box); otherwise the whole image is
searched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import cv2.data
import numpy as np

from processors.anonymise.boxes import Box, non_max_suppression
from processors.distributions import opencv_distribution

CASCADE_FILE = "haarcascade_russian_plate_number.xml"
# The cascade gives no score; a confirmed hit counts as this confident.
CASCADE_CONFIDENCE = 0.5
# EU plates are about 4.7:1, US and older formats about 2:1.
MIN_ASPECT, MAX_ASPECT = 1.8, 6.5
MIN_PLATE_HEIGHT_PX = 10
MIN_GLYPHS = 3


@dataclass(frozen=True)
class PlateSearch:
    """Tuning of the plate search."""

    use_cascade: bool = True
    use_heuristic: bool = True
    iou_threshold: float = 0.3


def plate_model_ref() -> dict[str, str | None]:
    """ModelRef of the plate search: the cascade file of the installed OpenCV wheel."""
    version = str(cv2.__version__)
    package, package_version = opencv_distribution()
    return {
        "name": "opencv-plate-cascade",
        "version": version,
        "source": f"pypi:{package}@{package_version}#{CASCADE_FILE}",
        # The file carries no header of its own; it ships under OpenCV's licence.
        "licence": "Apache-2.0",
        "runtime": f"opencv/{version}",
    }


# One classifier per thread: `detectMultiScale` keeps its working buffers in the object,
# so a classifier shared by stage threads running at once is not safe.
_per_thread = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    classifier: cv2.CascadeClassifier | None = getattr(_per_thread, "cascade", None)
    if classifier is None:
        path = cv2.data.haarcascades + CASCADE_FILE
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise RuntimeError(f"OpenCV plate cascade {path} could not be loaded")
        _per_thread.cascade = classifier
    return classifier


def cascade_plates(gray: np.ndarray) -> list[Box]:
    """Cascade hits that also hold a row of character-like marks (the cascade alone is noisy)."""
    hits = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(36, 12))
    found = []
    for x, y, w, h in np.asarray(hits).reshape(-1, 4).tolist():
        if count_glyphs(gray[y : y + h, x : x + w]) >= MIN_GLYPHS:
            found.append(Box(float(x), float(y), float(x + w), float(y + h), CASCADE_CONFIDENCE))
    return found


def count_glyphs(plate_gray: np.ndarray) -> int:
    """Dark marks of character size on a light background, roughly on one line."""
    height, width = plate_gray.shape
    _, dark = cv2.threshold(plate_gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    count, _, stats, centroids = cv2.connectedComponentsWithStats(dark, connectivity=8)
    centres_y = [
        float(centroids[label][1])
        for label in range(1, count)
        if 0.3 * height <= stats[label, cv2.CC_STAT_HEIGHT] <= 0.9 * height
        and stats[label, cv2.CC_STAT_WIDTH] <= 0.25 * width
        and stats[label, cv2.CC_STAT_AREA] >= 0.01 * height * height
    ]
    if len(centres_y) < MIN_GLYPHS:
        return len(centres_y)
    # Characters on one line share their vertical centre.
    median = float(np.median(centres_y))
    return sum(1 for y in centres_y if abs(y - median) <= 0.2 * height)


def _upright(gray: np.ndarray, rect: cv2.typing.RotatedRect) -> np.ndarray:
    (cx, cy), (width, height), angle = rect
    if height > width:
        width, height, angle = height, width, angle - 90.0
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[0, 2] += width / 2 - cx
    matrix[1, 2] += height / 2 - cy
    return cv2.warpAffine(gray, matrix, (max(1, round(width)), max(1, round(height))))


def heuristic_plates(gray: np.ndarray) -> list[Box]:
    """Light rectangles of plate shape with a row of character-like marks inside."""
    _, bright = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(bright, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found = []
    for contour in contours:
        rect = cv2.minAreaRect(contour)
        long_side, short_side = max(rect[1]), min(rect[1])
        if (
            short_side < MIN_PLATE_HEIGHT_PX
            or not MIN_ASPECT <= long_side / short_side <= MAX_ASPECT
        ):
            continue
        # A plate is a filled rectangle: its outline covers nearly all of its rotated box.
        if cv2.contourArea(contour) < 0.8 * long_side * short_side:
            continue
        tilt = abs(((rect[2] + 45.0) % 90.0) - 45.0)
        if tilt > 25.0:
            continue
        glyphs = count_glyphs(_upright(gray, rect))
        if glyphs < MIN_GLYPHS:
            continue
        x, y, w, h = cv2.boundingRect(contour)
        found.append(
            Box(float(x), float(y), float(x + w), float(y + h), min(0.9, 0.5 + 0.05 * glyphs))
        )
    return found


def _on_a_vehicle(plate: Box, vehicles: Sequence[Box]) -> bool:
    centre_x = (plate.x_min + plate.x_max) / 2
    centre_y = (plate.y_min + plate.y_max) / 2
    for vehicle in vehicles:
        # Plates sit in a vehicle's lower part; boxes are often cut a little short below.
        top = vehicle.y_min + 0.3 * vehicle.height
        bottom = vehicle.y_max + 0.1 * vehicle.height
        if vehicle.x_min <= centre_x <= vehicle.x_max and top <= centre_y <= bottom:
            return True
    return False


def detect_plates(
    image_bgr: np.ndarray,
    vehicles: Sequence[Box] | None = None,
    search: PlateSearch | None = None,
) -> list[Box]:
    """Plate boxes in pixels of the image; limited to `vehicles` when those are given."""
    search = search or PlateSearch()
    gray = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    candidates: list[Box] = []
    if search.use_cascade:
        candidates.extend(cascade_plates(gray))
    if search.use_heuristic:
        candidates.extend(heuristic_plates(gray))
    if vehicles is not None:
        candidates = [plate for plate in candidates if _on_a_vehicle(plate, vehicles)]
    return non_max_suppression(candidates, search.iou_threshold)
