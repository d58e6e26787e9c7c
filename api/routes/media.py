"""Media items: list, detail with status, percent done and the completion summary, results
per model version, downloads, live status as server-sent events (ending with the final
status). The combined report is `api.routes.reports`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from psycopg import sql
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.accepted import ACCEPTED_STATUS, DetailSource, detail_source
from api.auth.dependencies import Reader, Uploader
from api.auth.roles import Principal
from api.context import ApiContext, get_context
from api.erasure import ErasureOut, erase_media
from api.params import NO_NUL, PathId
from api.problems import ApiError, not_found, problem_responses
from api.readmodels import (
    decode_cursor,
    encode_cursor,
    in_scope_mongo,
    mongo_collection,
    scope_sql,
    table,
    visible_media,
)
from api.responses import JSON, model_json, model_response
from api.routes import downloads, reports, results
from producers.http import LogPosition
from producers.ingest import UploadSource
from projections.stages import COMPLETION_STATUSES

router = APIRouter(prefix="/v1", tags=["media"])
Context = Annotated[ApiContext, Depends(get_context)]
MediaStatus = Literal[
    "uploaded", "processing", "completed", "completed_with_errors", "failed", "deleted"
]
RunStatus = Literal["processing", "completed", "completed_with_errors", "failed"]
MediaKind = Literal["IMAGE", "PDF", "VIDEO", "UNKNOWN"]
# How an item's processing ended: after one of these nothing moves it back.
FINAL_STATUSES: frozenset[str] = frozenset(COMPLETION_STATUSES)
# Reprocess runs listed with an item, newest first.
RUN_LIMIT = 20


class BlobOut(BaseModel):
    bucket: str
    key: str
    sha256: str | None
    size_bytes: int | None
    content_type: str | None


class MediaSummary(BaseModel):
    media_id: str
    owner_id: str | None
    status: str = Field(
        description="accepted (the upload was taken, the read model does not show it yet:"
        " only the item's detail answers it), uploaded, processing (with `percent`), then"
        " how processing ended: completed, completed_with_errors or failed; deleted when"
        " erased."
    )
    kind: str | None
    filename: str | None
    camera_id: str | None
    uploaded_at: datetime | None
    status_at: datetime
    percent: float | None = Field(
        default=None,
        description="Percent of the item's work done (100 once it ended); null before any"
        " progress was reported.",
    )


class MediaPage(BaseModel):
    items: list[MediaSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class StageProgress(BaseModel):
    stage: str
    done: int = 0
    failed: int = 0
    last_at: datetime | None = None
    model_versions: list[str] = Field(default_factory=list)
    last_error: dict[str, Any] | None = None


class StageTally(BaseModel):
    stage: str
    done: int
    not_applicable: int
    skipped: int
    failed: int


class StageError(BaseModel):
    stage: str
    item_label: str | None
    message: str


class ProcessingRun(BaseModel):
    """Progress and, once it ended, the summary of one processing run of an item."""

    run_id: str | None = Field(
        description="Reprocess id; null for the item's own processing after upload."
    )
    status: RunStatus
    percent: float
    items_expected: int | None
    items_completed: int
    items_failed: int | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    stages: list[StageTally]
    errors: list[StageError] = Field(description="The first failures, with their reasons.")


class MediaDetail(MediaSummary):
    tenant_id: str
    source: str | None
    source_uri: str | None
    profile: str | None
    duplicate_of: str | None
    labels: dict[str, str]
    width: int | None
    height: int | None
    page_count: int | None
    duration_ms: int | None
    original: BlobOut | None
    items_expected: int | None = Field(
        default=None, description="Images the item consists of (pages, sampled frames), once known."
    )
    items_completed: int | None = None
    completion: ProcessingRun | None = Field(
        default=None,
        description="How the item's own processing ended; null while it is processing.",
    )
    reprocess_runs: list[ProcessingRun] = Field(
        default_factory=list,
        description=f"Reprocess runs of the item, newest first (at most {RUN_LIMIT}).",
    )
    stages: list[StageProgress]
    accepted_at: datetime | None = Field(
        default=None,
        description="When the API accepted the upload; given while the status is accepted.",
    )
    log_position: LogPosition | None = Field(
        default=None,
        description="Where the item's MediaUploaded is stored; given while the status is"
        " accepted (when the publisher reported it).",
    )


def _summary(row: dict[str, Any]) -> MediaSummary:
    return MediaSummary(
        media_id=row["media_id"],
        owner_id=row["owner_id"],
        status=row["status"],
        kind=row["kind"],
        filename=row["filename"],
        camera_id=row["camera_id"],
        uploaded_at=row["uploaded_at"],
        status_at=row["status_at"],
        percent=row.get("percent"),
    )


def _list_media(
    context: ApiContext,
    principal: Principal,
    status: str | None,
    kind: str | None,
    camera_id: str | None,
    time_from: datetime | None,
    time_to: datetime | None,
    limit: int,
    cursor: str | None,
) -> MediaPage:
    scope, params = scope_sql(principal)
    clauses: list[sql.Composable] = [scope]
    sort_time = sql.SQL("COALESCE(uploaded_at, status_at)")
    if status is not None:
        clauses.append(sql.SQL("status = %s"))
        params.append(status)
    else:
        clauses.append(sql.SQL("status <> 'deleted'"))
    for column, value in (("kind", kind), ("camera_id", camera_id)):
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if time_from is not None:
        clauses.append(sql.SQL("{} >= %s").format(sort_time))
        params.append(time_from)
    if time_to is not None:
        clauses.append(sql.SQL("{} < %s").format(sort_time))
        params.append(time_to)
    if cursor is not None:
        after_time, after_id = decode_cursor(cursor, (datetime, str))
        clauses.append(sql.SQL("({}, media_id) < (%s, %s)").format(sort_time))
        params.extend([after_time, after_id])
    query = sql.SQL(
        "SELECT *, {sort} AS sort_time, {percent} AS percent FROM {media} WHERE {where}"
        " ORDER BY sort_time DESC, media_id DESC LIMIT %s"
    ).format(
        sort=sort_time,
        percent=_own_percent(context),
        media=table(context, "media"),
        where=sql.SQL(" AND ").join(clauses),
    )
    with context.pg() as conn:
        rows = conn.execute(query, [*params, limit + 1]).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([last["sort_time"].isoformat(), last["media_id"]])
    return MediaPage.model_validate({"items": rows, "next_cursor": next_cursor})


@router.get(
    "/media",
    response_model=MediaPage,
    summary="List visible media, newest first (deleted ones only with status=deleted)",
    responses=problem_responses(400, 401, 403),
)
def list_media(
    principal: Reader,
    context: Context,
    status: MediaStatus | None = None,
    kind: MediaKind | None = None,
    camera_id: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    time_from: Annotated[datetime | None, Query(alias="from")] = None,
    time_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, pattern=NO_NUL)] = None,
) -> Response:
    limit = min(limit, context.settings.api.max_page_size)
    return model_response(
        _list_media(context, principal, status, kind, camera_id, time_from, time_to, limit, cursor)
    )


def _own_percent(context: ApiContext) -> sql.Composed:
    """SQL: the percent done of the item's own processing (run id '')."""
    return sql.SQL(
        "(SELECT r.percent FROM {} r WHERE r.media_id = {}.media_id AND r.run_id = '')"
    ).format(table(context, "processing_runs"), table(context, "media"))


def _require_media(context: ApiContext, principal: Principal, media_id: str) -> dict[str, Any]:
    with context.pg() as conn:
        row = visible_media(context, conn, principal, media_id)
    if row is None:
        raise not_found(f"no media item {media_id!r}")
    return row


def _run(row: dict[str, Any]) -> ProcessingRun:
    return ProcessingRun(
        run_id=row["run_id"] or None,
        status=row["status"],
        percent=row["percent"],
        items_expected=row["items_expected"],
        items_completed=row["items_completed"],
        items_failed=row["items_failed"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        duration_ms=row["duration_ms"],
        stages=[StageTally(**tally) for tally in row["stages"] or []],
        errors=[StageError(**error) for error in row["errors"] or []],
    )


def _runs(context: ApiContext, media_id: str) -> tuple[ProcessingRun | None, list[ProcessingRun]]:
    """The item's own run and its newest reprocess runs."""
    query = sql.SQL(
        "(SELECT * FROM {runs} WHERE media_id = %s AND run_id = '')"
        " UNION ALL (SELECT * FROM {runs} WHERE media_id = %s AND run_id <> ''"
        " ORDER BY COALESCE(completed_at, progress_at) DESC NULLS LAST, run_id LIMIT %s)"
    ).format(runs=table(context, "processing_runs"))
    with context.pg() as conn:
        rows = conn.execute(query, (media_id, media_id, RUN_LIMIT)).fetchall()
    own = next((_run(row) for row in rows if row["run_id"] == ""), None)
    return own, [_run(row) for row in rows if row["run_id"] != ""]


def _stages(
    context: ApiContext,
    media_id: str,
    document: dict[str, Any] | None,
    own: ProcessingRun | None = None,
) -> list[StageProgress]:
    stages: dict[str, StageProgress] = {}
    for stage, progress in ((document or {}).get("progress") or {}).items():
        stages[stage] = StageProgress(
            stage=stage,
            done=int(progress.get("done", 0)),
            failed=int(progress.get("failed", 0)),
            last_at=progress.get("last_at"),
            last_error=jsonable_encoder(progress.get("last_error")),
        )
    query = sql.SQL(
        "SELECT stage, array_agg(DISTINCT model_version) FILTER (WHERE model_version <> '')"
        " AS versions, count(*) FILTER (WHERE status = 'done') AS done,"
        " count(*) FILTER (WHERE status = 'failed') AS failed, max(event_at) AS last_at,"
        " (array_agg(jsonb_build_object('error_type', error_type, 'error_message', error,"
        " 'item_label', item_label, 'retryable', retryable, 'event_id', event_id,"
        " 'occurred_at', event_at) ORDER BY event_at DESC, event_id DESC)"
        " FILTER (WHERE status = 'failed'))[1] AS last_error"
        " FROM {} WHERE media_id = %s GROUP BY stage ORDER BY stage"
    ).format(table(context, "processing_status"))
    with context.pg() as conn:
        rows = conn.execute(query, (media_id,)).fetchall()
    for row in rows:
        entry = stages.setdefault(row["stage"], StageProgress(stage=row["stage"]))
        entry.model_versions = sorted(row["versions"] or [])
        # PostgreSQL counts items by their latest status; Mongo counts result events.
        entry.done = max(entry.done, int(row["done"]))
        entry.failed = max(entry.failed, int(row["failed"]))
        if entry.last_at is None or (row["last_at"] and row["last_at"] > entry.last_at):
            entry.last_at = row["last_at"]
        # A failure's reason, wherever a read model has it.
        if entry.last_error is None and row["last_error"] is not None:
            entry.last_error = jsonable_encoder(row["last_error"])
    for error in own.errors if own is not None else []:
        entry = stages.setdefault(error.stage, StageProgress(stage=error.stage))
        if entry.last_error is None:
            entry.last_error = {"error_message": error.message, "item_label": error.item_label}
    return sorted(stages.values(), key=lambda progress: progress.stage)


def accepted_detail(row: dict[str, Any]) -> MediaDetail:
    """An accepted upload the read model does not show yet, as far as the upload told."""
    position = None
    if row["log_topic"] is not None:
        position = LogPosition(
            topic=row["log_topic"], partition=row["log_partition"], offset=row["log_offset"]
        )
    return MediaDetail(
        media_id=row["media_id"],
        owner_id=row["owner_id"],
        status=ACCEPTED_STATUS,
        kind=row["kind"],
        filename=row["filename"],
        camera_id=None,
        uploaded_at=row["accepted_at"],
        status_at=row["accepted_at"],
        tenant_id=row["tenant_id"],
        # Only the HTTP ingest route records accepted uploads.
        source=UploadSource.HTTP.value,
        source_uri=None,
        profile=row["profile"],
        duplicate_of=row["duplicate_of"],
        labels={str(k): str(v) for k, v in (row["labels"] or {}).items()},
        width=row["width"],
        height=row["height"],
        page_count=row["page_count"],
        duration_ms=row["duration_ms"],
        original=BlobOut(
            bucket=row["original_bucket"],
            key=row["original_key"],
            sha256=row["original_sha256"],
            size_bytes=row["size_bytes"],
            content_type=row["content_type"],
        ),
        stages=[],
        accepted_at=row["accepted_at"],
        log_position=position,
    )


def _read_model_row(
    context: ApiContext, principal: Principal, media_id: str
) -> dict[str, Any] | None:
    with context.pg() as conn:
        return visible_media(context, conn, principal, media_id)


def media_detail(context: ApiContext, principal: Principal, media_id: str) -> MediaDetail:
    """The read model's item; before it has the item, the accepted upload (never 404 for
    an upload answered 202)."""
    try:
        row = _read_model_row(context, principal, media_id)
    except psycopg.errors.UndefinedTable:
        # No read model yet (its projection never ran): an accepted upload shows all the
        # same; anything else is the 503 it was.
        found = context.accepted.find(principal, media_id)
        if found is None:
            raise
        return accepted_detail(found)
    accepted = None
    if row is None:
        accepted = context.accepted.find(principal, media_id)
        if accepted is None:
            # Its accepted row may have been cleaned because the read model got the item
            # between the two reads: read the read model once more.
            row = _read_model_row(context, principal, media_id)
    source = detail_source(row, accepted)
    if source is DetailSource.READ_MODEL and row is not None:
        return _read_model_detail(context, principal, row)
    if source is DetailSource.ACCEPTED and accepted is not None:
        return accepted_detail(accepted)
    raise not_found(f"no media item {media_id!r}")


def _read_model_detail(
    context: ApiContext, principal: Principal, row: dict[str, Any]
) -> MediaDetail:
    media_id = row["media_id"]
    document = mongo_collection(context, "media_items").find_one(
        {"_id": media_id}, {"progress": 1, "tenant_id": 1, "owner_id": 1}
    )
    if document is not None and not in_scope_mongo(document, principal):
        document = None
    original = None
    if row["original_bucket"] and row["original_key"]:
        original = BlobOut(
            bucket=row["original_bucket"],
            key=row["original_key"],
            sha256=row["original_sha256"],
            size_bytes=row["original_size_bytes"],
            content_type=row["original_content_type"],
        )
    own, reruns = _runs(context, media_id)
    summary = _summary(row)
    summary.percent = own.percent if own is not None else None
    return MediaDetail(
        **summary.model_dump(),
        tenant_id=row["tenant_id"],
        source=row["source"],
        source_uri=row["source_uri"],
        profile=row["profile"],
        duplicate_of=row["duplicate_of"],
        labels={str(k): str(v) for k, v in (row["labels"] or {}).items()},
        width=row["width"],
        height=row["height"],
        page_count=row["page_count"],
        duration_ms=row["duration_ms"],
        original=original,
        items_expected=own.items_expected if own is not None else None,
        items_completed=own.items_completed if own is not None else None,
        completion=own if own is not None and own.status != "processing" else None,
        reprocess_runs=reruns,
        stages=_stages(context, media_id, document, own),
    )


@router.get(
    "/media/{media_id}",
    response_model=MediaDetail,
    summary="One media item: status, percent done, completion summary, progress per stage",
    responses=problem_responses(401, 403, 404),
)
def get_media(media_id: PathId, principal: Reader, context: Context) -> Response:
    # What the caller may see of an item depends on its tenant and owner scope only.
    key = (media_id, principal.tenant_id, principal.owner_filter)
    body = context.details.get(key)
    if body is None:
        try:
            detail = media_detail(context, principal, media_id)
        except BaseException:
            context.details.discard(key)
            raise
        body = model_json(detail)
        # A final item changes only by a reprocess run or erasure: those show up to
        # `detail_cache_ttl_s` (twice that while it is read again) late.
        if detail.status in FINAL_STATUSES:
            context.details.put(key, body)
        else:
            context.details.discard(key)
    return Response(content=body, media_type=JSON)


@router.delete(
    "/media/{media_id}",
    status_code=202,
    response_model=ErasureOut,
    summary="Erase a media item: its results, read-model entries and blobs (owner or admin)",
    responses=problem_responses(401, 403, 404, 503),
)
async def delete_media(
    media_id: PathId,
    principal: Uploader,
    context: Context,
    reason: Annotated[
        Literal["user_request", "owner_erasure"], Query(description="Why the item is erased.")
    ] = "user_request",
) -> ErasureOut:
    return await run_in_threadpool(erase_media, context, principal, media_id, reason)


def _snapshot(context: ApiContext, principal: Principal, media_id: str) -> dict[str, Any] | None:
    try:
        detail = media_detail(context, principal, media_id)
    except ApiError as problem:
        if problem.status == 404:
            return None  # deleted or no longer visible: the stream says "gone"
        raise
    snapshot: dict[str, Any] = jsonable_encoder(
        {
            "media_id": detail.media_id,
            "status": detail.status,
            "final": detail.status in FINAL_STATUSES,
            "percent": detail.percent,
            "items_expected": detail.items_expected,
            "items_completed": detail.items_completed,
            "completion": detail.completion,
            "stages": detail.stages,
        }
    )
    return snapshot


@router.get(
    "/media/{media_id}/events",
    response_class=EventSourceResponse,
    summary="Server-sent `status` events as the item progresses, ending with its final status",
    responses={
        200: {
            "description": "An event stream; each `status` event's data is a JSON snapshot"
            " (status, percent, completion, stages). Once the status is final (completed,"
            " completed_with_errors, failed) the snapshot says `final: true` and the stream"
            " ends; a deleted item gets one `gone` event.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 404),
    },
)
async def media_events(
    media_id: PathId,
    request: Request,
    principal: Reader,
    context: Context,
    once: Annotated[bool, Query(description="Send the current state and end.")] = False,
    max_duration_s: Annotated[
        float, Query(gt=0, le=3600, description="End the stream after this many seconds.")
    ] = 600,
) -> EventSourceResponse:
    first = await run_in_threadpool(_snapshot, context, principal, media_id)
    if first is None:
        raise not_found(f"no media item {media_id!r}")
    interval = context.settings.api.sse_poll_interval_s

    async def stream() -> AsyncIterator[ServerSentEvent]:
        deadline = time.monotonic() + max_duration_s
        last: dict[str, Any] | None = first
        yield ServerSentEvent(data=json.dumps(first), event="status")
        if first["final"]:
            return
        while not once and time.monotonic() < deadline:
            await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0)))
            if await request.is_disconnected():
                return
            current = await run_in_threadpool(_snapshot, context, principal, media_id)
            if current is None:
                yield ServerSentEvent(data=json.dumps({"media_id": media_id}), event="gone")
                return
            if current != last:
                last = current
                yield ServerSentEvent(data=json.dumps(current), event="status")
                if current["final"]:
                    return

    return EventSourceResponse(stream(), ping=15)


router.include_router(results.router)
router.include_router(downloads.router)
router.include_router(reports.router)
