"""Idempotency keys of uploads: a retried upload gets the first one's media id, never a
second item.

A client that does not know whether its upload went through (the answer was lost, the
connection dropped, a 503 during a Kafka restart) sends it again with the same
``Idempotency-Key``. One record per key in MinIO decides, written only with conditional
puts (compare-and-swap on the ETag, like the dedupe index in `producers.storage`):

``media-originals/idempotency/{sha256(tenant, owner, key)}.json``::

    {"state": "pending" | "accepted" | "failed", "fingerprint": {...},
     "media_id", "event_id", "trace_id", "uploaded_at", "attempt", "reserved_at",
     "result": {...} | null, "error": str | null, "tenant_id", "owner_id"}

1. The first upload reserves the key (``If-None-Match: *``) before it stores anything,
   fixing the item's media id, MediaUploaded event id, trace id and upload time. Of two
   concurrent first uploads exactly one reservation wins.
2. When MediaUploaded is published the record becomes ``accepted`` with the answer
   (``If-Match`` on the reservation's ETag). A retry then gets that answer as it is: same
   media id, same body, nothing stored or published again.
3. A retry that finds the key ``pending`` waits for the first upload (up to
   ``ingest.idempotency_lease_s``). A reservation older than that (its process died) or one
   marked ``failed`` is taken over with a conditional put: the retry stores and publishes
   with the reserved ids, so even when the first attempt did publish before it died, the
   item is the same one and the repeated event has the same event id (consumers absorb it).
4. The same key with a different request (other content, profile, labels or file name) is
   refused with `IdempotencyConflictError` (HTTP 409), as is a key still in progress after
   the wait.

Keys are scoped to tenant and owner: two users may use the same key for different uploads.
Records are small and kept; a lifecycle rule on the prefix may expire them (a day is plenty
for retries).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from minio.error import S3Error

from producers.storage import conditional_put
from visionlog.blobstore import ORIGINALS, BlobStore
from visionlog.errors import PermanentError

IDEMPOTENCY_PREFIX = "idempotency/"
# Printable ASCII without spaces at the ends, as header values allow; long enough for a UUID
# or a client's own composite key.
_VALID_KEY = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$")


class IdempotencyKeyError(PermanentError, ValueError):
    """The idempotency key itself is malformed (HTTP 400)."""

    http_status = 400


class IdempotencyConflictError(PermanentError):
    """The key belongs to a different upload, or its first upload is still in progress."""

    http_status = 409

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class State(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    FAILED = "failed"


def check_key(key: str) -> str:
    if not _VALID_KEY.match(key):
        raise IdempotencyKeyError(
            "an idempotency key is 1 to 255 printable ASCII characters, without spaces at "
            f"either end; got {key[:40]!r}{'...' if len(key) > 40 else ''}"
        )
    return key


def record_key(tenant_id: str, owner_id: str | None, key: str) -> str:
    scope = "\x1f".join((tenant_id, owner_id or "", check_key(key)))
    return f"{IDEMPOTENCY_PREFIX}{hashlib.sha256(scope.encode()).hexdigest()}.json"


@dataclass(frozen=True)
class Fingerprint:
    """What makes two uploads the same request."""

    sha256: str
    profile: str
    labels: tuple[tuple[str, str], ...]
    filename: str | None

    @classmethod
    def of(
        cls, sha256: str, profile: str, labels: Mapping[str, str], filename: str | None
    ) -> Fingerprint:
        return cls(sha256, profile, tuple(sorted(labels.items())), filename)

    def as_record(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "profile": self.profile,
            "labels": dict(self.labels),
            "filename": self.filename,
        }

    @classmethod
    def from_record(cls, raw: Mapping[str, Any]) -> Fingerprint:
        return cls.of(
            str(raw["sha256"]),
            str(raw["profile"]),
            {str(k): str(v) for k, v in dict(raw["labels"]).items()},
            None if raw.get("filename") is None else str(raw["filename"]),
        )

    def differences(self, other: Fingerprint) -> list[str]:
        names = []
        if self.sha256 != other.sha256:
            names.append(f"content (sha256 {other.sha256[:12]}… before, {self.sha256[:12]}… now)")
        if self.profile != other.profile:
            names.append(f"profile ({other.profile!r} before, {self.profile!r} now)")
        if self.labels != other.labels:
            names.append("labels")
        if self.filename != other.filename:
            names.append(f"file name ({other.filename!r} before, {self.filename!r} now)")
        return names


@dataclass(frozen=True)
class Reservation:
    """One key's record as read or written, with the ETag that guards the next write."""

    key: str
    etag: str
    state: State
    fingerprint: Fingerprint
    media_id: str
    event_id: str
    trace_id: str
    uploaded_at: datetime
    attempt: int
    reserved_at: datetime
    tenant_id: str
    owner_id: str | None
    result: dict[str, Any] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            **self.extra,
            "state": self.state.value,
            "fingerprint": self.fingerprint.as_record(),
            "media_id": self.media_id,
            "event_id": self.event_id,
            "trace_id": self.trace_id,
            "uploaded_at": self.uploaded_at.isoformat(),
            "attempt": self.attempt,
            "reserved_at": self.reserved_at.isoformat(),
            "tenant_id": self.tenant_id,
            "owner_id": self.owner_id,
            "result": self.result,
            "error": self.error,
        }

    @classmethod
    def from_record(cls, key: str, etag: str, raw: Mapping[str, Any]) -> Reservation:
        known = {
            "state",
            "fingerprint",
            "media_id",
            "event_id",
            "trace_id",
            "uploaded_at",
            "attempt",
            "reserved_at",
            "tenant_id",
            "owner_id",
            "result",
            "error",
        }
        return cls(
            key=key,
            etag=etag,
            state=State(str(raw["state"])),
            fingerprint=Fingerprint.from_record(raw["fingerprint"]),
            media_id=str(raw["media_id"]),
            event_id=str(raw["event_id"]),
            trace_id=str(raw["trace_id"]),
            uploaded_at=datetime.fromisoformat(str(raw["uploaded_at"])),
            attempt=int(raw["attempt"]),
            reserved_at=datetime.fromisoformat(str(raw["reserved_at"])),
            tenant_id=str(raw["tenant_id"]),
            owner_id=None if raw.get("owner_id") is None else str(raw["owner_id"]),
            result=raw.get("result"),
            error=raw.get("error"),
            extra={k: v for k, v in raw.items() if k not in known},
        )


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class IdempotencyStore:
    """Reads and writes the records, each write a compare-and-swap on the ETag."""

    def __init__(self, blobs: BlobStore, *, clock: Callable[[], datetime] = _wall_clock) -> None:
        self.blobs = blobs
        self.clock = clock

    def read(self, key: str) -> Reservation | None:
        try:
            response = self.blobs.client.get_object(ORIGINALS, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        try:
            raw = response.read()
            etag = str(response.headers.get("ETag", "")).strip('"')
        finally:
            response.close()
            response.release_conn()
        return Reservation.from_record(key, etag, json.loads(raw))

    def _write(self, reservation: Reservation, *, if_match: str | None) -> Reservation | None:
        body = json.dumps(reservation.as_record(), sort_keys=True).encode()
        etag = conditional_put(self.blobs, ORIGINALS, reservation.key, body, if_match=if_match)
        return None if etag is None else replace(reservation, etag=etag)

    def reserve(
        self,
        key: str,
        fingerprint: Fingerprint,
        *,
        tenant_id: str,
        owner_id: str | None,
        trace_id: str,
        uploaded_at: datetime,
    ) -> Reservation | None:
        """Claim a fresh key with new ids; None when another upload claimed it first."""
        media_id = str(uuid.uuid4())
        fresh = Reservation(
            key=key,
            etag="",
            state=State.PENDING,
            fingerprint=fingerprint,
            media_id=media_id,
            event_id=str(uuid.uuid4()),
            trace_id=trace_id,
            uploaded_at=uploaded_at,
            attempt=1,
            reserved_at=self.clock(),
            tenant_id=tenant_id,
            owner_id=owner_id,
        )
        return self._write(fresh, if_match=None)

    def take_over(self, stale: Reservation) -> Reservation | None:
        """Resume a failed or abandoned upload with its ids; None when someone else did."""
        resumed = replace(
            stale,
            state=State.PENDING,
            attempt=stale.attempt + 1,
            reserved_at=self.clock(),
            error=None,
        )
        return self._write(resumed, if_match=stale.etag)

    def accept(self, mine: Reservation, result: dict[str, Any]) -> Reservation | None:
        """Record the answer of a published upload; None when another attempt took over."""
        return self._write(replace(mine, state=State.ACCEPTED, result=result), if_match=mine.etag)

    def fail(self, mine: Reservation, error: str) -> Reservation | None:
        """Mark the attempt failed, so a retry takes it over at once instead of waiting."""
        return self._write(replace(mine, state=State.FAILED, error=error), if_match=mine.etag)

    def expired(self, reservation: Reservation, lease_s: float) -> bool:
        return (self.clock() - reservation.reserved_at).total_seconds() > lease_s


def wait_step(started: float, lease_s: float) -> float | None:
    """Seconds to sleep before looking at a pending record again; None once waited out."""
    elapsed = time.monotonic() - started
    if elapsed >= lease_s:
        return None
    return min(0.25, lease_s - elapsed)
