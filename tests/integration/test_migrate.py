"""`visionlog migrate`, run as the Kubernetes migration Job runs it, on the real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from psycopg import sql

from tests.ports import free_port
from visionlog.settings import Settings
from visionlog.stores import postgres_connect

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO / "projections" / "postgres" / "migrations"
AUTH_MIGRATIONS = REPO / "api" / "migrations"

REPO = Path(__file__).resolve().parents[2]


def migrate(auth_schema: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **{f"VISIONLOG_{key.upper()}": value for key, value in settings.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "stack.cli", "migrate", "--auth-schema", auth_schema],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tables(settings: Settings, schema: str) -> set[str]:
    with postgres_connect(settings) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {row["table_name"] for row in rows}


def test_migrate_creates_both_schemas_then_has_nothing_left_to_apply(
    pg_schema: Settings, unique_name: str
) -> None:
    readmodel = pg_schema.projections.postgres_schema
    # Under the test's name, so the pg_schema fixture drops it too.
    auth = f"{unique_name}_auth"
    first = migrate(auth, projections__postgres_schema=readmodel)
    assert first.returncode == 0, first.stderr
    assert f"read model schema {readmodel}: applied 0001_readmodel" in first.stdout
    assert "0002_completion" in first.stdout
    assert f"API auth schema {auth}: applied 0001_auth" in first.stdout

    assert {"schema_migrations", "media", "detections", "text_results"} <= tables(
        pg_schema, readmodel
    )
    assert {"schema_migrations", "users"} <= tables(pg_schema, auth)

    second = migrate(auth, projections__postgres_schema=readmodel)
    assert second.returncode == 0, second.stderr
    assert f"read model schema {readmodel}: applied nothing (up to date)" in second.stdout
    assert f"API auth schema {auth}: applied nothing (up to date)" in second.stdout
    shipped = {
        readmodel: len(list(MIGRATIONS.glob("*.sql"))),
        auth: len(list(AUTH_MIGRATIONS.glob("*.sql"))),
    }
    with postgres_connect(pg_schema) as conn:
        for schema in (readmodel, auth):
            (row,) = conn.execute(
                sql.SQL("SELECT count(*) AS n FROM {}.schema_migrations").format(
                    sql.Identifier(schema)
                )
            ).fetchall()
            # Every shipped migration applied once, and recorded once.
            assert row["n"] == shipped[schema]


def test_migrate_fails_with_a_clear_message_when_postgres_is_unreachable(
    pg_schema: Settings, unique_name: str
) -> None:
    result = migrate(
        f"{unique_name}_auth",
        projections__postgres_schema=pg_schema.projections.postgres_schema,
        postgres__port=str(free_port()),
    )
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert (
        f"error: migrating the read model schema '{pg_schema.projections.postgres_schema}' "
        "failed: OperationalError" in message
    ), result.stderr
