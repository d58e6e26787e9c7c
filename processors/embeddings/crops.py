"""Object crops: detection boxes mapped onto the stored image and cut out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def crop_box(
    image_bgr: np.ndarray, box: Mapping[str, Any], analysed_size: tuple[int, int]
) -> np.ndarray:
    """The box's pixels; boxes refer to `analysed_size` (width, height) and are clipped.

    A box with no area inside the image is an error: the detection cannot be embedded.
    """
    height, width = image_bgr.shape[:2]
    analysed_width, analysed_height = analysed_size
    if analysed_width <= 0 or analysed_height <= 0:
        raise ValueError(f"analysed image size must be positive, got {analysed_size}")
    sx, sy = width / analysed_width, height / analysed_height
    x_min = max(0, int(np.floor(float(box["x_min"]) * sx)))
    y_min = max(0, int(np.floor(float(box["y_min"]) * sy)))
    x_max = min(width, int(np.ceil(float(box["x_max"]) * sx)))
    y_max = min(height, int(np.ceil(float(box["y_max"]) * sy)))
    if x_max - x_min < 2 or y_max - y_min < 2:
        raise ValueError(
            f"box ({box['x_min']}, {box['y_min']}, {box['x_max']}, {box['y_max']}) has no "
            f"area inside the {width}x{height} image"
        )
    return image_bgr[y_min:y_max, x_min:x_max]
