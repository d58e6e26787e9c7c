"""Full-text search, similar images, images by text, and detections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from psycopg import sql
from pydantic import BaseModel
from qdrant_client import models as qm
from starlette.concurrency import run_in_threadpool

from api.auth.dependencies import Reader
from api.auth.roles import Principal
from api.context import ApiContext, get_context
from api.params import NO_NUL, PathId
from api.problems import not_found, problem_responses
from api.readmodels import (
    decode_cursor,
    encode_cursor,
    qdrant_alias,
    qdrant_has,
    scope_qdrant,
    scope_sql,
    table,
    visible_media,
)
from api.responses import model_response

router = APIRouter(prefix="/v1", tags=["search"])
Context = Annotated[ApiContext, Depends(get_context)]

_LANGUAGES = {"en": ("english", "tsv_english"), "de": ("german", "tsv_german")}
_HEADLINE_OPTIONS = "StartSel=<mark>, StopSel=</mark>, MaxFragments=2, MaxWords=25, MinWords=8"
_NEIGHBOUR_OVERFETCH = 4


class TextHit(BaseModel):
    event_id: str
    media_id: str
    item_label: str
    page_number: int | None
    frame_index: int | None
    model_name: str
    model_version: str
    rank: float
    snippet: str


class TextSearchOut(BaseModel):
    query: str
    lang: Literal["en", "de"]
    hits: list[TextHit]


class VectorHit(BaseModel):
    media_id: str
    score: float
    page_number: int | None = None
    frame_index: int | None = None
    model_version: str | None = None
    text: str | None = None


class VectorSearchOut(BaseModel):
    hits: list[VectorHit]


class Detection(BaseModel):
    event_id: str
    box_index: int
    media_id: str
    item_label: str
    page_number: int | None
    frame_index: int | None
    observed_at: datetime
    camera_id: str | None
    class_name: str
    confidence: float
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    distance_m: float | None
    track_id: int | None
    model_name: str
    model_version: str


class DetectionPage(BaseModel):
    items: list[Detection]
    next_cursor: str | None


def _search_text(
    context: ApiContext, principal: Principal, q: str, lang: str, limit: int
) -> list[TextHit]:
    config, column = _LANGUAGES[lang]
    scope, params = scope_sql(principal, "t")
    query = sql.SQL(
        "SELECT t.event_id, t.media_id, t.item_label, t.page_number, t.frame_index,"
        " t.model_name, t.model_version, ts_rank_cd(t.{col}, q) AS rank,"
        " ts_headline({cfg}::regconfig, t.full_text, q, %s) AS snippet"
        " FROM {texts} t, websearch_to_tsquery({cfg}::regconfig, %s) q"
        " WHERE t.{col} @@ q AND {scope}"
        " ORDER BY rank DESC, t.event_id LIMIT %s"
    ).format(
        col=sql.Identifier(column),
        cfg=sql.Literal(config),
        texts=table(context, "text_results"),
        scope=scope,
    )
    with context.pg() as conn:
        rows = conn.execute(query, [_HEADLINE_OPTIONS, q, *params, limit]).fetchall()
    return [TextHit(**row) for row in rows]


@router.get(
    "/search/text",
    response_model=TextSearchOut,
    summary="Full-text search over recognised text (web search syntax), ranked, with snippets",
    responses=problem_responses(401, 403),
)
def search_text(
    principal: Reader,
    context: Context,
    q: Annotated[str, Query(min_length=1, max_length=500, pattern=NO_NUL)],
    lang: Literal["en", "de"] = "en",
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Response:
    hits = _search_text(context, principal, q, lang, limit)
    return model_response(TextSearchOut(query=q, lang=lang, hits=hits))


def _best_per_media(
    points: list[qm.ScoredPoint], limit: int, exclude: str | None
) -> list[VectorHit]:
    hits: dict[str, VectorHit] = {}
    for point in points:
        payload: dict[str, Any] = point.payload or {}
        media_id = str(payload.get("media_id"))
        if media_id == exclude or media_id in hits:
            continue  # points come best first: the first per media is its best
        hits[media_id] = VectorHit(
            media_id=media_id,
            score=point.score,
            page_number=payload.get("page_number"),
            frame_index=payload.get("frame_index"),
            model_version=payload.get("model_version"),
            text=payload.get("text"),
        )
    return list(hits.values())[:limit]


def _similar(
    context: ApiContext, principal: Principal, media_id: str, limit: int
) -> list[VectorHit]:
    with context.pg() as conn:
        if visible_media(context, conn, principal, media_id) is None:
            raise not_found(f"no media item {media_id!r}")
    client = context.qdrant
    alias = qdrant_alias(context, "images")
    if not qdrant_has(client, alias):
        return []
    own = qm.Filter(must=[qm.FieldCondition(key="media_id", match=qm.MatchValue(value=media_id))])
    points, _ = client.scroll(alias, scroll_filter=own, limit=1, with_vectors=True)
    if not points or points[0].vector is None:
        return []
    stored = points[0].vector
    # Named vectors come as a dict; the images collection has one unnamed vector.
    vector = next(iter(stored.values())) if isinstance(stored, dict) else stored
    others = qm.Filter(
        must=scope_qdrant(principal),
        must_not=[qm.FieldCondition(key="media_id", match=qm.MatchValue(value=media_id))],
    )
    found = client.query_points(
        alias,
        query=vector,
        query_filter=others,
        limit=limit * _NEIGHBOUR_OVERFETCH,
        with_payload=True,
    ).points
    return _best_per_media(found, limit, exclude=media_id)


@router.get(
    "/search/similar/{media_id}",
    response_model=VectorSearchOut,
    summary="Media whose images are nearest to this item's image",
    responses=problem_responses(401, 403, 404),
)
async def search_similar(
    media_id: PathId,
    principal: Reader,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> VectorSearchOut:
    hits = await run_in_threadpool(_similar, context, principal, media_id, limit)
    return VectorSearchOut(hits=hits)


def _images_by_text(
    context: ApiContext, principal: Principal, q: str, limit: int
) -> list[VectorHit]:
    client = context.qdrant
    alias = qdrant_alias(context, "texts")
    if not qdrant_has(client, alias):
        return []
    vector = context.text_embedder().embed([q])[0]
    found = client.query_points(
        alias,
        query=vector.tolist(),
        query_filter=qm.Filter(must=scope_qdrant(principal)),
        limit=limit * _NEIGHBOUR_OVERFETCH,
        with_payload=True,
    ).points
    return _best_per_media(found, limit, exclude=None)


@router.get(
    "/search/images",
    response_model=VectorSearchOut,
    summary="Media whose recognised text is semantically nearest to the query",
    responses=problem_responses(401, 403),
)
async def search_images(
    principal: Reader,
    context: Context,
    q: Annotated[str, Query(min_length=1, max_length=500, pattern=NO_NUL)],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> VectorSearchOut:
    hits = await run_in_threadpool(_images_by_text, context, principal, q, limit)
    return VectorSearchOut(hits=hits)


@router.get(
    "/detections",
    response_model=DetectionPage,
    tags=["detections"],
    summary="Detected objects, newest first, filtered by class, camera, time, confidence, media",
    responses=problem_responses(400, 401, 403),
)
def list_detections(
    principal: Reader,
    context: Context,
    class_name: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    camera_id: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    time_from: Annotated[datetime | None, Query(alias="from")] = None,
    time_to: Annotated[datetime | None, Query(alias="to")] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    media_id: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500, pattern=NO_NUL)] = None,
) -> Response:
    limit = min(limit, context.settings.api.max_page_size)
    scope, params = scope_sql(principal)
    clauses: list[sql.Composable] = [scope]
    for column, value in (
        ("class_name", class_name),
        ("camera_id", camera_id),
        ("media_id", media_id),
    ):
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if time_from is not None:
        clauses.append(sql.SQL("observed_at >= %s"))
        params.append(time_from)
    if time_to is not None:
        clauses.append(sql.SQL("observed_at < %s"))
        params.append(time_to)
    if min_confidence is not None:
        clauses.append(sql.SQL("confidence >= %s"))
        params.append(min_confidence)
    if cursor is not None:
        after_time, after_event, after_box = decode_cursor(cursor, (datetime, str, int))
        clauses.append(sql.SQL("(observed_at, event_id, box_index) < (%s, %s, %s)"))
        params.extend([after_time, after_event, after_box])
    query = sql.SQL(
        "SELECT * FROM {} WHERE {} ORDER BY observed_at DESC, event_id DESC, box_index DESC"
        " LIMIT %s"
    ).format(table(context, "detections"), sql.SQL(" AND ").join(clauses))
    with context.pg() as conn:
        rows = conn.execute(query, [*params, limit + 1]).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(
            [last["observed_at"].isoformat(), last["event_id"], last["box_index"]]
        )
    # Validated in one call from the rows (their other columns are ignored), sent as is.
    return model_response(DetectionPage.model_validate({"items": rows, "next_cursor": next_cursor}))
