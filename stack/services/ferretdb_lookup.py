"""Index lookups by `_id` for FerretDB 1.24 on PostgreSQL.

FerretDB keeps each collection as a table of one `jsonb` column and indexes `_id` with a
btree on `_jsonb->'_id'`, but it filters by `_id` with a containment test
(`_jsonb->'_id' @> '"..."'`), which a btree cannot answer: every `find_one({"_id": ...})`
and every update or upsert read the whole table. Measured under the sustained load: 93 ms
per lookup in a 4,000-document results collection, growing with it, and the MongoDB read
model fell a minute behind per minute; with a GIN index the same lookup took 0.05 ms.

So FerretDB's database gets a GIN (`jsonb_path_ops`) index on `_jsonb->'_id'` for every
collection table: tables that exist get it now, and an event trigger gives it to each table
FerretDB creates later (new collections, rebuild generations), in the same transaction.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

TRIGGER = "visionlog_ferretdb_id_lookup"
FUNCTION = "visionlog_ferretdb_id_lookup_index"
INDEX_SUFFIX = "_id_lookup"

_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    created record;
BEGIN
    FOR created IN
        SELECT c.oid, c.relname
        FROM pg_event_trigger_ddl_commands() AS ddl
        JOIN pg_class AS c ON c.oid = ddl.objid
        WHERE ddl.object_type = 'table'
          AND EXISTS (
              SELECT 1 FROM pg_attribute AS a
              WHERE a.attrelid = c.oid AND a.attname = '_jsonb'
                AND a.atttypid = 'jsonb'::regtype AND NOT a.attisdropped
          )
    LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> ''_id'') jsonb_path_ops)',
            left(created.relname, 63 - length('{INDEX_SUFFIX}')) || '{INDEX_SUFFIX}',
            created.oid::regclass
        );
    END LOOP;
END;
$$
"""

_TABLES_WITHOUT_INDEX_SQL = f"""
SELECT n.nspname AS schema, c.relname AS table
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = '_jsonb' AND NOT a.attisdropped
WHERE c.relkind = 'r' AND a.atttypid = 'jsonb'::regtype
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND NOT EXISTS (
      SELECT 1 FROM pg_index AS i JOIN pg_class AS ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = c.oid
        AND ic.relname = left(c.relname, 63 - length('{INDEX_SUFFIX}')) || '{INDEX_SUFFIX}'
  )
"""


def index_name(table: str) -> str:
    return table[: 63 - len(INDEX_SUFFIX)] + INDEX_SUFFIX


def ensure_id_lookup_indexes(conninfo: str) -> list[str]:
    """Installs the trigger in FerretDB's database and indexes the tables that lack the
    index; returns the tables indexed now. Needs a superuser (event triggers do); the
    stack's PostgreSQL user is its bootstrap superuser."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(_FUNCTION_SQL)
        exists = conn.execute(
            "SELECT 1 FROM pg_event_trigger WHERE evtname = %s", (TRIGGER,)
        ).fetchone()
        if not exists:
            conn.execute(
                sql.SQL(
                    "CREATE EVENT TRIGGER {} ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
                    "EXECUTE FUNCTION {}()"
                ).format(sql.Identifier(TRIGGER), sql.Identifier(FUNCTION))
            )
        indexed = []
        for row in conn.execute(_TABLES_WITHOUT_INDEX_SQL).fetchall():
            schema, table = row[0], row[1]
            # Concurrently: a table that already holds a read model stays writable meanwhile.
            conn.execute(
                sql.SQL(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} "
                    "USING gin ((_jsonb -> '_id') jsonb_path_ops)"
                ).format(sql.Identifier(index_name(table)), sql.Identifier(schema, table))
            )
            indexed.append(f"{schema}.{table}")
        return indexed
