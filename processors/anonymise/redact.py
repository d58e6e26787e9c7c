"""Making regions of an image unreadable: Gaussian blur, pixelation or a solid fill."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import cv2
import numpy as np

from processors.anonymise.boxes import Box

RedactionMethod = Literal["BLUR", "PIXELATE", "FILL"]
METHODS: tuple[str, ...] = get_args(RedactionMethod)
# Pixelation keeps this many blocks across a region's shorter side.
PIXEL_BLOCKS = 6


def blur_region(region: np.ndarray) -> np.ndarray:
    """Gaussian blur whose strength grows with the region, so large faces are as unreadable."""
    height, width = region.shape[:2]
    sigma = max(2.0, max(width, height) / 5.0)
    # Blurring a shrunken copy is the same low-pass at a fraction of the cost of a huge kernel.
    shrink = max(1.0, sigma / 3.0)
    small_size = (max(1, round(width / shrink)), max(1, round(height / shrink)))
    small = cv2.resize(region, small_size, interpolation=cv2.INTER_AREA)
    small_sigma = sigma / shrink
    kernel = 2 * math.ceil(3 * small_sigma) + 1
    # Twice: one pass with a kernel larger than the region still leaves coarse structure.
    for _ in range(2):
        small = cv2.GaussianBlur(
            small, (kernel, kernel), small_sigma, borderType=cv2.BORDER_REPLICATE
        )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def pixelate_region(region: np.ndarray) -> np.ndarray:
    height, width = region.shape[:2]
    block = max(1.0, min(width, height) / PIXEL_BLOCKS)
    small = cv2.resize(
        region,
        (max(1, round(width / block)), max(1, round(height / block))),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def redact(
    image: np.ndarray,
    boxes: Sequence[Box],
    method: RedactionMethod = "BLUR",
    padding: float = 0.15,
) -> np.ndarray:
    """A copy of `image` with every box (grown by `padding` of its size) made unreadable."""
    if method not in METHODS:
        raise ValueError(f"unknown redaction method {method!r}; use one of {', '.join(METHODS)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    height, width = image.shape[:2]
    result = image.copy()
    for box in boxes:
        x0, y0, x1, y1 = box.padded(padding).clipped(width, height).pixel_bounds()
        if x1 <= x0 or y1 <= y0:
            continue
        region = result[y0:y1, x0:x1]
        if method == "FILL":
            region[...] = 0
        elif method == "PIXELATE":
            region[...] = pixelate_region(region)
        else:
            region[...] = blur_region(region)
    return result
