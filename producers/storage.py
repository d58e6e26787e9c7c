"""Blob layout of the platform and content-addressed storage of originals.

Keys (pure functions below):

- originals: ``media-originals/{yyyy}/{mm}/{dd}/{media_id}.{ext}`` (upload date, UTC)
- dedupe index: ``media-originals/by-sha256/{scope}/{sha256}.json`` naming the first media_id
  and key, per tenant and owner (`dedupe_scope`)
- pages, frames, decrypted copies and other variants in ``media-processed``: see
  `visionlog.media.keys` (the render stage writes them too)
- idempotency records: ``media-originals/idempotency/{digest}.json`` (`producers.idempotency`)
- analysis artifacts: ``analysis-artifacts/{media_id}/{job_id}/{name}``
- orphan markers: ``analysis-artifacts/orphans/{media_id}.json``
- exports: ``exports/{yyyy}/{mm}/{dd}/{export_id}/{name}``

The same bytes are stored once per tenant and owner: a second upload by the same owner is a
duplicate of the first, an upload of the same bytes by someone else is stored on its own, so
`duplicate_of` never names another owner's item and erasing one owner's item never takes
another owner's original. The index object is written with a conditional put
(``If-None-Match: *``, or ``If-Match`` on the ETag of a stale entry whose blob was erased),
so of two concurrent first uploads exactly one wins; the loser deletes its copy and becomes
a duplicate of the winner.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minio.error import S3Error

from visionlog.blobstore import ARTIFACTS, ORIGINALS, BlobRef, BlobStore
from visionlog.media.keys import StorageKeyError
from visionlog.media.keys import relative_path as _relative_path
from visionlog.media.keys import segment as _segment

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")
INDEX_PREFIX = "by-sha256/"
ORPHAN_PREFIX = "orphans/"


def original_key(media_id: str, extension: str, uploaded_at: datetime) -> str:
    if uploaded_at.tzinfo is None:
        raise StorageKeyError("uploaded_at must be timezone-aware (UTC)")
    if not _EXTENSION.match(extension):
        raise StorageKeyError(f"extension {extension!r} must be 1-8 lower-case letters/digits")
    day = uploaded_at.astimezone(UTC)
    return f"{day:%Y}/{day:%m}/{day:%d}/{_segment(media_id, 'media id')}.{extension}"


def dedupe_scope(tenant_id: str, owner_id: str | None) -> str:
    """Who shares stored bytes: one tenant's owner (a digest, so no id shows in a key)."""
    return hashlib.sha256("\x1f".join((tenant_id, owner_id or "")).encode()).hexdigest()[:32]


def sha256_index_key(sha256: str, scope: str) -> str:
    if not _SHA256.match(sha256):
        raise StorageKeyError(f"{sha256!r} is not a lower-case hex SHA-256")
    return f"{INDEX_PREFIX}{_segment(scope, 'dedupe scope')}/{sha256}.json"


def artifact_key(media_id: str, job_id: str, name: str) -> str:
    return (
        f"{_segment(media_id, 'media id')}/{_segment(job_id, 'job id')}/"
        f"{_relative_path(name, 'name')}"
    )


def orphan_marker_key(media_id: str) -> str:
    return f"{ORPHAN_PREFIX}{_segment(media_id, 'media id')}.json"


def export_key(export_id: str, name: str, created_at: datetime) -> str:
    if created_at.tzinfo is None:
        raise StorageKeyError("created_at must be timezone-aware (UTC)")
    day = created_at.astimezone(UTC)
    return (
        f"{day:%Y}/{day:%m}/{day:%d}/{_segment(export_id, 'export id')}/"
        f"{_relative_path(name, 'name')}"
    )


@dataclass(frozen=True)
class StoredOriginal:
    """Where an upload's bytes live: its own new blob, or the first upload's blob."""

    ref: BlobRef
    # media_id of the first upload of the same bytes; None when this upload stored them.
    duplicate_of: str | None
    # The dedupe scope the bytes are indexed under (`dedupe_scope`).
    scope: str

    @property
    def newly_stored(self) -> bool:
        return self.duplicate_of is None


def index_entry(media_id: str, ref: BlobRef, stored_at: datetime) -> dict[str, Any]:
    return {"media_id": media_id, "blob": dict(ref), "stored_at": stored_at.isoformat()}


def parse_index_entry(raw: bytes, sha256: str) -> tuple[str, BlobRef]:
    """The first media_id and its blob from an index object; ValueError when malformed."""
    entry = json.loads(raw)
    blob = entry["blob"]
    ref = BlobRef(
        bucket=str(blob["bucket"]),
        key=str(blob["key"]),
        sha256=str(blob["sha256"]),
        size_bytes=int(blob["size_bytes"]),
        content_type=str(blob["content_type"]),
    )
    if ref["sha256"] != sha256:
        raise ValueError(f"index entry for {sha256} names a blob with sha256 {ref['sha256']}")
    return str(entry["media_id"]), ref


class OriginalStore:
    """Stores originals once per SHA-256 and records orphans; all I/O against MinIO."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def _read_index(self, sha256: str, scope: str) -> tuple[str, BlobRef, str] | None:
        """The index entry of a digest (first media_id, its blob, the entry's ETag), if any."""
        try:
            response = self.blobs.client.get_object(ORIGINALS, sha256_index_key(sha256, scope))
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        try:
            raw = response.read()
            etag = str(response.headers.get("ETag", ""))
        finally:
            response.close()
            response.release_conn()
        media_id, ref = parse_index_entry(raw, sha256)
        return media_id, ref, etag

    def lookup(self, sha256: str, scope: str) -> tuple[str, BlobRef] | None:
        """The scope's first upload of these bytes, if its blob still exists."""
        entry = self._read_index(sha256, scope)
        if entry is None:
            return None
        media_id, ref, _ = entry
        # An erased original leaves a stale entry: the next upload stores the bytes again.
        if not self.blobs.exists(ref["bucket"], ref["key"]):
            return None
        return media_id, ref

    def _claim(
        self, sha256: str, scope: str, entry: dict[str, Any], *, stale_etag: str | None
    ) -> bool:
        """Write the index entry; False when another upload claimed the digest first.

        Without an entry the write succeeds only if none appeared meanwhile; a stale entry
        is replaced only while it is still the one that was read (its ETag), so two uploads
        replacing the same stale entry cannot both win either.
        """
        body = json.dumps(entry, sort_keys=True).encode()
        written = conditional_put(
            self.blobs,
            ORIGINALS,
            sha256_index_key(sha256, scope),
            body,
            if_match=stale_etag or None,
        )
        return written is not None

    def store(
        self,
        media_id: str,
        *,
        sha256: str,
        scope: str,
        key: str,
        content_type: str,
        data: bytes | None = None,
        path: Path | None = None,
        stored_at: datetime,
    ) -> StoredOriginal:
        """Store the bytes under `key` unless the same digest is already stored."""
        if data is None and path is None:
            raise ValueError("store() needs data or path")
        indexed = self._read_index(sha256, scope)
        stale_etag: str | None = None
        if indexed is not None:
            first_media_id, first_ref, etag = indexed
            if self.blobs.exists(first_ref["bucket"], first_ref["key"]):
                # The entry may be this very item's, from an earlier attempt of the same
                # idempotent upload: then these are its own bytes, not a duplicate.
                first = None if first_media_id == media_id else first_media_id
                return StoredOriginal(ref=first_ref, duplicate_of=first, scope=scope)
            # An erased original left a stale entry: these bytes are stored again.
            stale_etag = etag
        if data is not None:
            ref = self.blobs.put_bytes(ORIGINALS, key, data, content_type)
        else:
            assert path is not None
            ref = self.blobs.put_file(ORIGINALS, key, path, content_type)
        if ref["sha256"] != sha256:
            self.blobs.delete(ORIGINALS, key)
            raise OSError(f"{key}: bytes changed while storing (sha256 {ref['sha256']})")
        try:
            claimed = self._claim(
                sha256, scope, index_entry(media_id, ref, stored_at), stale_etag=stale_etag
            )
        except BaseException:
            # No index entry names the blob and no event will: do not leave it behind.
            self.blobs.delete(ORIGINALS, key)
            raise
        if claimed:
            return StoredOriginal(ref=ref, duplicate_of=None, scope=scope)
        winner = self.lookup(sha256, scope)
        self.blobs.delete(ORIGINALS, key)
        if winner is None:
            raise OSError(f"lost the index claim for {sha256} but found no winning entry")
        return StoredOriginal(ref=winner[1], duplicate_of=winner[0], scope=scope)

    def release(self, media_id: str, sha256: str, scope: str) -> None:
        """Drop the index entry when it names `media_id`: its upload was never published."""
        found = self.lookup(sha256, scope)
        if found is not None and found[0] == media_id:
            self.blobs.delete(ORIGINALS, sha256_index_key(sha256, scope))

    def record_orphan(
        self, media_id: str, ref: BlobRef, reason: str, recorded_at: datetime
    ) -> BlobRef:
        """Leave a marker for a stored blob no event points at, for inspection or cleanup."""
        marker = {
            "media_id": media_id,
            "blob": dict(ref),
            "reason": reason,
            "recorded_at": recorded_at.isoformat(),
        }
        return self.blobs.put_bytes(
            ARTIFACTS,
            orphan_marker_key(media_id),
            json.dumps(marker, sort_keys=True).encode(),
            "application/json",
        )

    def clear_orphan(self, media_id: str) -> None:
        """Remove the marker of a blob whose event was published after all (a retry)."""
        self.blobs.delete(ARTIFACTS, orphan_marker_key(media_id))


def conditional_put(
    blobs: BlobStore, bucket: str, key: str, body: bytes, *, if_match: str | None
) -> str | None:
    """`BlobStore.put_if`: write only if absent or still at that ETag (see there)."""
    return blobs.put_if(bucket, key, body, if_match=if_match)


def read_json(blobs: BlobStore, bucket: str, key: str) -> dict[str, Any]:
    """A small JSON object from the store (index entries, orphan markers)."""
    response = blobs.client.get_object(bucket, key)
    try:
        loaded = json.load(io.BytesIO(response.read()))
    finally:
        response.close()
        response.release_conn()
    if not isinstance(loaded, dict):
        raise TypeError(f"{bucket}/{key} does not hold a JSON object")
    return loaded
