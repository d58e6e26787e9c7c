"""The PostgreSQL projection against the real PostgreSQL (and Kafka for exactly-once)."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from projections.postgres.checksum import readmodel_checksum
from projections.postgres.migrate import READMODEL_MIGRATIONS, apply_migrations
from projections.postgres.projection import PostgresProjection, promote_rebuild
from projections.runtime import (
    PoisonEventError,
    PositionMovedError,
    ProjectedEvent,
    ProjectionRunner,
    projection_topics,
)
from stack.initialise import InitReport
from tests.processor_factories import (
    codes_event,
    detections_event,
    item,
    new_media_id,
    redaction_event,
    scene_event,
    text_event,
    track_event,
)
from tests.projection_factories import projected
from tests.unit.projections.completion_events import (
    event_processed,
    media_completed,
    media_progressed,
)
from tests.unit.projections.test_postgres_rows import (
    T0,
    frame_captured,
    media_deleted,
    media_uploaded,
    output_generated,
    page_rendered,
    processing_failed,
)
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher, admin_client, consumer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import KafkaSettings, Settings
from visionlog.stores import postgres_connect
from visionlog.topics import CATALOGUE, apply_catalogue, full_topic_name

RESULT_TABLES = (
    "media",
    "pages",
    "frames",
    "text_results",
    "detections",
    "codes",
    "tracks",
    "redactions",
    "scenes",
    "outputs",
    "processing_status",
    "audit_log",
)


def sample_log(kept: str, erased: str) -> list[tuple[str, dict[str, Any]]]:
    """Events of two media items: `kept` gets every kind of result, `erased` is deleted."""
    captured = T0 + timedelta(hours=5)
    return [
        ("MediaUploaded", media_uploaded(kept)),
        ("PageRendered", page_rendered(kept, 1)),
        ("FrameCaptured", frame_captured(kept, 42, captured)),
        (
            "TextRecognized",
            text_event(kept, item(kept, page=1), [[[("Straßen", (1, 1, 5, 3))]]], seconds=3),
        ),
        (
            "ObjectsDetected",
            detections_event(
                kept,
                item(kept, frame=42),
                [("person", 0.9, (1, 2, 30, 40), 3.0), ("dog", 0.6, (5, 5, 9, 9), None)],
                seconds=4,
            ),
        ),
        ("CodesDecoded", codes_event(kept, item(kept), [("QR_CODE", "hello", (1, 1, 9, 9))])),
        ("TrackUpdated", track_event(kept, 42, [(1, "person", "TRACKED", 40, 3)], seconds=5)),
        ("MediaRedacted", redaction_event(kept, item(kept), seconds=6)),
        ("SceneDescribed", scene_event(kept, item(kept), {"en": "A person."}, seconds=7)),
        ("OutputGenerated", output_generated(kept, None)),
        ("ProcessingFailed", processing_failed(kept, f"{kept}/pages/0002.png", seconds=10)),
        ("MediaUploaded", media_uploaded(erased)),
        (
            "ObjectsDetected",
            detections_event(erased, item(erased), [("cat", 0.7, (1, 1, 2, 2), None)], seconds=2),
        ),
        ("MediaDeleted", media_deleted(erased)),
        # Read after the deletion (another topic): must not bring the erased item back.
        ("TextRecognized", text_event(erased, item(erased), [[[("late", (1, 1, 2, 2))]]])),
    ]


def as_projected(log: list[tuple[str, dict[str, Any]]], topic: str = "log") -> list[ProjectedEvent]:
    return [
        projected(event_type, record, topic=topic, offset=offset)
        for offset, (event_type, record) in enumerate(log)
    ]


def by_topic(log: list[tuple[str, dict[str, Any]]]) -> list[ProjectedEvent]:
    """The log as it sits in Kafka: one topic per event type, offsets per topic."""
    counters: dict[str, int] = {}
    events: list[ProjectedEvent] = []
    for event_type, record in log:
        offset = counters.get(event_type, 0)
        counters[event_type] = offset + 1
        events.append(projected(event_type, record, topic=event_type, offset=offset))
    return events


def ends(events: list[ProjectedEvent]) -> dict[tuple[str, int], int]:
    next_offsets: dict[tuple[str, int], int] = {}
    for event in events:
        next_offsets[event.position] = max(next_offsets.get(event.position, 0), event.offset + 1)
    return next_offsets


def counts(settings: Settings, schema: str) -> dict[str, int]:
    with postgres_connect(settings) as conn:
        return {
            table: int(
                conn.execute(f'SELECT count(*) AS n FROM "{schema}".{table}').fetchone()["n"]  # type: ignore[index]
            )
            for table in RESULT_TABLES
        }


def checksums(settings: Settings, schema: str) -> dict[str, str]:
    with postgres_connect(settings) as conn:
        return readmodel_checksum(conn, schema)


def schema_of(settings: Settings) -> str:
    return settings.projections.postgres_schema


@pytest.fixture
def projection(pg_schema: Settings) -> Iterator[PostgresProjection]:
    opened = PostgresProjection(pg_schema)
    yield opened
    opened.close()


def test_migrations_apply_once_per_schema(pg_schema: Settings) -> None:
    schema = schema_of(pg_schema)
    with postgres_connect(pg_schema) as conn:
        assert apply_migrations(conn, schema, READMODEL_MIGRATIONS) == [
            "0001_readmodel",
            "0002_completion",
        ]
        assert apply_migrations(conn, schema, READMODEL_MIGRATIONS) == []
        rows = conn.execute(
            f'SELECT version, name FROM "{schema}".schema_migrations ORDER BY version'
        ).fetchall()
    assert rows == [
        {"version": 1, "name": "0001_readmodel"},
        {"version": 2, "name": "0002_completion"},
    ]


def test_rows_of_every_event_type_and_erasure(
    pg_schema: Settings, projection: PostgresProjection
) -> None:
    kept, erased = new_media_id(), new_media_id()
    events = as_projected(sample_log(kept, erased))
    projection.apply(events, ends(events))
    schema = schema_of(pg_schema)
    with postgres_connect(pg_schema) as conn:
        media = {
            row["media_id"]: row
            for row in conn.execute(f'SELECT * FROM "{schema}".media').fetchall()
        }
        # A failed stage does not end the item; only its MediaCompleted does.
        assert media[kept]["status"] == "processing"
        assert media[kept]["filename"] == "invoice.jpg"
        assert media[erased]["status"] == "deleted"
        assert media[erased]["filename"] is None
        detections = conn.execute(
            f'SELECT * FROM "{schema}".detections ORDER BY media_id, box_index'
        ).fetchall()
        # Detections of the frame take its capture time and camera; the erased cat is gone.
        assert [(d["media_id"], d["class_name"]) for d in detections] == [
            (kept, "person"),
            (kept, "dog"),
        ]
        assert detections[0]["observed_at"] == T0 + timedelta(hours=5)
        assert detections[0]["camera_id"] == "cam-1"
        statuses = conn.execute(
            f'SELECT stage, item_label, status FROM "{schema}".processing_status'
            " WHERE media_id = %s ORDER BY stage, item_label",
            (kept,),
        ).fetchall()
        assert [(s["stage"], s["item_label"], s["status"]) for s in statuses] == [
            ("anonymise", "original", "done"),
            ("codes", "original", "done"),
            ("detection", "frame-00000042", "done"),
            ("ocr", "page-0001", "done"),
            ("ocr", "page-0002", "failed"),
            ("outputs", "media", "done"),
            ("render", "page-0001", "done"),
            ("scene", "original", "done"),
            ("tracking", "frame-00000042", "done"),
        ]
        erased_rows = conn.execute(
            f'SELECT count(*) AS n FROM "{schema}".text_results WHERE media_id = %s', (erased,)
        ).fetchone()
        audit = conn.execute(
            f'SELECT count(*) AS n FROM "{schema}".audit_log WHERE media_id = %s', (erased,)
        ).fetchone()
    assert erased_rows is not None and erased_rows["n"] == 0
    # The audit trail of the erased item stays: upload, detection, deletion, late text.
    assert audit is not None and audit["n"] == 4
    assert counts(pg_schema, schema)["audit_log"] == len(events)


def test_applying_the_same_events_twice_changes_nothing(
    pg_schema: Settings, projection: PostgresProjection
) -> None:
    events = as_projected(sample_log(new_media_id(), new_media_id()))
    projection.apply(events, ends(events))
    schema = schema_of(pg_schema)
    first_counts, first_sums = counts(pg_schema, schema), checksums(pg_schema, schema)
    # Forget the position, as after restoring an old offset: the replay must be harmless.
    with postgres_connect(pg_schema) as conn:
        conn.execute(f'DELETE FROM "{schema}".projection_offsets')
        conn.commit()
    again = PostgresProjection(pg_schema)
    try:
        again.apply(events, ends(events))
    finally:
        again.close()
    assert counts(pg_schema, schema) == first_counts
    assert checksums(pg_schema, schema) == first_sums
    assert first_counts["detections"] == 2 and first_counts["media"] == 2


def test_a_batch_that_does_not_start_at_the_stored_offset_is_refused(
    pg_schema: Settings, projection: PostgresProjection
) -> None:
    events = as_projected(sample_log(new_media_id(), new_media_id()), topic="t")
    projection.apply(events[:3], {("t", 0): 3})
    assert projection.stored_offsets() == {("t", 0): 3}
    before = counts(pg_schema, schema_of(pg_schema))

    # Another instance that did not see the first batch replays it...
    other = PostgresProjection(pg_schema)
    try:
        with pytest.raises(PositionMovedError) as replay:
            other.apply(events[:2], {("t", 0): 2})
        assert replay.value.stored == {("t", 0): 3}
        # ...or a batch that leaves a gap.
        gap = PostgresProjection(pg_schema)
        try:
            with pytest.raises(PositionMovedError) as skipped:
                gap.apply(events[5:7], {("t", 0): 7})
            assert skipped.value.stored == {("t", 0): 3}
        finally:
            gap.close()
        assert counts(pg_schema, schema_of(pg_schema)) == before
        # The instance that was told where the position is goes on from there.
        other.apply(events[3:5], {("t", 0): 5})
    finally:
        other.close()
    assert projection.stored_offsets() == {("t", 0): 5}
    assert counts(pg_schema, schema_of(pg_schema))["audit_log"] == 5


def test_a_poison_event_is_raised_and_nothing_of_its_batch_is_written(
    pg_schema: Settings, projection: PostgresProjection
) -> None:
    media_id = new_media_id()
    good = projected("MediaUploaded", media_uploaded(media_id), topic="t", offset=0)
    record = detections_event(media_id, item(media_id), [("cat", 0.8, (1, 2, 3, 4), None)])
    record["detections"][0]["box"]["y_min"] = math.nan
    bad = projected("ObjectsDetected", record, topic="t", offset=1)
    with pytest.raises(PoisonEventError, match=r"detections\[0\]\.box\.y_min") as poison:
        projection.apply([good, bad], {("t", 0): 2})
    assert poison.value.event is bad
    assert counts(pg_schema, schema_of(pg_schema))["audit_log"] == 0
    assert projection.stored_offsets() == {}


def test_full_text_search_in_german_and_english(
    pg_schema: Settings, projection: PostgresProjection
) -> None:
    media_id = new_media_id()
    german = text_event(
        media_id, item(media_id, page=1), [[[("Die Straßen sind nass", (1, 1, 9, 3))]]]
    )
    english = text_event(
        media_id, item(media_id, page=2), [[[("She runs every morning", (1, 1, 9, 3))]]]
    )
    events = [
        projected("TextRecognized", german, topic="t", offset=0),
        projected("TextRecognized", english, topic="t", offset=1),
    ]
    projection.apply(events, {("t", 0): 2})
    schema = schema_of(pg_schema)
    with postgres_connect(pg_schema) as conn:
        found_german = conn.execute(
            f'SELECT event_id FROM "{schema}".text_results'
            " WHERE tsv_german @@ websearch_to_tsquery('german', %s)",
            ("Straße",),
        ).fetchall()
        found_english = conn.execute(
            f'SELECT event_id FROM "{schema}".text_results'
            " WHERE tsv_english @@ websearch_to_tsquery('english', %s)",
            ("running",),
        ).fetchall()
        not_there = conn.execute(
            f'SELECT event_id FROM "{schema}".text_results'
            " WHERE tsv_english @@ websearch_to_tsquery('english', %s)",
            ("walking",),
        ).fetchall()
    assert [row["event_id"] for row in found_german] == [german["envelope"]["event_id"]]
    assert [row["event_id"] for row in found_english] == [english["envelope"]["event_id"]]
    assert not_there == []


def test_rebuild_in_another_order_then_promote(pg_schema: Settings) -> None:
    schema = schema_of(pg_schema)
    log = sample_log(new_media_id(), new_media_id())
    live = PostgresProjection(pg_schema)
    try:
        events = by_topic(log)
        live.apply(events, ends(events))
    finally:
        live.close()
    live_sums = checksums(pg_schema, schema)

    # The rebuild reads the topics in another interleaving: results before their uploads,
    # the deletion before the detection; each topic keeps its own order.
    rebuild = PostgresProjection(pg_schema, schema=f"{schema}_rebuild")
    try:
        for topic in sorted({event.topic for event in events}, reverse=True):
            batch = [event for event in events if event.topic == topic]
            rebuild.apply(batch, ends(batch))
    finally:
        rebuild.close()
    assert checksums(pg_schema, f"{schema}_rebuild") == live_sums

    retired = promote_rebuild(pg_schema, schema, f"{schema}_rebuild")
    assert retired == f"{schema}_retired_1"
    assert checksums(pg_schema, schema) == live_sums
    assert checksums(pg_schema, retired) == live_sums
    with postgres_connect(pg_schema) as conn:
        present = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY nspname",
            (schema + "%",),
        ).fetchall()
    assert [row["nspname"] for row in present] == [schema, retired]

    # A second promotion retires under the next number.
    PostgresProjection(pg_schema, schema=f"{schema}_rebuild").close()
    assert promote_rebuild(pg_schema, schema, f"{schema}_rebuild") == f"{schema}_retired_2"


def test_promote_without_a_live_schema(pg_schema: Settings) -> None:
    schema = schema_of(pg_schema)
    PostgresProjection(pg_schema, schema=f"{schema}_rebuild").close()
    assert promote_rebuild(pg_schema, schema, f"{schema}_rebuild") == ""
    with pytest.raises(LookupError, match="does not exist"):
        promote_rebuild(pg_schema, schema, f"{schema}_rebuild")


def test_a_live_projection_notices_a_promoted_rebuild(pg_schema: Settings) -> None:
    schema = schema_of(pg_schema)
    events = as_projected(sample_log(new_media_id(), new_media_id()), topic="t")
    live = PostgresProjection(pg_schema)
    try:
        live.apply(events[:2], {("t", 0): 2})
        rebuild = PostgresProjection(pg_schema, schema=f"{schema}_rebuild")
        try:
            rebuild.apply(events[:6], {("t", 0): 6})
        finally:
            rebuild.close()
        promote_rebuild(pg_schema, schema, f"{schema}_rebuild")
        with pytest.raises(PositionMovedError) as moved:
            live.apply(events[2:4], {("t", 0): 4})
        assert moved.value.stored == {("t", 0): 6}
        live.apply(events[6:8], {("t", 0): 8})
    finally:
        live.close()
    assert counts(pg_schema, schema)["audit_log"] == 8


# ---------------------------------------------------------------- exactly-once over Kafka


def _run_and_die(prefix: str, schema: str, die_at_batch: int) -> None:
    """Child process: project the prefixed topics in batches of 3; exit hard inside the
    transaction of batch `die_at_batch`, after its rows were written, before COMMIT."""
    base = Settings()
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={"topic_prefix": prefix, "partition_scale": 0.01}
            ),
            "projections": base.projections.model_copy(
                update={"postgres_schema": schema, "batch_size": 3}
            ),
        }
    )
    batches = 0

    def die() -> None:
        nonlocal batches
        batches += 1
        if batches == die_at_batch:
            os._exit(1)

    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    projection = PostgresProjection(settings, before_commit=die)
    runner = ProjectionRunner(projection, settings, codec, EventPublisher(settings.kafka, codec))
    runner.catch_up(timeout_s=60)
    os._exit(0)


@pytest.fixture
def kafka_topics(initialised: InitReport, isolated_kafka: KafkaSettings) -> Iterator[KafkaSettings]:
    # One partition per topic: the runner queries watermarks partition by partition.
    scoped = isolated_kafka.model_copy(update={"partition_scale": 0.01})
    admin = admin_client(scoped)
    apply_catalogue(admin, scoped, CATALOGUE)
    yield scoped
    names = [full_topic_name(spec, scoped) for spec in CATALOGUE]
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)


def _end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(consumer_config(settings.kafka, "end-offsets-probe"))
    try:
        metadata = consumer.list_topics(timeout=10)
        found: dict[tuple[str, int], int] = {}
        for topic in topics:
            for partition in metadata.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                if high > 0:
                    found[(topic, partition)] = high
        return found
    finally:
        consumer.close()


def test_exactly_once_after_a_crash_before_commit(
    pg_schema: Settings, kafka_topics: KafkaSettings
) -> None:
    # The child commits batch 1 and dies inside batch 2, after writing its rows.
    die_at_batch = 2
    settings = pg_schema.model_copy(
        update={
            "kafka": kafka_topics,
            "projections": pg_schema.projections.model_copy(update={"batch_size": 3}),
        }
    )
    schema = schema_of(settings)
    log = sample_log(new_media_id(), new_media_id())
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    publisher = EventPublisher(kafka_topics, codec)
    for event_type, record in log:
        publisher.publish(event_type, record)
    publisher.flush()

    child = multiprocessing.get_context("spawn").Process(
        target=_run_and_die, args=(kafka_topics.topic_prefix, schema, die_at_batch)
    )
    child.start()
    child.join(timeout=90)
    assert child.exitcode == 1, "the child should have died inside its batch transaction"

    projection = PostgresProjection(settings)
    try:
        stored_after_crash = sum(projection.stored_offsets().values())
        # Only batch 1 (three events) was committed; batch 2 died before its COMMIT.
        assert stored_after_crash == 3
        runner = ProjectionRunner(projection, settings, codec, publisher)
        runner.catch_up(timeout_s=60)
        stored = projection.stored_offsets()
    finally:
        projection.close()

    topics = projection_topics(projection, settings)
    assert stored == _end_offsets(settings, topics)
    with postgres_connect(settings) as conn:
        audited = conn.execute(
            f'SELECT event_id, count(*) AS n FROM "{schema}".audit_log GROUP BY event_id'
        ).fetchall()
        detections = conn.execute(
            f'SELECT event_id, box_index FROM "{schema}".detections'
        ).fetchall()
    assert sorted(row["event_id"] for row in audited) == sorted(
        record["envelope"]["event_id"] for _, record in log
    )
    assert all(row["n"] == 1 for row in audited)
    # The kept item's two boxes, once each; the erased item's box is gone.
    assert len(detections) == 2
    assert counts(settings, schema)["audit_log"] == len(log)


# ---------------------------------------------------------------- completion and progress


def completion_log(media_id: str) -> list[tuple[str, dict[str, Any]]]:
    """An item's upload, progress, completion, a reprocess run, and reports read late."""
    return [
        ("MediaUploaded", media_uploaded(media_id)),
        ("MediaProgressed", media_progressed(media_id, 30.0, completed=1, expected=3, seconds=10)),
        ("MediaProgressed", media_progressed(media_id, 60.0, completed=2, expected=3, seconds=20)),
        (
            "MediaCompleted",
            media_completed(
                media_id,
                "COMPLETED_WITH_ERRORS",
                completed=2,
                failed=1,
                errors=[("ocr", "page-0003", "page-0003: not a decodable image")],
                seconds=30,
            ),
        ),
        # Read after the completion (another topic), with a later event time: changes nothing.
        ("MediaProgressed", media_progressed(media_id, 90.0, completed=2, expected=3, seconds=40)),
        (
            "ObjectsDetected",
            detections_event(
                media_id, item(media_id), [("cat", 0.8, (1, 1, 5, 5), None)], seconds=50
            ),
        ),
        # A reprocess run of the same item: stored per run, the item's status stays.
        ("MediaProgressed", media_progressed(media_id, 50.0, run_id="rerun-1", seconds=70)),
        ("MediaCompleted", media_completed(media_id, "FAILED", run_id="rerun-1", seconds=80)),
    ]


def _media_row(settings: Settings, media_id: str) -> dict[str, Any]:
    schema = schema_of(settings)
    with postgres_connect(settings) as conn:
        row = conn.execute(
            f'SELECT * FROM "{schema}".media WHERE media_id = %s', (media_id,)
        ).fetchone()
    assert row is not None
    return dict(row)


def _runs(settings: Settings, media_id: str) -> dict[str, dict[str, Any]]:
    schema = schema_of(settings)
    with postgres_connect(settings) as conn:
        rows = conn.execute(
            f'SELECT * FROM "{schema}".processing_runs WHERE media_id = %s', (media_id,)
        ).fetchall()
    return {row["run_id"]: dict(row) for row in rows}


def test_progress_then_completion_then_late_progress(
    pg_schema: Settings, projection: PostgresProjection
) -> None:
    media_id = new_media_id()
    events = by_topic(completion_log(media_id))
    # Progress so far: processing with a percent.
    projection.apply(events[:3], ends(events[:3]))
    assert _media_row(pg_schema, media_id)["status"] == "processing"
    (own,) = _runs(pg_schema, media_id).values()
    assert (own["run_id"], own["status"], own["percent"]) == ("", "processing", 60.0)
    assert (own["items_expected"], own["items_completed"]) == (3, 2)

    projection.apply(events[3:], ends(events))
    media = _media_row(pg_schema, media_id)
    assert media["status"] == "completed_with_errors"
    assert media["status_at"] == T0 + timedelta(seconds=30)
    runs = _runs(pg_schema, media_id)
    own = runs[""]
    assert own["status"] == "completed_with_errors" and own["percent"] == 100.0
    assert (own["items_expected"], own["items_completed"], own["items_failed"]) == (3, 2, 1)
    assert own["errors"] == [
        {"stage": "ocr", "item_label": "page-0003", "message": "page-0003: not a decodable image"}
    ]
    assert own["duration_ms"] == 30_000 and own["completed_at"] == T0 + timedelta(seconds=30)
    rerun = runs["rerun-1"]
    assert rerun["status"] == "failed" and rerun["percent"] == 100.0

    # Redelivered (the offsets forgotten): nothing changes.
    schema = schema_of(pg_schema)
    before = checksums(pg_schema, schema)
    with postgres_connect(pg_schema) as conn:
        conn.execute(f'DELETE FROM "{schema}".projection_offsets')
        conn.commit()
    again = PostgresProjection(pg_schema)
    try:
        again.apply(events, ends(events))
    finally:
        again.close()
    assert checksums(pg_schema, schema) == before
    # Progress reports are not audited; the completion is.
    with postgres_connect(pg_schema) as conn:
        audited = conn.execute(
            f'SELECT event_type FROM "{schema}".audit_log WHERE media_id = %s ORDER BY event_type',
            (media_id,),
        ).fetchall()
    assert [row["event_type"] for row in audited] == [
        "MediaCompleted",
        "MediaCompleted",
        "MediaUploaded",
        "ObjectsDetected",
    ]


def test_completion_does_not_depend_on_the_order_topics_are_read(pg_schema: Settings) -> None:
    schema = schema_of(pg_schema)
    media_id = new_media_id()
    events = by_topic(completion_log(media_id))
    live = PostgresProjection(pg_schema)
    try:
        live.apply(events, ends(events))
    finally:
        live.close()
    rebuild = PostgresProjection(pg_schema, schema=f"{schema}_rebuild")
    try:
        # Every progress report (and the detection) after the upload and the completions.
        for topic in ("MediaUploaded", "MediaCompleted", "MediaProgressed", "ObjectsDetected"):
            batch = [event for event in events if event.topic == topic]
            rebuild.apply(batch, ends(batch))
    finally:
        rebuild.close()
    assert checksums(pg_schema, f"{schema}_rebuild") == checksums(pg_schema, schema)
    with postgres_connect(pg_schema) as conn:
        row = conn.execute(
            f'SELECT status FROM "{schema}_rebuild".media WHERE media_id = %s', (media_id,)
        ).fetchone()
    assert row is not None and row["status"] == "completed_with_errors"


def _frame(settings: Settings, schema: str, media_id: str, index: int) -> dict[str, Any]:
    with postgres_connect(settings) as conn:
        row = conn.execute(
            f'SELECT * FROM "{schema}".frames WHERE media_id = %s AND frame_index = %s',
            (media_id, index),
        ).fetchone()
    assert row is not None
    return dict(row)


def test_a_skipped_camera_frame_is_recorded_before_or_after_its_frame(
    pg_schema: Settings,
) -> None:
    schema = schema_of(pg_schema)
    camera = new_media_id()
    captured = T0 + timedelta(hours=1)
    reason = "superseded: frame 43 is newer"
    log = [
        (
            "EventProcessed",
            event_processed(
                camera,
                "frame-00000042",
                [("detection", "SKIPPED", reason)],
                worker="live",
                camera_id="cam-1",
            ),
        ),
        ("FrameCaptured", frame_captured(camera, 42, captured)),
        (
            "EventProcessed",
            event_processed(
                camera,
                "frame-00000042",
                [("anonymise", "DONE", None), ("codes", "NOT_APPLICABLE", None)],
                camera_id="cam-1",
            ),
        ),
        # A skipped frame that is never projected otherwise still has its row.
        (
            "EventProcessed",
            event_processed(
                camera,
                "frame-00000044",
                [("detection", "SKIPPED", "stale: 2412 ms old, bound 2000 ms")],
                worker="live",
                camera_id="cam-1",
            ),
        ),
    ]
    events = by_topic(log)
    # The work report first, then the frame; and the other way round in a second schema.
    first = PostgresProjection(pg_schema)
    try:
        first.apply(events, ends(events))
        first.apply(events, ends(events))  # redelivered: the same rows
    finally:
        first.close()
    second = PostgresProjection(pg_schema, schema=f"{schema}_rebuild")
    try:
        for topic in ("FrameCaptured", "EventProcessed"):
            batch = [event for event in events if event.topic == topic]
            second.apply(batch, ends(batch))
    finally:
        second.close()
    assert checksums(pg_schema, f"{schema}_rebuild") == checksums(pg_schema, schema)

    frame = _frame(pg_schema, schema, camera, 42)
    assert frame["captured_at"] == captured and frame["event_id"] is not None
    assert frame["outcome"] == "skipped" and frame["outcome_reason"] == reason
    assert frame["stages"] == {
        "detection": {"status": "skipped", "reason": reason},
        "anonymise": {"status": "done"},
    }
    stub = _frame(pg_schema, schema, camera, 44)
    assert stub["event_id"] is None and stub["camera_id"] == "cam-1"
    assert stub["item_label"] == "frame-00000044" and stub["tenant_id"] == "tests"
    assert stub["outcome"] == "skipped" and stub["outcome_reason"].startswith("stale:")
    # Work reports are not audited: they arrive for every camera frame.
    with postgres_connect(pg_schema) as conn:
        audited = conn.execute(
            f'SELECT count(*) AS n FROM "{schema}".audit_log WHERE event_type = %s',
            ("EventProcessed",),
        ).fetchone()
    assert audited is not None and audited["n"] == 0


def test_work_reports_and_progress_of_an_erased_item_are_dropped(
    pg_schema: Settings, projection: PostgresProjection
) -> None:
    media_id = new_media_id()
    log = [
        ("MediaUploaded", media_uploaded(media_id)),
        ("MediaDeleted", media_deleted(media_id)),
        ("EventProcessed", event_processed(media_id, "page-0001", [("ocr", "DONE", None)])),
        ("MediaProgressed", media_progressed(media_id, 50.0)),
        ("MediaCompleted", media_completed(media_id)),
    ]
    events = as_projected(log, topic="t")
    projection.apply(events, ends(events))
    assert _media_row(pg_schema, media_id)["status"] == "deleted"
    assert _runs(pg_schema, media_id) == {}
    assert counts(pg_schema, schema_of(pg_schema))["pages"] == 0
