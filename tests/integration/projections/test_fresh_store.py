"""A store that was wiped or replaced is detected by itself: the positions committed to
Kafka carry the store's identity, and a store with another identity is rebuilt from the
beginning of the log instead of being resumed, empty, where the old one stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from qdrant_client import QdrantClient

from projections.mongo.documents import MEDIA_ITEMS, collection_name
from projections.mongo.projection import MongoProjection
from projections.qdrant.projection import qdrant_store_identity
from projections.runtime import ProjectionRunner
from tests.integration.projections.conftest import TopicsUnderTest
from tests.processor_factories import new_media_id
from tests.unit.projections.test_postgres_rows import media_uploaded
from visionlog.kafka import consumer_config
from visionlog.settings import Settings
from visionlog.stores import mongo_client


def _run_live_until(
    settings: Settings, topics: TopicsUnderTest, done: Callable[[], bool], timeout_s: float = 60
) -> str:
    """Runs the live (subscribed) loop until `done`; returns the store identity it used."""
    projection = MongoProjection(settings)
    runner = ProjectionRunner(projection, settings, topics.codec, topics.publisher)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "the projection did not catch up in time"
            assert thread.is_alive(), "the projection's loop ended"
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
        projection.close()
    return str(projection.store_identity())


@pytest.mark.timeout(240)
def test_a_wiped_mongo_store_is_rebuilt_from_the_start(
    topics_under_test: TopicsUnderTest, mongo_database: Settings
) -> None:
    topics = topics_under_test
    settings = mongo_database.model_copy(update={"kafka": topics.settings.kafka})
    media_ids = {new_media_id() for _ in range(4)}
    for media_id in sorted(media_ids):
        topics.publisher.publish("MediaUploaded", media_uploaded(media_id))
    topics.publisher.flush()

    def stored() -> set[str]:
        with mongo_client(settings) as client:
            items = client[settings.mongo.database][collection_name(MEDIA_ITEMS, "g1")]
            return {str(doc["_id"]) for doc in items.find({}, {"_id": 1})}

    first = _run_live_until(settings, topics, lambda: stored() == media_ids)
    group = MongoProjection(settings).consumer_group
    reader = Consumer(consumer_config(settings.kafka, group))
    topic = topics.topic("MediaUploaded")
    try:
        partitions = sorted(reader.list_topics(topic, timeout=10).topics[topic].partitions)
        committed = reader.committed([TopicPartition(topic, p) for p in partitions], 10)
    finally:
        reader.close()
    assert sum(tp.offset for tp in committed if tp.offset > 0) == len(media_ids)
    assert {tp.metadata for tp in committed if tp.offset > 0} == {first}

    # The database is lost (a new volume, a dropped database): the group's positions are
    # still at the end of the log, but they were committed for the store that is gone.
    with mongo_client(settings) as client:
        client.drop_database(settings.mongo.database)
    assert stored() == set()
    second = _run_live_until(settings, topics, lambda: stored() == media_ids)
    assert second != first


def test_the_qdrant_identity_is_kept_until_the_store_is_wiped(tmp_path: Path) -> None:
    settings = Settings()
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        identity = qdrant_store_identity(settings, client, "g1")
        assert qdrant_store_identity(settings, client, "g1") == identity
        assert qdrant_store_identity(settings, client, "g2") != identity
    finally:
        client.close()
    reopened = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        assert qdrant_store_identity(settings, reopened, "g1") == identity
    finally:
        reopened.close()
    wiped = QdrantClient(path=str(tmp_path / "wiped"))
    try:
        assert qdrant_store_identity(settings, wiped, "g1") != identity
    finally:
        wiped.close()
