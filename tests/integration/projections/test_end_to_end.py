"""Upload → processors → projections: results are queryable in all three stores.

Real faust workers and a real projections process run against one test's topics; the
Qdrant projection runs in this process (embedded Qdrant allows one process per store).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from psycopg import sql
from qdrant_client import QdrantClient, models

from processors.modelstore import load
from producers.ingest import Ingestor
from projections.postgres.projection import PostgresProjection
from projections.qdrant.projection import QdrantProjection
from projections.runtime import ProjectionRunner
from tests.integration.processors.test_pipeline import _document_png
from tests.integration.processors.workers import Workers
from tests.integration.projections.conftest import TopicsUnderTest
from visionlog.settings import Settings
from visionlog.stores import mongo_client, postgres_connect

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float, workers: Workers) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers.assert_running()
        found = probe()
        if found:
            return found
        time.sleep(2.0)
    raise AssertionError(f"not found within {timeout}s\n{workers.logs()[-4000:]}")


@pytest.mark.timeout(420)
def test_upload_results_are_queryable_in_postgres_mongo_and_qdrant(
    topics_under_test: TopicsUnderTest,
    pg_schema: Settings,
    unique_name: str,
    qdrant: QdrantClient,
    tmp_path: Path,
) -> None:
    topics = topics_under_test
    prefix = topics.settings.kafka.topic_prefix
    settings = pg_schema.model_copy(
        update={
            "kafka": topics.settings.kafka,
            "mongo": pg_schema.mongo.model_copy(update={"database": unique_name}),
        }
    )
    schema = settings.projections.postgres_schema
    # The schema exists before the projections process starts, so probes can query it.
    PostgresProjection(settings).close()
    workers = Workers(topics, tmp_path)
    try:
        workers.start("processors", "worker", "live")
        workers.start("processors", "worker", "vision")
        workers.start("processors", "worker", "document")
        workers.start(
            "projections", "run", "postgres", "mongo",
            PROJECTIONS__POSTGRES_SCHEMA=schema,
            MONGO__DATABASE=unique_name,
            PROJECTIONS__METRICS_PORT="0",
            KAFKA__TOPIC_PREFIX=prefix,
        )  # fmt: skip
        ingestor = Ingestor.from_settings(topics.settings)
        photo = ingestor.ingest_bytes(load("sample-photos").path("bus.jpg"), profile="vision")
        letter = ingestor.ingest_bytes(_document_png(), filename="letter.png", profile="ocr")
        ingestor.close()

        def pg(query: str, *params: Any) -> list[dict[str, Any]]:
            with postgres_connect(settings) as conn:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                return list(conn.execute(query, params).fetchall())

        people = eventually(
            lambda: pg(
                "SELECT class_name, confidence FROM detections "
                "WHERE media_id = %s AND class_name = 'person'",
                photo.media_id,
            ),
            240,
            workers,
        )
        assert all(row["confidence"] >= 0.35 for row in people)
        hits = eventually(
            lambda: pg(
                "SELECT media_id FROM text_results "
                "WHERE tsv_german @@ websearch_to_tsquery('german', %s)",
                "Straße",
            ),
            240,
            workers,
        )
        assert {row["media_id"] for row in hits} == {letter.media_id}
        [media] = pg("SELECT status, kind FROM media WHERE media_id = %s", photo.media_id)
        assert media["kind"] == "IMAGE" and media["status"] in ("uploaded", "processing")

        with mongo_client(settings) as client:
            database = client[unique_name]

            def media_item() -> dict[str, Any] | None:
                names = database.list_collection_names()
                items = [n for n in names if n.startswith("media_items_")]
                if not items:
                    return None
                found = database[items[0]].find_one({"_id": photo.media_id})
                return found if found and found.get("progress", {}).get("detection") else None

            item = eventually(media_item, 120, workers)
            assert item["progress"]["detection"]["done"] >= 1
            results = [n for n in database.list_collection_names() if n.startswith("analysis_")]
            assert database[results[0]].count_documents({"media_id": photo.media_id}) >= 1

        # The Qdrant projection, here; the image embedding arrives from the vision worker.
        projection = QdrantProjection(settings, qdrant)
        runner = ProjectionRunner(projection, settings, topics.codec, topics.publisher)

        def image_points() -> list[Any] | None:
            runner.catch_up(timeout_s=60)
            alias = f"{settings.projections.qdrant_collection_prefix}_images"
            if alias not in {a.alias_name for a in qdrant.get_aliases().aliases}:
                return None
            points, _ = qdrant.scroll(
                alias,
                scroll_filter=models.Filter(
                    must=[
                        models.FieldCondition(
                            key="media_id", match=models.MatchValue(value=photo.media_id)
                        )
                    ]
                ),
                with_vectors=True,
            )
            return points or None

        [point] = eventually(image_points, 120, workers)
        assert point.payload is not None and point.payload["media_id"] == photo.media_id
        neighbours = qdrant.query_points(
            f"{settings.projections.qdrant_collection_prefix}_images",
            query=point.vector,
            limit=1,
        ).points
        assert neighbours[0].id == point.id
    finally:
        codes = workers.stop()
    assert codes == [0, 0, 0, 0], workers.logs()[-4000:]
