"""The PostgreSQL projection: rows and consumer offsets in one transaction per batch.

Every batch runs under the schema's advisory lock (the one migrations and `promote_rebuild`
take) with `search_path` set to the schema by name, so after a rebuild is promoted the next
batch writes to the new schema and finds that its stored offsets moved.

Writes are idempotent and independent of the order in which partitions are read:
result rows are keyed by event id (`ON CONFLICT DO NOTHING`); the media status and each
processing status keep the latest event by event time, except that a final status
(MediaCompleted) is never replaced by a non-final one; a run's progress applies only while
the run is processing and never lowers its percent; a deleted media item stays deleted and
ignores later results. Nothing has foreign keys, so results may precede MediaUploaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from projections.postgres.migrate import READMODEL_MIGRATIONS, apply_migrations, lock_schema
from projections.postgres.rows import (
    CONSUMED_EVENT_TYPES,
    JSONB_COLUMNS,
    MEDIA_RESULT_TABLES,
    EventRows,
    ItemOutcome,
    MediaChange,
    Row,
    RowMappingError,
    RunChange,
    event_rows,
)
from projections.runtime import (
    PoisonEventError,
    PositionMovedError,
    ProjectedEvent,
    TopicPartitionKey,
)
from projections.stages import COMPLETION_STATUSES
from visionlog.errors import ContractError
from visionlog.settings import Settings
from visionlog.stores import PgConnection, postgres_connect

CONSUMER_GROUP = "visionlog-projection-postgres"

# Conflict targets of the result tables. Pages and frames are keyed by position in the
# media item: a second event for the same page replaces the first only when its event id
# is greater, so the outcome does not depend on the order of arrival.
_RESULT_KEYS: dict[str, tuple[str, ...]] = {
    "pages": ("media_id", "page_number"),
    "frames": ("media_id", "frame_index"),
    "text_results": ("event_id",),
    "detections": ("event_id", "box_index"),
    "codes": ("event_id", "code_index"),
    "tracks": ("event_id", "track_id"),
    "redactions": ("event_id",),
    "scenes": ("event_id",),
    "outputs": ("event_id",),
}
_REPLACED_BY_GREATER_EVENT_ID = frozenset({"pages", "frames"})

# A final status (how the item's processing ended) outranks every other whatever its time.
_FINAL_STATUSES = sql.SQL(", ").join(sql.Literal(status) for status in COMPLETION_STATUSES)


def _final(status: sql.Composable) -> sql.Composed:
    return sql.SQL("CASE WHEN {} IN ({}) THEN 1 ELSE 0 END").format(status, _FINAL_STATUSES)


# Status order at equal event time: processing outranks an upload, the final ones follow.
_STATUS_RANK = sql.SQL(
    "CASE {} WHEN 'uploaded' THEN 0 WHEN 'processing' THEN 1 WHEN 'completed' THEN 2"
    " WHEN 'completed_with_errors' THEN 3 WHEN 'failed' THEN 4 ELSE 5 END"
)


def _adapt(row: Row) -> dict[str, Any]:
    return {key: Jsonb(value) if key in JSONB_COLUMNS else value for key, value in row.items()}


def _column_list(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(column) for column in columns)


def _placeholders(columns: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Placeholder(column) for column in columns)


def _result_insert(table: str, columns: tuple[str, ...]) -> sql.Composed:
    keys = _RESULT_KEYS[table]
    values: list[sql.Composable] = [sql.Placeholder(column) for column in columns]
    if table == "detections":
        # The frame's capture time and camera, when the frame is already known.
        frame = sql.SQL(
            "(SELECT f.{} FROM frames f WHERE f.media_id = %(media_id)s"
            " AND f.frame_index = %(frame_index)s)"
        )
        index = columns.index("observed_at")
        values[index] = sql.SQL("COALESCE({}, %(observed_at)s)").format(
            frame.format(sql.Identifier("captured_at"))
        )
        index = columns.index("camera_id")
        values[index] = sql.SQL("COALESCE(%(camera_id)s, {})").format(
            frame.format(sql.Identifier("camera_id"))
        )
    query = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({keys})"
    ).format(
        table=sql.Identifier(table),
        columns=_column_list(columns),
        values=sql.SQL(", ").join(values),
        keys=_column_list(keys),
    )
    if table not in _REPLACED_BY_GREATER_EVENT_ID:
        return sql.SQL("{} DO NOTHING").format(query)
    updates = sql.SQL(", ").join(
        sql.SQL("{column} = EXCLUDED.{column}").format(column=sql.Identifier(column))
        for column in columns
        if column not in keys
    )
    # A row without an event id holds only stage outcomes (ItemOutcome) read before it.
    return sql.SQL(
        "{query} DO UPDATE SET {updates}"
        " WHERE {table}.event_id IS NULL OR EXCLUDED.event_id > {table}.event_id"
    ).format(query=query, updates=updates, table=sql.Identifier(table))


def _status_wins(new: str, old: str) -> sql.Composed:
    """SQL: the status of `new` replaces `old` (final first, then latest event time, then
    rank)."""
    new_status = sql.SQL("{}.status").format(sql.Identifier(new))
    old_status = sql.SQL("{}.status").format(sql.Identifier(old))
    return sql.SQL(
        "({new_final}, {new}.status_at, {new_rank}) > ({old_final}, {old}.status_at, {old_rank})"
    ).format(
        new=sql.Identifier(new),
        old=sql.Identifier(old),
        new_final=_final(new_status),
        old_final=_final(old_status),
        new_rank=_STATUS_RANK.format(new_status),
        old_rank=_STATUS_RANK.format(old_status),
    )


def _merged_status(column: str) -> sql.Composed:
    return sql.SQL(
        "CASE WHEN media.status = 'deleted' THEN media.{column}"
        " WHEN {wins} THEN EXCLUDED.{column} ELSE media.{column} END"
    ).format(column=sql.Identifier(column), wins=_status_wins("excluded", "media"))


def _media_upload(columns: tuple[str, ...]) -> sql.Composed:
    # Once deleted, an item keeps no filename, source URI or labels, even when its
    # MediaUploaded is read after its MediaDeleted.
    erased = {"filename", "source_uri", "labels"}
    assignments: list[sql.Composable] = [
        sql.SQL("status = {}").format(_merged_status("status")),
        sql.SQL("status_at = {}").format(_merged_status("status_at")),
        sql.SQL("updated_at = now()"),
    ]
    for column in columns:
        if column in {"media_id", "status", "status_at"}:
            continue
        if column in erased:
            assignments.append(
                sql.SQL(
                    "{column} = CASE WHEN media.status = 'deleted' THEN media.{column}"
                    " ELSE EXCLUDED.{column} END"
                ).format(column=sql.Identifier(column))
            )
        else:
            assignments.append(
                sql.SQL("{column} = EXCLUDED.{column}").format(column=sql.Identifier(column))
            )
    return sql.SQL(
        "INSERT INTO media ({columns}) VALUES ({values})"
        " ON CONFLICT (media_id) DO UPDATE SET {assignments}"
    ).format(
        columns=_column_list(columns),
        values=_placeholders(columns),
        assignments=sql.SQL(", ").join(assignments),
    )


_MEDIA_STATUS = sql.SQL(
    "INSERT INTO media (media_id, tenant_id, owner_id, status, status_at, camera_id)"
    " VALUES (%(media_id)s, %(tenant_id)s, %(owner_id)s, %(status)s, %(status_at)s,"
    " %(camera_id)s)"
    " ON CONFLICT (media_id) DO UPDATE SET status = {status}, status_at = {status_at},"
    " camera_id = COALESCE(media.camera_id, EXCLUDED.camera_id), updated_at = now()"
).format(status=_merged_status("status"), status_at=_merged_status("status_at"))

# The earliest deletion wins, so two deletions give one outcome in any order.
_MEDIA_DELETE = sql.SQL(
    "INSERT INTO media (media_id, tenant_id, owner_id, status, status_at, deleted_at,"
    " deleted_reason, deleted_by)"
    " VALUES (%(media_id)s, %(tenant_id)s, %(owner_id)s, %(status)s, %(status_at)s,"
    " %(deleted_at)s, %(deleted_reason)s, %(deleted_by)s)"
    " ON CONFLICT (media_id) DO UPDATE SET status = 'deleted',"
    " status_at = LEAST(COALESCE(media.deleted_at, EXCLUDED.deleted_at), EXCLUDED.deleted_at),"
    " deleted_reason = CASE WHEN media.deleted_at IS NULL OR EXCLUDED.deleted_at < media.deleted_at"
    " THEN EXCLUDED.deleted_reason ELSE media.deleted_reason END,"
    " deleted_by = CASE WHEN media.deleted_at IS NULL OR EXCLUDED.deleted_at < media.deleted_at"
    " THEN EXCLUDED.deleted_by ELSE media.deleted_by END,"
    " deleted_at = LEAST(COALESCE(media.deleted_at, EXCLUDED.deleted_at), EXCLUDED.deleted_at),"
    " filename = NULL, source_uri = NULL, labels = '{}'::jsonb, updated_at = now()"
)

_PROCESSING_COLUMNS = (
    "media_id",
    "stage",
    "item_label",
    "model_version",
    "tenant_id",
    "owner_id",
    "model_name",
    "status",
    "error_type",
    "error",
    "retryable",
    "attempts",
    "event_id",
    "event_at",
)
_PROCESSING_UPSERT = sql.SQL(
    "INSERT INTO processing_status ({columns}) VALUES ({values})"
    " ON CONFLICT (media_id, stage, item_label, model_version) DO UPDATE SET {updates},"
    " updated_at = now()"
    " WHERE (EXCLUDED.event_at, EXCLUDED.event_id)"
    " > (processing_status.event_at, processing_status.event_id)"
).format(
    columns=_column_list(_PROCESSING_COLUMNS),
    values=_placeholders(_PROCESSING_COLUMNS),
    updates=sql.SQL(", ").join(
        sql.SQL("{column} = EXCLUDED.{column}").format(column=sql.Identifier(column))
        for column in _PROCESSING_COLUMNS[4:]
    ),
)

_AUDIT_COLUMNS = (
    "event_id",
    "event_type",
    "media_id",
    "tenant_id",
    "owner_id",
    "producer",
    "correlation_id",
    "causation_id",
    "occurred_at",
    "topic",
    "partition",
    "offset",
)
_AUDIT_INSERT = sql.SQL(
    "INSERT INTO audit_log ({columns}) VALUES ({values}) ON CONFLICT (event_id) DO NOTHING"
).format(columns=_column_list(_AUDIT_COLUMNS), values=_placeholders(_AUDIT_COLUMNS))

_FRAME_TIMES = sql.SQL(
    "UPDATE detections d SET observed_at = f.captured_at,"
    " camera_id = COALESCE(d.camera_id, f.camera_id)"
    " FROM frames f WHERE f.media_id = %(media_id)s AND f.frame_index = %(frame_index)s"
    " AND d.media_id = f.media_id AND d.frame_index = f.frame_index"
)

_RUN_PROGRESS_COLUMNS = (
    "media_id",
    "run_id",
    "tenant_id",
    "owner_id",
    "status",
    "percent",
    "items_expected",
    "items_completed",
    "stages",
    "progress_event_id",
    "progress_at",
)
# Progress moves a run only while it is processing and only forward in event time (a
# redelivery or an older report changes nothing); the percent never goes down.
_RUN_PROGRESS = sql.SQL(
    "INSERT INTO processing_runs ({columns}) VALUES ({values})"
    " ON CONFLICT (media_id, run_id) DO UPDATE SET"
    " percent = GREATEST(processing_runs.percent, EXCLUDED.percent),"
    " items_expected = COALESCE(EXCLUDED.items_expected, processing_runs.items_expected),"
    " items_completed = GREATEST(processing_runs.items_completed, EXCLUDED.items_completed),"
    " stages = EXCLUDED.stages, progress_event_id = EXCLUDED.progress_event_id,"
    " progress_at = EXCLUDED.progress_at, updated_at = now()"
    " WHERE processing_runs.status = 'processing'"
    " AND (EXCLUDED.progress_at, EXCLUDED.progress_event_id)"
    " > (COALESCE(processing_runs.progress_at, '-infinity'),"
    " COALESCE(processing_runs.progress_event_id, ''))"
).format(columns=_column_list(_RUN_PROGRESS_COLUMNS), values=_placeholders(_RUN_PROGRESS_COLUMNS))

_RUN_COMPLETION_COLUMNS = (
    "media_id",
    "run_id",
    "tenant_id",
    "owner_id",
    "status",
    "percent",
    "items_expected",
    "items_completed",
    "items_failed",
    "stages",
    "errors",
    "models",
    "started_at",
    "completed_at",
    "duration_ms",
    "completion_event_id",
)
# The completion is final; of two completions of one run (there should be one), the
# latest by event time, then id, wins, so the outcome does not depend on arrival order.
_RUN_COMPLETION = sql.SQL(
    "INSERT INTO processing_runs ({columns}) VALUES ({values})"
    " ON CONFLICT (media_id, run_id) DO UPDATE SET {updates},"
    # What progress said before is superseded: the row ends the same in any read order.
    " progress_event_id = NULL, progress_at = NULL, updated_at = now()"
    " WHERE processing_runs.completion_event_id IS NULL"
    " OR (EXCLUDED.completed_at, EXCLUDED.completion_event_id)"
    " > (processing_runs.completed_at, processing_runs.completion_event_id)"
).format(
    columns=_column_list(_RUN_COMPLETION_COLUMNS),
    values=_placeholders(_RUN_COMPLETION_COLUMNS),
    updates=sql.SQL(", ").join(
        sql.SQL("{column} = EXCLUDED.{column}").format(column=sql.Identifier(column))
        for column in _RUN_COMPLETION_COLUMNS[4:]
    ),
)

_OUTCOME_RANK = sql.SQL(
    "CASE {} WHEN 'done' THEN 1 WHEN 'skipped' THEN 2 WHEN 'failed' THEN 3 ELSE 0 END"
)


def _outcome_upsert(table: str, columns: tuple[str, ...]) -> sql.Composed:
    """One upsert per work report: merges the stages' outcomes into the page or frame row
    (created with the outcome alone when the page or frame was not read yet)."""
    keys = ("media_id", "page_number") if table == "pages" else ("media_id", "frame_index")
    target = sql.Identifier(table)
    wins = sql.SQL("{new} > {old}").format(
        new=_OUTCOME_RANK.format(sql.SQL("EXCLUDED.outcome")),
        old=_OUTCOME_RANK.format(sql.SQL("{}.outcome").format(target)),
    )
    assignments = [
        sql.SQL("stages = {t}.stages || EXCLUDED.stages").format(t=target),
        sql.SQL("outcome = CASE WHEN {wins} THEN EXCLUDED.outcome ELSE {t}.outcome END").format(
            wins=wins, t=target
        ),
        sql.SQL(
            "outcome_reason = CASE WHEN {wins} THEN EXCLUDED.outcome_reason"
            " ELSE {t}.outcome_reason END"
        ).format(wins=wins, t=target),
    ]
    if "camera_id" in columns:
        assignments.append(
            sql.SQL("camera_id = COALESCE({t}.camera_id, EXCLUDED.camera_id)").format(t=target)
        )
    return sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({keys})"
        " DO UPDATE SET {assignments}"
    ).format(
        table=target,
        columns=_column_list(columns),
        values=_placeholders(columns),
        keys=_column_list(keys),
        assignments=sql.SQL(", ").join(assignments),
    )


_OFFSETS_SELECT = sql.SQL(
    "SELECT topic, partition, next_offset FROM projection_offsets WHERE consumer = %s"
)
_OFFSETS_FOR_UPDATE = sql.SQL("{} FOR UPDATE").format(_OFFSETS_SELECT)
_OFFSETS_UPSERT = sql.SQL(
    "INSERT INTO projection_offsets (consumer, topic, partition, next_offset)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT (consumer, topic, partition)"
    " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()"
)


def _rendered(query: sql.Composable) -> bytes:
    """The query's text. psycopg renders a composed query again on every execute, which
    took half of a batch's time: the statements below are rendered once."""
    return query.as_bytes(None)


@cache
def _result_insert_text(table: str, columns: tuple[str, ...]) -> bytes:
    return _rendered(_result_insert(table, columns))


@cache
def _media_upload_text(columns: tuple[str, ...]) -> bytes:
    return _rendered(_media_upload(columns))


@cache
def _outcome_upsert_text(table: str, columns: tuple[str, ...]) -> bytes:
    return _rendered(_outcome_upsert(table, columns))


_MEDIA_STATUS_TEXT = _rendered(_MEDIA_STATUS)
_MEDIA_DELETE_TEXT = _rendered(_MEDIA_DELETE)
_PROCESSING_UPSERT_TEXT = _rendered(_PROCESSING_UPSERT)
_AUDIT_INSERT_TEXT = _rendered(_AUDIT_INSERT)
_FRAME_TIMES_TEXT = _rendered(_FRAME_TIMES)
_RUN_PROGRESS_TEXT = _rendered(_RUN_PROGRESS)
_RUN_COMPLETION_TEXT = _rendered(_RUN_COMPLETION)
_OFFSETS_UPSERT_TEXT = _rendered(_OFFSETS_UPSERT)


def _set_search_path(conn: PgConnection, schema: str) -> None:
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))


class PostgresProjection:
    """Projects the log into one PostgreSQL schema (`settings.projections.postgres_schema`
    unless `schema` is given, e.g. the rebuild schema)."""

    name = "postgres"
    event_types: tuple[str, ...] = CONSUMED_EVENT_TYPES
    offsets_in_sink = True

    def __init__(
        self,
        settings: Settings,
        schema: str | None = None,
        *,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.schema = schema or settings.projections.postgres_schema
        # Called inside the batch transaction after the writes, before COMMIT.
        self.before_commit = before_commit
        self._conn = postgres_connect(settings)
        apply_migrations(self._conn, self.schema, READMODEL_MIGRATIONS)
        # Where this instance expects each partition's next batch to start: what it last
        # stored or read. It tells skipped messages (not projected here) from a moved position.
        self._expected: dict[TopicPartitionKey, int] = {}

    @property
    def consumer_group(self) -> str:
        return f"{self.settings.kafka.topic_prefix}{CONSUMER_GROUP}"

    def stored_offsets(self) -> dict[TopicPartitionKey, int]:
        with self._conn.transaction():
            _set_search_path(self._conn, self.schema)
            stored = self._read_offsets()
        self._expected.update(stored)
        return stored

    def store_identity(self) -> str | None:
        return None

    def _read_offsets(self, *, for_update: bool = False) -> dict[TopicPartitionKey, int]:
        query = _OFFSETS_FOR_UPDATE if for_update else _OFFSETS_SELECT
        rows = self._conn.execute(query, (self.consumer_group,)).fetchall()
        return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    def apply(
        self, events: Sequence[ProjectedEvent], next_offsets: Mapping[TopicPartitionKey, int]
    ) -> None:
        mapped: list[tuple[ProjectedEvent, EventRows]] = []
        for event in events:
            try:
                mapped.append((event, event_rows(event)))
            except (RowMappingError, ContractError) as error:
                raise PoisonEventError(event, f"{event.event_type}: {error}") from error
        starts: dict[TopicPartitionKey, int] = {}
        for event in events:
            starts[event.position] = min(event.offset, starts.get(event.position, event.offset))
        with self._conn.transaction():
            _set_search_path(self._conn, self.schema)
            lock_schema(self._conn, self.schema)
            stored = self._read_offsets(for_update=True)
            self._check_position(stored, starts, next_offsets)
            deleted = self._deleted({rows.media_id for _, rows in mapped if rows.media_id})
            # Pipeline mode: the batch's statements go out without waiting for each answer
            # (a batch is hundreds of small statements; one round trip each dominated).
            with self._conn.pipeline():
                for _, rows in mapped:
                    self._write(rows, deleted)
                for (topic, partition), offset in next_offsets.items():
                    self._conn.execute(
                        _OFFSETS_UPSERT_TEXT, (self.consumer_group, topic, partition, offset)
                    )
            if self.before_commit is not None:
                self.before_commit()
        self._expected.update(next_offsets)

    def _check_position(
        self,
        stored: Mapping[TopicPartitionKey, int],
        starts: Mapping[TopicPartitionKey, int],
        next_offsets: Mapping[TopicPartitionKey, int],
    ) -> None:
        moved: dict[TopicPartitionKey, int] = {}
        for position, end in next_offsets.items():
            if position not in stored:
                continue
            start = self._expected.get(position, starts.get(position))
            if start is None:
                # Neither a known position nor an event of this partition: only a stored
                # offset at or beyond this batch's end can be told to have moved.
                if stored[position] >= end:
                    moved[position] = stored[position]
            elif stored[position] != start:
                moved[position] = stored[position]
        if moved:
            self._expected.update(stored)
            raise PositionMovedError(stored)

    def _write(self, rows: EventRows, deleted: set[str]) -> None:
        """Writes one event's rows; `deleted` holds the media erased so far (and grows)."""
        conn = self._conn
        if rows.audit is not None:
            conn.execute(_AUDIT_INSERT_TEXT, rows.audit)
        if rows.media_id is None:
            return
        if rows.erase:
            for table in MEDIA_RESULT_TABLES:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE media_id = %s").format(sql.Identifier(table)),
                    (rows.media_id,),
                )
            deleted.add(rows.media_id)
        elif rows.media_id in deleted:
            # Erased media stays erased: results read after its deletion are not kept.
            return
        if rows.media is not None:
            self._write_media(rows.media)
        for table, table_rows in rows.results.items():
            # One statement per row shape, its rows sent together (one round trip, not one
            # per row: a detection event has a row per box).
            shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in table_rows:
                shapes.setdefault(tuple(row), []).append(_adapt(row))
            with conn.cursor() as cursor:
                for columns, values in shapes.items():
                    cursor.executemany(_result_insert_text(table, columns), values)
                if table == "frames":
                    cursor.executemany(_FRAME_TIMES_TEXT, table_rows)
        for status in rows.processing:
            conn.execute(_PROCESSING_UPSERT_TEXT, status)
        if rows.run is not None:
            self._write_run(rows.run)
        if rows.outcome is not None:
            self._write_outcome(rows.outcome)

    def _deleted(self, media_ids: set[str]) -> set[str]:
        """The media of this batch that are erased already: one query per batch, not one
        per event (work reports arrive for every camera frame)."""
        if not media_ids:
            return set()
        found = self._conn.execute(
            "SELECT media_id FROM media WHERE media_id = ANY(%s) AND status = 'deleted'",
            (sorted(media_ids),),
        ).fetchall()
        return {row["media_id"] for row in found}

    def _write_run(self, change: RunChange) -> None:
        query = _RUN_PROGRESS_TEXT if change.kind == "progress" else _RUN_COMPLETION_TEXT
        self._conn.execute(query, _adapt(change.values))

    def _write_outcome(self, outcome: ItemOutcome) -> None:
        values = outcome.values
        self._conn.execute(_outcome_upsert_text(outcome.table, tuple(values)), _adapt(values))

    def _write_media(self, change: MediaChange) -> None:
        if change.kind == "upload":
            self._conn.execute(_media_upload_text(tuple(change.values)), _adapt(change.values))
        elif change.kind == "status":
            self._conn.execute(_MEDIA_STATUS_TEXT, change.values)
        else:
            self._conn.execute(_MEDIA_DELETE_TEXT, change.values)

    def generation_changed(self) -> bool:
        # The schema is resolved by name in every batch: a promoted rebuild is picked up
        # by the stored-offsets check, without reopening the consumer.
        return False

    def close(self) -> None:
        self._conn.close()


def _schema_exists(conn: PgConnection, schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def promote_rebuild(settings: Settings, live_schema: str, rebuild_schema: str) -> str:
    """Switches the rebuilt schema live in one transaction; returns the retired name.

    The live schema becomes `{live}_retired_{n}` (n one more than any retired before) and
    the rebuild schema takes the live name. Returns '' when there was no live schema yet.
    Runs under the advisory locks of both names, so no projection batch straddles the switch.
    """
    if live_schema == rebuild_schema:
        raise ValueError(f"live and rebuild schema are both {live_schema!r}")
    with postgres_connect(settings) as conn, conn.transaction():
        for name in sorted((live_schema, rebuild_schema)):
            lock_schema(conn, name)
        if not _schema_exists(conn, rebuild_schema):
            raise LookupError(f"rebuild schema {rebuild_schema!r} does not exist")
        retired = ""
        if _schema_exists(conn, live_schema):
            rows = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                (f"{live_schema}_retired_",),
            ).fetchall()
            prefix = f"{live_schema}_retired_"
            numbers = [
                int(row["nspname"][len(prefix) :])
                for row in rows
                if row["nspname"][len(prefix) :].isdigit()
            ]
            retired = f"{live_schema}_retired_{max(numbers, default=0) + 1}"
            conn.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(live_schema), sql.Identifier(retired)
                )
            )
        conn.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                sql.Identifier(rebuild_schema), sql.Identifier(live_schema)
            )
        )
    return retired
