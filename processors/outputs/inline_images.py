"""Pictures embedded in HTML reports as `data:` URIs, small enough to carry along.

Reports are opened wherever the user fetches them: a presigned URL of a private bucket, the
API, a saved file. A relative link or a link into the bucket never loads there (no
signature, or blocked by the report's own CSP), so a report carries its pictures inside it,
bounded in size, and its CSP allows `data:` images only.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

from processors.outputs.annotate import encode_jpeg

DATA_URI_PREFIX = "data:image/jpeg;base64,"
# Longest side and encoded size of a thumbnail embedded in the combined report.
INLINE_LONGEST_SIDE = 160
INLINE_MAX_BYTES = 12_000
_QUALITIES = (70, 55, 40, 25)


def jpeg_data_uri(jpeg: bytes) -> str:
    """A `data:` URI of JPEG bytes."""
    if not jpeg.startswith(b"\xff\xd8"):
        raise ValueError("not JPEG bytes")
    return DATA_URI_PREFIX + base64.b64encode(jpeg).decode("ascii")


def inline_thumbnail(
    image_bgr: np.ndarray,
    longest_side: int = INLINE_LONGEST_SIDE,
    max_bytes: int = INLINE_MAX_BYTES,
) -> str:
    """A `data:` URI of a JPEG thumbnail of at most `longest_side` pixels and `max_bytes`
    bytes: the quality drops until it fits, then the size halves."""
    side = longest_side
    while True:
        height, width = image_bgr.shape[:2]
        factor = min(1.0, side / max(width, height))
        scaled = image_bgr
        if factor < 1.0:
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            scaled = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        for quality in _QUALITIES:
            jpeg = encode_jpeg(scaled, quality)
            if len(jpeg) <= max_bytes:
                return jpeg_data_uri(jpeg)
        if side <= 16:
            raise ValueError(f"no thumbnail of {max_bytes} bytes or less")
        side //= 2


def decode_image(data: bytes) -> np.ndarray | None:
    """BGR pixels of encoded image bytes; None when they are not a decodable image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None
