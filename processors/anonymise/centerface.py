"""CenterFace's input layout and the decoding of its outputs (pure array code).

The network predicts, on a grid of stride 4, a face-centre heatmap, log box sizes and
sub-cell centre offsets. Its input is an RGB image whose sides are multiples of 32.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from processors.anonymise.boxes import Box, non_max_suppression

STRIDE = 4


def network_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Input width and height: the image shrunk to `max_side`, rounded up to multiples of 32."""
    shrink = min(1.0, max_side / max(width, height))
    return (
        max(32, math.ceil(width * shrink / 32) * 32),
        max(32, math.ceil(height * shrink / 32) * 32),
    )


def to_input(image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The 1x3xHxW float32 RGB tensor for an image resized to `size` (width, height)."""
    resized = cv2.resize(image_bgr, size, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)


def decode(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    threshold: float,
    iou_threshold: float = 0.3,
) -> list[Box]:
    """Face boxes in network-input pixels from heatmap (1,1,h,w), scale and offset (1,2,h,w)."""
    heat = heatmap[0, 0]
    rows, cols = np.nonzero(heat > threshold)
    boxes = []
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        box_h = math.exp(float(scale[0, 0, row, col])) * STRIDE
        box_w = math.exp(float(scale[0, 1, row, col])) * STRIDE
        centre_y = (row + float(offset[0, 0, row, col]) + 0.5) * STRIDE
        centre_x = (col + float(offset[0, 1, row, col]) + 0.5) * STRIDE
        boxes.append(
            Box(
                centre_x - box_w / 2,
                centre_y - box_h / 2,
                centre_x + box_w / 2,
                centre_y + box_h / 2,
                float(heat[row, col]),
            )
        )
    return non_max_suppression(boxes, iou_threshold)
