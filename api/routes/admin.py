"""Replay administration: reprocess with today's models, rebuild read models, diff versions;
and the dead-letter endpoints (`api.routes.deadletters`)."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth.dependencies import Replayer
from api.context import ApiContext, ReplayJob, get_context
from api.params import NO_NUL, PathId
from api.problems import ApiError, not_found, problem_responses
from api.routes import deadletters

log = logging.getLogger(__name__)

# Replay under /v1/admin/replay; dead letters under /v1/admin/deadletters (their own module).
router = APIRouter(prefix="/v1/admin", tags=["admin"])
Context = Annotated[ApiContext, Depends(get_context)]


class ReprocessRequest(BaseModel):
    media_ids: list[Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=10_000
    )
    camera_id: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    time_from: datetime | None = Field(default=None, alias="from")
    time_to: datetime | None = Field(default=None, alias="to")
    stages: list[Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]] = Field(
        min_length=1, max_length=50
    )
    model_versions: dict[str, Annotated[str, Field(max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=dict, max_length=50
    )
    all: bool = Field(default=False, description="Consent to reprocess every media item.")

    model_config = {"populate_by_name": True}


class ReprocessAccepted(BaseModel):
    reprocess_id: str


class RebuildRequest(BaseModel):
    store: Literal["postgres", "mongo", "qdrant", "all"]


class JobOut(BaseModel):
    job_id: str
    kind: str
    store: str
    requested_by: str
    status: Literal["running", "succeeded", "failed"]
    messages: list[str]
    result: dict[str, Any] | None
    error: str | None


def _job_out(job: ReplayJob) -> JobOut:
    return JobOut.model_validate(asdict(job))


def _reprocess(context: ApiContext, body: ReprocessRequest, requested_by: str) -> str:
    from processors.reprocess.request import (
        ReprocessError,
        ReprocessSelection,
        request_reprocess,
    )

    selection = ReprocessSelection(
        media_ids=list(body.media_ids),
        camera_id=body.camera_id,
        from_time=body.time_from,
        to_time=body.time_to,
        stages=list(body.stages),
        model_versions=dict(body.model_versions),
        all_media=body.all,
    )
    try:
        return request_reprocess(
            context.settings, context.publisher(), selection, requested_by=requested_by
        )
    except ReprocessError as exc:
        raise ApiError(422, "invalid_selection", "Invalid reprocess selection", str(exc)) from exc


@router.post(
    "/replay/reprocess",
    status_code=202,
    response_model=ReprocessAccepted,
    summary="Reprocess selected media with the models deployed now (results land side by side)",
    responses=problem_responses(401, 403, 503),
)
async def reprocess(
    body: ReprocessRequest, principal: Replayer, context: Context
) -> ReprocessAccepted:
    reprocess_id = await run_in_threadpool(_reprocess, context, body, principal.username)
    return ReprocessAccepted(reprocess_id=reprocess_id)


def _run_rebuild(context: ApiContext, job: ReplayJob) -> None:
    from projections.replay.rebuild import rebuild

    try:
        reports = rebuild(
            context.settings, job.store, qdrant=context.qdrant, report=job.messages.append
        )
    except Exception as exc:  # the job records any failure; the thread must not die silently
        log.exception("rebuild job %s failed", job.job_id)
        job.error = f"{type(exc).__name__}: {exc}"
        job.status = "failed"
        return
    job.result = {"reports": [asdict(report) for report in reports]}
    job.status = "succeeded"


@router.post(
    "/replay/rebuild",
    status_code=202,
    response_model=JobOut,
    summary="Rebuild read models from the start of the log in the background",
    responses=problem_responses(401, 403, 409),
)
def start_rebuild(body: RebuildRequest, principal: Replayer, context: Context) -> JobOut:
    running = [
        job for job in context.jobs.values() if job.kind == "rebuild" and job.status == "running"
    ]
    if running:
        raise ApiError(
            409, "conflict", "A rebuild is running", f"rebuild job {running[0].job_id} is running"
        )
    job = ReplayJob(uuid.uuid4().hex, "rebuild", body.store, principal.username)
    context.jobs[job.job_id] = job
    threading.Thread(
        target=_run_rebuild, args=(context, job), name=f"rebuild-{job.job_id}", daemon=True
    ).start()
    return _job_out(job)


@router.get(
    "/replay/jobs/{job_id}",
    response_model=JobOut,
    summary="State of a replay job",
    responses=problem_responses(401, 403, 404),
)
def get_job(job_id: PathId, principal: Replayer, context: Context) -> JobOut:
    job = context.jobs.get(job_id)
    if job is None:
        raise not_found(f"no replay job {job_id!r}")
    return _job_out(job)


def _diff(
    context: ApiContext, stage: str, old: str, new: str, media_ids: list[str] | None
) -> dict[str, Any]:
    from projections.replay.diff import diff_versions

    try:
        with context.pg() as conn:
            result = diff_versions(
                conn, context.settings.projections.postgres_schema, stage, old, new, media_ids
            )
    except ValueError as exc:
        raise ApiError(422, "invalid_diff", "Invalid diff request", str(exc)) from exc
    diff: dict[str, Any] = result.to_dict()
    return diff


@router.get(
    "/replay/diff",
    response_model=dict[str, Any],
    summary="Compare the results of two model versions of one stage",
    responses=problem_responses(401, 403),
)
async def diff(
    principal: Replayer,
    context: Context,
    stage: Annotated[str, Query(min_length=1, max_length=100, pattern=NO_NUL)],
    old: Annotated[str, Query(min_length=1, max_length=200, pattern=NO_NUL)],
    new: Annotated[str, Query(min_length=1, max_length=200, pattern=NO_NUL)],
    media_id: Annotated[
        list[Annotated[str, Field(max_length=200, pattern=NO_NUL)]] | None, Query(max_length=1000)
    ] = None,
) -> dict[str, Any]:
    return await run_in_threadpool(_diff, context, stage, old, new, media_id)


router.include_router(deadletters.router)
