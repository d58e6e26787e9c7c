"""`rebuild` replays the log into fresh read models and switches all three stores over;
the result equals the live read models, and the live projections follow the switch."""

from __future__ import annotations

import uuid

from psycopg import sql
from qdrant_client import QdrantClient

from projections.mongo.projection import MongoProjection, mongo_checksum, read_live_generation
from projections.postgres.checksum import readmodel_checksum
from projections.postgres.projection import PostgresProjection
from projections.qdrant.projection import QdrantProjection, live_qdrant_generation, qdrant_checksum
from projections.replay.rebuild import rebuild
from projections.runtime import Projection, ProjectionRunner
from tests.integration.api.seeding import (
    embedding,
    media_uploaded,
    objects_detected,
    text_recognized,
)
from tests.integration.projections.conftest import TopicsUnderTest
from tests.processor_factories import blob
from visionlog.kafka import admin_client, partition_bounds
from visionlog.settings import Settings
from visionlog.stores import postgres_connect


def publish(topics: TopicsUnderTest, media_id: str, seconds: int) -> None:
    owner = "owner-1"
    for event in (
        media_uploaded(media_id, owner, blob(f"{media_id}.png"), seconds=seconds),
        text_recognized(media_id, owner, f"Rechnung {media_id[:4]} Straße", seconds=seconds + 1),
        objects_detected(media_id, owner, [("person", 0.9), ("bus", 0.7)], seconds=seconds + 2),
        embedding(media_id, owner, "IMAGE", [1.0, float(seconds), 0.5, 0.25], seconds=seconds + 3),
    ):
        topics.publisher.publish(event.event_type, event.record)
    topics.publisher.flush()


def catch_up(projection: Projection, settings: Settings, topics: TopicsUnderTest) -> int:
    runner = ProjectionRunner(projection, settings, topics.codec, topics.publisher)
    return runner.catch_up(timeout_s=60).applied


def test_rebuild_switches_every_store_and_the_live_projections_follow(
    topics_under_test: TopicsUnderTest, pg_schema: Settings, unique_name: str, qdrant: QdrantClient
) -> None:
    topics = topics_under_test
    settings = pg_schema.model_copy(
        update={
            "kafka": topics.settings.kafka,
            "mongo": pg_schema.mongo.model_copy(update={"database": unique_name}),
        }
    )
    schema = settings.projections.postgres_schema
    first = [str(uuid.uuid4()) for _ in range(3)]
    for index, media_id in enumerate(first):
        publish(topics, media_id, index * 10)

    live_pg = PostgresProjection(settings)
    live_mongo = MongoProjection(settings)
    live_qdrant = QdrantProjection(settings, qdrant)
    for projection in (live_pg, live_mongo, live_qdrant):
        assert catch_up(projection, settings, topics) > 0
    with postgres_connect(settings) as conn:
        pg_before = readmodel_checksum(conn, schema)
    mongo_before = mongo_checksum(settings, "g1")
    qdrant_before = qdrant_checksum(settings, qdrant, "g1")

    reports = rebuild(settings, "all", qdrant=qdrant, report=lambda _: None)

    assert [r.store for r in reports] == ["postgres", "mongo", "qdrant"]
    assert all(r.events > 0 for r in reports)
    assert reports[0].checksum == pg_before and reports[0].previous == f"{schema}_retired_1"
    assert reports[1].target == "g2" and reports[1].checksum == mongo_before
    assert reports[2].target == "g2" and reports[2].checksum == qdrant_before
    assert read_live_generation(settings) == "g2"
    assert live_qdrant_generation(settings, qdrant) == "g2"

    # New events after the switch: the live projections notice and continue in g2.
    late = str(uuid.uuid4())
    publish(topics, late, 100)
    assert live_mongo.generation_changed() and live_mongo.generation == "g2"
    assert live_qdrant.generation_changed() and live_qdrant.generation == "g2"
    for projection in (live_pg, live_mongo, live_qdrant):
        catch_up(projection, settings, topics)
        projection.close()
    with postgres_connect(settings) as conn:
        rows = conn.execute(
            sql.SQL("SELECT media_id FROM {} ORDER BY media_id").format(
                sql.Identifier(schema, "media")
            )
        ).fetchall()
    assert {row["media_id"] for row in rows} == {*first, late}
    assert mongo_checksum(settings, "g2") != mongo_before
    points = qdrant.count(f"{settings.projections.qdrant_collection_prefix}_images").count
    assert points == 4


def _own_settings(pg_schema: Settings, topics: TopicsUnderTest, unique_name: str) -> Settings:
    return pg_schema.model_copy(
        update={
            "kafka": topics.settings.kafka,
            "mongo": pg_schema.mongo.model_copy(update={"database": unique_name}),
        }
    )


def log_size(topics: TopicsUnderTest, event_type: str) -> int:
    """Messages ever written to the topic carrying `event_type` (the sum of end offsets)."""
    topic = topics.topic(event_type)
    admin = admin_client(topics.settings.kafka)
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    bounds = partition_bounds(admin, [(topic, number) for number in partitions])
    return sum(high for _, high in bounds.values())


def publish_poison(topics: TopicsUnderTest, media_id: str) -> None:
    """Bytes that are no event, on the uploads' topic under the item's key."""
    topics.publisher.producer.produce(
        topics.topic("MediaUploaded"), value=b"not an event", key=media_id.encode()
    )
    topics.publisher.flush()


def test_a_rebuild_never_appends_to_the_log_it_replays(
    topics_under_test: TopicsUnderTest, pg_schema: Settings, unique_name: str
) -> None:
    topics = topics_under_test
    settings = _own_settings(pg_schema, topics, unique_name)
    schema = settings.projections.postgres_schema
    media_id = str(uuid.uuid4())
    publish(topics, media_id, 0)
    publish_poison(topics, media_id)

    # The live projections dead-letter the poison event (one dead letter each) and read
    # those dead letters back.
    live_pg, live_mongo = PostgresProjection(settings), MongoProjection(settings)
    for projection in (live_pg, live_mongo):
        assert catch_up(projection, settings, topics) > 0
    assert log_size(topics, "ProcessingFailed") == 2
    for projection in (live_pg, live_mongo):
        catch_up(projection, settings, topics)
        projection.close()
    with postgres_connect(settings) as conn:
        pg_live = readmodel_checksum(conn, schema)
    mongo_live = mongo_checksum(settings, "g1")
    # A second poison event that no live projection has read: no dead letter on the log.
    unseen = str(uuid.uuid4())
    publish_poison(topics, unseen)

    quiet: list[str] = []
    first = rebuild(settings, "postgres", report=quiet.append) + rebuild(
        settings, "mongo", report=quiet.append
    )
    assert log_size(topics, "ProcessingFailed") == 2
    second = rebuild(settings, "postgres", report=quiet.append) + rebuild(
        settings, "mongo", report=quiet.append
    )
    # Nothing was appended: the dead-letter topic did not grow, and both rebuilds read the
    # same log into the same read models, equal to the live ones.
    assert log_size(topics, "ProcessingFailed") == 2
    assert [r.target for r in second] == [schema, "g3"]
    for before, after in zip(first, second, strict=True):
        assert after.checksum == before.checksum
        assert after.events == before.events
    assert first[0].checksum == pg_live and first[1].checksum == mongo_live
    with postgres_connect(settings) as conn:
        failed = conn.execute(
            sql.SQL("SELECT stage, error FROM {} WHERE media_id = %s AND status = 'failed'").format(
                sql.Identifier(schema, "processing_status")
            ),
            (media_id,),
        ).fetchall()
    assert {row["stage"] for row in failed} == {"projection-postgres", "projection-mongo"}

    # Nothing is lost: each rebuild counts both poison events and names the one whose dead
    # letter is not on the log, with its reason.
    for report in (*first, *second):
        assert (report.dead_letters, report.dead_letters_on_log) == (2, 1)
        (new,) = report.new_dead_letters
        assert new.media_id == unseen and not new.on_log
        assert new.topic == topics.topic("MediaUploaded") and new.error_message
        assert new.stage == f"projection-{report.store}"
    assert sum("not on the dead-letter topic: " in line for line in quiet) == 4
