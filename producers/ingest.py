"""Uploads: check the bytes, store them once, publish MediaUploaded, then pages or frames.

Delivery policy (what happens when a step fails):

1. Input is checked completely before anything is stored: type by content, extension,
   size, image decoding, PDF structure and password, video container. Refused input
   raises MediaRejectedError; nothing is stored and nothing is published.
2. The original is stored (once per SHA-256, see `producers.storage`) before any event.
   A blob that could not be stored never produces an event: the storage error propagates.
3. MediaUploaded is published with checked delivery, retried
   `settings.ingest.publish_attempts` times with backoff (same event id, so a retry that
   duplicates a late delivery is recognisable downstream). When it still fails, the upload
   raises `PublishFailedError`, the dedupe index entry is withdrawn (later uploads store the
   bytes afresh) and the stored blob gets an orphan marker
   ``analysis-artifacts/orphans/{media_id}.json`` naming it and the reason: no silent
   orphans. The blob itself is kept because a concurrent duplicate may already point at it.
4. Once MediaUploaded is published the item exists. PDFs are rendered page by page
   (PageRendered, PNG in ``media-processed/{media_id}/pages/``), videos sampled
   (FrameCaptured, JPEG in ``media-processed/{media_id}/frames/``). If that fails
   (an unrenderable page, a video that breaks mid-way, the blob store going away) a
   ProcessingFailed event (stage ``ingest``) records why, after the pages or frames that
   did succeed; the upload call returns normally with `IngestResult.failure` set.

A second upload of bytes already stored gets its own media_id and MediaUploaded, with
``duplicate_of`` = the first media_id and ``original`` = the first upload's blob (no second
copy); its pages or frames are rendered again under its own media_id, so every item's
event stream is complete on its own.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any

from confluent_kafka import KafkaException
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from producers import media_types, pdf, video
from producers.errors import MediaRejectedError, RejectReason
from producers.media_types import MediaKind, MediaType
from producers.storage import OriginalStore, StoredOriginal, frame_key, original_key, page_key
from visionlog.blobstore import BlobRef, BlobStore
from visionlog.codec import AvroCodec
from visionlog.envelope import Envelope, envelope_caused_by, now_millis
from visionlog.kafka import Delivered, DeliveryError, EventPublisher
from visionlog.registry import HttpSchemaRegistry, RegistryError
from visionlog.schemas import get_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.topics import full_topic_name, topic_for_event

PRODUCER_NAME = "producers.ingest"
PRODUCER_VERSION = "0.1.0"
PRODUCER = f"{PRODUCER_NAME}/{PRODUCER_VERSION}"
PROFILES = ("ocr", "vision", "full")
# Derived events go out in batches of this size, each batch with one checked flush.
_BATCH = 64
_TRACEBACK_CHARS = 8000
_FLUSH_TIMEOUT_S = 30.0
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class UploadSource(StrEnum):
    """Symbols of the UploadSource enum in the MediaUploaded contract."""

    OTHER = "OTHER"
    LIBRARY = "LIBRARY"
    CLI = "CLI"
    HOT_FOLDER = "HOT_FOLDER"
    HTTP = "HTTP"
    URL = "URL"
    CAMERA = "CAMERA"


class StorageFailedError(OSError):
    """The original could not be stored; no event was published."""


class PublishFailedError(RuntimeError):
    """The original was stored but MediaUploaded could not be published."""

    def __init__(self, message: str, media_id: str, orphan_marker: BlobRef | None) -> None:
        super().__init__(message)
        self.media_id = media_id
        self.orphan_marker = orphan_marker


@dataclass(frozen=True)
class IngestFailure:
    """The ProcessingFailed event published after the item was accepted."""

    event_id: str
    error_type: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class IngestResult:
    media_id: str
    event_id: str
    media_type: str
    media_kind: MediaKind
    original: BlobRef
    duplicate_of: str | None
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    duration_ms: int | None = None
    fps: float | None = None
    page_event_ids: tuple[str, ...] = ()
    frame_event_ids: tuple[str, ...] = ()
    failure: IngestFailure | None = None
    warnings: tuple[str, ...] = ()


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


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"label keys must be non-empty strings, got {key!r}")
        if not isinstance(value, str):
            raise TypeError(f"label {key!r} must have a string value, got {value!r}")
    return dict(labels)


def _traceback_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text[-_TRACEBACK_CHARS:]


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
        self.publisher = publisher
        self.clock = clock
        # Flushes drain every queued delivery report: one publishing thread at a time, so
        # each upload sees the reports of its own events.
        self._publish_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, kafka: KafkaSettings | None = None) -> Ingestor:
        codec = AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())
        publisher = EventPublisher(kafka or settings.kafka, codec)
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
        labels: Mapping[str, str] | None = None,
        password: str | None = None,
        trust_content: bool = False,
    ) -> IngestResult:
        """Check, store and announce one media item (see the module docstring).

        `data` is the bytes or a path to them; `filename` (defaults to the path's name) is
        kept for display and checked against the content's type unless `trust_content`.
        Raises MediaRejectedError for refused input, StorageFailedError when the blob
        store failed (nothing published), PublishFailedError when the event could not be
        published (orphan recorded).
        """
        chosen_profile = check_profile(profile or self.limits.default_profile)
        chosen_labels = check_labels(labels or {})
        if isinstance(data, Path):
            filename = filename if filename is not None else data.name
            upload = _Upload(size=data.stat().st_size, data=None, path=data)
        else:
            upload = _Upload(size=len(data), data=bytes(data), path=None)
        self._check_size(upload.size)
        media_type = media_types.detect_type(upload.head())
        media_types.check_extension(filename, media_type, trust_content=trust_content)
        with self._video_file(upload, media_type, filename) as upload_for_kind:
            inspected = self._inspect(upload_for_kind, media_type, password)
            return self._accept(
                upload_for_kind,
                inspected,
                filename=filename,
                profile=chosen_profile,
                source=source,
                source_uri=source_uri,
                owner_id=owner_id,
                labels=chosen_labels,
                password=password,
            )

    def close(self, timeout: float = 30.0) -> None:
        with self._publish_lock:
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
        inspected = _Inspected(media_type=media_type)
        if media_type.kind is MediaKind.IMAGE:
            info = media_types.validate_image(
                upload.read(), media_type, max_pixels=self.limits.max_image_pixels
            )
            inspected.width, inspected.height = info.width, info.height
            inspected.page_count = info.page_count if info.page_count > 1 else None
        elif media_type.kind is MediaKind.PDF:
            report = pdf.inspect_pdf(
                upload.read(), password=password, max_pages=self.limits.max_pdf_pages
            )
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

    # -- storing and publishing ------------------------------------------------------

    def _accept(
        self,
        upload: _Upload,
        inspected: _Inspected,
        *,
        filename: str | None,
        profile: str,
        source: UploadSource,
        source_uri: str | None,
        owner_id: str | None,
        labels: dict[str, str],
        password: str | None,
    ) -> IngestResult:
        media_type = inspected.media_type
        media_id = str(uuid.uuid4())
        uploaded_at = self.clock()
        sha256 = upload.sha256()
        try:
            stored = self.originals.store(
                media_id,
                sha256=sha256,
                key=original_key(media_id, media_type.extension, uploaded_at),
                content_type=media_type.mime,
                data=upload.data,
                path=upload.path,
                stored_at=uploaded_at,
            )
        except Exception as exc:
            raise StorageFailedError(
                f"could not store the original ({media_type.name}, {upload.size:,} bytes): "
                f"{exc}; nothing was published"
            ) from exc
        envelope = Envelope(
            event_type="MediaUploaded",
            schema_version=get_catalog().event("MediaUploaded").version,
            producer=PRODUCER,
            correlation_id=media_id,
            tenant_id=self.settings.tenant_id,
            owner_id=owner_id,
            occurred_at=uploaded_at,
        )
        record: dict[str, Any] = {
            "envelope": envelope.as_record(),
            "media_id": media_id,
            "media_kind": media_type.kind.value,
            "original": dict(stored.ref),
            "original_filename": filename,
            "source": source.value,
            "source_uri": source_uri,
            "profile": profile,
            "duplicate_of": stored.duplicate_of,
            "width": inspected.width,
            "height": inspected.height,
            "page_count": inspected.page_count,
            "duration_ms": inspected.duration_ms,
            "fps": inspected.fps,
            "labels": labels,
        }
        try:
            (delivered,) = self._publish_batch([("MediaUploaded", record)])
        except Exception as exc:
            raise self._unpublished(media_id, stored, exc) from exc
        result = IngestResult(
            media_id=media_id,
            event_id=envelope.event_id,
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
        )
        return self._derive(upload, inspected, record, delivered, result, password)

    def _unpublished(
        self, media_id: str, stored: StoredOriginal, exc: Exception
    ) -> PublishFailedError:
        reason = f"MediaUploaded could not be published: {exc}"
        if not stored.newly_stored:
            return PublishFailedError(
                f"{reason}; nothing was stored (the bytes were already stored as "
                f"{stored.duplicate_of})",
                media_id,
                None,
            )
        ref = stored.ref
        try:
            self.originals.release(media_id, ref["sha256"])
            marker = self.originals.record_orphan(media_id, ref, reason, self.clock())
        except Exception as marker_exc:
            return PublishFailedError(
                f"{reason}; the stored blob {ref['bucket']}/{ref['key']} is an orphan and "
                f"its marker could not be written either: {marker_exc}",
                media_id,
                None,
            )
        return PublishFailedError(
            f"{reason}; the stored blob {ref['bucket']}/{ref['key']} is recorded as an orphan "
            f"in {marker['bucket']}/{marker['key']}",
            media_id,
            marker,
        )

    def _publish_batch(self, events: list[tuple[str, dict[str, Any]]]) -> list[Delivered]:
        """Publish events with one checked flush, retrying the whole batch on failure."""
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.limits.publish_attempts)),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            retry=retry_if_exception_type((DeliveryError, KafkaException, RegistryError)),
            reraise=True,
        )
        delivered: list[Delivered] = []
        with self._publish_lock:
            for attempt in retrying:
                with attempt:
                    for event_type, record in events:
                        self.publisher.publish(event_type, record)
                    delivered = self.publisher.flush(_FLUSH_TIMEOUT_S)
        return delivered

    # -- after acceptance: pages and frames -------------------------------------------

    def _derive(
        self,
        upload: _Upload,
        inspected: _Inspected,
        uploaded: dict[str, Any],
        delivered: Delivered,
        result: IngestResult,
        password: str | None,
    ) -> IngestResult:
        kind = inspected.media_type.kind
        if kind is MediaKind.IMAGE:
            return result
        published: list[str] = []
        try:
            if kind is MediaKind.PDF:
                self._render_pages(upload, inspected, uploaded, password, published)
            else:
                self._sample_frames(upload, uploaded, published)
        except Exception as exc:
            failure = self._publish_failure(uploaded, delivered, exc)
            return self._with_derived(result, kind, published, failure)
        return self._with_derived(result, kind, published, None)

    @staticmethod
    def _with_derived(
        result: IngestResult,
        kind: MediaKind,
        published: list[str],
        failure: IngestFailure | None,
    ) -> IngestResult:
        ids = tuple(published)
        return IngestResult(
            **{
                **result.__dict__,
                "page_event_ids": ids if kind is MediaKind.PDF else (),
                "frame_event_ids": ids if kind is MediaKind.VIDEO else (),
                "failure": failure,
            }
        )

    def _flush_batches(
        self, records: Iterator[tuple[str, dict[str, Any]]], published: list[str]
    ) -> None:
        """Publish what `records` yields in batches; ids of published events go to `published`.

        When producing the records fails (a page or frame that cannot be made), the records
        made before it are published first, so they precede the failure event. When
        publishing fails, that error propagates as is: the batch is not sent again.
        """
        batch: list[tuple[str, dict[str, Any]]] = []

        def send() -> None:
            self._publish_batch(batch)
            published.extend(record["envelope"]["event_id"] for _, record in batch)
            batch.clear()

        iterator = iter(records)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except Exception:
                if batch:
                    send()
                raise
            batch.append(item)
            if len(batch) >= _BATCH:
                send()
        if batch:
            send()

    def _render_pages(
        self,
        upload: _Upload,
        inspected: _Inspected,
        uploaded: dict[str, Any],
        password: str | None,
        published: list[str],
    ) -> None:
        media_id = uploaded["media_id"]

        def events() -> Iterator[tuple[str, dict[str, Any]]]:
            pages = pdf.render_pages(
                upload.read(),
                dpi=self.limits.pdf_dpi,
                max_pages=self.limits.max_pdf_pages,
                max_pixels=self.limits.max_image_pixels,
                password=password,
            )
            for page in pages:
                image = self.originals.put_processed(
                    page_key(media_id, page.page_number), page.png, "image/png"
                )
                yield (
                    "PageRendered",
                    {
                        "envelope": envelope_caused_by(
                            uploaded, "PageRendered", PRODUCER, "page", page.page_number
                        ),
                        "media_id": media_id,
                        "page_number": page.page_number,
                        "page_count": page.page_count,
                        "dpi": page.dpi,
                        "width": page.width,
                        "height": page.height,
                        "image": dict(image),
                        "renderer": pdf.RENDERER,
                        "repaired": inspected.repaired,
                    },
                )

        self._flush_batches(events(), published)

    def _sample_frames(
        self, upload: _Upload, uploaded: dict[str, Any], published: list[str]
    ) -> None:
        assert upload.path is not None
        media_id = uploaded["media_id"]
        every_n = self.limits.video_every_n_frames
        target_fps = None if every_n is not None else self.limits.video_sample_fps

        def events() -> Iterator[tuple[str, dict[str, Any]]]:
            assert upload.path is not None
            frames = video.sample_frames(
                upload.path,
                target_fps=target_fps,
                every_n=every_n,
                max_frames=self.limits.max_video_frames,
                jpeg_quality=self.limits.frame_jpeg_quality,
            )
            for frame in frames:
                image = self.originals.put_processed(
                    frame_key(media_id, frame.frame_index), frame.jpeg, "image/jpeg"
                )
                yield (
                    "FrameCaptured",
                    {
                        "envelope": envelope_caused_by(
                            uploaded, "FrameCaptured", PRODUCER, "frame", frame.frame_index
                        ),
                        "media_id": media_id,
                        "camera_id": None,
                        "frame_index": frame.frame_index,
                        "timestamp_ms": frame.timestamp_ms,
                        "captured_at": self.clock(),
                        "width": frame.width,
                        "height": frame.height,
                        "image": dict(image),
                        "source_fps": uploaded["fps"],
                        "sampling_fps": target_fps,
                    },
                )

        self._flush_batches(events(), published)

    def _publish_failure(
        self, uploaded: dict[str, Any], delivered: Delivered, exc: Exception
    ) -> IngestFailure:
        expected = isinstance(exc, MediaRejectedError)
        topic = full_topic_name(topic_for_event("MediaUploaded"), self.publisher.settings)
        error_type = (
            f"MediaRejectedError.{exc.reason.name}"
            if isinstance(exc, MediaRejectedError)
            else type(exc).__name__
        )
        record: dict[str, Any] = {
            "envelope": envelope_caused_by(uploaded, "ProcessingFailed", PRODUCER, "ingest"),
            "media_id": uploaded["media_id"],
            "processor": PRODUCER_NAME,
            "processor_version": PRODUCER_VERSION,
            "stage": "ingest",
            "error_type": error_type,
            "error_message": str(exc),
            "retryable": not expected,
            "attempts": 1,
            "failed_topic": topic,
            "failed_partition": delivered.partition,
            "failed_offset": delivered.offset,
            "failed_key": str(uploaded["media_id"]).encode(),
            "failed_value": self.publisher.codec.encode(topic, "MediaUploaded", uploaded),
            "failed_event_type": "MediaUploaded",
            "input_blob": dict(uploaded["original"]),
            "traceback": None if expected else _traceback_text(exc),
        }
        # If even the dead letter cannot be published the caller must hear about it.
        self._publish_batch([("ProcessingFailed", record)])
        return IngestFailure(
            event_id=record["envelope"]["event_id"],
            error_type=error_type,
            message=str(exc),
            retryable=not expected,
        )
