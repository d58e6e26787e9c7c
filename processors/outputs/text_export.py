"""Plain text of an OCR result in reading order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def reading_order_text(text_event: Mapping[str, Any]) -> str:
    """Blocks sorted by reading order, separated by blank lines; full_text when no blocks."""
    blocks = sorted(text_event["blocks"], key=lambda block: int(block["reading_order"]))
    if not blocks:
        return str(text_event["full_text"]).strip()
    parts: list[str] = []
    for block in blocks:
        lines = [str(line["text"]) for line in block["lines"]]
        text = "\n".join(lines) if lines else str(block["text"])
        if text.strip():
            parts.append(text.strip("\n"))
    return "\n\n".join(parts)


def render_plain_text(text_event: Mapping[str, Any]) -> bytes:
    """UTF-8 text file of the OCR result, ending in a newline when not empty."""
    text = reading_order_text(text_event)
    return (text + "\n").encode("utf-8") if text else b""
