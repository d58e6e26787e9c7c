"""Test media generated on the fly; every call yields bytes never uploaded before."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import cv2
import numpy as np
import pikepdf
from PIL import Image, ImageDraw
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas


def unique_image(width: int = 160, height: int = 120) -> Image.Image:
    """Noise plus a random tag, so no two calls give the same bytes (dedupe stays out)."""
    seed = uuid.uuid4().int & 0xFFFFFFFF
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    ImageDraw.Draw(image).text((4, 4), uuid.uuid4().hex[:12], fill=(255, 255, 255))
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png(width: int = 160, height: int = 120) -> bytes:
    return encoded(unique_image(width, height), "PNG")


def jpeg(width: int = 160, height: int = 120) -> bytes:
    return encoded(unique_image(width, height), "JPEG", quality=90)


def pdf(page_sizes: list[tuple[float, float]] | None = None, password: str | None = None) -> bytes:
    """A text PDF with one page per size (points), optionally encrypted."""
    buffer = io.BytesIO()
    document = canvas.Canvas(buffer, pagesize=A4)
    tag = uuid.uuid4().hex
    for number, size in enumerate(page_sizes or [A4, A4], start=1):
        document.setPageSize(size)
        document.setFont("Helvetica", 18)
        document.drawString(40, size[1] - 60, f"Page {number} of test document {tag[:8]}")
        document.showPage()
    document.save()
    if password is None:
        return buffer.getvalue()
    encrypted = io.BytesIO()
    with pikepdf.open(io.BytesIO(buffer.getvalue())) as opened:
        opened.save(encrypted, encryption=pikepdf.Encryption(owner=password, user=password))
    return encrypted.getvalue()


def video(
    path: Path, frames: int = 20, fps: float = 10.0, size: tuple[int, int] = (96, 64)
) -> Path:
    """An MJPEG AVI whose frames differ in brightness, plus a random tag in frame 0."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MJPEG AVI here"
    tag = uuid.uuid4().int & 0xFFFF
    for index in range(frames):
        frame = np.full((size[1], size[0], 3), (index * 12) % 256, dtype=np.uint8)
        frame[0, 0] = (tag & 0xFF, tag >> 8, index)
        writer.write(frame)
    writer.release()
    return path
