"""Downloads of a media item: the original, its anonymised copies and every output, each
stored file once (its latest version), grouped by item and paged with an opaque cursor.

A principal whose role may see anonymised media only (`Permission.READ_ORIGINALS` not
granted: viewers) is listed the anonymised copies (redacted images, masked text) and
nothing else; asking for any other download by its id answers 403.
"""

from __future__ import annotations

import mimetypes
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from psycopg import sql
from pydantic import BaseModel, Field

from api.auth.dependencies import Reader
from api.auth.roles import Permission, Principal
from api.context import ApiContext, get_context
from api.params import NO_NUL, PathId
from api.problems import forbidden, not_found, problem_responses
from api.readmodels import (
    decode_cursor,
    encode_cursor,
    item_number,
    item_rank,
    table,
    visible_media,
)
from visionlog.stores import PgConnection

router = APIRouter(tags=["media"])
Context = Annotated[ApiContext, Depends(get_context)]
Row = dict[str, Any]

ORIGINAL = "original"
ANONYMISED_IMAGE = "ANONYMISED_IMAGE"
REDACTED_TEXT = "REDACTED_TEXT"
# Kinds a principal limited to anonymised media may download.
ANONYMISED_KINDS: frozenset[str] = frozenset({ANONYMISED_IMAGE, REDACTED_TEXT})
# Item label of what concerns the whole media item (the original, the combined report).
WHOLE_MEDIA = "media"
DEFAULT_DOWNLOAD_LIMIT = 100


class DownloadLink(BaseModel):
    download_id: str = Field(
        default="",
        description="Stable id of the download: GET /v1/media/{id}/downloads/{download_id}"
        " gives a fresh URL.",
    )
    kind: str = Field(
        description="original, ANONYMISED_IMAGE (an anonymised copy), or the output's kind"
        " (REDACTED_TEXT, JSON, COMBINED_REPORT, …)."
    )
    label: str
    item_label: str = Field(
        default=WHOLE_MEDIA,
        description="`media` (the whole item), `original` (an image), `page-0003` or"
        " `frame-00000042`.",
    )
    page_number: int | None = None
    frame_index: int | None = None
    anonymised: bool = Field(
        default=False, description="An anonymised copy (faces, plates, PII masked)."
    )
    content_type: str | None
    size_bytes: int | None
    model_name: str | None = None
    model_version: str | None = None
    created_at: datetime | None = Field(
        default=None, description="When this version of the file was announced."
    )
    url: str
    expires_in: int


class DownloadGroup(BaseModel):
    item_label: str
    page_number: int | None
    frame_index: int | None
    downloads: list[DownloadLink]


class DownloadsOut(BaseModel):
    media_id: str
    downloads: list[DownloadLink] = Field(
        description="This page's downloads in item order: the whole item first, then pages"
        " by number, then frames by index."
    )
    items: list[DownloadGroup] = Field(
        default_factory=list, description="The same downloads, grouped by item."
    )
    anonymised_only: bool = Field(
        default=False,
        description="True when the caller's role may see anonymised copies only (the"
        " original and outputs showing it are left out).",
    )
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null at the end."
    )


def sees_originals(principal: Principal) -> bool:
    return principal.can(Permission.READ_ORIGINALS)


def _files_query(context: ApiContext, media_id: str) -> tuple[sql.Composed, list[Any]]:
    """Every stored file of the item once: the original (unless deleted), then outputs and
    anonymised copies, the latest announcement of each bucket and key."""
    query = sql.SQL(
        "SELECT 'original' AS download_id, 'original' AS kind, 'media' AS item_label,"
        " NULL::integer AS page_number, NULL::bigint AS frame_index,"
        " original_bucket AS bucket, original_key AS key,"
        " original_content_type AS content_type, original_size_bytes AS size_bytes,"
        " NULL AS model_name, NULL AS model_version, uploaded_at AS created_at,"
        " false AS anonymised, 0 AS entry_rank, filename"
        " FROM {media} WHERE media_id = %s AND status <> 'deleted'"
        " AND original_bucket IS NOT NULL AND original_key IS NOT NULL"
        " UNION ALL"
        " SELECT * FROM (SELECT DISTINCT ON (bucket, key) download_id, kind, item_label,"
        " page_number, frame_index, bucket, key, content_type, size_bytes, model_name,"
        " model_version, created_at, anonymised, entry_rank, NULL AS filename FROM ("
        "  SELECT 'o-' || event_id AS download_id, kind, item_label, page_number,"
        "  frame_index, output_bucket AS bucket, output_key AS key,"
        "  output_content_type AS content_type, output_size_bytes AS size_bytes, model_name,"
        "  model_version, occurred_at AS created_at, kind = ANY(%s) AS anonymised,"
        "  CASE WHEN kind = ANY(%s) THEN 1 ELSE 2 END AS entry_rank, 0 AS preference, event_id"
        "  FROM {outputs} WHERE media_id = %s"
        "  UNION ALL"
        "  SELECT 'a-' || event_id, %s::text, item_label, page_number, frame_index,"
        "  redacted_bucket, redacted_key, NULL, NULL, model_name, model_version, occurred_at,"
        "  true, 1, 0, event_id FROM {redactions} WHERE media_id = %s"
        "  UNION ALL"
        "  SELECT 't-' || event_id, %s::text, item_label, page_number, frame_index,"
        "  redacted_text_bucket, redacted_text_key, 'text/plain; charset=utf-8', NULL,"
        "  model_name, model_version, occurred_at, true, 1, 1, event_id FROM {redactions}"
        "  WHERE media_id = %s AND redacted_text_bucket IS NOT NULL"
        "  AND redacted_text_key IS NOT NULL"
        " ) candidates ORDER BY bucket, key, created_at DESC, preference, event_id DESC) latest"
    ).format(
        media=table(context, "media"),
        outputs=table(context, "outputs"),
        redactions=table(context, "redactions"),
    )
    kinds = sorted(ANONYMISED_KINDS)
    params: list[Any] = [
        media_id,
        kinds,
        kinds,
        media_id,
        ANONYMISED_IMAGE,
        media_id,
        REDACTED_TEXT,
        media_id,
    ]
    label = sql.Identifier("item_label")
    ranked = sql.SQL(
        "SELECT *, {rank} AS item_rank, {number} AS item_number,"
        " bucket || '/' || key AS file FROM ({files}) files"
    ).format(rank=item_rank(label), number=item_number(label), files=query)
    return ranked, params


_SORT_COLUMNS = ("item_rank", "item_number", "item_label", "entry_rank", "kind", "file")
_CURSOR_KINDS: tuple[type, ...] = (int, int, str, int, str, str)


def _select(
    context: ApiContext,
    conn: PgConnection,
    media_id: str,
    *,
    anonymised_only: bool,
    after: list[Any] | None = None,
    download_id: str | None = None,
    limit: int,
) -> list[Row]:
    files, params = _files_query(context, media_id)
    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    if anonymised_only:
        clauses.append(sql.SQL("anonymised"))
    if download_id is not None:
        clauses.append(sql.SQL("download_id = %s"))
        params.append(download_id)
    if after is not None:
        clauses.append(
            sql.SQL("({}) > ({})").format(
                sql.SQL(", ").join(sql.Identifier(column) for column in _SORT_COLUMNS),
                sql.SQL(", ").join(sql.Placeholder() for _ in _SORT_COLUMNS),
            )
        )
        params.extend(after)
    query = sql.SQL("SELECT * FROM ({}) ranked WHERE {} ORDER BY {} LIMIT %s").format(
        files,
        sql.SQL(" AND ").join(clauses),
        sql.SQL(", ").join(sql.Identifier(column) for column in _SORT_COLUMNS),
    )
    rows: list[Row] = conn.execute(query, [*params, limit]).fetchall()
    return rows


def _link(context: ApiContext, row: Row) -> DownloadLink:
    ttl = context.settings.api.presigned_url_ttl_s
    if row["kind"] == ORIGINAL:
        label = row["filename"] or ORIGINAL
    elif row["model_name"]:
        label = f"{row['item_label']} ({row['model_name']}/{row['model_version']})"
    else:
        label = row["item_label"]
    content_type = row["content_type"] or mimetypes.guess_type(row["key"])[0]
    return DownloadLink(
        download_id=row["download_id"],
        kind=row["kind"],
        label=label,
        item_label=row["item_label"],
        page_number=row["page_number"],
        frame_index=row["frame_index"],
        anonymised=row["anonymised"],
        content_type=content_type,
        size_bytes=row["size_bytes"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        created_at=row["created_at"],
        url=context.blobs.presigned_url({"bucket": row["bucket"], "key": row["key"]}, ttl),
        expires_in=ttl,
    )


def _groups(links: list[DownloadLink]) -> list[DownloadGroup]:
    groups: list[DownloadGroup] = []
    for link in links:
        if not groups or groups[-1].item_label != link.item_label:
            groups.append(
                DownloadGroup(
                    item_label=link.item_label,
                    page_number=link.page_number,
                    frame_index=link.frame_index,
                    downloads=[],
                )
            )
        groups[-1].downloads.append(link)
    return groups


def _require_media(
    context: ApiContext, conn: PgConnection, principal: Principal, media_id: str
) -> Row:
    row = visible_media(context, conn, principal, media_id)
    if row is None:
        raise not_found(f"no media item {media_id!r}")
    return row


@router.get(
    "/media/{media_id}/downloads",
    response_model=DownloadsOut,
    summary="Short-lived presigned URLs for the original, the anonymised copies and every"
    " output, one per stored file, grouped by item and paged with a cursor",
    description="Each stored file is listed once, its latest version. A role that may see"
    " anonymised media only (viewer) gets the anonymised copies and nothing else.",
    responses=problem_responses(400, 401, 403, 404),
)
def get_downloads(
    media_id: PathId,
    principal: Reader,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_DOWNLOAD_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1000, pattern=NO_NUL)] = None,
) -> DownloadsOut:
    limit = min(limit, context.settings.api.max_page_size)
    after = None if cursor is None else decode_cursor(cursor, _CURSOR_KINDS)
    anonymised_only = not sees_originals(principal)
    with context.pg() as conn:
        _require_media(context, conn, principal, media_id)
        rows = _select(
            context,
            conn,
            media_id,
            anonymised_only=anonymised_only,
            after=after,
            limit=limit + 1,
        )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1][column] for column in _SORT_COLUMNS])
    links = [_link(context, row) for row in rows]
    return DownloadsOut(
        media_id=media_id,
        downloads=links,
        items=_groups(links),
        anonymised_only=anonymised_only,
        next_cursor=next_cursor,
    )


@router.get(
    "/media/{media_id}/downloads/{download_id}",
    response_model=DownloadLink,
    summary="A fresh presigned URL for one download (403 for the original and outputs"
    " showing it, where the role may see anonymised copies only)",
    responses=problem_responses(401, 403, 404),
)
def get_download(
    media_id: PathId, download_id: PathId, principal: Reader, context: Context
) -> DownloadLink:
    with context.pg() as conn:
        _require_media(context, conn, principal, media_id)
        rows = _select(
            context, conn, media_id, anonymised_only=False, download_id=download_id, limit=1
        )
    if not rows:
        raise not_found(f"no download {download_id!r} of media item {media_id!r}")
    row = rows[0]
    if not row["anonymised"] and not sees_originals(principal):
        raise forbidden(f"the role {principal.role.value!r} may download anonymised copies only")
    return _link(context, row)
