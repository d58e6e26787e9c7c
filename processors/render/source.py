"""The uploaded original of an item, as bytes (documents) or as a local file (videos)."""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from minio.error import S3Error

from visionlog.blobstore import BlobIntegrityError, BlobNotFoundError, BlobStore

_CHUNK = 1 << 20
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def local_name(uploaded: Mapping[str, Any]) -> str:
    """A file name for the original: the uploader's stem (error messages name it) and the
    stored blob's extension (OpenCV picks its demuxer by it)."""
    original = uploaded["original"]
    stem = _UNSAFE_NAME.sub("_", PurePath(uploaded.get("original_filename") or "upload").stem)
    extension = PurePosixPath(str(original["key"])).suffix
    return f"{stem[:100] or 'upload'}{extension}"


@contextmanager
def original_file(blobs: BlobStore, uploaded: Mapping[str, Any]) -> Iterator[Path]:
    """The original streamed into a temporary file, verified against its digest; the file
    is removed when the block ends. Never held in memory as a whole."""
    ref = uploaded["original"]
    with tempfile.TemporaryDirectory(prefix="visionlog-render-") as directory:
        path = Path(directory) / local_name(uploaded)
        try:
            response = blobs.client.get_object(ref["bucket"], ref["key"])
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise BlobNotFoundError(f"{ref['bucket']}/{ref['key']} does not exist") from exc
            raise
        digest = hashlib.sha256()
        try:
            with path.open("wb") as handle:
                for chunk in response.stream(_CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)
        finally:
            response.close()
            response.release_conn()
        if digest.hexdigest() != ref["sha256"]:
            raise BlobIntegrityError(
                f"{ref['bucket']}/{ref['key']}: sha256 {digest.hexdigest()} does not match "
                f"reference {ref['sha256']}"
            )
        yield path
