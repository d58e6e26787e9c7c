"""The OCR result as plain immutable data: blocks of lines of words, in reading order.

Polygons are arrays of (x, y) points in pixels of the image the caller passed in, in
clockwise order starting at the top-left corner of the text in its reading direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Point = tuple[float, float]
Polygon = tuple[Point, ...]


@dataclass(frozen=True)
class OcrWord:
    text: str
    polygon: Polygon
    confidence: float


@dataclass(frozen=True)
class OcrLine:
    text: str
    polygon: Polygon
    confidence: float
    words: tuple[OcrWord, ...]


@dataclass(frozen=True)
class OcrBlock:
    reading_order: int
    polygon: Polygon
    lines: tuple[OcrLine, ...]
    confidence: float
    language: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True)
class OcrResult:
    """Everything read from one image, plus what was done to the image before reading."""

    image_width: int
    image_height: int
    blocks: tuple[OcrBlock, ...]
    orientation_degrees: int = 0
    skew_degrees: float = 0.0
    preprocessing: tuple[str, ...] = ()
    inference_ms: float = 0.0
    languages: tuple[str, ...] = field(default=())

    @property
    def full_text(self) -> str:
        return "\n\n".join(block.text for block in self.blocks)

    @property
    def lines(self) -> tuple[OcrLine, ...]:
        return tuple(line for block in self.blocks for line in block.lines)
