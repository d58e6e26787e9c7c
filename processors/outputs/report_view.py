"""Renders a media item's combined report from what is stored: its results and its images.

Used by the outputs worker when an item (or a reprocess run) completes, and by the API when
a user asks for the report. Thumbnails are made from the item's stored images (the
anonymised copy where there is one) and embedded; an image that cannot be read is left
out rather than shown broken.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from processors.outputs.combined_report import (
    CompletionSummary,
    render_combined_report,
    thumbnail_items,
)
from processors.outputs.inline_images import decode_image, inline_thumbnail
from processors.outputs.media_results import ItemResults
from processors.outputs.stored_results import load_results
from visionlog.blobstore import EXPORTS, BlobRef, BlobStore
from visionlog.errors import NotFoundError, PermanentError

log = logging.getLogger(__name__)

COMBINED_REPORT_NAME = "report.html"
REPORT_CONTENT_TYPE = "text/html; charset=utf-8"


def report_key(media_id: str) -> str:
    """Key of the combined report in the exports bucket."""
    return f"{media_id}/{COMBINED_REPORT_NAME}"


def _image_bytes(blobs: BlobStore, item: ItemResults) -> bytes | None:
    redaction = item.results.get("MediaRedacted")
    if redaction is not None:
        bucket, _, key = str(redaction["redacted_image"]).partition("/")
        return blobs.get_object_bytes(bucket, key)
    image = item.ref.get("image")
    if not isinstance(image, Mapping):
        return None
    return blobs.get_bytes(dict(image))


def _thumbnail(blobs: BlobStore, item: ItemResults) -> str | None:
    try:
        data = _image_bytes(blobs, item)
    except (NotFoundError, PermanentError) as error:
        log.info("no thumbnail for %s: %s", item.label, error)
        return None
    image = decode_image(data) if data else None
    return None if image is None else inline_thumbnail(image)


def build_report(blobs: BlobStore, media_id: str, completion: CompletionSummary | None) -> bytes:
    """The report page of `media_id`, from its stored results and images."""
    loaded = load_results(blobs, media_id)
    results = loaded.results
    wanted = thumbnail_items(results)
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(lambda item: _thumbnail(blobs, item), wanted))
    thumbnails = {item.label: src for item, src in zip(wanted, found, strict=True) if src}
    return render_combined_report(results, completion, thumbnails, loaded.notes())


def store_report(blobs: BlobStore, media_id: str, page: bytes) -> BlobRef:
    """Stores the page where downloads and the API find it; returns its BlobRef."""
    return blobs.put_bytes(EXPORTS, report_key(media_id), page, REPORT_CONTENT_TYPE)
