"""One slow store stops nothing: the projection host against the real stack's stores.

FerretDB is frozen with SIGSTOP for longer than the consumers' `max.poll.interval`; the
PostgreSQL projection stays current meanwhile, and the MongoDB projection keeps its group
membership (its partitions paused while the write waits), then catches up once FerretDB
runs again, applying every event exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from psycopg import sql

from projections.host import ProjectionHost
from projections.mongo.projection import read_live_generation
from stack import manager
from tests.integration.projections.conftest import TopicsUnderTest
from tests.processor_factories import new_media_id
from tests.unit.projections.test_postgres_rows import media_uploaded
from visionlog.settings import Settings
from visionlog.stores import mongo_client, postgres_connect

# The group evicts a consumer that has not polled for this long; FerretDB stays frozen
# longer than that.
MAX_POLL_INTERVAL_MS = 7_000
FROZEN_S = 12.0


def _wait_for(probe: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `probe` holds; fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if probe():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s")


@pytest.fixture
def ferretdb_pid(settings: Settings) -> Iterator[int]:
    [service] = manager.services(settings, ["ferretdb"])
    pid = service.pid()
    if pid is None:
        pytest.skip("FerretDB is not managed by the local stack here (an external MongoDB)")
    yield pid
    # Never leave the shared store frozen, whatever the test did.
    os.kill(pid, signal.SIGCONT)


@pytest.mark.timeout(180)
def test_a_frozen_mongodb_stops_neither_postgres_nor_its_own_group_membership(
    topics_under_test: TopicsUnderTest,
    pg_schema: Settings,
    unique_name: str,
    ferretdb_pid: int,
) -> None:
    topics = topics_under_test
    projections = pg_schema.projections.model_copy(
        update={
            "session_timeout_ms": 6_000,
            "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
            "pause_after_s": 0.5,
            "metrics_port": 0,
        }
    )
    settings = pg_schema.model_copy(
        update={
            "kafka": topics.settings.kafka,
            "mongo": pg_schema.mongo.model_copy(update={"database": unique_name}),
            "projections": projections,
        }
    )
    schema = settings.projections.postgres_schema

    def in_postgres() -> int:
        with postgres_connect(settings) as conn:
            query = sql.SQL("SELECT count(*) AS n FROM {}.media").format(sql.Identifier(schema))
            row = conn.execute(query).fetchone()
            return int(row["n"]) if row else 0

    def in_mongo() -> int:
        with mongo_client(settings) as client:
            generation = read_live_generation(settings, client)
            return int(client[unique_name][f"media_items_{generation}"].count_documents({}))

    def upload(count: int) -> None:
        for _ in range(count):
            topics.publisher.publish("MediaUploaded", media_uploaded(new_media_id()))
        topics.publisher.flush()

    host = ProjectionHost(settings, ["postgres", "mongo"])
    host.start()
    try:
        upload(10)
        _wait_for(lambda: in_postgres() == 10 and in_mongo() == 10, 60, "the first 10 items")

        os.kill(ferretdb_pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        upload(10)
        took = _wait_for(lambda: in_postgres() == 20, 20, "PostgreSQL with MongoDB frozen")
        assert took < 10, f"PostgreSQL waited {took:.1f}s for the frozen MongoDB"
        time.sleep(max(0.0, FROZEN_S - (time.monotonic() - frozen_at)))
        os.kill(ferretdb_pid, signal.SIGCONT)

        _wait_for(lambda: in_mongo() == 20, 60, "MongoDB catching up after the freeze")
        mongo = host.runners["mongo"]
        _wait_for(lambda: mongo.stats.applied == 20, 10, "the MongoDB runner's count")
        assert host.states["mongo"].restarts == 0
        assert host.states["postgres"].restarts == 0
        assert host.liveness_problem() is None
        # Not evicted from its group, so nothing was read twice: every event applied once.
        time.sleep(1.0)
        assert mongo.stats.applied == 20
        assert host.runners["postgres"].stats.applied == 20
    finally:
        os.kill(ferretdb_pid, signal.SIGCONT)
        host.stop()
    host.raise_failures()
