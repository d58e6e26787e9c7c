"""Merging the results of several decoders: one entry per physical code."""

from __future__ import annotations

import math
from collections.abc import Iterable

from processors.codes.found import FoundCode

# EAN-13 with a leading zero is the same symbol as UPC-A; decoders disagree on the name.
_RETAIL = {"EAN_13", "UPC_A", "EAN_8", "UPC_E"}


def _same_payload(first: FoundCode, second: FoundCode) -> bool:
    if first.symbology in _RETAIL and second.symbology in _RETAIL:
        return first.text.lstrip("0") == second.text.lstrip("0")
    return first.symbology == second.symbology and first.text == second.text


def _same_place(first: FoundCode, second: FoundCode) -> bool:
    (x1, y1), (x2, y2) = first.centre, second.centre
    # Decoders outline the same symbol slightly differently (quiet zone, finder corners).
    return math.hypot(x1 - x2, y1 - y2) < 0.5 * max(first.extent, second.extent)


def merge_codes(found: Iterable[FoundCode]) -> list[FoundCode]:
    """Drop repeats of a code already found (same payload, same place); the first one wins."""
    kept: list[FoundCode] = []
    for code in found:
        if not any(_same_payload(code, other) and _same_place(code, other) for other in kept):
            kept.append(code)
    return kept
