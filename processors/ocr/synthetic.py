"""Synthetic document pages with known text, for tests, benchmarks and smoke checks.

Pages are rendered with Pillow in the TrueType font reportlab ships (Vera), then optionally
turned, skewed, blurred with noise, faded or photographed onto a background, using OpenCV
directly rather than the OCR code under test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import reportlab
from PIL import Image as PilImage
from PIL import ImageDraw, ImageFont

from processors.ocr.geometry import Image


@cache
def font_path() -> Path:
    """A TrueType font with Latin-1 coverage (umlauts, ß) that ships with a dependency.

    System fonts differ between machines; the font reportlab ships is the same everywhere,
    so generated pages (and the tests' expectations) do not depend on the host.
    """
    vera = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"
    if not vera.is_file():
        raise FileNotFoundError(f"reportlab's Vera.ttf is missing at {vera}")
    return vera


@dataclass(frozen=True)
class Page:
    image: Image
    text: str  # ground truth, lines joined by newlines, columns left to right


def render_lines(
    lines: Sequence[str],
    width: int = 900,
    font_size: int = 24,
    margin: int = 40,
    line_gap: float = 0.7,
) -> Page:
    """Black text on a white page, one string per line."""
    font = ImageFont.truetype(str(font_path()), font_size)
    pitch = round(font_size * (1 + line_gap))
    height = 2 * margin + pitch * len(lines)
    page = PilImage.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * pitch), line, font=font, fill="black")
    bgr = cv2.cvtColor(np.asarray(page), cv2.COLOR_RGB2BGR)
    return Page(bgr, "\n".join(lines))


def render_columns(
    heading: str,
    left: Sequence[str],
    right: Sequence[str],
    width: int = 1000,
    font_size: int = 22,
    margin: int = 40,
) -> Page:
    """A heading over two columns; the ground truth reads heading, left, then right."""
    font = ImageFont.truetype(str(font_path()), font_size)
    pitch = round(font_size * 1.6)
    rows = max(len(left), len(right))
    height = 2 * margin + pitch * (rows + 2)
    page = PilImage.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    draw.text((margin, margin), heading, font=font, fill="black")
    top = margin + 2 * pitch
    for index, line in enumerate(left):
        draw.text((margin, top + index * pitch), line, font=font, fill="black")
    for index, line in enumerate(right):
        draw.text((width // 2 + margin // 2, top + index * pitch), line, font=font, fill="black")
    bgr = cv2.cvtColor(np.asarray(page), cv2.COLOR_RGB2BGR)
    return Page(bgr, "\n".join([heading, *left, *right]))


def turn(image: Image, clockwise_degrees: float) -> Image:
    """Turn a page clockwise on an enlarged white canvas (exact for quarter turns)."""
    quarter = {
        90: cv2.ROTATE_90_CLOCKWISE,
        180: cv2.ROTATE_180,
        270: cv2.ROTATE_90_COUNTERCLOCKWISE,
    }
    if clockwise_degrees in quarter:
        turned: Image = cv2.rotate(image, quarter[int(clockwise_degrees)])
        return turned
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -clockwise_degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(width * cos + height * sin) + 1, int(width * sin + height * cos) + 1
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    skewed: Image = cv2.warpAffine(
        image, matrix, (new_w, new_h), flags=cv2.INTER_CUBIC, borderValue=(255, 255, 255)
    )
    return skewed


def add_noise(image: Image, sigma: float, seed: int = 0) -> Image:
    """Additive Gaussian noise, as from a poor sensor."""
    rng = np.random.default_rng(seed)
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def fade(image: Image, low: int = 110, high: int = 170) -> Image:
    """Squeeze grey levels into [low, high]: a faded print or an underexposed scan."""
    scaled = low + image.astype(np.float32) * ((high - low) / 255.0)
    return scaled.astype(np.uint8)


def photograph(image: Image, seed: int = 0, margin: float = 0.12) -> Image:
    """The page seen at an angle on a dark, textured desk, in perspective."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    canvas_w, canvas_h = int(width * (1 + 2 * margin)), int(height * (1 + 2 * margin))
    base = rng.normal(70, 12, (canvas_h // 8 + 1, canvas_w // 8 + 1, 3)).clip(0, 255)
    desk = cv2.resize(base.astype(np.uint8), (canvas_w, canvas_h), interpolation=cv2.INTER_CUBIC)
    mx, my = width * margin, height * margin
    jitter = rng.uniform(-0.5, 0.5, (4, 2)) * np.array([mx, my])
    corners = (
        np.array([[mx, my], [mx + width, my], [mx + width, my + height], [mx, my + height]])
        + jitter
    )
    source = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(source, corners.astype(np.float32))
    warped = cv2.warpPerspective(image, matrix, (canvas_w, canvas_h), flags=cv2.INTER_CUBIC)
    mask = cv2.warpPerspective(
        np.full((height, width), 255, np.uint8), matrix, (canvas_w, canvas_h)
    )
    result: Image = np.where(mask[..., None] > 0, warped, desk)
    return result
