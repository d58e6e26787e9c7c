"""Starts the real local stack once per test session (installing it on first use)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from stack import manager
from stack.initialise import InitReport, initialise
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import KafkaSettings, Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[list[manager.ServiceStatus]]:
    rows = manager.up(settings, report=lambda message: print(f"[stack] {message}"))
    yield rows
    # Stop only what this session started; a developer's running stack stays up.
    started = [row.name for row in rows if row.started]
    if started and os.environ.get("VISIONLOG_TEST_KEEP_STACK") != "1":
        manager.down(settings, started)


@pytest.fixture(scope="session")
def initialised(stack: list[manager.ServiceStatus], settings: Settings) -> InitReport:
    return initialise(settings)


@pytest.fixture
def isolated_kafka(settings: Settings) -> Iterator[KafkaSettings]:
    """Kafka settings whose topics (and their schema subjects) are this test's own."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    yield settings.kafka.model_copy(update={"topic_prefix": prefix})
    registry = HttpSchemaRegistry(settings.registry)
    for subject in registry.subjects():
        if subject.startswith(prefix):
            registry.delete_subject(subject)
