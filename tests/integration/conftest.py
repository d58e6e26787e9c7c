"""Starts the real local stack once per test session (installing it on first use)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import psycopg.sql
import pytest
from confluent_kafka import KafkaError, KafkaException
from qdrant_client import QdrantClient

from stack import manager
from stack.initialise import InitReport, initialise
from visionlog import stores
from visionlog.kafka import admin_client
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import KafkaSettings, Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    # The session's topics are its own: what the tests publish never becomes a backlog for
    # the platform's workers on the same stack (`visionlog run` after `make test`).
    base = Settings()
    prefix = f"{base.kafka.topic_prefix}test-session-{uuid.uuid4().hex[:8]}."
    kafka = base.kafka.model_copy(update={"topic_prefix": prefix})
    return base.model_copy(update={"kafka": kafka})


def _remove_subjects(settings: Settings, prefix: str) -> None:
    registry = HttpSchemaRegistry(settings.registry)
    for subject in registry.subjects():
        if subject.startswith(prefix):
            registry.delete_subject(subject)


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[list[manager.ServiceStatus]]:
    rows = manager.up(settings, report=lambda message: print(f"[stack] {message}"))
    yield rows
    # Stop only what this session started; a developer's running stack stays up.
    started = [row.name for row in rows if row.started]
    if started and os.environ.get("VISIONLOG_TEST_KEEP_STACK") != "1":
        manager.down(settings, started)


@pytest.fixture(scope="session")
def initialised(stack: list[manager.ServiceStatus], settings: Settings) -> Iterator[InitReport]:
    yield initialise(settings)
    prefix = settings.kafka.topic_prefix
    admin = admin_client(settings.kafka)
    topics = [name for name in admin.list_topics(timeout=30).topics if name.startswith(prefix)]
    for future in admin.delete_topics(topics, operation_timeout=30).values() if topics else ():
        try:
            future.result()
        except KafkaException as error:  # already being deleted: the goal is reached
            if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
    _remove_subjects(settings, prefix)


@pytest.fixture
def isolated_kafka(settings: Settings) -> Iterator[KafkaSettings]:
    """Kafka settings whose topics (and their schema subjects) are this test's own."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    yield settings.kafka.model_copy(update={"topic_prefix": prefix})
    _remove_subjects(settings, prefix)


@pytest.fixture(scope="session")
def qdrant(
    stack: list[manager.ServiceStatus], settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QdrantClient]:
    """One Qdrant client for the session. The embedded store allows one process only, so
    tests open their own store under a temporary directory instead of the stack's."""
    client = stores.qdrant_client(settings, path=tmp_path_factory.mktemp("qdrant"))
    yield client
    client.close()


@pytest.fixture
def unique_name() -> str:
    """A name no other test (or test process) uses: schemas, databases, prefixes."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mongo_database(
    stack: list[manager.ServiceStatus], settings: Settings, unique_name: str
) -> Iterator[Settings]:
    """Settings whose MongoDB database is this test's own; dropped afterwards."""
    own = settings.model_copy(
        update={"mongo": settings.mongo.model_copy(update={"database": unique_name})}
    )
    yield own
    with stores.mongo_client(own) as client:
        client.drop_database(unique_name)


@pytest.fixture
def pg_schema(
    stack: list[manager.ServiceStatus], settings: Settings, unique_name: str
) -> Iterator[Settings]:
    """Settings whose read-model schema is this test's own; dropped afterwards (with the
    rebuild and retired schemas a rebuild leaves)."""
    own = settings.model_copy(
        update={
            "projections": settings.projections.model_copy(
                update={"postgres_schema": unique_name, "qdrant_collection_prefix": unique_name}
            )
        }
    )
    yield own
    with stores.postgres_connect(own, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (unique_name + "%",)
        ).fetchall()
        for row in rows:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(
                    psycopg.sql.Identifier(row["nspname"])
                )
            )
