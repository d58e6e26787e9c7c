"""HTTP ingest: ``POST /ingest`` takes one multipart file and answers 202 with the new item.

The body is parsed as it arrives and the file part streamed to a temp file chunk by chunk,
so the size limit holds while streaming (413 as soon as it is crossed, nothing stored).
Refused media answer RFC 9457 problem details (``application/problem+json``) carrying the
stable reason code: 413 too large, 415 unsupported type or mismatched extension, 422 for
content that is of a supported type but unusable. Form fields: ``file`` (required),
``profile`` (ocr, vision, full), ``labels`` (a JSON object of strings), ``password`` (for
encrypted PDFs), ``ignore_extension`` (true to accept content whose extension disagrees).

Headers: ``Idempotency-Key`` makes a retry safe (the same key from the same owner answers
202 with the first upload's body and ``Idempotent-Replayed: true``, never a second item; the
same key with another upload is 409, see `producers.idempotency`); a valid W3C
``traceparent`` is continued as the item's trace, otherwise a new trace id is made.

The answer is 202 as soon as the upload is stored and announced: pages and frames are
rendered later by the document worker and announced as PageRendered / FrameCaptured.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from producers.idempotency import IdempotencyConflictError, IdempotencyKeyError, check_key
from producers.ingest import (
    Ingestor,
    IngestResult,
    PublishFailedError,
    StorageFailedError,
    UploadSource,
    check_labels,
    check_profile,
)
from visionlog.kafka import Delivered
from visionlog.media.errors import MediaRejectedError, RejectReason
from visionlog.settings import get_settings
from visionlog.stream.headers import parse_traceparent

PROBLEM_JSON = "application/problem+json"
# Form fields other than the file are small; a larger one is a malformed request.
_MAX_FIELD_BYTES = 64 * 1024
# Multipart framing around the file: boundaries, part headers, the small fields.
_FRAMING_ALLOWANCE = 256 * 1024

_STATUS: dict[RejectReason, int] = {
    RejectReason.TOO_LARGE: 413,
    RejectReason.UNSUPPORTED_TYPE: 415,
    RejectReason.EXTENSION_MISMATCH: 415,
}


class ProblemError(Exception):
    """An RFC 9457 problem to answer with."""

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail

    def response(self) -> JSONResponse:
        body = {
            "type": f"urn:visionlog:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "reason": self.code,
        }
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM_JSON)


def problem_for(error: MediaRejectedError) -> ProblemError:
    status = _STATUS.get(error.reason, 422)
    title = error.reason.value.replace("_", " ").capitalize()
    return ProblemError(status, error.reason.value, title, error.message)


def _bad_request(detail: str) -> ProblemError:
    return ProblemError(400, "bad_request", "Malformed ingest request", detail)


@dataclass(frozen=True)
class Uploader:
    """Whose an upload is: the caller's tenant and user (None: the ingestor's tenant)."""

    tenant_id: str | None = None
    owner_id: str | None = None


def current_owner() -> Uploader:
    """Tenant and owner of uploads; the API's authentication overrides this dependency
    with the caller's token, so neither comes from settings there."""
    return Uploader()


@lru_cache(maxsize=1)
def _default_ingestor() -> Ingestor:
    return Ingestor.from_settings(get_settings())


def get_ingestor() -> Ingestor:
    """The Ingestor requests use; tests and the API may override this dependency."""
    return _default_ingestor()


@dataclass(frozen=True)
class AcceptedUpload:
    """An upload this endpoint accepted (its MediaUploaded acknowledged), as asked for."""

    result: IngestResult
    tenant_id: str
    owner_id: str | None
    filename: str | None
    profile: str
    labels: dict[str, str]


AcceptedListener = Callable[[AcceptedUpload], None]


def accepted_listener() -> AcceptedListener | None:
    """Told of every accepted upload before the 202 is sent; the API overrides this
    dependency to make an upload readable at once. It must not raise."""
    return None


class LogPosition(BaseModel):
    """Where an event is stored in the log."""

    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, delivered: Delivered | None) -> LogPosition | None:
        if delivered is None:
            return None
        return cls(topic=delivered.topic, partition=delivered.partition, offset=delivered.offset)


class IngestAccepted(BaseModel):
    media_id: str
    event_id: str
    trace_id: str
    duplicate_of: str | None
    media_type: str
    media_kind: str
    width: int | None
    height: int | None
    page_count: int | None
    duration_ms: int | None
    fps: float | None
    warnings: list[str]
    log_position: LogPosition | None = Field(
        default=None,
        description="Where the MediaUploaded is stored (its delivery report); null when not"
        " known (an idempotent replay of an answer recorded before positions were kept).",
    )

    @classmethod
    def from_result(cls, result: IngestResult) -> IngestAccepted:
        return cls(
            media_id=result.media_id,
            event_id=result.event_id,
            trace_id=result.trace_id,
            duplicate_of=result.duplicate_of,
            media_type=result.media_type,
            media_kind=result.media_kind.value,
            width=result.width,
            height=result.height,
            page_count=result.page_count,
            duration_ms=result.duration_ms,
            fps=result.fps,
            warnings=list(result.warnings),
            log_position=LogPosition.of(result.position),
        )


class _FormSink:
    """Callbacks for the streaming multipart parser: the file to disk, fields to memory."""

    def __init__(self, directory: Path, max_file_bytes: int) -> None:
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self.fields: dict[str, str] = {}
        self.file_path: Path | None = None
        self.filename: str | None = None
        self.file_bytes = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._buffer = bytearray()
        self._handle: Any = None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._name, self._is_file = None, False
        self._buffer = bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise _bad_request("a multipart part has no name")
        self._name = name.decode("utf-8", "replace")
        if self._name == "file":
            if self.file_path is not None:
                raise _bad_request("send exactly one file part named 'file'")
            self._is_file = True
            raw_name = options.get(b"filename")
            self.filename = raw_name.decode("utf-8", "replace") if raw_name else None
            self.file_path = self.directory / "upload"
            self._handle = self.file_path.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file:
            self.file_bytes += len(chunk)
            if self.file_bytes > self.max_file_bytes:
                raise problem_for(
                    MediaRejectedError(
                        RejectReason.TOO_LARGE,
                        f"the upload exceeds {self.max_file_bytes:,} bytes; stopped reading",
                    )
                )
            self._handle.write(chunk)
            return
        self._buffer += chunk
        if len(self._buffer) > _MAX_FIELD_BYTES:
            raise _bad_request(f"form field {self._name!r} is larger than {_MAX_FIELD_BYTES}")

    def _part_end(self) -> None:
        if self._is_file:
            self._handle.close()
            self._handle = None
        elif self._name is not None:
            self.fields[self._name] = self._buffer.decode("utf-8", "replace")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


async def _receive_form(request: Request, sink: _FormSink) -> None:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _bad_request("send the file as multipart/form-data")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > sink.max_file_bytes + _FRAMING_ALLOWANCE:
        raise problem_for(
            MediaRejectedError(
                RejectReason.TOO_LARGE,
                f"the request announces {int(declared):,} bytes; uploads are limited to "
                f"{sink.max_file_bytes:,}",
            )
        )
    parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise _bad_request(f"the multipart body is malformed: {exc}") from exc
    finally:
        sink.close()


def _parse_labels(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        labels = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _bad_request(f"labels must be a JSON object of strings: {exc}") from exc
    if not isinstance(labels, dict):
        raise _bad_request("labels must be a JSON object of strings")
    try:
        return check_labels(labels)
    except (TypeError, ValueError) as exc:
        raise _bad_request(str(exc)) from exc


def _form_options(fields: dict[str, str]) -> tuple[str | None, dict[str, str], bool]:
    profile = fields.get("profile") or None
    if profile is not None:
        try:
            check_profile(profile)
        except ValueError as exc:
            raise _bad_request(str(exc)) from exc
    ignore = fields.get("ignore_extension", "false").strip().lower()
    if ignore not in ("true", "false", "1", "0", ""):
        raise _bad_request(f"ignore_extension must be true or false, got {ignore!r}")
    return profile, _parse_labels(fields.get("labels")), ignore in ("true", "1")


def _idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return check_key(raw)
    except IdempotencyKeyError as exc:
        raise _bad_request(str(exc)) from exc


def _trace_id(traceparent: str | None) -> str | None:
    """The trace to continue; a malformed traceparent starts a new one (W3C: ignore it)."""
    parsed = parse_traceparent(traceparent)
    return parsed[0] if parsed else None


router = APIRouter(tags=["ingest"])


@router.post(
    "/ingest",
    status_code=202,
    response_model=IngestAccepted,
    responses={
        400: {"description": "Malformed request", "content": {PROBLEM_JSON: {}}},
        409: {
            "description": "Idempotency key used for another upload, or still in progress",
            "content": {PROBLEM_JSON: {}},
        },
        413: {"description": "Upload too large", "content": {PROBLEM_JSON: {}}},
        415: {"description": "Unsupported type or wrong extension", "content": {PROBLEM_JSON: {}}},
        422: {"description": "Unusable content", "content": {PROBLEM_JSON: {}}},
        503: {"description": "Storage or event log unavailable", "content": {PROBLEM_JSON: {}}},
    },
)
async def ingest(
    request: Request,
    ingestor: Annotated[Ingestor, Depends(get_ingestor)],
    uploader: Annotated[Uploader, Depends(current_owner)],
    listener: Annotated[AcceptedListener | None, Depends(accepted_listener)],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    traceparent: Annotated[str | None, Header()] = None,
) -> Any:
    limit = ingestor.settings.ingest.max_upload_bytes
    with tempfile.TemporaryDirectory(prefix="visionlog-http-") as directory:
        sink = _FormSink(Path(directory), limit)
        try:
            key = _idempotency_key(idempotency_key)
            await _receive_form(request, sink)
            file_path = sink.file_path
            if file_path is None:
                raise _bad_request("the form has no part named 'file'")
            profile, labels, trust_content = _form_options(sink.fields)
            result = await run_in_threadpool(
                ingestor.ingest_bytes,
                file_path,
                filename=sink.filename,
                profile=profile,
                source=UploadSource.HTTP,
                tenant_id=uploader.tenant_id,
                owner_id=uploader.owner_id,
                labels=labels,
                password=sink.fields.get("password") or None,
                trust_content=trust_content,
                idempotency_key=key,
                trace_id=_trace_id(traceparent),
            )
        except ProblemError as problem:
            return problem.response()
        except MediaRejectedError as error:
            return problem_for(error).response()
        except IdempotencyConflictError as error:
            title = "Idempotency key conflict"
            return ProblemError(409, error.code, title, str(error)).response()
        except PublishFailedError as error:
            code = "outcome_unknown" if error.uncertain else "unavailable"
            return ProblemError(503, code, "Upload not completed", str(error)).response()
        except StorageFailedError as error:
            return ProblemError(503, "unavailable", "Upload not completed", str(error)).response()
        if listener is not None:
            accepted = AcceptedUpload(
                result=result,
                tenant_id=uploader.tenant_id or ingestor.settings.tenant_id,
                owner_id=uploader.owner_id,
                # As the ingestor names it: the part's file name, else the temp file's.
                filename=sink.filename if sink.filename is not None else file_path.name,
                profile=profile or ingestor.settings.ingest.default_profile,
                labels=labels,
            )
            await run_in_threadpool(listener, accepted)
        headers = {"Idempotent-Replayed": "true"} if result.replayed else None
        body = IngestAccepted.from_result(result).model_dump()
        return JSONResponse(body, status_code=202, headers=headers)
