"""Versioned SQL migrations for one PostgreSQL schema.

Files are named `NNNN_name.sql` and applied in version order, each in its own transaction
with `search_path` set to the target schema, so migrations use unqualified names and the
same files build the live, rebuild and test schemas. Applied versions are recorded in
`{schema}.schema_migrations`. A transaction-scoped advisory lock keyed on the schema name
serialises concurrent callers, so no migration runs twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

READMODEL_MIGRATIONS: Path = Path(__file__).resolve().parent / "migrations"

_MIGRATION_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The migrations directory is malformed (bad names, duplicate versions)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def schema_lock_key(schema: str) -> sql.Composed:
    """The advisory lock expression that serialises DDL and batches on one schema."""
    return sql.SQL("pg_advisory_xact_lock(hashtext({}))").format(
        sql.Literal(f"visionlog.schema:{schema}")
    )


def lock_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Takes the schema's advisory lock until the current transaction ends."""
    conn.execute(sql.SQL("SELECT {}").format(schema_lock_key(schema)))


def discover_migrations(directory: Path) -> list[Migration]:
    """The migrations in `directory`, ordered by version; rejects stray or duplicate files."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"migration file {path.name} does not match NNNN_lowercase_name.sql"
            )
        version = int(match["version"])
        if version in found:
            raise MigrationError(
                f"migration version {version:04d} appears twice: "
                f"{found[version].path.name} and {path.name}"
            )
        found[version] = Migration(version, path.stem, path)
    return [found[v] for v in sorted(found)]


def apply_migrations(conn: psycopg.Connection[Any], schema: str, directory: Path) -> list[str]:
    """Creates `schema` if missing and applies the migrations of `directory` it lacks.

    Returns the names (file stems) applied, in order. `conn` must not be inside a
    transaction: each migration commits on its own.
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError("apply_migrations needs a connection outside a transaction")
    migrations = discover_migrations(directory)
    schema_id = sql.Identifier(schema)
    with conn.transaction():
        lock_schema(conn, schema)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema_id))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(schema_id)
        )
    applied: list[str] = []
    for migration in migrations:
        with conn.transaction():
            lock_schema(conn, schema)
            row = conn.execute(
                sql.SQL("SELECT 1 FROM {}.schema_migrations WHERE version = %s").format(schema_id),
                (migration.version,),
            ).fetchone()
            if row is not None:
                continue
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema_id))
            conn.execute(migration.path.read_text(encoding="utf-8"))
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)").format(
                    schema_id
                ),
                (migration.version, migration.name),
            )
        applied.append(migration.name)
    return applied
