"""Uploads: check the bytes, store them once, publish MediaUploaded, and return.

Nothing that grows with the document happens here: PDF pages are rendered and video frames
sampled later by the document worker's render stage (`processors.render`), so an upload
call costs its checks, one blob write and one event, whatever the document holds.

Delivery policy (what happens when a step fails):

1. Input is checked completely before anything is stored: type by content, extension,
   size, image decoding, PDF structure (page count, password, repair), video container
   (probe). Refused input raises MediaRejectedError; nothing is stored or published.
2. The original is stored (once per SHA-256, see `producers.storage`) before any event;
   for a PDF opened with its password, also its decrypted copy (see
   `visionlog.media.decrypted`: the password itself is never stored nor published). A
   blob that could not be stored never produces an event: StorageFailedError.
3. MediaUploaded is published and the call waits for that event's own delivery report
   (`producers.delivery`): a Kafka restart shorter than `ingest.publish_timeout_s` is waited
   out, never answered as a failure while the event is on its way, and the event is sent
   again (same event id) only after a definitive failure, at most
   `ingest.publish_attempts` times. When it still fails the upload raises
   `PublishFailedError`, the dedupe index entry is withdrawn (later uploads store the
   bytes afresh) and the stored blob gets an orphan marker
   ``analysis-artifacts/orphans/{media_id}.json`` naming it and the reason: no silent
   orphans. When the outcome is unknown (no report in time) the error says so
   (`PublishFailedError.uncertain`): the item may exist, and a retry with the same
   idempotency key finishes it without making a second one.
4. With an idempotency key (`producers.idempotency`) a retried upload returns the first
   upload's answer, or finishes it with its media id and event id, never a second item.

Every MediaUploaded carries a W3C trace id (`envelope.trace_id` and the ``traceparent``
Kafka header): the caller's when it passes one (HTTP ``traceparent``), a new one otherwise;
every event derived from the upload carries it on.

A second upload of bytes already stored gets its own media_id and MediaUploaded, with
``duplicate_of`` = the first media_id and ``original`` = the first upload's blob (no second
copy); its pages or frames are rendered again under its own media_id, so every item's
event stream is complete on its own.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any, TypeVar

from confluent_kafka import Producer

from producers import media_types
from producers.delivery import DeliveryUncertainError, publish_checked
from producers.idempotency import (
    Fingerprint,
    IdempotencyConflictError,
    IdempotencyStore,
    Reservation,
    State,
    record_key,
    wait_step,
)
from producers.media_types import MediaKind, MediaType
from producers.storage import OriginalStore, StoredOriginal, dedupe_scope, original_key
from visionlog import profiles
from visionlog.blobstore import BlobRef, BlobStore
from visionlog.codec import AvroCodec
from visionlog.envelope import Envelope, now_millis
from visionlog.errors import OutageError
from visionlog.kafka import Delivered, EventPublisher, producer_config
from visionlog.media import pdf, video
from visionlog.media.decrypted import delete_decrypted_copy, store_decrypted_copy
from visionlog.media.errors import MediaRejectedError, RejectReason
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.stream.headers import new_trace_id

log = logging.getLogger(__name__)

PRODUCER_NAME = "producers.ingest"
PRODUCER_VERSION = "0.2.0"
PRODUCER = f"{PRODUCER_NAME}/{PRODUCER_VERSION}"
PROFILES = profiles.UPLOAD_PROFILES
_FLUSH_TIMEOUT_S = 30.0
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_T = TypeVar("_T")


class UploadSource(StrEnum):
    """Symbols of the UploadSource enum in the MediaUploaded contract."""

    OTHER = "OTHER"
    LIBRARY = "LIBRARY"
    CLI = "CLI"
    HOT_FOLDER = "HOT_FOLDER"
    HTTP = "HTTP"
    URL = "URL"
    CAMERA = "CAMERA"


class StorageFailedError(OutageError, OSError):
    """The original could not be stored; no event was published (503: try again later)."""


class PublishFailedError(OutageError, RuntimeError):
    """The original was stored but MediaUploaded could not be published (or, `uncertain`,
    its delivery could not be confirmed in time: the item may exist after all)."""

    def __init__(
        self,
        message: str,
        media_id: str,
        orphan_marker: BlobRef | None,
        *,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.media_id = media_id
        self.orphan_marker = orphan_marker
        self.uncertain = uncertain


@dataclass(frozen=True)
class IngestResult:
    """The answer to an accepted upload. Pages and frames are not in it: the render stage
    announces them later (PageRendered, FrameCaptured)."""

    media_id: str
    event_id: str
    trace_id: str
    media_type: str
    media_kind: MediaKind
    original: BlobRef
    duplicate_of: str | None
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    duration_ms: int | None = None
    fps: float | None = None
    warnings: tuple[str, ...] = ()
    # True when this is the stored answer of an earlier upload with the same idempotency key.
    replayed: bool = False
    # Where the brokers stored the MediaUploaded (its delivery report); None in answers
    # recorded before positions were kept.
    position: Delivered | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "media_id": self.media_id,
            "event_id": self.event_id,
            "trace_id": self.trace_id,
            "media_type": self.media_type,
            "media_kind": self.media_kind.value,
            "original": dict(self.original),
            "duplicate_of": self.duplicate_of,
            "width": self.width,
            "height": self.height,
            "page_count": self.page_count,
            "duration_ms": self.duration_ms,
            "fps": self.fps,
            "warnings": list(self.warnings),
            "position": _position_record(self.position),
        }

    @classmethod
    def from_record(cls, raw: Mapping[str, Any], *, replayed: bool) -> IngestResult:
        original = raw["original"]
        return cls(
            media_id=str(raw["media_id"]),
            event_id=str(raw["event_id"]),
            trace_id=str(raw["trace_id"]),
            media_type=str(raw["media_type"]),
            media_kind=MediaKind(str(raw["media_kind"])),
            original=BlobRef(
                bucket=str(original["bucket"]),
                key=str(original["key"]),
                sha256=str(original["sha256"]),
                size_bytes=int(original["size_bytes"]),
                content_type=str(original["content_type"]),
            ),
            duplicate_of=raw.get("duplicate_of"),
            width=raw.get("width"),
            height=raw.get("height"),
            page_count=raw.get("page_count"),
            duration_ms=raw.get("duration_ms"),
            fps=raw.get("fps"),
            warnings=tuple(str(w) for w in raw.get("warnings") or ()),
            replayed=replayed,
            position=_position_of(raw.get("position")),
        )


def _position_record(position: Delivered | None) -> dict[str, Any] | None:
    if position is None:
        return None
    return {"topic": position.topic, "partition": position.partition, "offset": position.offset}


def _position_of(raw: Any) -> Delivered | None:
    if not isinstance(raw, Mapping):
        return None
    return Delivered(str(raw["topic"]), int(raw["partition"]), int(raw["offset"]))


@dataclass
class _Inspected:
    """What the checks learned about accepted input, before anything is stored."""

    media_type: MediaType
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    duration_ms: int | None = None
    fps: float | None = None
    repaired: bool = False
    warnings: list[str] = field(default_factory=list)
    # A PDF that needed its password, decrypted: stored so the render stage needs none.
    decrypted: bytes | None = None


@dataclass(frozen=True)
class _Upload:
    """The bytes of one upload: in memory, or a file for videos and large inputs."""

    size: int
    data: bytes | None
    path: Path | None

    def head(self) -> bytes:
        if self.data is not None:
            return self.data[: media_types.SNIFF_BYTES]
        assert self.path is not None
        with self.path.open("rb") as handle:
            return handle.read(media_types.SNIFF_BYTES)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def sha256(self) -> str:
        if self.data is not None:
            return hashlib.sha256(self.data).hexdigest()
        assert self.path is not None
        digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


@dataclass(frozen=True)
class _Request:
    """One upload as asked for: its bytes and every option."""

    upload: _Upload
    sha256: str
    filename: str | None
    profile: str
    source: UploadSource
    source_uri: str | None
    tenant_id: str
    owner_id: str | None
    labels: dict[str, str]
    password: str | None


@dataclass(frozen=True)
class _Identity:
    """The ids an accepted upload gets: fresh, or reserved under an idempotency key."""

    media_id: str
    event_id: str
    trace_id: str
    uploaded_at: datetime
    attempt: int = 1


def check_profile(profile: str) -> str:
    return profiles.check_profile(profile, PROFILES)


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"label keys must be non-empty strings, got {key!r}")
        if not isinstance(value, str):
            raise TypeError(f"label {key!r} must have a string value, got {value!r}")
    return dict(labels)


def check_trace_id(trace_id: str) -> str:
    if not _TRACE_ID.match(trace_id) or trace_id == "0" * 32:
        raise ValueError(f"a trace id is 32 lower-case hex digits, not all zero; got {trace_id!r}")
    return trace_id


class Ingestor:
    """Takes uploads from every channel (library, CLI, hot folder, HTTP, URL)."""

    def __init__(
        self,
        settings: Settings,
        blobs: BlobStore,
        publisher: EventPublisher,
        *,
        clock: Callable[[], datetime] = now_millis,
    ) -> None:
        self.settings = settings
        self.limits = settings.ingest
        self.blobs = blobs
        self.originals = OriginalStore(blobs)
        self.idempotency = IdempotencyStore(blobs)
        self.publisher = publisher
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, kafka: KafkaSettings | None = None) -> Ingestor:
        kafka_settings = kafka or settings.kafka
        codec = AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())
        # The client gives up on an event after this long and then reports it: the upload
        # waits for that report, so it never outlives its own answer.
        timeout_ms = max(1000, int(settings.ingest.publish_timeout_s * 1000))
        producer = Producer(producer_config(kafka_settings, **{"delivery.timeout.ms": timeout_ms}))
        publisher = EventPublisher(kafka_settings, codec, producer)
        return cls(settings, BlobStore.from_settings(settings.minio), publisher)

    # -- public API ------------------------------------------------------------------

    def ingest_bytes(
        self,
        data: bytes | Path,
        *,
        filename: str | None = None,
        profile: str | None = None,
        source: UploadSource = UploadSource.LIBRARY,
        source_uri: str | None = None,
        owner_id: str | None = None,
        tenant_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        password: str | None = None,
        trust_content: bool = False,
        idempotency_key: str | None = None,
        trace_id: str | None = None,
    ) -> IngestResult:
        """Check, store and announce one media item (see the module docstring).

        `tenant_id` and `owner_id` say whose the item is (the API passes the caller's; the
        tenant defaults to the configured one). `data` is the bytes or a path to them;
        `filename` (defaults to the path's name) is kept for display and checked against the
        content's type unless `trust_content`.
        `idempotency_key` makes retries safe: the same key (per tenant and owner) with the
        same request returns the first answer and never makes a second item. `trace_id`
        (32 hex digits) continues the caller's trace; a new one is made otherwise.
        Raises MediaRejectedError for refused input, StorageFailedError when the blob
        store failed (nothing published), PublishFailedError when the event could not be
        published (orphan recorded), IdempotencyConflictError when the key belongs to
        another upload or its first upload is still in progress.
        """
        chosen_profile = check_profile(profile or self.limits.default_profile)
        chosen_labels = check_labels(labels or {})
        trace = check_trace_id(trace_id) if trace_id is not None else new_trace_id()
        if isinstance(data, Path):
            filename = filename if filename is not None else data.name
            upload = _Upload(size=data.stat().st_size, data=None, path=data)
        else:
            upload = _Upload(size=len(data), data=bytes(data), path=None)
        self._check_size(upload.size)
        media_type = media_types.detect_type(upload.head())
        media_types.check_extension(filename, media_type, trust_content=trust_content)
        with self._video_file(upload, media_type, filename) as upload_for_kind:
            request = _Request(
                upload=upload_for_kind,
                sha256=upload_for_kind.sha256(),
                filename=filename,
                profile=chosen_profile,
                source=source,
                source_uri=source_uri,
                tenant_id=tenant_id or self.settings.tenant_id,
                owner_id=owner_id,
                labels=chosen_labels,
                password=password,
            )
            if idempotency_key is not None:
                return self._accept_once(request, media_type, idempotency_key, trace)
            inspected = self._inspect(upload_for_kind, media_type, password)
            identity = _Identity(
                media_id=str(uuid.uuid4()),
                event_id=str(uuid.uuid4()),
                trace_id=trace,
                uploaded_at=self.clock(),
            )
            return self._accept(request, inspected, identity)

    def close(self, timeout: float = _FLUSH_TIMEOUT_S) -> None:
        self.publisher.producer.flush(timeout)

    # -- checks ----------------------------------------------------------------------

    def _check_size(self, size: int) -> None:
        if size == 0:
            raise MediaRejectedError(RejectReason.EMPTY, "the file is empty (0 bytes)")
        if size > self.limits.max_upload_bytes:
            raise MediaRejectedError(
                RejectReason.TOO_LARGE,
                f"the file has {size:,} bytes; the limit is {self.limits.max_upload_bytes:,}",
            )

    @contextmanager
    def _video_file(
        self, upload: _Upload, media_type: MediaType, filename: str | None
    ) -> Iterator[_Upload]:
        """Videos are read by OpenCV from a file: spill in-memory bytes to a temp file."""
        if media_type.kind is not MediaKind.VIDEO or upload.path is not None:
            yield upload
            return
        assert upload.data is not None
        # Error messages name the file, so the temp file keeps the uploader's name.
        stem = _UNSAFE_NAME.sub("_", PurePath(filename or "upload").stem)[:100] or "upload"
        with tempfile.TemporaryDirectory(prefix="visionlog-ingest-") as directory:
            path = Path(directory) / f"{stem}.{media_type.extension}"
            path.write_bytes(upload.data)
            yield _Upload(size=upload.size, data=None, path=path)

    def _inspect(self, upload: _Upload, media_type: MediaType, password: str | None) -> _Inspected:
        """The structure checks: cheap, and nothing is rendered or decoded beyond them."""
        inspected = _Inspected(media_type=media_type)
        if media_type.kind is MediaKind.IMAGE:
            info = media_types.validate_image(
                upload.read(), media_type, max_pixels=self.limits.max_image_pixels
            )
            inspected.width, inspected.height = info.width, info.height
            inspected.page_count = info.page_count if info.page_count > 1 else None
        elif media_type.kind is MediaKind.PDF:
            data = upload.read()
            max_pages = self.limits.max_pdf_pages
            report: pdf.PdfInspection
            if password is None:
                report = pdf.inspect_pdf(data, max_pages=max_pages)
            else:
                opened = pdf.open_pdf(data, password=password, max_pages=max_pages)
                report = opened.inspection
                if report.encrypted:
                    inspected.decrypted = opened.renderable
            inspected.page_count = report.page_count
            inspected.repaired = report.repaired
            inspected.warnings.extend(report.warnings)
        else:
            assert upload.path is not None
            probed = video.probe_video(upload.path)
            inspected.width, inspected.height = probed.width, probed.height
            inspected.duration_ms = probed.duration_ms
            inspected.fps = probed.fps or None
        return inspected

    # -- idempotent uploads ----------------------------------------------------------

    def _accept_once(
        self, request: _Request, media_type: MediaType, key: str, trace_id: str
    ) -> IngestResult:
        """Accept the upload unless its key already did (see `producers.idempotency`)."""
        tenant_id = request.tenant_id
        location = record_key(tenant_id, request.owner_id, key)
        fingerprint = Fingerprint.of(
            request.sha256, request.profile, request.labels, request.filename
        )
        lease_s = self.limits.idempotency_lease_s
        started = time.monotonic()
        inspected: _Inspected | None = None
        while True:
            existing = self._record(self.idempotency.read, location)
            if existing is not None:
                answer = self._answer_of(existing, fingerprint, key)
                if answer is not None:
                    return answer
                if existing.state is State.PENDING and not self.idempotency.expired(
                    existing, lease_s
                ):
                    self._wait_for_first(existing, key, started, lease_s)
                    continue
            if inspected is None:
                # Refused input stores nothing, not even the key's record.
                inspected = self._inspect(request.upload, media_type, request.password)
            if existing is None:
                mine = self._record(
                    self.idempotency.reserve,
                    location,
                    fingerprint,
                    tenant_id=tenant_id,
                    owner_id=request.owner_id,
                    trace_id=trace_id,
                    uploaded_at=self.clock(),
                )
            else:
                mine = self._record(self.idempotency.take_over, existing)
            if mine is None:
                continue  # another attempt wrote first: read what it wrote
            return self._accept_reserved(request, inspected, mine)

    @staticmethod
    def _record(action: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """An idempotency record operation; a store that fails is a storage failure (503),
        before anything of the upload was stored."""
        try:
            return action(*args, **kwargs)
        except Exception as exc:
            raise StorageFailedError(
                f"could not read or write the idempotency record: {exc}; nothing was published"
            ) from exc

    def _answer_of(
        self, existing: Reservation, fingerprint: Fingerprint, key: str
    ) -> IngestResult | None:
        """The stored answer for the key; None while there is none (pending or failed)."""
        differences = fingerprint.differences(existing.fingerprint)
        if differences:
            raise IdempotencyConflictError(
                "idempotency_key_reused",
                f"the idempotency key {key!r} was used for another upload (media id "
                f"{existing.media_id}); its {', '.join(differences)} differ. Use a new key "
                "for a new upload.",
            )
        if existing.state is State.ACCEPTED and existing.result is not None:
            return IngestResult.from_record(existing.result, replayed=True)
        return None

    @staticmethod
    def _wait_for_first(existing: Reservation, key: str, started: float, lease_s: float) -> None:
        """Sleep a moment while the first upload with this key is in progress."""
        pause = wait_step(started, lease_s)
        if pause is None:
            raise IdempotencyConflictError(
                "idempotency_key_in_progress",
                f"the upload with idempotency key {key!r} (media id {existing.media_id}) "
                f"is still in progress after {lease_s:.0f}s; retry later with the same key",
            )
        time.sleep(pause)

    def _accept_reserved(
        self, request: _Request, inspected: _Inspected, mine: Reservation
    ) -> IngestResult:
        identity = _Identity(
            media_id=mine.media_id,
            event_id=mine.event_id,
            trace_id=mine.trace_id,
            uploaded_at=mine.uploaded_at,
            attempt=mine.attempt,
        )
        try:
            result = self._accept(request, inspected, identity)
        except Exception as exc:
            self._best_effort(
                "mark the idempotency record failed", self.idempotency.fail, mine, str(exc)
            )
            raise
        self._best_effort(
            "record the answer under its idempotency key",
            self.idempotency.accept,
            mine,
            result.as_record(),
        )
        return result

    @staticmethod
    def _best_effort(what: str, action: Callable[..., object], *args: object) -> None:
        """Book-keeping after the fact: its failure must not turn a published upload into
        an error (a retry then finds the record pending or failed and takes it over)."""
        try:
            action(*args)
        except Exception:
            log.warning("could not %s", what, exc_info=True)

    # -- storing and publishing ------------------------------------------------------

    def _store(
        self, request: _Request, inspected: _Inspected, identity: _Identity
    ) -> StoredOriginal:
        media_type = inspected.media_type
        upload = request.upload
        try:
            if inspected.decrypted is not None:
                store_decrypted_copy(
                    self.blobs,
                    identity.media_id,
                    inspected.decrypted,
                    repaired=inspected.repaired,
                )
            return self.originals.store(
                identity.media_id,
                sha256=request.sha256,
                scope=dedupe_scope(request.tenant_id, request.owner_id),
                key=original_key(identity.media_id, media_type.extension, identity.uploaded_at),
                content_type=media_type.mime,
                data=upload.data,
                path=upload.path,
                stored_at=identity.uploaded_at,
            )
        except Exception as exc:
            if inspected.decrypted is not None:
                self._best_effort(
                    "remove the decrypted copy",
                    delete_decrypted_copy,
                    self.blobs,
                    identity.media_id,
                )
            raise StorageFailedError(
                f"could not store the original ({media_type.name}, {upload.size:,} bytes): "
                f"{exc}; nothing was published"
            ) from exc

    def _accept(
        self, request: _Request, inspected: _Inspected, identity: _Identity
    ) -> IngestResult:
        media_type = inspected.media_type
        media_id = identity.media_id
        stored = self._store(request, inspected, identity)
        envelope = Envelope(
            event_type="MediaUploaded",
            schema_version=get_catalog().event("MediaUploaded").version,
            producer=PRODUCER,
            correlation_id=media_id,
            tenant_id=request.tenant_id,
            owner_id=request.owner_id,
            occurred_at=identity.uploaded_at,
            event_id=identity.event_id,
            trace_id=identity.trace_id,
        )
        record: dict[str, Any] = {
            "envelope": envelope.as_record(),
            "media_id": media_id,
            "media_kind": media_type.kind.value,
            "original": dict(stored.ref),
            "original_filename": request.filename,
            "source": request.source.value,
            "source_uri": request.source_uri,
            "profile": request.profile,
            "duplicate_of": stored.duplicate_of,
            "width": inspected.width,
            "height": inspected.height,
            "page_count": inspected.page_count,
            "duration_ms": inspected.duration_ms,
            "fps": inspected.fps,
            "labels": request.labels,
        }
        try:
            delivered = publish_checked(
                self.publisher,
                "MediaUploaded",
                record,
                trace_id=identity.trace_id,
                attempts=self.limits.publish_attempts,
                timeout_s=self.limits.publish_timeout_s,
            )
        except Exception as exc:
            raise self._unpublished(media_id, stored, inspected, exc) from exc
        if identity.attempt > 1:
            # An earlier attempt of this idempotent upload may have left a marker.
            self._best_effort("clear the orphan marker", self.originals.clear_orphan, media_id)
        return IngestResult(
            media_id=media_id,
            event_id=identity.event_id,
            trace_id=identity.trace_id,
            media_type=media_type.name,
            media_kind=media_type.kind,
            original=stored.ref,
            duplicate_of=stored.duplicate_of,
            width=inspected.width,
            height=inspected.height,
            page_count=inspected.page_count,
            duration_ms=inspected.duration_ms,
            fps=inspected.fps,
            warnings=tuple(inspected.warnings),
            position=delivered,
        )

    def _unpublished(
        self, media_id: str, stored: StoredOriginal, inspected: _Inspected, exc: Exception
    ) -> PublishFailedError:
        uncertain = isinstance(exc, DeliveryUncertainError)
        if uncertain:
            reason = (
                f"MediaUploaded may not have been published: {exc}. The item may exist; "
                "retry with the same idempotency key to finish it without a second item"
            )
        else:
            reason = f"MediaUploaded could not be published: {exc}"
            if inspected.decrypted is not None:
                self._best_effort(
                    "remove the decrypted copy", delete_decrypted_copy, self.blobs, media_id
                )
        if not stored.newly_stored:
            return PublishFailedError(
                f"{reason}; nothing was stored (the bytes were already stored as "
                f"{stored.duplicate_of})",
                media_id,
                None,
                uncertain=uncertain,
            )
        ref = stored.ref
        try:
            # Withdrawn even when the event may be out: an item without an index entry
            # only costs a second copy of its bytes later, an entry naming an item that
            # never was would make later uploads duplicates of nothing.
            self.originals.release(media_id, ref["sha256"], stored.scope)
            marker = self.originals.record_orphan(media_id, ref, reason, self.clock())
        except Exception as marker_exc:
            return PublishFailedError(
                f"{reason}; the stored blob {ref['bucket']}/{ref['key']} is an orphan and "
                f"its marker could not be written either: {marker_exc}",
                media_id,
                None,
                uncertain=uncertain,
            )
        return PublishFailedError(
            f"{reason}; the stored blob {ref['bucket']}/{ref['key']} is recorded as an orphan "
            f"in {marker['bucket']}/{marker['key']}",
            media_id,
            marker,
            uncertain=uncertain,
        )
