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
