"""Predictable blob keys for anonymised copies, so access rules can be written against them.

An item is labelled `image` (a whole uploaded image), `page-{n}` (1-based page) or
`frame-{i}` (0-based frame index); keys add the media id and the kind of copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from visionlog.blobstore import EXPORTS, PROCESSED


def item_label(item: Mapping[str, Any]) -> str:
    """`page-3`, `frame-120` or `image` for an ItemRef record."""
    if item.get("page_number") is not None:
        return f"page-{item['page_number']}"
    if item.get("frame_index") is not None:
        return f"frame-{item['frame_index']}"
    return "image"


def redacted_image_key(item: Mapping[str, Any]) -> tuple[str, str]:
    """Bucket and key of the anonymised image: media-processed/{media_id}/redacted/{item}.jpg."""
    return PROCESSED, f"{item['media_id']}/redacted/{item_label(item)}.jpg"


def redacted_text_key(item: Mapping[str, Any]) -> tuple[str, str]:
    """Bucket and key of the masked text: exports/{media_id}/redacted-text/{item}.txt."""
    return EXPORTS, f"{item['media_id']}/redacted-text/{item_label(item)}.txt"
