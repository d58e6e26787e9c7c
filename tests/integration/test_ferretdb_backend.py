"""FerretDB on the stack's PostgreSQL: a server of the test's own (own ports, own state and
own PostgreSQL database), started the way the stack starts it; the stack's server stays."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr
from pymongo import MongoClient, UpdateOne

from stack import manager
from stack.services.ferretdb_lookup import ensure_id_lookup_indexes, index_name
from stack.services.gobuilt import FerretDBService
from tests.ports import free_port
from visionlog.settings import Settings


def _own_settings(settings: Settings, state_dir: Path, backend: str) -> Settings:
    return settings.model_copy(
        update={
            "state_dir": state_dir,
            "mongo": settings.mongo.model_copy(
                update={"uri": SecretStr(f"mongodb://127.0.0.1:{free_port()}/")}
            ),
            "stack": settings.stack.model_copy(
                update={"ferretdb_debug_port": free_port(), "ferretdb_backend": backend}
            ),
        }
    )


@pytest.fixture
def pg_ferretdb(
    stack: list[manager.ServiceStatus], settings: Settings, tmp_path: Path
) -> Iterator[FerretDBService]:
    service = FerretDBService(_own_settings(settings, tmp_path, "postgresql"))
    service.pg_database = f"ferretdb_test_{uuid.uuid4().hex[:8]}"
    if not service.installed():
        service.install()
    service.start()
    try:
        deadline = time.monotonic() + 60
        while not (health := service.health()).ok:
            assert service.running(), service.log_tail()
            assert time.monotonic() < deadline, health.detail
            time.sleep(0.2)
        yield service
    finally:
        service.stop()
        with psycopg.connect(settings.postgres.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(service.pg_database)
                )
            )


def test_postgresql_backend_is_the_default_and_keeps_the_password_off_the_command_line(
    tmp_path: Path,
) -> None:
    service = FerretDBService(Settings(state_dir=tmp_path))
    argv, env = service.command()
    assert "--handler=postgresql" in argv
    password = service.settings.postgres.password.get_secret_value()
    assert not any(password in arg for arg in argv)
    assert "pool_max_conns=" in env["FERRETDB_POSTGRESQL_URL"]


def test_sqlite_backend_stays_selectable(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    settings = settings.model_copy(
        update={"stack": settings.stack.model_copy(update={"ferretdb_backend": "sqlite"})}
    )
    service = FerretDBService(settings)
    service.prepare()
    argv, env = service.command()
    assert "--handler=sqlite" in argv
    assert f"--sqlite-url=file:{tmp_path / 'ferretdb' / 'data'}/" in argv
    assert env == {}


def test_bulk_update_of_more_updates_than_ferretdbs_default_pool_completes(
    pg_ferretdb: FerretDBService,
) -> None:
    # With FerretDB's default pool of 50 PostgreSQL connections, one update command of 50
    # or more updates of existing documents waits for a connection forever.
    uri = pg_ferretdb.settings.mongo.uri.get_secret_value()
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, socketTimeoutMS=60_000, serverSelectionTimeoutMS=10_000
    )
    with client:
        collection = client["visionlog_test"]["items"]
        collection.insert_many([{"_id": n, "seen": 0} for n in range(70)])
        result = collection.bulk_write(
            [UpdateOne({"_id": n}, {"$inc": {"seen": 1}}, upsert=True) for n in range(70)],
            ordered=False,
        )
        assert result.modified_count == 70
        assert collection.count_documents({"seen": 1}) == 70
        assert pg_ferretdb.running_backend() == "postgresql"


def test_a_lookup_by_id_is_answered_from_an_index_in_a_collection_made_later(
    pg_ferretdb: FerretDBService,
) -> None:
    # FerretDB filters `_id` with a containment test its own btree cannot answer; the
    # stack's GIN index (given by an event trigger to every table FerretDB creates) can.
    uri = pg_ferretdb.settings.mongo.uri.get_secret_value()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    with client:
        database = client["visionlog_test"]
        collection = database[f"made_later_{uuid.uuid4().hex[:6]}"]
        collection.insert_many([{"_id": f"item-{n}", "n": n} for n in range(2_000)])
        with psycopg.connect(
            pg_ferretdb.settings.postgres.conninfo(pg_ferretdb.pg_database)
        ) as conn:
            conn.execute("ANALYZE")
        assert collection.find_one({"_id": "item-1234"}) == {"_id": "item-1234", "n": 1234}
        plan = database.command(
            "explain", {"find": collection.name, "filter": {"_id": "item-1234"}}
        )["queryPlanner"]["Plan"]
        assert "Index" in plan["Node Type"] or any(
            "Index" in child["Node Type"] for child in plan.get("Plans", [])
        ), plan
        # An upsert of an existing document finds it the same way and changes only it.
        collection.update_one({"_id": "item-7"}, {"$inc": {"n": 100}}, upsert=True)
        assert collection.find_one({"_id": "item-7"}) == {"_id": "item-7", "n": 107}
        assert collection.count_documents({}) == 2_000


def test_tables_made_before_the_trigger_get_the_index_when_the_stack_prepares(
    pg_ferretdb: FerretDBService,
) -> None:
    conninfo = pg_ferretdb.settings.postgres.conninfo(pg_ferretdb.pg_database)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS older")
        conn.execute("CREATE TABLE older.collection_from_before (_jsonb jsonb)")
        conn.execute(
            sql.SQL("DROP INDEX older.{}").format(
                sql.Identifier(index_name("collection_from_before"))
            )
        )
    assert ensure_id_lookup_indexes(conninfo) == ["older.collection_from_before"]
    assert ensure_id_lookup_indexes(conninfo) == []
