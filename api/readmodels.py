"""Reading the read models with the caller's scope applied to every query."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from psycopg import sql
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from api.auth.roles import Principal
from api.context import ApiContext
from api.problems import bad_request
from visionlog.stores import PgConnection

GENERATIONS_COLLECTION = "read_model_generations"
FIRST_GENERATION = "g1"


def table(context: ApiContext, name: str) -> sql.Composed:
    """`schema.name` of a read-model table in the live PostgreSQL schema."""
    return sql.SQL("{}.{}").format(
        sql.Identifier(context.settings.projections.postgres_schema), sql.Identifier(name)
    )


def scope_sql(principal: Principal, alias: str = "") -> tuple[sql.Composable, list[Any]]:
    """The WHERE fragment restricting rows to the principal's tenant (and own media)."""
    prefix = f"{alias}." if alias else ""
    clause: sql.Composable = sql.SQL(prefix + "tenant_id = %s")
    params: list[Any] = [principal.tenant_id]
    if principal.owner_filter is not None:
        clause = sql.SQL("{} AND {}").format(clause, sql.SQL(prefix + "owner_id = %s"))
        params.append(principal.owner_filter)
    return clause, params


def scope_mongo(principal: Principal) -> dict[str, Any]:
    scope: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if principal.owner_filter is not None:
        scope["owner_id"] = principal.owner_filter
    return scope


def in_scope_mongo(document: dict[str, Any], principal: Principal) -> bool:
    """Whether a document fetched by its id alone is one `scope_mongo` would have matched.

    FerretDB uses the `_id` index only when `_id` is the whole filter; with the scope in
    the filter it scans the collection (a hundred times slower on a few hundred items)."""
    return all(document.get(key) == value for key, value in scope_mongo(principal).items())


def scope_qdrant(principal: Principal) -> list[qm.Condition]:
    conditions: list[qm.Condition] = [
        qm.FieldCondition(key="tenant_id", match=qm.MatchValue(value=principal.tenant_id))
    ]
    if principal.owner_filter is not None:
        conditions.append(
            qm.FieldCondition(key="owner_id", match=qm.MatchValue(value=principal.owner_filter))
        )
    return conditions


def mongo_generation(context: ApiContext) -> str:
    database = context.mongo[context.settings.mongo.database]
    pointer = database[GENERATIONS_COLLECTION].find_one({"_id": "current"})
    generation = pointer.get("generation") if pointer else None
    return str(generation) if generation else FIRST_GENERATION


def mongo_collection(context: ApiContext, base: str, generation: str | None = None) -> Any:
    database = context.mongo[context.settings.mongo.database]
    return database[f"{base}_{generation or mongo_generation(context)}"]


def qdrant_alias(context: ApiContext, target: str) -> str:
    return f"{context.settings.projections.qdrant_collection_prefix}_{target}"


def qdrant_has(client: QdrantClient, name: str) -> bool:
    """Whether a collection or alias of that name exists (none before the first vector)."""
    if any(alias.alias_name == name for alias in client.get_aliases().aliases):
        return True
    return client.collection_exists(name)


def visible_media(
    context: ApiContext, conn: PgConnection, principal: Principal, media_id: str
) -> dict[str, Any] | None:
    """The PostgreSQL media row when the principal may see the item; None otherwise, so
    another owner's media and missing media look the same (404)."""
    scope, params = scope_sql(principal)
    query = sql.SQL("SELECT * FROM {} WHERE media_id = %s AND {}").format(
        table(context, "media"), scope
    )
    row: dict[str, Any] | None = conn.execute(query, [media_id, *params]).fetchone()
    return row


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...]) -> list[Any]:
    """The keyset values of a cursor, each checked against its expected type."""
    malformed = bad_request("the cursor is malformed; pass back a next_cursor unchanged")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise malformed from exc
    if not isinstance(values, list) or len(values) != len(kinds):
        raise malformed
    decoded: list[Any] = []
    for value, kind in zip(values, kinds, strict=True):
        if kind is datetime:
            if not isinstance(value, str):
                raise malformed
            try:
                decoded.append(datetime.fromisoformat(value))
            except ValueError as exc:
                raise malformed from exc
        elif _is_int(value) if kind is int else isinstance(value, kind):
            decoded.append(value)
        else:
            raise malformed
    return decoded


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def item_rank(label: sql.Composable) -> sql.Composed:
    """SQL: where an item comes in its media item's order, by its label: the whole item
    (`media`, then `original`) first, then pages, then frames."""
    return sql.SQL(
        "(CASE WHEN {l} = 'media' THEN 0 WHEN {l} = 'original' THEN 1"
        " WHEN starts_with({l}, 'page-') THEN 2 WHEN starts_with({l}, 'frame-') THEN 3"
        " ELSE 4 END)"
    ).format(l=label)


def item_number(label: sql.Composable) -> sql.Composed:
    """SQL: the page number or frame index in an item label (0 for the whole item), so
    pages sort by number whatever the width of their zero padding."""
    return sql.SQL("COALESCE(substring({} FROM '^[a-z]+-([0-9]{{1,18}})$')::bigint, 0)").format(
        label
    )


def item_fields(label: str) -> dict[str, int | None]:
    """Page number and frame index named by an item label (`page-0003`, `frame-00000042`)."""
    kind, _, number = label.partition("-")
    if number.isdigit() and kind in ("page", "frame"):
        return {
            "page_number": int(number) if kind == "page" else None,
            "frame_index": int(number) if kind == "frame" else None,
        }
    return {"page_number": None, "frame_index": None}
