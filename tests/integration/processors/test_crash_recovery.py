"""Faults on the processing side: a worker killed in the middle of its work, and the blob
store gone for half a minute. Nothing is lost, nothing is counted twice."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from psycopg import sql

from processors.modelstore import load
from producers.ingest import Ingestor
from projections.postgres.projection import PostgresProjection
from projections.runtime import ProjectionRunner
from stack import manager
from tests.integration.processors.conftest import TopicsUnderTest
from tests.integration.processors.workers import Workers, wait_for_events
from visionlog.codec import DecodedEvent
from visionlog.kafka import consumer_config
from visionlog.settings import Settings
from visionlog.stores import postgres_connect


@pytest.fixture
def workers(topics_under_test: TopicsUnderTest, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(topics_under_test, tmp_path)
    yield running
    running.stop()


def _uploads(topics: TopicsUnderTest, count: int, profile: str = "vision") -> list[str]:
    ingest = Ingestor.from_settings(topics.settings)
    photo = load("sample-photos").path("bus.jpg")
    try:
        return [ingest.ingest_bytes(photo, profile=profile).media_id for _ in range(count)]
    finally:
        ingest.close()


def _detected(topics: TopicsUnderTest, media_ids: set[str]) -> list[DecodedEvent]:
    return [
        e
        for e in topics.read_events("ObjectsDetected", 100_000, timeout=2.0)
        if e.event_type == "ObjectsDetected" and e.record["media_id"] in media_ids
    ]


@pytest.mark.timeout(600)
def test_a_worker_killed_mid_batch_loses_nothing_and_the_read_model_counts_once(
    topics_under_test: TopicsUnderTest, workers: Workers, pg_schema: Settings
) -> None:
    topics = topics_under_test
    media_ids = set(_uploads(topics, 80))
    watcher = Consumer(consumer_config(topics.settings.kafka, f"watch-{uuid.uuid4().hex[:8]}"))
    watcher.subscribe([topics.topic("ObjectsDetected")])
    try:
        watcher.poll(1.0)  # joined, positioned at the start
        # Uploaded images are detected by the live worker (someone waits for them).
        first = workers.start("processors", "worker", "live", PROCESSORS__SESSION_TIMEOUT_S="6")
        seen = 0
        deadline = time.monotonic() + 180
        while seen < 3:
            assert time.monotonic() < deadline, workers.logs()[-3000:]
            message = watcher.poll(0.05)
            seen += message is not None and message.error() is None
        # In the middle of the batch: results published, offsets not all committed.
        workers.kill(first)
    finally:
        watcher.close()
    done_before = {e.record["media_id"] for e in _detected(topics, media_ids)}
    assert done_before < media_ids

    workers.start("processors", "worker", "live", PROCESSORS__SESSION_TIMEOUT_S="6")
    found = wait_for_events(
        topics,
        "ObjectsDetected",
        lambda e: e.record["media_id"] in media_ids,
        len(media_ids),
        300,
        workers,
    )
    assert {e.record["media_id"] for e in found} == media_ids
    boxes = {e.record["envelope"]["event_id"]: len(e.record["detections"]) for e in found}

    # The read model holds every input's result exactly once, however often it was sent.
    scoped = pg_schema.model_copy(update={"kafka": topics.settings.kafka})
    projection = PostgresProjection(scoped)
    try:
        ProjectionRunner(projection, scoped, topics.codec, topics.publisher).catch_up(60)
    finally:
        projection.close()
    with postgres_connect(scoped) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT media_id, event_id, count(*) AS n FROM {} "
                "WHERE media_id = ANY(%s) GROUP BY media_id, event_id"
            ).format(sql.Identifier(scoped.projections.postgres_schema, "detections")),
            (sorted(media_ids),),
        ).fetchall()
    assert {row["media_id"] for row in rows} == media_ids
    assert len(rows) == len(media_ids), "one detection result per input"
    for row in rows:
        assert row["n"] == boxes[row["event_id"]]


@pytest.mark.timeout(600)
def test_a_blob_store_outage_stalls_items_which_finish_when_it_returns(
    topics_under_test: TopicsUnderTest, workers: Workers, settings: Settings
) -> None:
    topics = topics_under_test
    media_ids = set(_uploads(topics, 6))
    assert manager.down(settings, ["minio"]) == ["minio"]
    try:
        for kind in ("live", "vision"):
            workers.start("processors", "worker", kind, PROCESSORS__OUTAGE_DEADLINE_S="180")
        time.sleep(30)
        # While the store is away nothing is given up: no dead letter, no lost result.
        assert topics.read("ProcessingFailed", 1, timeout=1.0) == []
    finally:
        manager.up(settings, ["minio"])
    found = wait_for_events(
        topics,
        "ObjectsDetected",
        lambda e: e.record["media_id"] in media_ids,
        len(media_ids),
        300,
        workers,
    )
    assert {e.record["media_id"] for e in found} == media_ids
    redactions = wait_for_events(
        topics,
        "MediaRedacted",
        lambda e: e.record["media_id"] in media_ids,
        len(media_ids),
        120,
        workers,
    )
    assert {e.record["media_id"] for e in redactions} == media_ids
    assert topics.read("ProcessingFailed", 1, timeout=1.0) == []
