"""Per-table checksums of a read-model schema, to prove that a rebuild equals the live one.

Each table's rows are serialised as JSON arrays of their columns, ordered by primary key,
and hashed with SHA-256 inside PostgreSQL. Columns that record when the projection wrote
a row (`updated_at`, `applied_at`) and where the event was read (the audit log's topic,
partition and offset) are left out, as are the bookkeeping tables, so replaying the same
events into a fresh schema gives the same checksums.
"""

from __future__ import annotations

from psycopg import sql

from visionlog.stores import PgConnection

PROJECTION_TIME_COLUMNS: frozenset[str] = frozenset({"updated_at", "applied_at"})
EXCLUDED_COLUMNS: dict[str, frozenset[str]] = {
    "audit_log": frozenset({"topic", "partition", "offset"}),
}
EXCLUDED_TABLES: frozenset[str] = frozenset({"schema_migrations", "projection_offsets"})


def _tables(conn: PgConnection, schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
        (schema,),
    ).fetchall()
    return [row["relname"] for row in rows if row["relname"] not in EXCLUDED_TABLES]


def _columns(conn: PgConnection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    excluded = PROJECTION_TIME_COLUMNS | EXCLUDED_COLUMNS.get(table, frozenset())
    return [row["column_name"] for row in rows if row["column_name"] not in excluded]


def _primary_key(conn: PgConnection, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
        " WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary ORDER BY k.position",
        (schema, table),
    ).fetchall()
    if not rows:
        raise LookupError(f"table {schema}.{table} has no primary key to order its rows by")
    return [row["attname"] for row in rows]


def readmodel_checksum(conn: PgConnection, schema: str) -> dict[str, str]:
    """SHA-256 (hex) of each table's content by table name; an empty table hashes ''."""
    checksums: dict[str, str] = {}
    for table in _tables(conn, schema):
        columns = _columns(conn, schema, table)
        order = _primary_key(conn, schema, table)
        query = sql.SQL(
            "SELECT encode(sha256(convert_to(coalesce(string_agg("
            "jsonb_build_array({columns})::text, E'\\n' ORDER BY {order}), ''), 'UTF8')),"
            " 'hex') AS digest FROM {schema}.{table}"
        ).format(
            columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns),
            order=sql.SQL(", ").join(sql.Identifier(column) for column in order),
            schema=sql.Identifier(schema),
            table=sql.Identifier(table),
        )
        row = conn.execute(query).fetchone()
        if row is None:
            raise LookupError(f"no checksum row for {schema}.{table}")
        checksums[table] = str(row["digest"])
    if not checksums:
        raise LookupError(f"schema {schema!r} has no read-model tables")
    return checksums
