"""The main job's bundled inputs: a generated document PDF, a photo and a short video.

The document is drawn with reportlab (English and German text and a QR code), the photo is
the street scene the `sample-photos` model package ships, and the video pans across that
photo so that detection and tracking have moving objects to follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

SAMPLE_QR_TEXT = "https://visionlog.invalid/samples/invoice-2026-117"
ENGLISH_LINES = (
    "Invoice 2026-117",
    "Delivery of twelve camera housings to the Hamburg depot.",
    "Payment is due within thirty days of the invoice date.",
)
GERMAN_LINES = (
    "Lieferschein für die Straßenbahn",
    "Zwölf Kameragehäuse wurden am Güterbahnhof übergeben.",
    "Bitte prüfen Sie die Ware innerhalb von sieben Tagen.",
)


@dataclass(frozen=True)
class SampleSet:
    document: Path
    photo: Path
    video: Path

    def files(self) -> list[Path]:
        return [self.document, self.photo, self.video]


def draw_qr(pdf: canvas.Canvas, text: str, *, left: float, top: float, size: float) -> None:
    """The QR code as vector squares, one per dark module (no raster image involved)."""
    modules = cv2.QRCodeEncoder.create().encode(text)
    count = modules.shape[0]
    step = size / count
    pdf.setFillColorRGB(0, 0, 0)
    for row in range(count):
        for column in range(count):
            if modules[row, column] < 128:
                x = left + column * step
                y = top - (row + 1) * step
                pdf.rect(x, y, step, step, stroke=0, fill=1)


def write_document(path: Path) -> Path:
    """A two-page PDF: an English invoice with a QR code, a German delivery note."""
    pdf = canvas.Canvas(str(path), pagesize=A4)
    _, height = A4
    for page_lines, with_qr in ((ENGLISH_LINES, True), (GERMAN_LINES, False)):
        y = height - 100
        for index, line in enumerate(page_lines):
            pdf.setFont("Helvetica-Bold" if index == 0 else "Helvetica", 22 if index == 0 else 14)
            pdf.drawString(60, y, line)
            y -= 40
        if with_qr:
            draw_qr(pdf, SAMPLE_QR_TEXT, left=60, top=y - 20, size=200)
        pdf.showPage()
    pdf.save()
    return path


def write_pan_video(photo: Path, path: Path, *, frames: int = 30, fps: float = 10.0) -> Path:
    """An MJPEG AVI panning a window across the photo, left to right."""
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"cannot read the sample photo {photo}")
    height, width = image.shape[:2]
    window_w = int(width * 0.7)
    window_h = int(height * 0.7)
    out_w, out_h = 640, int(640 * window_h / window_w) // 2 * 2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (out_w, out_h))
    try:
        for index in range(frames):
            left = int((width - window_w) * index / max(1, frames - 1))
            top = (height - window_h) // 2
            crop = np.ascontiguousarray(image[top : top + window_h, left : left + window_w])
            writer.write(cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA))
    finally:
        writer.release()
    return path


def write_samples(directory: Path, photo: Path) -> SampleSet:
    directory.mkdir(parents=True, exist_ok=True)
    document = write_document(directory / "sample-invoice.pdf")
    photo_copy = directory / "sample-street.jpg"
    photo_copy.write_bytes(photo.read_bytes())
    video = write_pan_video(photo, directory / "sample-street-pan.avi")
    return SampleSet(document, photo_copy, video)
