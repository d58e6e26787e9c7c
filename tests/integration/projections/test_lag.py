"""Read-model lag measured from outside: brokers' end offsets against each projection's own
position (PostgreSQL's stored offsets, MongoDB's committed group offsets)."""

from __future__ import annotations

import pytest

from projections.lag import read_model_positions
from projections.mongo.projection import MongoProjection
from projections.postgres.projection import PostgresProjection
from projections.runtime import ProjectionRunner
from tests.integration.projections.conftest import TopicsUnderTest
from tests.processor_factories import new_media_id
from tests.unit.projections.test_postgres_rows import media_uploaded
from visionlog.kafka import admin_client
from visionlog.settings import Settings
from visionlog.stores import mongo_client, postgres_connect


@pytest.mark.timeout(120)
def test_lag_counts_what_each_projection_has_yet_to_apply(
    topics_under_test: TopicsUnderTest, pg_schema: Settings, unique_name: str
) -> None:
    topics = topics_under_test
    settings = pg_schema.model_copy(
        update={
            "kafka": topics.settings.kafka,
            "mongo": pg_schema.mongo.model_copy(update={"database": unique_name}),
        }
    )
    PostgresProjection(settings).close()  # the schema and its offsets table exist
    for _ in range(7):
        topics.publisher.publish("MediaUploaded", media_uploaded(new_media_id()))
    topics.publisher.flush()
    admin = admin_client(settings.kafka)

    def lags() -> dict[str, int]:
        with postgres_connect(settings) as conn, mongo_client(settings) as mongo:
            return read_model_positions(settings, admin, postgres=conn, mongo=mongo).lags()

    # Nothing applied yet: both start from the beginning of the log.
    assert lags() == {"postgres": 7, "mongo": 7}

    postgres = PostgresProjection(settings)
    try:
        ProjectionRunner(postgres, settings, topics.codec, topics.publisher).catch_up(60)
    finally:
        postgres.close()
    assert lags() == {"postgres": 0, "mongo": 7}

    mongo = MongoProjection(settings)
    try:
        ProjectionRunner(mongo, settings, topics.codec, topics.publisher).catch_up(60)
    finally:
        mongo.close()
    assert lags() == {"postgres": 0, "mongo": 0}

    topics.publisher.publish("MediaUploaded", media_uploaded(new_media_id()))
    topics.publisher.flush()
    assert lags() == {"postgres": 1, "mongo": 1}
