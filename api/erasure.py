"""Erasure of a media item through the API: who may, and which blobs the request names.

The owner (any role that may upload) erases their own items, an admin any item of the
tenant. The request names the item's original unless another item that is not erased
shares that blob (a duplicate upload, or an item stored before originals were kept per
owner), which keeps it; the item's derived blobs sit under its own prefix and are found by
the erasure stage.
"""

from __future__ import annotations

from typing import Any, Literal

from psycopg import sql
from pydantic import BaseModel, Field

from api.auth.roles import Principal, Role
from api.context import ApiContext
from api.problems import forbidden, not_found
from api.readmodels import table, visible_media
from producers.erasure import ErasureReason, ErasureRequest, request_erasure
from producers.storage import orphan_marker_key
from visionlog.blobstore import ARTIFACTS


class ErasureOut(BaseModel):
    media_id: str
    status: Literal["deleting"] = Field(
        description="The erasure was published: the read models mark the item deleted and "
        "drop its results within seconds, and its blobs are deleted by the processors."
    )
    event_id: str = Field(description="Event id of the item's MediaDeleted.")
    blob_keys: list[str] = Field(
        description="Blobs named for deletion besides everything under the item's own prefix."
    )


def _shared_original(context: ApiContext, conn: Any, row: dict[str, Any]) -> bool:
    """Whether another item that is not erased points at the same original blob."""
    query = sql.SQL(
        "SELECT 1 FROM {} WHERE original_bucket = %s AND original_key = %s"
        " AND media_id <> %s AND status <> 'deleted' LIMIT 1"
    ).format(table(context, "media"))
    found = conn.execute(
        query, (row["original_bucket"], row["original_key"], row["media_id"])
    ).fetchone()
    return found is not None


def erase_media(
    context: ApiContext, principal: Principal, media_id: str, reason: ErasureReason
) -> ErasureOut:
    with context.pg() as conn:
        row = visible_media(context, conn, principal, media_id)
        if row is None or row["status"] == "deleted":
            raise not_found(f"no media item {media_id!r}")
        if principal.role is not Role.ADMIN and row["owner_id"] != principal.user_id:
            raise forbidden("only the item's owner or an admin may erase it")
        blob_keys = [f"{ARTIFACTS}/{orphan_marker_key(media_id)}"]
        original = row["original_bucket"] and row["original_key"]
        if original and not _shared_original(context, conn, row):
            blob_keys.append(f"{row['original_bucket']}/{row['original_key']}")
    request = ErasureRequest(
        media_id=media_id,
        tenant_id=principal.tenant_id,
        owner_id=row["owner_id"],
        requested_by=principal.username,
        reason=reason,
        blob_keys=blob_keys,
    )
    event_id = request_erasure(context.publisher(), request)
    for owner_scope in (None, row["owner_id"]):
        context.details.discard((media_id, principal.tenant_id, owner_scope))
    return ErasureOut(
        media_id=media_id, status="deleting", event_id=event_id, blob_keys=sorted(blob_keys)
    )
