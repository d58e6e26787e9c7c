"""Layout analysis on recognised lines: words, blocks and reading order.

Works in the frame where text runs horizontally (after orientation and skew were undone);
a caller-supplied mapping takes every polygon back to the original image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from processors.ocr.engine import RecognisedLine
from processors.ocr.geometry import FloatArray, bounding_quad, sub_quad
from processors.ocr.language import detect_language
from processors.ocr.result import OcrBlock, OcrLine, OcrWord, Polygon

PointMapper = Callable[[FloatArray], FloatArray]


@dataclass(frozen=True)
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def _box(quad: FloatArray) -> _Box:
    return _Box(
        float(quad[:, 0].min()),
        float(quad[:, 1].min()),
        float(quad[:, 0].max()),
        float(quad[:, 1].max()),
    )


def _polygon(points: FloatArray) -> Polygon:
    return tuple((round(float(x), 2), round(float(y), 2)) for x, y in points)


def word_spans(text: str, positions: Sequence[float] | None) -> list[tuple[int, int, float, float]]:
    """Words of a line as (first char, end char, start fraction, end fraction) of its width.

    Character centres come from the recogniser's CTC positions; a word extends half a
    typical character pitch beyond its outer characters. Without positions characters are
    assumed evenly spread.
    """
    count = len(text)
    if count == 0:
        return []
    centres = (
        [(index + 0.5) / count for index in range(count)]
        if positions is None or len(positions) != count
        else list(positions)
    )
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for index, char in enumerate(text):
        if char.isspace():
            if start is not None:
                spans.append((start, index))
                start = None
        elif start is None:
            start = index
    if start is not None:
        spans.append((start, count))
    pitches = [
        centres[i + 1] - centres[i]
        for first, end in spans
        for i in range(first, end - 1)
        if centres[i + 1] > centres[i]
    ]
    half = (float(np.median(pitches)) if pitches else 1.0 / count) / 2
    return [
        (first, end, max(0.0, centres[first] - half), min(1.0, centres[end - 1] + half))
        for first, end in spans
    ]


def _words(line: RecognisedLine, to_original: PointMapper) -> tuple[OcrWord, ...]:
    words: list[OcrWord] = []
    confidences = line.char_confidences
    for first, end, start, stop in word_spans(line.text, line.char_positions):
        scores = confidences[first:end] if len(confidences) == len(line.text) else ()
        words.append(
            OcrWord(
                text=line.text[first:end],
                polygon=_polygon(to_original(sub_quad(line.quad, start, stop))),
                confidence=float(np.mean(scores)) if scores else line.confidence,
            )
        )
    return tuple(words)


def group_lines(lines: Sequence[RecognisedLine]) -> list[list[int]]:
    """Indices of lines grouped into blocks: a line joins the block whose last line sits just
    above it, overlaps it horizontally and has a similar height."""
    boxes = [_box(line.quad) for line in lines]
    order = sorted(range(len(lines)), key=lambda i: (boxes[i].y0, boxes[i].x0))
    blocks: list[list[int]] = []
    for index in order:
        box = boxes[index]
        best: int | None = None
        best_gap = float("inf")
        for block_index, block in enumerate(blocks):
            last = boxes[block[-1]]
            low, high = sorted((box.height, last.height))
            gap = box.y0 - last.y1
            overlap = min(box.x1, last.x1) - max(box.x0, last.x0)
            below = box.y0 > last.y0 + 0.5 * last.height
            if below and gap <= 1.0 * low and high <= 1.6 * low and overlap > 0 and gap < best_gap:
                best, best_gap = block_index, gap
        if best is None:
            blocks.append([index])
        else:
            blocks[best].append(index)
    return blocks


def _intervals(spans: list[tuple[float, float, int]]) -> list[tuple[list[int], float]]:
    """Merge overlapping 1-d spans; each group with the gap that precedes it."""
    groups: list[tuple[list[int], float]] = []
    end = -float("inf")
    for low, high, index in sorted(spans):
        if groups and low <= end:
            groups[-1][0].append(index)
            end = max(end, high)
        else:
            groups.append(([index], low - end))
            end = high
    return groups


def reading_order(boxes: Sequence[_Box], line_height: float) -> list[int]:
    """Recursive XY-cut: split at the widest empty horizontal band or vertical gutter,
    reading bands top to bottom and columns left to right."""

    def order(indices: list[int]) -> list[int]:
        if len(indices) <= 1:
            return indices
        rows = _intervals([(boxes[i].y0, boxes[i].y1, i) for i in indices])
        columns = _intervals([(boxes[i].x0, boxes[i].x1, i) for i in indices])
        row_gap = max((gap for _, gap in rows[1:]), default=-1.0)
        column_gap = max((gap for _, gap in columns[1:]), default=-1.0)
        # Gutters narrower than a line height are word gaps, not columns.
        use_columns = len(columns) > 1 and column_gap >= line_height and column_gap > row_gap
        if use_columns:
            return [i for group, _ in columns for i in order(group)]
        if len(rows) > 1:
            return [i for group, _ in rows for i in order(group)]
        return sorted(indices, key=lambda i: (boxes[i].y0, boxes[i].x0))

    return order(list(range(len(boxes))))


def build_blocks(lines: Sequence[RecognisedLine], to_original: PointMapper) -> tuple[OcrBlock, ...]:
    """Blocks in reading order with lines, words, confidences and languages."""
    if not lines:
        return ()
    groups = group_lines(lines)
    block_boxes = [_box(bounding_quad([lines[i].quad for i in group])) for group in groups]
    line_height = float(np.median([_box(line.quad).height for line in lines]))
    blocks: list[OcrBlock] = []
    for position, group_index in enumerate(reading_order(block_boxes, line_height)):
        members = [lines[i] for i in groups[group_index]]
        ocr_lines = tuple(
            OcrLine(
                text=line.text,
                polygon=_polygon(to_original(line.quad)),
                confidence=line.confidence,
                words=_words(line, to_original),
            )
            for line in members
        )
        text = "\n".join(line.text for line in members)
        blocks.append(
            OcrBlock(
                reading_order=position,
                polygon=_polygon(to_original(bounding_quad([line.quad for line in members]))),
                lines=ocr_lines,
                confidence=float(np.mean([line.confidence for line in members])),
                language=detect_language(text),
            )
        )
    return tuple(blocks)
