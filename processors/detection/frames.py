"""Decoding images for a detector: JPEGs much larger than its input at reduced scale.

A detector sees a 416 x 416 (NanoDet) or 640 x 640 (YOLO) picture. libjpeg decodes at 1/2,
1/4 or 1/8 scale in the DCT, so the smaller picture is properly low-passed and costs less:
measured here, bus.jpg (810 x 1080) 3.1 -> 2.1 ms at 1/2, a detailed 1920 x 1080 frame
11.8 -> 8.0 ms (the entropy decoding of the whole file remains). `decode_for` picks the
largest reduction that still leaves the model at least `MIN_DETAIL` of the pixels it
resolves along each axis, and returns a `Frame` that knows its original size, so boxes come
out in original pixels and events keep reporting the original width and height.

Only JPEGs are decoded reduced: OpenCV "reduces" other formats by decoding them in full and
resizing afterwards, which costs more, not less.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from processors.detection.preprocess import UInt8Image
from processors.stage import PermanentStageError, StageContext, image_key

# Reduced decoding must keep at least this share of the detail the model resolves along each
# axis: bus.jpg (810 x 1080) halves to 405 x 540 for NanoDet's 416 x 416 (97 %), with the
# same objects and boxes within a few pixels (tests/unit/processors/test_detection_frames.py).
MIN_DETAIL = 0.9
_REDUCED_FLAGS = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic).
_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
# Markers without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True)
class Frame:
    """An image to detect in, and the original it stands for.

    `image` holds the decoded pixels; `scale` is image pixels per original pixel (1 for a
    full decode, 1/2, 1/4 or 1/8 for a reduced one); `width` and `height` are the original's.
    """

    image: UInt8Image
    width: int
    height: int
    scale: float = 1.0

    @classmethod
    def of(cls, image: UInt8Image) -> Frame:
        height, width = image.shape[:2]
        return cls(image, int(width), int(height))


def _exif_turns_sideways(segment: memoryview) -> bool:
    """Whether an APP1 segment's EXIF orientation (5-8) turns the picture by 90 degrees,
    as OpenCV's decoder applies it."""
    if bytes(segment[:6]) != b"Exif\x00\x00" or len(segment) < 14:
        return False
    tiff = segment[6:]
    order = bytes(tiff[:2])
    if order not in (b"II", b"MM"):
        return False
    endian: Literal["little", "big"] = "little" if order == b"II" else "big"

    def number(offset: int, size: int) -> int:
        return int.from_bytes(tiff[offset : offset + size], endian)

    ifd = number(4, 4)
    if ifd + 2 > len(tiff):
        return False
    for index in range(number(ifd, 2)):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return False
        if number(entry, 2) == 0x0112:  # Orientation
            return number(entry + 8, 2) in (5, 6, 7, 8)
    return False


def jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) of a JPEG as OpenCV decodes it (EXIF orientation applied), from its
    headers alone; None when `data` is no JPEG or has no frame header."""
    view = memoryview(data)
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        return None
    sideways = False
    position = 2
    while position + 4 <= len(view):
        if view[position] != 0xFF:
            return None
        marker = view[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header found before the data
            return None
        length = (view[position + 2] << 8) | view[position + 3]
        if marker == 0xE1:
            sideways = sideways or _exif_turns_sideways(view[position + 4 : position + 2 + length])
        elif marker in _SOF_MARKERS:
            if position + 9 > len(view):
                return None
            height = (view[position + 5] << 8) | view[position + 6]
            width = (view[position + 7] << 8) | view[position + 8]
            if not width or not height:
                return None
            return (height, width) if sideways else (width, height)
        position += 2 + length
    return None


def reduction_for(
    width: int, height: int, source_size: Callable[[int, int], tuple[float, float]]
) -> int:
    """The largest of 8, 4, 2 (else 1) by which a width x height image may be decoded
    smaller, keeping `MIN_DETAIL` of what the model resolves (`source_size`) per axis."""
    needed_w, needed_h = source_size(width, height)
    for factor in (8, 4, 2):
        reduced_w, reduced_h = -(-width // factor), -(-height // factor)
        if reduced_w >= MIN_DETAIL * needed_w and reduced_h >= MIN_DETAIL * needed_h:
            return factor
    return 1


def decode_for(
    data: bytes, source_size: Callable[[int, int], tuple[float, float]] | None
) -> Frame | None:
    """The image decoded for a model that resolves `source_size` of it (None: in full);
    None when the bytes do not decode."""
    buffer = np.frombuffer(data, np.uint8)
    size = jpeg_size(data) if source_size is not None else None
    factor = 1 if size is None or source_size is None else reduction_for(*size, source_size)
    if factor == 1:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        return None if image is None else Frame.of(np.asarray(image, np.uint8))
    assert size is not None
    image = cv2.imdecode(buffer, _REDUCED_FLAGS[factor])
    if image is None:
        return None
    width, height = size
    return Frame(np.asarray(image, np.uint8), width, height, 1.0 / factor)


def load_frame(
    ctx: StageContext,
    ref: Mapping[str, Any],
    source_size: Callable[[int, int], tuple[float, float]] | None,
) -> Frame:
    """The referenced image for a detector, through the stage context.

    A full decode another stage of this worker already made is used as it is; otherwise
    the blob is fetched (its SHA-256 checked by the blob store) and decoded, reduced where
    `source_size` allows. Reduced frames are not put in the context's image cache: other
    stages want full pixels. Undecodable bytes are a permanent error, as in
    `StageContext.load_image`.
    """
    cached = ctx.images.get(image_key(ref))
    if cached is not None:
        return Frame.of(np.asarray(cached, np.uint8))
    data = ctx.blobs.get_bytes(dict(ref))
    frame = decode_for(data, source_size)
    if frame is None:
        raise PermanentStageError(
            f"blob {ref['bucket']}/{ref['key']} ({ref['content_type']}) is not a decodable image"
        )
    if frame.scale == 1.0:
        ctx.images.put(image_key(ref), frame.image)
    return frame
