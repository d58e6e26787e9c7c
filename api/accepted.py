"""Read your own writes: uploads the API accepted, until the read model shows them.

`POST /v1/ingest` answers 202 once Kafka acknowledged the item's MediaUploaded, but the
PostgreSQL projection applies it later (seconds to minutes behind). Before the 202 the API
records the upload in its own table (`accepted_uploads`, in the auth schema), and
`GET /v1/media/{id}` answers such an item as `accepted` with what the upload told, never
404, until the read model has its row; from then on the read model answers.

Rows whose item the read model has, and rows older than `RETENTION`, are deleted now and
then (`CLEANUP_INTERVAL_S` at most once per process), by whichever request comes by.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from api.auth.roles import Principal
from api.readmodels import scope_sql
from producers.http import AcceptedUpload
from visionlog import stores

log = logging.getLogger(__name__)

ACCEPTED_TABLE = "accepted_uploads"
# The status an accepted item shows until the read model has it.
ACCEPTED_STATUS = "accepted"
# Cleaning runs at most this often per process.
CLEANUP_INTERVAL_S = 60.0
# A row older than this is gone even if the read model never showed its item (a projection
# that is that far behind has bigger problems; the item is not lost, only not shown early).
RETENTION = timedelta(days=1)


class DetailSource(StrEnum):
    """Which record answers for a media item."""

    READ_MODEL = "read_model"
    ACCEPTED = "accepted"
    MISSING = "missing"


def detail_source(
    read_model_row: dict[str, Any] | None, accepted_row: dict[str, Any] | None
) -> DetailSource:
    """The read model once it has the item (whatever it says), else the accepted upload,
    else nothing (404). Both rows are already narrowed to what the caller may see."""
    if read_model_row is not None:
        return DetailSource.READ_MODEL
    if accepted_row is not None:
        return DetailSource.ACCEPTED
    return DetailSource.MISSING


class CleanupSchedule:
    """Says when cleaning is due: at most once per `interval_s`, to one caller (thread-safe)."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._next_at: float | None = None
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """True for the one caller that should clean now; the next is due an interval later."""
        now = self._clock()
        with self._lock:
            if self._next_at is not None and now < self._next_at:
                return False
            self._next_at = now + self.interval_s
            return True


def accepted_row(upload: AcceptedUpload) -> dict[str, Any]:
    """The table row of an accepted upload."""
    result = upload.result
    original = result.original
    position = result.position
    return {
        "media_id": result.media_id,
        "tenant_id": upload.tenant_id,
        "owner_id": upload.owner_id,
        "event_id": result.event_id,
        "trace_id": result.trace_id,
        "filename": upload.filename,
        "kind": result.media_kind.value,
        "media_type": result.media_type,
        "content_type": original.get("content_type"),
        "size_bytes": original.get("size_bytes"),
        "profile": upload.profile,
        "duplicate_of": result.duplicate_of,
        "labels": Jsonb(dict(upload.labels)),
        "original_bucket": original["bucket"],
        "original_key": original["key"],
        "original_sha256": original.get("sha256"),
        "width": result.width,
        "height": result.height,
        "page_count": result.page_count,
        "duration_ms": result.duration_ms,
        "log_topic": position.topic if position is not None else None,
        "log_partition": position.partition if position is not None else None,
        "log_offset": position.offset if position is not None else None,
    }


class AcceptedUploads:
    """The `accepted_uploads` table of one auth schema, next to one read-model schema."""

    def __init__(
        self,
        pool: ConnectionPool[stores.PgConnection],
        schema: str,
        readmodel_schema: str,
        *,
        cleanup: CleanupSchedule | None = None,
        retention: timedelta = RETENTION,
    ) -> None:
        self.pool = pool
        self.table = sql.Identifier(schema, ACCEPTED_TABLE)
        self.media_table = sql.Identifier(readmodel_schema, "media")
        self.cleanup = cleanup or CleanupSchedule(CLEANUP_INTERVAL_S)
        self.retention = retention

    def record(self, upload: AcceptedUpload) -> None:
        """Keeps the upload (an idempotent replay or a retry finds it kept already)."""
        row = accepted_row(upload)
        query = sql.SQL(
            "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT (media_id) DO NOTHING"
        ).format(
            table=self.table,
            columns=sql.SQL(", ").join(sql.Identifier(name) for name in row),
            values=sql.SQL(", ").join(sql.Placeholder(name) for name in row),
        )
        with self.pool.connection() as conn:
            conn.execute(query, row)
        self.clean_if_due()

    def listener(self, upload: AcceptedUpload) -> None:
        """`record`, best effort: the upload is published already, and failing it now would
        invite a retry that makes a second item. It only shows later, through the read model."""
        try:
            self.record(upload)
        except Exception:
            log.warning(
                "could not record the accepted upload %s; it shows once projected",
                upload.result.media_id,
                exc_info=True,
            )

    def find(self, principal: Principal, media_id: str) -> dict[str, Any] | None:
        """The accepted upload when the principal may see it (the read model's rule)."""
        scope, params = scope_sql(principal)
        query = sql.SQL("SELECT * FROM {} WHERE media_id = %s AND {}").format(self.table, scope)
        with self.pool.connection() as conn:
            row: dict[str, Any] | None = conn.execute(query, [media_id, *params]).fetchone()
        self.clean_if_due()
        return row

    def clean_if_due(self) -> None:
        if not self.cleanup.claim():
            return
        try:
            removed = self.clean()
        except Exception:
            log.warning("could not clean the accepted uploads", exc_info=True)
            return
        if removed:
            log.debug("removed %d accepted uploads (projected or expired)", removed)

    def clean(self) -> int:
        """Deletes the rows the read model has caught up with, and the expired ones."""
        expired = sql.SQL("accepted_at < now() - %s")
        projected = sql.SQL("EXISTS (SELECT 1 FROM {} m WHERE m.media_id = a.media_id)").format(
            self.media_table
        )
        try:
            return self._delete(sql.SQL("{} OR {}").format(expired, projected))
        except psycopg.errors.UndefinedTable:
            # No read model yet (nothing projected): only age counts.
            return self._delete(expired)

    def _delete(self, condition: sql.Composable) -> int:
        query = sql.SQL("DELETE FROM {} a WHERE {}").format(self.table, condition)
        with self.pool.connection() as conn:
            return conn.execute(query, [self.retention]).rowcount
