"""A searchable PDF page: the image with an invisible text layer at the OCR word positions."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import reportlab
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from processors.outputs.annotate import encode_jpeg
from processors.outputs.items import Box, polygon_bounds

POINTS_PER_INCH = 72.0
# Text render mode 3 draws no glyphs: the text is selectable and searchable, not visible.
INVISIBLE = 3
FONT_NAME = "VisionlogTextLayer"
# Vera (shipped with reportlab) embeds as a subset with a ToUnicode map, so extracted text
# keeps umlauts and ß; glyph shapes do not matter for invisible text.
_FONT_FILE = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"


@lru_cache(maxsize=1)
def _register_font() -> tuple[float, float]:
    """Registers the text-layer font once; returns its ascent and descent per unit size."""
    pdfmetrics.registerFont(TTFont(FONT_NAME, str(_FONT_FILE)))
    ascent, descent = pdfmetrics.getAscentDescent(FONT_NAME, 1000)
    return ascent / 1000.0, -descent / 1000.0


def text_spans(text_event: Mapping[str, Any]) -> Iterator[tuple[str, Box]]:
    """Words with their bounds in reading order; a line without words counts as one span."""
    blocks = sorted(text_event["blocks"], key=lambda block: int(block["reading_order"]))
    for block in blocks:
        for line in block["lines"]:
            words = [word for word in line["words"] if str(word["text"]).strip()]
            if words:
                for word in words:
                    yield str(word["text"]).strip(), polygon_bounds(word["polygon"])
            elif str(line["text"]).strip() and line["polygon"]:
                yield str(line["text"]).strip(), polygon_bounds(line["polygon"])


def render_searchable_pdf(
    image_bgr: np.ndarray, text_event: Mapping[str, Any], dpi: float = 150.0
) -> bytes:
    """One PDF page the size of the image at `dpi`, with the OCR text invisibly on top.

    Each span is sized so its glyph boxes cover the span's bounds in the image: the font
    size fills the box height and horizontal scaling stretches the text to its width.
    """
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    ascent, descent = _register_font()
    height_px, width_px = image_bgr.shape[:2]
    scale = POINTS_PER_INCH / dpi
    page_width, page_height = width_px * scale, height_px * scale
    # Polygons refer to the analysed size, which may differ from the stored image's.
    sx = width_px / float(text_event.get("image_width") or width_px) * scale
    sy = height_px / float(text_event.get("image_height") or height_px) * scale

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=(page_width, page_height), invariant=True)
    pdf.setTitle("OCR result")
    pdf.drawImage(ImageReader(io.BytesIO(encode_jpeg(image_bgr))), 0, 0, page_width, page_height)
    for text, (x_min, y_min, x_max, y_max) in text_spans(text_event):
        box_width, box_height = (x_max - x_min) * sx, (y_max - y_min) * sy
        if box_width <= 0 or box_height <= 0:
            continue
        size = box_height / (ascent + descent)
        natural_width = pdfmetrics.stringWidth(text, FONT_NAME, size)
        if natural_width <= 0:
            continue
        layer = pdf.beginText()
        layer.setTextRenderMode(INVISIBLE)
        layer.setFont(FONT_NAME, size)
        layer.setHorizScale(100.0 * box_width / natural_width)
        # PDF's origin is bottom-left; the baseline sits `descent` above the box bottom.
        layer.setTextOrigin(x_min * sx, page_height - y_max * sy + descent * size)
        layer.textOut(text)
        pdf.drawText(layer)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
