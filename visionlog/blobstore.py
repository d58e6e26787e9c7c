"""Blob store on MinIO (or any S3): bytes go here, events carry a BlobRef with the SHA-256."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

from minio import Minio
from minio.error import S3Error

from visionlog.errors import NotFoundError, PermanentError
from visionlog.settings import MinioSettings

# Bucket layout of the platform (see README, "Blob storage").
ORIGINALS = "media-originals"
PROCESSED = "media-processed"
ARTIFACTS = "analysis-artifacts"
EXPORTS = "exports"
BUCKETS = (ORIGINALS, PROCESSED, ARTIFACTS, EXPORTS)

_CHUNK = 1 << 20


class BlobRef(TypedDict):
    bucket: str
    key: str
    sha256: str
    size_bytes: int
    content_type: str


class BlobIntegrityError(PermanentError, IOError):
    """Stored bytes do not match the SHA-256 their reference promises."""


class BlobNotFoundError(NotFoundError, FileNotFoundError):
    """The referenced blob (or its bucket) does not exist: an answer, not an outage."""


class BlobStore:
    def __init__(self, client: Minio) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: MinioSettings) -> BlobStore:
        return cls(
            Minio(
                settings.endpoint,
                access_key=settings.access_key,
                secret_key=settings.secret_key.get_secret_value(),
                secure=settings.secure,
                region=settings.region,
            )
        )

    def ensure_buckets(self, names: tuple[str, ...] = BUCKETS) -> list[str]:
        created = []
        for name in names:
            if not self.client.bucket_exists(name):
                self.client.make_bucket(name)
                created.append(name)
        return created

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        self.client.put_object(
            bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata={"sha256": digest},
        )
        return BlobRef(
            bucket=bucket, key=key, sha256=digest, size_bytes=len(data), content_type=content_type
        )

    def put_file(self, bucket: str, key: str, path: Path, content_type: str) -> BlobRef:
        """Stream a file up; its digest is computed first so it travels as object metadata."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        size = path.stat().st_size
        with path.open("rb") as handle:
            self.client.put_object(
                bucket,
                key,
                handle,
                size,
                content_type=content_type,
                metadata={"sha256": digest.hexdigest()},
                part_size=16 * _CHUNK,
            )
        return BlobRef(
            bucket=bucket,
            key=key,
            sha256=digest.hexdigest(),
            size_bytes=size,
            content_type=content_type,
        )

    def get_bytes(self, ref: BlobRef | dict[str, Any]) -> bytes:
        """Fetch a blob and verify it against its reference."""
        try:
            response = self.client.get_object(ref["bucket"], ref["key"])
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise BlobNotFoundError(f"{ref['bucket']}/{ref['key']} does not exist") from exc
            raise
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        actual = hashlib.sha256(data).hexdigest()
        if actual != ref["sha256"]:
            raise BlobIntegrityError(
                f"{ref['bucket']}/{ref['key']}: sha256 {actual} does not match reference "
                f"{ref['sha256']}"
            )
        return data

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                return False
            raise
        return True

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Keys under a prefix, recursively, in lexical order."""
        return sorted(
            str(item.object_name)
            for item in self.client.list_objects(bucket, prefix=prefix, recursive=True)
            if item.object_name is not None
        )

    def get_object_bytes(self, bucket: str, key: str) -> bytes:
        """Bytes of an object addressed by bucket and key alone (no integrity reference)."""
        try:
            response = self.client.get_object(bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise BlobNotFoundError(f"{bucket}/{key} does not exist") from exc
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def delete(self, bucket: str, key: str) -> None:
        self.client.remove_object(bucket, key)

    def put_if(self, bucket: str, key: str, body: bytes, *, if_match: str | None) -> str | None:
        """Write a small JSON object only if it is absent (`if_match` None) or still the
        version with that ETag; returns the new ETag, None when the condition failed
        (someone else wrote first). The compare-and-swap the dedupe index, idempotency
        records and redrive ledger rely on."""
        headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": "application/json"}
        if if_match:
            headers["If-Match"] = f'"{if_match.strip(chr(34))}"'
        else:
            headers["If-None-Match"] = "*"
        try:
            # The public put_object turns unknown headers into user metadata, so the
            # conditional put goes through the client's plain PutObject call.
            result = self.client._put_object(bucket, key, body, headers=headers)
        except S3Error as exc:
            if exc.code == "PreconditionFailed":
                return None
            raise
        return str(result.etag or "").strip('"')

    def presigned_url(self, ref: BlobRef | dict[str, Any], expires_s: int = 300) -> str:
        return str(
            self.client.presigned_get_object(
                ref["bucket"], ref["key"], expires=timedelta(seconds=expires_s)
            )
        )
