"""Dead-letter administration: browse failed messages and redrive them (`processors.deadletters`).

Admins see the dead letters of their own tenant and those whose tenant is unknown (a message
that could not be read has no envelope to name one). A redrive is recorded with who asked
for it (the redrive ledger in the object store) and logged, like the other admin actions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth.dependencies import Replayer
from api.auth.roles import Principal
from api.context import ApiContext, get_context
from api.params import NO_NUL, PathId
from api.problems import ApiError, bad_request, not_found, problem_responses, unavailable
from processors.deadletters import (
    MAX_LIMIT,
    UNKNOWN_TENANT,
    CursorError,
    DeadLetter,
    DeadLetterError,
    DeadLetterFilter,
    DeadLetters,
    Listed,
    RedriveRecord,
    RedriveSelection,
    SkipReason,
)
from visionlog.errors import http_status

log = logging.getLogger(__name__)

router = APIRouter(prefix="/deadletters", tags=["admin"])
Context = Annotated[ApiContext, Depends(get_context)]
T = TypeVar("T")

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]


class PositionOut(BaseModel):
    topic: str
    partition: int
    offset: int


class RedriveStateOut(BaseModel):
    state: Literal["pending", "redriven"] = Field(
        description="pending: claimed, not yet acknowledged by the brokers"
    )
    count: int = Field(description="How many times it was redriven")
    requested_by: str
    requested_at: datetime
    redriven_at: datetime | None
    target: PositionOut | None = Field(description="Where the re-published message went")


class DeadLetterOut(BaseModel):
    event_id: str
    occurred_at: datetime
    tenant_id: str
    media_id: str | None
    processor: str
    stage: str
    error_type: str
    error_message: str
    retryable: bool
    attempts: int
    failed_topic: str | None
    failed_partition: int | None
    failed_offset: int | None
    failed_event_type: str | None
    failed_value_bytes: int | None = Field(
        description="Size of the failed message kept for a redrive; null for part failures"
        " and rejected inputs, which cannot be redriven by bytes"
    )
    position: PositionOut = Field(description="Where the dead letter itself was read")
    redrive: RedriveStateOut | None = Field(description="Null when never redriven")


class DeadLetterDetail(DeadLetterOut):
    trace_id: str | None
    causation_id: str | None
    failed_key: str | None
    traceback: str | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null at the end."
    )
    total: int = Field(description="Dead letters matching the filter, on every page")
    scanned: int = Field(description="Dead letters read to answer")


class RedriveRequest(BaseModel):
    event_ids: list[Text] = Field(default_factory=list, max_length=1000)
    stage: Text | None = None
    media_id: Text | None = None
    all_retryable: bool = Field(
        default=False, description="Select every retryable dead letter (with the filters given)"
    )
    include_permanent: bool = Field(
        default=False, description="Redrive selected permanent failures too (a bug was fixed)"
    )
    force: bool = Field(default=False, description="Redrive again what was redriven before")
    dry_run: bool = Field(default=False, description="Answer what would happen; change nothing")


class RedrivenOut(BaseModel):
    event_id: str
    media_id: str | None
    stage: str
    event_type: str | None
    target: PositionOut | None = Field(description="Where it was published; null on a dry run")


class SkippedOut(BaseModel):
    event_id: str
    reason: SkipReason
    detail: str
    media_id: str | None
    stage: str | None


class RedriveResult(BaseModel):
    dry_run: bool
    redriven: list[RedrivenOut] = Field(description="Redriven (would be, on a dry run)")
    skipped: list[SkippedOut]
    scanned: int


def _visible(principal: Principal) -> frozenset[str]:
    return frozenset({principal.tenant_id, UNKNOWN_TENANT})


def _service(context: ApiContext, publishing: bool) -> DeadLetters:
    publisher = context.publisher()
    return DeadLetters.create(
        context.settings.kafka,
        publisher.codec,
        context.blobs,
        publisher if publishing else None,
    )


def _answer(call: Callable[[], T]) -> T:
    """Problems for what the request asked wrongly or a store that is down."""
    try:
        return call()
    except CursorError as exc:
        raise bad_request(str(exc)) from exc
    except DeadLetterError as exc:
        raise ApiError(422, "invalid_selection", "Invalid dead-letter selection", str(exc)) from exc
    except Exception as exc:
        if http_status(exc) == 503:
            raise unavailable(f"the log or the object store is unreachable: {exc}") from exc
        raise


def _position(topic: str, partition: int, offset: int) -> PositionOut:
    return PositionOut(topic=topic, partition=partition, offset=offset)


def _redrive_state(record: RedriveRecord | None) -> RedriveStateOut | None:
    if record is None:
        return None
    target = record.target
    return RedriveStateOut(
        state=record.state,
        count=record.count,
        requested_by=record.requested_by,
        requested_at=record.requested_at,
        redriven_at=record.redriven_at,
        target=_position(target.topic, target.partition, target.offset) if target else None,
    )


def _fields(letter: DeadLetter, redrive: RedriveRecord | None) -> dict[str, object]:
    where = letter.position
    return {
        "event_id": letter.event_id,
        "occurred_at": letter.occurred_at,
        "tenant_id": letter.tenant_id,
        "media_id": letter.media_id,
        "processor": letter.processor,
        "stage": letter.stage,
        "error_type": letter.error_type,
        "error_message": letter.error_message,
        "retryable": letter.retryable,
        "attempts": letter.attempts,
        "failed_topic": letter.failed_topic,
        "failed_partition": letter.failed_partition,
        "failed_offset": letter.failed_offset,
        "failed_event_type": letter.failed_event_type,
        "failed_value_bytes": len(letter.failed_value) if letter.failed_value is not None else None,
        "position": _position(where.topic, where.partition, where.offset),
        "redrive": _redrive_state(redrive),
    }


def _out(listed: Listed) -> DeadLetterOut:
    return DeadLetterOut.model_validate(_fields(listed.letter, listed.redrive))


@router.get(
    "",
    response_model=DeadLetterPage,
    summary="Dead letters, newest first, with why they failed and whether they were redriven",
    responses=problem_responses(400, 401, 403),
)
def list_dead_letters(
    principal: Replayer,
    context: Context,
    stage: Annotated[str | None, Query(min_length=1, max_length=100, pattern=NO_NUL)] = None,
    media_id: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)] = None,
    retryable: bool | None = None,
    error_type: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=500, pattern=NO_NUL)] = None,
) -> DeadLetterPage:
    selected = DeadLetterFilter(
        stages=frozenset([stage] if stage else []),
        media_ids=frozenset([media_id] if media_id else []),
        error_types=frozenset([error_type] if error_type else []),
        retryable=retryable,
        since=since,
        until=until,
        tenants=_visible(principal),
    )
    page = _answer(lambda: _service(context, False).browse(selected, limit, cursor))
    return DeadLetterPage(
        items=[_out(listed) for listed in page.items],
        next_cursor=page.next_cursor,
        total=page.total,
        scanned=page.scanned,
    )


@router.get(
    "/{event_id}",
    response_model=DeadLetterDetail,
    summary="One dead letter in full, with its traceback",
    responses=problem_responses(401, 403, 404),
)
def get_dead_letter(event_id: PathId, principal: Replayer, context: Context) -> DeadLetterDetail:
    listed = _answer(lambda: _service(context, False).find(event_id, _visible(principal)))
    if listed is None:
        raise not_found(f"no dead letter {event_id!r}")
    letter = listed.letter
    return DeadLetterDetail.model_validate(
        {
            **_fields(letter, listed.redrive),
            "trace_id": letter.trace_id,
            "causation_id": letter.causation_id,
            "failed_key": letter.failed_key.decode("utf-8", "replace")
            if letter.failed_key is not None
            else None,
            "traceback": letter.traceback,
        }
    )


@router.post(
    "/redrive",
    response_model=RedriveResult,
    summary="Re-publish failed messages to their topics so the workers process them again",
    responses=problem_responses(401, 403),
)
def redrive_dead_letters(
    body: RedriveRequest, principal: Replayer, context: Context
) -> RedriveResult:
    selection = RedriveSelection(
        event_ids=tuple(body.event_ids),
        stages=frozenset([body.stage] if body.stage else []),
        media_ids=frozenset([body.media_id] if body.media_id else []),
        all_retryable=body.all_retryable,
        include_permanent=body.include_permanent,
        force=body.force,
        tenants=_visible(principal),
    )
    report = _answer(
        lambda: _service(context, not body.dry_run).redrive(
            selection, principal.username, dry_run=body.dry_run
        )
    )
    log.warning(
        "dead-letter redrive%s by %s (user %s): %d redriven, %d skipped: %s",
        " (dry run)" if body.dry_run else "",
        principal.username,
        principal.user_id,
        len(report.redriven),
        len(report.skipped),
        ", ".join(item.event_id for item in report.redriven) or "none",
    )
    return RedriveResult(
        dry_run=report.dry_run,
        redriven=[
            RedrivenOut(
                event_id=item.event_id,
                media_id=item.media_id,
                stage=item.stage,
                event_type=item.event_type,
                target=(
                    _position(item.target.topic, item.target.partition, item.target.offset)
                    if item.target
                    else None
                ),
            )
            for item in report.redriven
        ],
        skipped=[
            SkippedOut(
                event_id=item.event_id,
                reason=item.reason,
                detail=item.detail,
                media_id=item.media_id,
                stage=item.stage,
            )
            for item in report.skipped
        ],
        scanned=report.scanned,
    )
