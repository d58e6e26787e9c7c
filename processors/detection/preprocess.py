"""Image to model-input tensors: letterbox or plain resize, normalisation, NCHW layout."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from processors.detection.detections import FloatArray, ImageTransform

UInt8Image = npt.NDArray[np.uint8]


def _check_image(image: npt.NDArray[np.generic]) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image {image.shape}")


def letterbox(
    image: UInt8Image, width: int, height: int, fill: int = 114
) -> tuple[UInt8Image, ImageTransform]:
    """Resize keeping the aspect ratio and pad evenly to ``width`` x ``height``."""
    _check_image(image)
    src_h, src_w = image.shape[:2]
    scale = min(width / src_w, height / src_h)
    new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.full((height, width, 3), fill, dtype=np.uint8)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    # The effective scales use the rounded size, so boxes map back exactly to the edges.
    return canvas, ImageTransform(new_w / src_w, new_h / src_h, float(pad_x), float(pad_y))


def stretch(image: UInt8Image, width: int, height: int) -> tuple[UInt8Image, ImageTransform]:
    """Resize to ``width`` x ``height`` ignoring the aspect ratio (as NanoDet was trained)."""
    _check_image(image)
    src_h, src_w = image.shape[:2]
    resized = np.asarray(
        cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
    )
    return resized, ImageTransform(width / src_w, height / src_h)


def to_nchw(
    image: UInt8Image,
    mean: Sequence[float],
    std: Sequence[float],
    swap_rb: bool,
) -> FloatArray:
    """A (1, 3, H, W) float32 tensor: ``(pixel - mean) / std`` per channel."""
    pixels = image[:, :, ::-1] if swap_rb else image
    scale = np.asarray([1.0 / s for s in std], np.float32)
    offset = np.asarray(mean, np.float32) * scale
    normalised = pixels.astype(np.float32) * scale - offset
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])
