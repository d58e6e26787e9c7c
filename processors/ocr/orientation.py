"""Page orientation: which way text lines run, and whether the page is upside down.

The text detector finds lines in any direction, so the long sides of its boxes give the
text direction modulo 180 degrees (a quarter turn plus a small skew). Whether the upright
candidate or its 180-degree twin is right is decided by the line classifier, and by
recognition confidence when the classifier is unsure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.ocr.engine import TextLineProbe
from processors.ocr.geometry import FloatArray, Image, crop_quad, order_quad, quad_size


@dataclass(frozen=True)
class TextDirection:
    """Dominant line direction: `quarter_turns` x 90 degrees plus `skew` degrees, clockwise."""

    quarter_turns: int
    skew: float
    support: int


def line_angles(quads: Sequence[FloatArray], min_aspect: float = 2.0) -> list[tuple[float, float]]:
    """(direction in [0, 180) degrees, long-side length) of every line-shaped quad."""
    result: list[tuple[float, float]] = []
    for quad in quads:
        ordered = order_quad(quad)
        width, height = quad_size(ordered)
        if max(width, height) < min_aspect * max(1.0, min(width, height)):
            continue
        vector = ordered[1] - ordered[0] if width >= height else ordered[3] - ordered[0]
        angle = math.degrees(math.atan2(vector[1], vector[0])) % 180.0
        result.append((angle, max(width, height)))
    return result


def dominant_direction(quads: Sequence[FloatArray], min_aspect: float = 2.0) -> TextDirection:
    """The length-weighted mode of line directions, refined by the mean around the peak."""
    angles = line_angles(quads, min_aspect)
    if not angles:
        return TextDirection(0, 0.0, 0)
    values = np.array([angle for angle, _ in angles])
    weights = np.array([length for _, length in angles])
    histogram = np.zeros(180)
    np.add.at(histogram, np.floor(values).astype(int) % 180, weights)
    # Directions wrap around at 180 degrees: smooth circularly over +-2 degrees.
    smoothed = sum(np.roll(histogram, shift) for shift in range(-2, 3))
    peak = float(np.argmax(smoothed)) + 0.5
    offsets = (values - peak + 90.0) % 180.0 - 90.0
    near = np.abs(offsets) <= 4.0
    direction = peak + float(np.average(offsets[near], weights=weights[near]))
    quarter = round(direction / 90.0)
    skew = direction - 90.0 * quarter
    return TextDirection(quarter % 2, float(skew), int(near.sum()))


def upright_probability(
    probe: TextLineProbe,
    image: Image,
    quads: Sequence[FloatArray],
    max_lines: int = 12,
    unsure: float = 0.25,
) -> float:
    """Probability (0..1) that horizontal lines in `image` are upright rather than turned
    by 180 degrees: the classifier's vote, or a recognition-confidence contest when the
    vote is within `unsure` of a tie."""
    horizontal = [order_quad(quad) for quad in quads]
    longest = sorted(horizontal, key=lambda q: -quad_size(q)[0])[:max_lines]
    crops = [crop_quad(image, quad) for quad in longest]
    crops = [crop for crop in crops if crop.shape[1] >= 2 * crop.shape[0]]
    if not crops:
        return 1.0
    flipped_votes = probe.upside_down_probability(crops)
    upright = 1.0 - float(np.mean(flipped_votes))
    if abs(upright - 0.5) >= unsure:
        return upright
    turned = [np.ascontiguousarray(crop[::-1, ::-1]) for crop in crops]
    as_is = float(np.mean([text.confidence for text in probe.recognise(crops)]))
    reversed_ = float(np.mean([text.confidence for text in probe.recognise(turned)]))
    return as_is / max(1e-6, as_is + reversed_)
