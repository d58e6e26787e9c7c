"""Blob keys of what is derived from a media item in ``media-processed``.

- pages: ``{media_id}/pages/{n:04d}.png``
- frames: ``{media_id}/frames/{index:08d}.jpg``
- the decrypted copy of a password-protected PDF: ``{media_id}/decrypted/document.pdf``
- other variants: ``{media_id}/{variant}/{name}``

Producers (the decrypted copy at ingest) and the render stage (pages and frames) write
under these keys, so both sides agree on them without importing each other.
"""

from __future__ import annotations

import re

# One path segment: no separators, no dot-only names, nothing that needs escaping.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StorageKeyError(ValueError):
    """A value that cannot be part of a blob key (separators, dot segments, bad digest)."""


def segment(value: str, what: str) -> str:
    if not _SEGMENT.match(value) or ".." in value:
        raise StorageKeyError(f"{what} {value!r} cannot be a blob key segment")
    return value


def relative_path(value: str, what: str) -> str:
    for part in value.split("/"):
        segment(part, what)
    return value


def processed_key(media_id: str, variant: str, name: str) -> str:
    return (
        f"{segment(media_id, 'media id')}/{segment(variant, 'variant')}/"
        f"{relative_path(name, 'name')}"
    )


def page_key(media_id: str, page_number: int) -> str:
    if not 1 <= page_number <= 9999:
        raise StorageKeyError(f"page number {page_number} outside 1..9999")
    return processed_key(media_id, "pages", f"{page_number:04d}.png")


def frame_key(media_id: str, frame_index: int) -> str:
    if not 0 <= frame_index <= 99_999_999:
        raise StorageKeyError(f"frame index {frame_index} outside 0..99999999")
    return processed_key(media_id, "frames", f"{frame_index:08d}.jpg")


def decrypted_key(media_id: str) -> str:
    """The decrypted copy of a PDF uploaded with its password (see `processors.render`)."""
    return processed_key(media_id, "decrypted", "document.pdf")
