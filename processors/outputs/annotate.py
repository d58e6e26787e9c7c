"""Annotated images (boxes, text and code outlines with labels) and thumbnails."""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from processors.outputs.items import box_tuple, event_type

Colour = tuple[int, int, int]
TEXT_COLOUR: Colour = (0, 160, 255)
CODE_COLOUR: Colour = (255, 0, 200)
THUMBNAIL_LONGEST_SIDE = 320


def class_colour(class_name: str) -> Colour:
    """A saturated RGB colour per class, stable across processes (not Python's hash)."""
    digest = hashlib.sha256(class_name.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return (round(red * 255), round(green * 255), round(blue * 255))


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _scale(result: Mapping[str, Any], width: int, height: int) -> tuple[float, float]:
    # Results state the size they were computed on; the stored image may be a different size.
    result_width = result.get("image_width") or width
    result_height = result.get("image_height") or height
    return width / float(result_width), height / float(result_height)


def _label(
    draw: ImageDraw.ImageDraw,
    image_width: int,
    position: tuple[float, float],
    text: str,
    colour: Colour,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    """Text on a filled background above `position`, kept inside the image's width."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    text_width, text_height = right - left, bottom - top
    x = max(0.0, min(position[0], image_width - text_width - 4))
    y = position[1] - text_height - 4
    if y < 0:
        y = position[1] + 2
    draw.rectangle((x, y, x + text_width + 4, y + text_height + 4), fill=colour)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    draw.text((x + 2 - left, y + 2 - top), text, fill=ink, font=font)


def annotate_image(image_bgr: np.ndarray, results: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The image with detections, OCR lines and codes of `results` drawn on it (BGR)."""
    height, width = image_bgr.shape[:2]
    canvas = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))
    draw = ImageDraw.Draw(canvas)
    line_width = max(2, round(min(width, height) / 300))
    font = _font(max(12, round(min(width, height) / 40)))
    for result in results:
        kind = event_type(result)
        sx, sy = _scale(result, width, height)
        if kind == "ObjectsDetected":
            for detection in result["detections"]:
                x_min, y_min, x_max, y_max = box_tuple(detection["box"])
                corners = (x_min * sx, y_min * sy, x_max * sx, y_max * sy)
                colour = class_colour(str(detection["class_name"]))
                draw.rectangle(corners, outline=colour, width=line_width)
                caption = f"{detection['class_name']} {float(detection['confidence']):.2f}"
                _label(draw, width, (corners[0], corners[1]), caption, colour, font)
        elif kind == "TextRecognized":
            for block in result["blocks"]:
                for line in block["lines"]:
                    points = [(float(p["x"]) * sx, float(p["y"]) * sy) for p in line["polygon"]]
                    if len(points) >= 2:
                        draw.polygon(points, outline=TEXT_COLOUR, width=line_width)
        elif kind == "CodesDecoded":
            for code in result["codes"]:
                points = [(float(p["x"]), float(p["y"])) for p in code["polygon"]]
                if len(points) >= 2:
                    draw.polygon(points, outline=CODE_COLOUR, width=line_width)
                    top_left = (min(x for x, _ in points), min(y for _, y in points))
                    caption = f"{code['symbology']}: {code['text']}"
                    _label(draw, width, top_left, caption[:80], CODE_COLOUR, font)
        else:
            raise ValueError(f"cannot annotate a {kind} event")
    return np.asarray(canvas)[:, :, ::-1].copy()


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image_bgr.shape} as JPEG")
    return bytes(buffer.tobytes())


def make_thumbnail(
    image_bgr: np.ndarray, longest_side: int = THUMBNAIL_LONGEST_SIDE, quality: int = 80
) -> bytes:
    """A JPEG whose longest side is at most `longest_side` (small images are not enlarged)."""
    height, width = image_bgr.shape[:2]
    factor = min(1.0, longest_side / max(width, height))
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
    return encode_jpeg(image_bgr, quality)
