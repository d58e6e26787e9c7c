"""Reprocessing with a new model version keeps both versions' results side by side.

A real upload is detected by the packaged NanoDet, then a reprocess request runs detection
again with a user-supplied YOLO model (an ONNX graph built here), through the reprocess
worker reading the control topic. The PostgreSQL projection then holds both versions, the
diff names what changed, and a request expecting a model that is not deployed is
dead-lettered while the worker goes on.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from psycopg import sql

from processors.modelstore import load
from processors.reprocess.execute import execute
from processors.reprocess.request import ReprocessSelection, request_record, request_reprocess
from processors.reprocess.worker import run_reprocess_worker
from processors.stage import StageContext
from producers.ingest import Ingestor
from projections.postgres.projection import PostgresProjection
from projections.replay.diff import diff_versions
from projections.runtime import ProjectionRunner
from tests.integration.projections.conftest import TopicsUnderTest
from tests.unit.processors.test_yolo_decoder import DOG_ROW, V8_CANDIDATES, yolo_graph
from visionlog.settings import Settings
from visionlog.stores import postgres_connect


def yolo_settings(base: Settings, directory: Path) -> tuple[Settings, str]:
    model = yolo_graph(directory / "tiny-v8.onnx", V8_CANDIDATES, (DOG_ROW, 0), 320)
    names = directory / "names.txt"
    names.write_text("cat\ndog\nbird\n")
    tuned = base.model_copy(
        update={
            "processors": base.processors.model_copy(
                update={"yolo_model_path": model, "yolo_class_names_path": names}
            )
        }
    )
    return tuned, hashlib.sha256(model.read_bytes()).hexdigest()[:16]


def test_reprocess_with_a_new_model_keeps_both_versions(
    topics_under_test: TopicsUnderTest,
    ctx: StageContext,
    pg_schema: Settings,
    tmp_path: Path,
) -> None:
    topics = topics_under_test
    settings = topics.settings
    photo = load("sample-photos").path("bus.jpg")
    uploaded = Ingestor.from_settings(settings).ingest_bytes(
        photo, filename="bus.jpg", profile="vision"
    )
    media_id = uploaded.media_id

    # The first pass: the packaged detector, as the live vision worker would run it.
    first = ReprocessSelection(media_ids=[media_id], stages=["detection"])
    live_ctx = StageContext(settings=settings, blobs=ctx.blobs)
    report = execute(
        settings,
        topics.codec,
        topics.publisher,
        live_ctx,
        request_record(first, "test", "default", "00000000-0000-4000-8000-000000000001"),
    )
    assert report.matched == 1 and report.published == 1 and report.media_ids == {media_id}

    # Two requests through the control topic: one expecting a model that is not deployed,
    # then the real one with the YOLO model the worker is configured with.
    with_yolo, yolo_version = yolo_settings(settings, tmp_path)
    wrong = ReprocessSelection(
        media_ids=[media_id], stages=["detection"], model_versions={"detection": "not-deployed"}
    )
    right = ReprocessSelection(
        media_ids=[media_id], stages=["detection"], model_versions={"detection": yolo_version}
    )
    wrong_id = request_reprocess(settings, topics.publisher, wrong, requested_by="admin")
    right_id = request_reprocess(settings, topics.publisher, right, requested_by="admin")
    assert wrong_id != right_id
    reports = run_reprocess_worker(with_yolo, threading.Event(), max_requests=2)
    assert [r.reprocess_id for r in reports] == ["failed", right_id]
    assert reports[1].published == 1

    failures = topics.read_events("ProcessingFailed", 1)
    assert failures[0].record["stage"] == "reprocess"
    assert "not-deployed" in failures[0].record["error_message"]
    detected = topics.read_events("ObjectsDetected", 2)
    versions = {event.record["model"]["version"] for event in detected}
    assert yolo_version in versions and len(versions) == 2
    [packaged_version] = versions - {yolo_version}

    # The read model keeps both versions of the same item side by side.
    scoped = pg_schema.model_copy(update={"kafka": settings.kafka})
    projection = PostgresProjection(scoped)
    try:
        runner = ProjectionRunner(projection, scoped, topics.codec, topics.publisher)
        runner.catch_up(timeout_s=60)
    finally:
        projection.close()
    schema = scoped.projections.postgres_schema
    with postgres_connect(scoped) as conn:
        rows = conn.execute(
            sql.SQL("SELECT model_version, class_name FROM {} WHERE media_id = %s").format(
                sql.Identifier(schema, "detections")
            ),
            (media_id,),
        ).fetchall()
        by_version: dict[str, set[str]] = {}
        for row in rows:
            by_version.setdefault(row["model_version"], set()).add(row["class_name"])
        assert by_version[yolo_version] <= {"cat", "dog", "bird"}
        assert {"person", "bus"} <= by_version[packaged_version]

        diff = diff_versions(conn, schema, "detection", packaged_version, yolo_version, [media_id])
    assert diff.compared_items == 1
    [change] = diff.changed
    assert {box["class_name"] for box in change.removed} >= {"person", "bus"}
    assert {box["class_name"] for box in change.added} <= {"cat", "dog", "bird"}
    assert len(change.added) == diff.new_results
