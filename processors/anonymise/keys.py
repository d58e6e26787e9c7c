"""Predictable blob keys for anonymised copies, so access rules can be written against them.

Keys add the media id and the kind of copy to the item's label (`processors.stage.item_label`:
`original`, `page-0003` or `frame-00000042`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.stage import item_label
from visionlog.blobstore import EXPORTS, PROCESSED


def redacted_image_key(item: Mapping[str, Any]) -> tuple[str, str]:
    """Bucket and key of the anonymised image: media-processed/{media_id}/redacted/{item}.jpg."""
    return PROCESSED, f"{item['media_id']}/redacted/{item_label(item)}.jpg"


def redacted_text_key(item: Mapping[str, Any]) -> tuple[str, str]:
    """Bucket and key of the masked text: exports/{media_id}/redacted-text/{item}.txt."""
    return EXPORTS, f"{item['media_id']}/redacted-text/{item_label(item)}.txt"
