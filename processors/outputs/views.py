"""The image as an analysis saw it, so result coordinates line up with the pixels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

# Undoing a clockwise rotation of the content means turning the stored image back.
_UNDO_ROTATION = {
    90: cv2.ROTATE_90_COUNTERCLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_CLOCKWISE,
}


def analysed_view(image_bgr: np.ndarray, result: Mapping[str, Any]) -> np.ndarray:
    """The stored image turned by the result's undone orientation (OCR), else unchanged."""
    degrees = int(result.get("orientation_degrees") or 0) % 360
    if degrees == 0:
        return image_bgr
    if degrees not in _UNDO_ROTATION:
        raise ValueError(f"orientation must be 0, 90, 180 or 270 degrees, got {degrees}")
    return cv2.rotate(image_bgr, _UNDO_ROTATION[degrees])
