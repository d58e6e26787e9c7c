"""Analysis results of a media item, read from PostgreSQL (the read model that is current
under load), paged with an opaque cursor.

One entry per item, stage and model version: the latest result (or failure) of that stage
with that model on that page, frame or image (`processing_status`), its content read from
the stage's table (OCR blocks with their lines, words and polygons; detections; codes;
tracks; anonymisation; scenes; rendered pages). Outputs are listed one per stored file, its
latest version. Entries come in item order (the whole item, then pages by number, then
frames by index; within an item by stage, then model version): `oldest` follows that order,
`newest` reverses it (the newest frame first), and a cursor keeps its order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from psycopg import sql
from pydantic import BaseModel, Field

from api.auth.dependencies import Reader
from api.auth.roles import Principal
from api.context import ApiContext, get_context
from api.params import NO_NUL, PathId
from api.problems import bad_request, not_found, problem_responses
from api.readmodels import (
    decode_cursor,
    encode_cursor,
    item_fields,
    item_number,
    item_rank,
    scope_sql,
    table,
    visible_media,
)
from projections.stages import RESULT_STAGES
from visionlog.stores import PgConnection

router = APIRouter(tags=["media"])
Context = Annotated[ApiContext, Depends(get_context)]
ResultOrder = Literal["newest", "oldest"]
Row = dict[str, Any]

# The event type whose result each stage records (the inverse of RESULT_STAGES).
STAGE_EVENT_TYPES: dict[str, str] = {stage: name for name, stage in RESULT_STAGES.items()}
OUTPUTS_STAGE = RESULT_STAGES["OutputGenerated"]
DEFAULT_RESULT_LIMIT = 50


class AnalysisResult(BaseModel):
    event_id: str
    event_type: str = Field(description="The result event; ProcessingFailed for a failure.")
    stage: str
    status: Literal["done", "failed"] = "done"
    model_name: str | None
    model_version: str | None
    item_label: str | None = Field(
        default=None,
        description="`media` (the whole item), `original` (an image), `page-0003` or"
        " `frame-00000042`.",
    )
    item: dict[str, Any] | None = Field(
        description="item_label, page_number, frame_index and camera_id of the result's item."
    )
    result: dict[str, Any] | None = Field(
        description="The stage's result: for OCR its blocks with their lines, words and"
        " polygons; for a failure its error."
    )
    occurred_at: datetime | None


class ResultsOut(BaseModel):
    media_id: str
    model_versions: dict[str, list[str]] = Field(
        description="Per stage, the model versions with results (side by side)."
    )
    order: ResultOrder = Field(
        default="oldest",
        description="oldest: item order (pages by number, frames by index); newest: reversed.",
    )
    results: list[AnalysisResult]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null at the end."
    )


# ---------------------------------------------------------------- the listing


def _entries_query(
    context: ApiContext,
    principal: Principal,
    media_id: str,
    stage: str | None,
    model_version: str | None,
) -> tuple[sql.Composed, list[Any]]:
    """One row per result: processing_status (the latest outcome per item, stage and model
    version), except that done outputs come from `outputs`, one per stored file."""
    status_scope, status_params = scope_sql(principal, "s")
    output_scope, output_params = scope_sql(principal, "o")
    query = sql.SQL(
        "SELECT s.stage, s.item_label, s.model_version, s.model_name, s.status, s.event_id,"
        " s.event_at AS occurred_at, '' AS sub, s.error_type, s.error, s.retryable, s.attempts"
        " FROM {status} s WHERE s.media_id = %s AND {status_scope}"
        " AND NOT (s.stage = %s AND s.status = 'done')"
        " UNION ALL"
        " SELECT * FROM (SELECT DISTINCT ON (o.output_bucket, o.output_key) %s::text, o.item_label,"
        " o.model_version, o.model_name, 'done', o.event_id, o.occurred_at,"
        " o.output_bucket || '/' || o.output_key, NULL, NULL, NULL::boolean, NULL::integer"
        " FROM {outputs} o WHERE o.media_id = %s AND {output_scope}"
        " ORDER BY o.output_bucket, o.output_key, o.occurred_at DESC, o.event_id DESC) latest"
    ).format(
        status=table(context, "processing_status"),
        status_scope=status_scope,
        outputs=table(context, "outputs"),
        output_scope=output_scope,
    )
    params: list[Any] = [
        media_id,
        *status_params,
        OUTPUTS_STAGE,
        OUTPUTS_STAGE,
        media_id,
        *output_params,
    ]
    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    if stage is not None:
        clauses.append(sql.SQL("stage = %s"))
        params.append(stage)
    if model_version is not None:
        clauses.append(sql.SQL("model_version = %s"))
        params.append(model_version)
    label = sql.Identifier("item_label")
    ordered = sql.SQL(
        "SELECT *, {rank} AS item_rank, {number} AS item_number FROM ({entries}) entries"
        " WHERE {where}"
    ).format(
        rank=item_rank(label),
        number=item_number(label),
        entries=query,
        where=sql.SQL(" AND ").join(clauses),
    )
    return ordered, params


_SORT_COLUMNS = ("item_rank", "item_number", "item_label", "stage", "model_version", "sub")
_CURSOR_KINDS: tuple[type, ...] = (str, int, int, str, str, str, str)


def _page(
    context: ApiContext,
    conn: PgConnection,
    principal: Principal,
    media_id: str,
    stage: str | None,
    model_version: str | None,
    order: ResultOrder,
    limit: int,
    after: list[Any] | None,
) -> tuple[list[Row], list[Any] | None]:
    entries, params = _entries_query(context, principal, media_id, stage, model_version)
    direction = sql.SQL("DESC" if order == "newest" else "ASC")
    keys = sql.SQL(", ").join(sql.Identifier(column) for column in _SORT_COLUMNS)
    where: sql.Composable = sql.SQL("TRUE")
    if after is not None:
        where = sql.SQL("({}) {} ({})").format(
            keys,
            sql.SQL("<" if order == "newest" else ">"),
            sql.SQL(", ").join(sql.Placeholder() for _ in _SORT_COLUMNS),
        )
        params.extend(after)
    query = sql.SQL(
        "SELECT * FROM ({entries}) ranked WHERE {where} ORDER BY {order} LIMIT %s"
    ).format(
        entries=entries,
        where=where,
        order=sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(column), direction) for column in _SORT_COLUMNS
        ),
    )
    rows: list[Row] = conn.execute(query, [*params, limit + 1]).fetchall()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, [rows[-1][column] for column in _SORT_COLUMNS]


def _model_versions(
    context: ApiContext,
    conn: PgConnection,
    principal: Principal,
    media_id: str,
    stage: str | None,
    model_version: str | None,
) -> dict[str, list[str]]:
    entries, params = _entries_query(context, principal, media_id, stage, model_version)
    query = sql.SQL(
        "SELECT stage, array_agg(DISTINCT model_version ORDER BY model_version) AS versions"
        " FROM ({}) versions WHERE status = 'done' AND model_version <> ''"
        " GROUP BY stage ORDER BY stage"
    ).format(entries)
    rows = conn.execute(query, params).fetchall()
    return {row["stage"]: list(row["versions"]) for row in rows}


# ---------------------------------------------------------------- result content per stage


def _box(row: Row) -> dict[str, float]:
    return {key: row[key] for key in ("x_min", "y_min", "x_max", "y_max")}


def _ocr(rows: list[Row]) -> dict[str, Any]:
    row = rows[0]
    return {
        "full_text": row["full_text"],
        "languages": list(row["languages"]),
        "blocks": row["blocks"],
        "block_count": row["block_count"],
        "word_count": row["word_count"],
        "mean_confidence": row["mean_confidence"],
        "image_width": row["image_width"],
        "image_height": row["image_height"],
        "orientation_degrees": row["orientation_degrees"],
        "skew_degrees": row["skew_degrees"],
        "preprocessing": list(row["preprocessing"]),
        "inference_ms": row["inference_ms"],
        "models": row["models"],
    }


def _detections(rows: list[Row]) -> dict[str, Any]:
    first = rows[0] if rows else {}
    return {
        "detections": [
            {
                "class_id": row["class_id"],
                "class_name": row["class_name"],
                "confidence": row["confidence"],
                "box": _box(row),
                "track_id": row["track_id"],
                "distance_m": row["distance_m"],
            }
            for row in rows
        ],
        "class_names": sorted({row["class_name"] for row in rows}),
        "image_width": first.get("image_width"),
        "image_height": first.get("image_height"),
        "score_threshold": first.get("score_threshold"),
    }


def _codes(rows: list[Row]) -> dict[str, Any]:
    return {
        "codes": [
            {
                "symbology": row["symbology"],
                "text": row["text"],
                "decoder": row["decoder"],
                "polygon": row["polygon"],
                "box": _box(row),
            }
            for row in rows
        ],
        "decoders": sorted({row["decoder"] for row in rows}),
    }


def _tracks(rows: list[Row]) -> dict[str, Any]:
    return {
        "tracks": [
            {
                "track_id": row["track_id"],
                "class_name": row["class_name"],
                "state": row["state"],
                "box": _box(row),
                "confidence": row["confidence"],
                "first_frame_index": row["first_frame_index"],
                "hits": row["hits"],
            }
            for row in rows
        ],
    }


def _redaction(rows: list[Row]) -> dict[str, Any]:
    row = rows[0]
    text = None
    if row["redacted_text_bucket"] and row["redacted_text_key"]:
        text = {"bucket": row["redacted_text_bucket"], "key": row["redacted_text_key"]}
    return {
        "redacted_image": {
            "bucket": row["redacted_bucket"],
            "key": row["redacted_key"],
            "sha256": row["redacted_sha256"],
        },
        "redacted_text": text,
        "method": row["method"],
        "regions": row["regions"],
        "region_counts": row["region_counts"],
        "pii_counts": row["pii_counts"],
        "models": row["models"],
    }


def _scene(rows: list[Row]) -> dict[str, Any]:
    row = rows[0]
    return {
        "sentences": row["sentences"],
        "objects": row["objects"],
        "relations": row["relations"],
        "object_count": row["object_count"],
        "relation_count": len(row["relations"] or []),
        "focal_length_px": row["focal_length_px"],
        "models": row["models"],
    }


def _output(rows: list[Row]) -> dict[str, Any]:
    row = rows[0]
    return {
        "kind": row["kind"],
        "output": {
            "bucket": row["output_bucket"],
            "key": row["output_key"],
            "sha256": row["output_sha256"],
            "size_bytes": row["output_size_bytes"],
            "content_type": row["output_content_type"],
        },
        "source_event_ids": list(row["source_event_ids"]),
        "generator": row["generator"],
    }


def _page_rendered(rows: list[Row]) -> dict[str, Any]:
    row = rows[0]
    return {
        "page_number": row["page_number"],
        "page_count": row["page_count"],
        "dpi": row["dpi"],
        "width": row["width"],
        "height": row["height"],
        "image": {
            "bucket": row["image_bucket"],
            "key": row["image_key"],
            "sha256": row["image_sha256"],
            "size_bytes": row["image_size_bytes"],
            "content_type": row["image_content_type"],
        },
        "renderer": row["renderer"],
        "repaired": row["repaired"],
    }


# stage -> (table, order of its rows within one event, content of an event's rows, whether
# an event without rows still has a result: detections, codes and tracks may be empty).
_STAGE_TABLES: dict[str, tuple[str, str, Callable[[list[Row]], dict[str, Any]], bool]] = {
    "ocr": ("text_results", "event_id", _ocr, False),
    "detection": ("detections", "box_index", _detections, True),
    "codes": ("codes", "code_index", _codes, True),
    "tracking": ("tracks", "track_id", _tracks, True),
    "anonymise": ("redactions", "event_id", _redaction, False),
    "scene": ("scenes", "event_id", _scene, False),
    OUTPUTS_STAGE: ("outputs", "event_id", _output, False),
    "render": ("pages", "page_number", _page_rendered, False),
}


def _contents(
    context: ApiContext, conn: PgConnection, media_id: str, entries: Iterable[Row]
) -> dict[tuple[str, str], tuple[dict[str, Any] | None, str | None]]:
    """(stage, event id) -> the result's content and its camera, read table by table."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if entry["status"] == "done" and entry["stage"] in _STAGE_TABLES:
            wanted[entry["stage"]].add(entry["event_id"])
    found: dict[tuple[str, str], tuple[dict[str, Any] | None, str | None]] = {}
    for stage, event_ids in wanted.items():
        name, within, build, may_be_empty = _STAGE_TABLES[stage]
        query = sql.SQL(
            "SELECT * FROM {} WHERE media_id = %s AND event_id = ANY(%s) ORDER BY event_id, {}"
        ).format(table(context, name), sql.Identifier(within))
        grouped: dict[str, list[Row]] = defaultdict(list)
        for row in conn.execute(query, (media_id, sorted(event_ids))).fetchall():
            grouped[row["event_id"]].append(row)
        for event_id in event_ids:
            rows = grouped.get(event_id, [])
            if rows or may_be_empty:
                camera = rows[0].get("camera_id") if rows else None
                found[(stage, event_id)] = (jsonable_encoder(build(rows)), camera)
    return found


def _failure(entry: Row) -> dict[str, Any]:
    return {
        "failed_stage": entry["stage"],
        "processor": entry["model_name"],
        "error_type": entry["error_type"],
        "error_message": entry["error"],
        "retryable": entry["retryable"],
        "attempts": entry["attempts"],
    }


def _result(
    entry: Row, contents: dict[tuple[str, str], tuple[dict[str, Any] | None, str | None]]
) -> AnalysisResult:
    label = entry["item_label"]
    failed = entry["status"] == "failed"
    content, camera = contents.get((entry["stage"], entry["event_id"]), (None, None))
    return AnalysisResult(
        event_id=entry["event_id"],
        event_type="ProcessingFailed"
        if failed
        else STAGE_EVENT_TYPES.get(entry["stage"], "Unknown"),
        stage=entry["stage"],
        status="failed" if failed else "done",
        model_name=entry["model_name"],
        model_version=entry["model_version"] or None,
        item_label=label,
        item={"item_label": label, **item_fields(label), "camera_id": camera},
        result=_failure(entry) if failed else content,
        occurred_at=entry["occurred_at"],
    )


def is_camera_media(row: Row) -> bool:
    return row.get("source") == "CAMERA" or row.get("camera_id") is not None


def _decode(cursor: str, order: ResultOrder | None) -> tuple[ResultOrder, list[Any]]:
    values = decode_cursor(cursor, _CURSOR_KINDS)
    cursor_order = values[0]
    if cursor_order not in ("newest", "oldest"):
        raise bad_request("the cursor is malformed; pass back a next_cursor unchanged")
    if order is not None and order != cursor_order:
        raise bad_request(f"the cursor continues order={cursor_order}, not order={order}")
    resolved: ResultOrder = "newest" if cursor_order == "newest" else "oldest"
    return resolved, values[1:]


@router.get(
    "/media/{media_id}/results",
    response_model=ResultsOut,
    summary="Analysis results per item, stage and model version, paged with a cursor",
    description="Read from PostgreSQL, current as results arrive. One entry per item,"
    " stage and model version (the latest), outputs one per stored file; OCR results carry"
    " their blocks, lines and words with polygons. The default order is `newest` (latest"
    " frame first) for camera media and `oldest` (page order) otherwise; pass `next_cursor`"
    " back as `cursor` for the next page.",
    responses=problem_responses(400, 401, 403, 404),
)
def get_results(
    media_id: PathId,
    principal: Reader,
    context: Context,
    stage: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    model_version: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    order: Annotated[
        ResultOrder | None,
        Query(description="Default: newest for camera media, oldest (page order) otherwise."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_RESULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1000, pattern=NO_NUL)] = None,
) -> ResultsOut:
    limit = min(limit, context.settings.api.max_page_size)
    with context.pg() as conn:
        media = visible_media(context, conn, principal, media_id)
        if media is None:
            raise not_found(f"no media item {media_id!r}")
        after: list[Any] | None = None
        if cursor is not None:
            resolved, after = _decode(cursor, order)
        elif order is not None:
            resolved = order
        else:
            resolved = "newest" if is_camera_media(media) else "oldest"
        entries, last = _page(
            context, conn, principal, media_id, stage, model_version, resolved, limit, after
        )
        contents = _contents(context, conn, media_id, entries)
        versions = _model_versions(context, conn, principal, media_id, stage, model_version)
    return ResultsOut(
        media_id=media_id,
        model_versions=versions,
        order=resolved,
        results=[_result(entry, contents) for entry in entries],
        next_cursor=None if last is None else encode_cursor([resolved, *last]),
    )
