"""Pure pre- and post-processing of the DB text detector.

The detector sees the image resized to multiples of 32 and returns a per-pixel text
probability. Thresholding it gives shrunk text kernels; each kernel's contour becomes a
minimum-area rectangle that is grown back ("unclipped") to the full line.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from processors.ocr.geometry import FloatArray, min_area_quad, unclip

# ImageNet normalisation of pixels scaled to 0..1, per channel as stored (B, G, R).
DETECTOR_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
DETECTOR_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class DetectorParams:
    max_side: int = 1280
    min_side: int = 64
    binary_threshold: float = 0.3
    box_threshold: float = 0.5
    unclip_ratio: float = 1.6
    min_box_side: float = 3.0
    max_candidates: int = 1000


@dataclass(frozen=True)
class TextBox:
    """One detected text region: an ordered quad in input-image pixels and its mean score."""

    quad: FloatArray
    score: float


def detector_size(width: int, height: int, params: DetectorParams) -> tuple[int, int]:
    """Input size for the detector: at most `max_side`, at least `min_side`, multiples of 32."""
    scale = 1.0
    if max(width, height) > params.max_side:
        scale = params.max_side / max(width, height)
    elif min(width, height) < params.min_side:
        scale = params.min_side / min(width, height)
    new_w = max(32, round(width * scale / 32) * 32)
    new_h = max(32, round(height * scale / 32) * 32)
    return new_w, new_h


def detector_resized(image: NDArray[np.uint8], params: DetectorParams) -> NDArray[np.uint8]:
    """The BGR image resized to the detector's input size (multiples of 32)."""
    height, width = image.shape[:2]
    new_w, new_h = detector_size(width, height, params)
    return np.asarray(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), np.uint8)


def detector_input(image: NDArray[np.uint8], params: DetectorParams) -> NDArray[np.float32]:
    """Resized, normalised 1 x 3 x H x W tensor from a BGR image (what the engine's
    compiled detector computes from `detector_resized` in its own graph)."""
    resized = detector_resized(image, params)
    normalised = (resized.astype(np.float32) / 255.0 - DETECTOR_MEAN) / DETECTOR_STD
    tensor: NDArray[np.float32] = np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])
    return tensor


def _kernel_score(probability: NDArray[np.float32], quad: FloatArray) -> float:
    """Mean probability inside the quad, computed on its bounding box only."""
    height, width = probability.shape
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, width - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, width - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, height - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, height - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (quad - np.array([x0, y0])).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(probability[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def boxes_from_probability(
    probability: NDArray[np.float32],
    image_width: int,
    image_height: int,
    params: DetectorParams,
) -> list[TextBox]:
    """Text boxes in image pixels from the detector's H x W probability map."""
    map_h, map_w = probability.shape
    binary = (probability > params.binary_threshold).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    scale = np.array([image_width / map_w, image_height / map_h])
    boxes: list[TextBox] = []
    for contour in contours[: params.max_candidates]:
        if len(contour) < 3:
            continue
        kernel, short_side = min_area_quad(contour.reshape(-1, 2).astype(np.float64))
        if short_side < params.min_box_side:
            continue
        score = _kernel_score(probability, kernel)
        if score < params.box_threshold:
            continue
        grown, grown_short = min_area_quad(unclip(kernel, params.unclip_ratio))
        if grown_short < params.min_box_side + 2:
            continue
        quad = grown * scale
        quad[:, 0] = np.clip(quad[:, 0], 0, image_width)
        quad[:, 1] = np.clip(quad[:, 1], 0, image_height)
        boxes.append(TextBox(quad=quad, score=score))
    return boxes


def sort_boxes(boxes: list[TextBox]) -> list[TextBox]:
    """Top-to-bottom, then left-to-right for boxes on the same text row."""
    ordered = sorted(boxes, key=lambda box: (box.quad[0, 1], box.quad[0, 0]))
    for index in range(1, len(ordered)):
        # Bubble left-hand neighbours on the same row (tops within 10 px) forwards.
        j = index
        while j > 0:
            current, previous = ordered[j].quad[0], ordered[j - 1].quad[0]
            if abs(current[1] - previous[1]) < 10 and current[0] < previous[0]:
                ordered[j - 1], ordered[j] = ordered[j], ordered[j - 1]
                j -= 1
            else:
                break
    return ordered
