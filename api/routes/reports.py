"""The combined report of a media item, served by the API under the media access rules.

The outputs worker renders it when the item completes; this endpoint returns that stored
page, or renders it from the stored results when it is missing or `refresh` is asked for.
A page rendered for a finished item is stored for the next request; one rendered while the
item is still processing is not (it shows the results so far, and the completion renders
the definitive one). The page embeds its pictures and is served with the same CSP it
carries, so it shows completely here, through a presigned URL, or saved to disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Response
from psycopg import sql
from starlette.concurrency import run_in_threadpool

from api.auth.dependencies import Reader
from api.auth.roles import Permission, Principal
from api.context import ApiContext, get_context
from api.params import PathId
from api.problems import forbidden, not_found, problem_responses
from api.readmodels import table, visible_media
from visionlog.blobstore import EXPORTS, BlobNotFoundError

if TYPE_CHECKING:
    from processors.outputs.combined_report import CompletionSummary

router = APIRouter(tags=["media"])
Context = Annotated[ApiContext, Depends(get_context)]
HTML = "text/html; charset=utf-8"


def _completion(context: ApiContext, media_id: str) -> CompletionSummary | None:
    """The own run's summary for the report's heading (None before any progress)."""
    from processors.outputs.combined_report import CompletionSummary

    query = sql.SQL("SELECT * FROM {} WHERE media_id = %s AND run_id = ''").format(
        table(context, "processing_runs")
    )
    with context.pg() as conn:
        row = conn.execute(query, (media_id,)).fetchone()
    if row is None:
        return None
    return CompletionSummary(
        status=row["status"],
        percent=row["percent"],
        items_expected=row["items_expected"],
        items_completed=row["items_completed"],
        items_failed=row["items_failed"],
        duration_ms=row["duration_ms"],
        stages=tuple(row["stages"] or ()),
        errors=tuple(row["errors"] or ()),
    )


def _report(context: ApiContext, principal: Principal, media_id: str, refresh: bool) -> bytes:
    # Rendering needs the processors' renderers (and OpenCV): imported on first use only.
    from processors.outputs.report_view import build_report, report_key, store_report

    with context.pg() as conn:
        row = visible_media(context, conn, principal, media_id)
    if row is None or row["status"] == "deleted":
        raise not_found(f"no media item {media_id!r}")
    if not principal.can(Permission.READ_ORIGINALS):
        # The report embeds the item's pictures as stored, not their anonymised copies.
        raise forbidden(f"the role {principal.role.value!r} may see anonymised copies only")
    if not refresh:
        try:
            return context.blobs.get_object_bytes(EXPORTS, report_key(media_id))
        except BlobNotFoundError:
            pass
    completion = _completion(context, media_id)
    page = build_report(context.blobs, media_id, completion)
    if completion is not None and completion.final:
        store_report(context.blobs, media_id, page)
    return page


@router.get(
    "/media/{media_id}/report",
    response_class=Response,
    summary="The item's combined report (HTML, pictures embedded; 403 for a role that may"
    " see anonymised copies only)",
    responses={
        200: {
            "description": "The report page, as stored when the item completed; rendered from"
            " the stored results when there is none yet or `refresh` is true.",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 404),
    },
)
async def get_report(
    media_id: PathId,
    principal: Reader,
    context: Context,
    refresh: Annotated[bool, Query(description="Render it again from the stored results.")] = False,
) -> Response:
    from processors.outputs.html_report import REPORT_CSP

    page = await run_in_threadpool(_report, context, principal, media_id, refresh)
    return Response(
        page,
        media_type=HTML,
        headers={
            "Content-Security-Policy": REPORT_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
