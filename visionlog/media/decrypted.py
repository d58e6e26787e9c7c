"""The decrypted copy of a PDF uploaded with its password.

The password is needed only to open the document, and it must never travel in an event or
be stored. So ingest, which has it in the request, opens the document and stores qpdf's
decrypted (and, where needed, repaired) copy at
``media-processed/{media_id}/decrypted/document.pdf``; the render stage renders from that
copy when the original needs a password. The copy holds what the rendered pages show
anyway (they are stored next to it, unencrypted), so it asks for no more protection than
the pages do. Its digest and whether the original had to be repaired travel as object
metadata, so the stage verifies the bytes and reports `PageRendered.repaired` truthfully.
"""

from __future__ import annotations

import hashlib
import io

from minio.error import S3Error

from visionlog.blobstore import PROCESSED, BlobIntegrityError, BlobRef, BlobStore
from visionlog.media.keys import decrypted_key

CONTENT_TYPE = "application/pdf"
_SHA256 = "sha256"
_REPAIRED = "repaired"


def store_decrypted_copy(
    blobs: BlobStore, media_id: str, data: bytes, *, repaired: bool
) -> BlobRef:
    digest = hashlib.sha256(data).hexdigest()
    key = decrypted_key(media_id)
    blobs.client.put_object(
        PROCESSED,
        key,
        io.BytesIO(data),
        len(data),
        content_type=CONTENT_TYPE,
        metadata={_SHA256: digest, _REPAIRED: "true" if repaired else "false"},
    )
    return BlobRef(
        bucket=PROCESSED, key=key, sha256=digest, size_bytes=len(data), content_type=CONTENT_TYPE
    )


def _meta(headers: object, name: str) -> str | None:
    """A user metadata value from MinIO's response headers (any capitalisation)."""
    wanted = f"x-amz-meta-{name}"
    items = getattr(headers, "items", None)
    if items is None:
        return None
    for key, value in items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def load_decrypted_copy(blobs: BlobStore, media_id: str) -> tuple[bytes, bool] | None:
    """(bytes, repaired) of the stored copy, None when there is none; verified by digest."""
    key = decrypted_key(media_id)
    try:
        stat = blobs.client.stat_object(PROCESSED, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "NoSuchBucket"):
            return None
        raise
    data = blobs.get_object_bytes(PROCESSED, key)
    expected = _meta(stat.metadata, _SHA256)
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and expected != actual:
        raise BlobIntegrityError(
            f"{PROCESSED}/{key}: sha256 {actual} does not match its metadata {expected}"
        )
    return data, _meta(stat.metadata, _REPAIRED) == "true"


def delete_decrypted_copy(blobs: BlobStore, media_id: str) -> None:
    blobs.delete(PROCESSED, decrypted_key(media_id))
