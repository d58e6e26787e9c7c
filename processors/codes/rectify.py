"""Turning a located, tilted barcode region upright so a scan-line decoder can read it.

Linear decoders read along image rows; a long barcode tilted by more than a few degrees has
no row that crosses every bar. OpenCV's detector still finds such symbols at any angle, so
their regions are cut out level and decoded again.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from processors.codes.found import Polygon


@dataclass(frozen=True)
class UprightCrop:
    """A level crop of a tilted region and the affine map from crop back to image pixels."""

    image: np.ndarray
    to_image: np.ndarray  # 2x3 affine matrix

    def polygon_in_image(self, polygon: Polygon) -> Polygon:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 1, 2)
        mapped = cv2.transform(points, self.to_image).reshape(-1, 2)
        return tuple((float(x), float(y)) for x, y in mapped)


def upright_crop(gray: np.ndarray, quad: np.ndarray, margin: float = 0.25) -> UprightCrop | None:
    """The region of `quad` (4 points), rotated so its long side is horizontal, with margin."""
    (cx, cy), (width, height), angle = cv2.minAreaRect(np.asarray(quad, np.float32))
    if width < 2 or height < 2:
        return None
    if height > width:
        width, height, angle = height, width, angle + 90.0
    # Quiet zones live on the short sides: pad those generously.
    out_w = round(width + 2 * margin * width)
    out_h = round(height + 2 * margin * height)
    to_crop = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    to_crop[0, 2] += out_w / 2 - cx
    to_crop[1, 2] += out_h / 2 - cy
    crop = cv2.warpAffine(
        gray, to_crop, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return UprightCrop(
        image=np.ascontiguousarray(crop), to_image=cv2.invertAffineTransform(to_crop)
    )
