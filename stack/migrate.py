"""`visionlog migrate`: every PostgreSQL schema of the platform, migrated in one step.

Processes migrate their own schema on start too (the projection its read model, the API
its auth schema); a deployment runs this first, as a Job, so that new code never starts
against an old schema and concurrent starts do not all race for the migration lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from api.auth.store import AUTH_MIGRATIONS, AUTH_SCHEMA
from projections.postgres.migrate import READMODEL_MIGRATIONS, apply_migrations
from visionlog.settings import Settings
from visionlog.stores import postgres_connect


class MigrateError(Exception):
    """Migrating one schema failed; the message names the schema and the cause."""


@dataclass(frozen=True)
class SchemaMigrations:
    purpose: str
    schema: str
    directory: Path


@dataclass(frozen=True)
class MigrationOutcome:
    target: SchemaMigrations
    applied: list[str]


def platform_schemas(settings: Settings, auth_schema: str = AUTH_SCHEMA) -> list[SchemaMigrations]:
    return [
        SchemaMigrations("read model", settings.projections.postgres_schema, READMODEL_MIGRATIONS),
        SchemaMigrations("API auth", auth_schema, AUTH_MIGRATIONS),
    ]


def migrate_platform(settings: Settings, auth_schema: str = AUTH_SCHEMA) -> list[MigrationOutcome]:
    """Applies every pending migration, schema by schema; stops at the first failure."""
    outcomes: list[MigrationOutcome] = []
    for target in platform_schemas(settings, auth_schema):
        try:
            with postgres_connect(settings, autocommit=True) as conn:
                applied = apply_migrations(conn, target.schema, target.directory)
        except Exception as exc:
            raise MigrateError(
                f"migrating the {target.purpose} schema {target.schema!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        outcomes.append(MigrationOutcome(target, applied))
    return outcomes
