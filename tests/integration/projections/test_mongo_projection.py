"""The MongoDB projection against the real server (FerretDB locally), and through Kafka."""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from projections.mongo import (
    MongoProjection,
    drop_generation,
    mongo_checksum,
    promote_mongo,
    read_live_generation,
)
from projections.mongo.documents import ANALYSIS_RESULTS, DOCUMENTS, MEDIA_ITEMS
from projections.runtime import ProjectedEvent, ProjectionRunner
from stack.initialise import InitReport
from tests.factories import sample_event
from tests.processor_factories import (
    MODEL,
    blob,
    codes_event,
    detections_event,
    item,
    new_media_id,
    redaction_event,
    text_event,
)
from tests.projection_factories import projected
from tests.unit.projections.completion_events import (
    event_processed,
    media_completed,
    media_progressed,
)
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher, admin_client
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.stores import MongoClient, mongo_client
from visionlog.topics import CATALOGUE, apply_catalogue, full_topic_name, topic_for_event

T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Exit status of the child killed between its first write and the Kafka commit; an
# exception in the child would exit with 1.
CRASHED_EXIT_CODE = 17


def _at(record: dict[str, Any], seconds: int) -> dict[str, Any]:
    record["envelope"]["occurred_at"] = T0 + timedelta(seconds=seconds)
    return record


def media_log(media_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The events of one PDF-like item: upload, pages, frames, results, a failure."""
    page1, page2 = item(media_id, page=1), item(media_id, page=2)
    return [
        (
            "MediaUploaded",
            _at(
                sample_event(
                    get_catalog(),
                    "MediaUploaded",
                    media_id=media_id,
                    media_kind="PDF",
                    original=blob("doc.pdf"),
                    page_count=2,
                    labels={"case": "7"},
                ),
                0,
            ),
        ),
        *[
            (
                "PageRendered",
                _at(
                    sample_event(
                        get_catalog(),
                        "PageRendered",
                        media_id=media_id,
                        page_number=number,
                        page_count=2,
                        image=blob(f"p{number}.png"),
                    ),
                    number,
                ),
            )
            for number in (1, 2)
        ],
        *[
            (
                "FrameCaptured",
                _at(
                    sample_event(
                        get_catalog(),
                        "FrameCaptured",
                        media_id=media_id,
                        frame_index=index,
                        camera_id=None,
                    ),
                    10 + index,
                ),
            )
            for index in (0, 5, 10)
        ],
        ("TextRecognized", text_event(media_id, page1, [[[("Alpha", (1, 1, 5, 5))]]], seconds=20)),
        ("TextRecognized", text_event(media_id, page2, [[[("Beta", (1, 1, 5, 5))]]], seconds=21)),
        (
            "ObjectsDetected",
            detections_event(media_id, page1, [("person", 0.9, (1, 1, 9, 9), None)], seconds=22),
        ),
        ("CodesDecoded", codes_event(media_id, page1, [("QR_CODE", "hi", (1, 1, 3, 3))], 23)),
        ("MediaRedacted", redaction_event(media_id, page2, seconds=24)),
        (
            "ProcessingFailed",
            _at(
                sample_event(
                    get_catalog(), "ProcessingFailed", media_id=media_id, stage="detection"
                ),
                25,
            ),
        ),
        (
            "EmbeddingComputed",
            _at(
                sample_event(
                    get_catalog(),
                    "EmbeddingComputed",
                    media_id=media_id,
                    item=page1,
                    target="IMAGE",
                    vector=[0.1, 0.2],
                    model=MODEL,
                ),
                26,
            ),
        ),
    ]


def as_log(records: list[tuple[str, dict[str, Any]]]) -> list[ProjectedEvent]:
    """ProjectedEvents on the catalogue's topics, offsets counting per topic like Kafka's."""
    offsets: dict[str, int] = {}
    events = []
    for event_type, record in records:
        topic = topic_for_event(event_type).name
        offsets[topic] = offsets.get(topic, -1) + 1
        events.append(projected(event_type, record, topic=topic, offset=offsets[topic]))
    return events


@pytest.fixture
def client(mongo_database: Settings) -> Iterator[MongoClient]:
    with mongo_client(mongo_database) as own:
        yield own


def _apply(
    settings: Settings, client: MongoClient, generation: str, events: list[ProjectedEvent]
) -> MongoProjection:
    projection = MongoProjection(settings, generation=generation, client=client)
    projection.apply(events, {})
    return projection


def _doc(settings: Settings, client: MongoClient, base: str, gen: str, _id: str) -> Any:
    return client[settings.mongo.database][f"{base}_{gen}"].find_one({"_id": _id})


def _count(settings: Settings, client: MongoClient, base: str, gen: str) -> int:
    return client[settings.mongo.database][f"{base}_{gen}"].count_documents({})


def test_applying_twice_changes_nothing(mongo_database: Settings, client: MongoClient) -> None:
    media_id = new_media_id()
    events = as_log(media_log(media_id))
    projection = _apply(mongo_database, client, "g1", events)
    first = mongo_checksum(mongo_database, "g1", client)
    counts = {b: _count(mongo_database, client, b, "g1") for b in first}
    projection.apply(events, {})
    assert mongo_checksum(mongo_database, "g1", client) == first
    assert {b: _count(mongo_database, client, b, "g1") for b in first} == counts

    media = _doc(mongo_database, client, MEDIA_ITEMS, "g1", media_id)
    assert media["status"] == "uploaded"
    assert media["frames"]["count"] == 3
    assert media["frames"]["latest"]["frame_index"] == 10
    assert media["progress"]["ocr"]["done"] == 2
    assert media["progress"]["render"]["done"] == 2
    assert media["progress"]["embedding"]["done"] == 1
    assert media["progress"]["detection"]["done"] == 1
    assert media["progress"]["detection"]["failed"] == 1
    assert sorted(media["pages"]) == ["1", "2"]
    assert media["redactions"]["page-2"]["method"] == "BLUR"
    # Six results (two texts, detections, codes, redaction, failure); embeddings are not.
    assert counts[ANALYSIS_RESULTS] == 6
    document = _doc(mongo_database, client, DOCUMENTS, "g1", media_id)
    texts = [v["text"] for page in document["pages"].values() for v in page["versions"].values()]
    assert sorted(texts) == ["Alpha", "Beta"]
    by_stage = client[mongo_database.mongo.database][f"{ANALYSIS_RESULTS}_g1"].find_one(
        {"media_id": media_id, "stage": "detection", "model_version": MODEL["version"]}
    )
    assert by_stage is not None
    assert by_stage["result"]["class_names"] == ["person"]


def test_results_before_their_upload_end_in_the_same_documents(
    mongo_database: Settings, client: MongoClient
) -> None:
    media_id = new_media_id()
    events = as_log(media_log(media_id))
    upload, results = events[0], events[1:]
    _apply(mongo_database, client, "g1", events)
    late_upload = MongoProjection(mongo_database, generation="g2", client=client)
    # Topics interleave differently; within one partition the log order holds.
    late_upload.apply(sorted(results, key=lambda event: event.topic, reverse=True), {})
    pending = _doc(mongo_database, client, MEDIA_ITEMS, "g2", media_id)
    assert pending["status"] == "pending"
    assert pending["tenant_id"] == "tests"
    late_upload.apply([upload], {})
    assert mongo_checksum(mongo_database, "g2", client) == mongo_checksum(
        mongo_database, "g1", client
    )


def test_media_deleted_erases_everything_derived(
    mongo_database: Settings, client: MongoClient
) -> None:
    erased, kept = new_media_id(), new_media_id()
    events = as_log(media_log(erased) + media_log(kept))
    projection = _apply(mongo_database, client, "g1", events)
    deletion = sample_event(
        get_catalog(), "MediaDeleted", media_id=erased, reason="user_request", requested_by="u1"
    )
    projection.apply([projected("MediaDeleted", deletion, topic="media", offset=99)], {})

    tombstone = _doc(mongo_database, client, MEDIA_ITEMS, "g1", erased)
    assert tombstone["status"] == "deleted"
    assert tombstone["deletion_reason"] == "user_request"
    assert "original" not in tombstone and "labels" not in tombstone
    results = client[mongo_database.mongo.database][f"{ANALYSIS_RESULTS}_g1"]
    assert results.count_documents({"media_id": erased}) == 0
    assert results.count_documents({"media_id": kept}) == 6
    assert _doc(mongo_database, client, DOCUMENTS, "g1", erased) is None
    assert _doc(mongo_database, client, DOCUMENTS, "g1", kept) is not None

    # A result or the upload arriving later (another topic, a redelivery) stays erased.
    projection.apply(events, {})
    assert results.count_documents({"media_id": erased}) == 0
    assert _doc(mongo_database, client, MEDIA_ITEMS, "g1", erased)["status"] == "deleted"
    assert _doc(mongo_database, client, DOCUMENTS, "g1", erased) is None


def test_rebuild_into_the_next_generation_and_promote(
    mongo_database: Settings, client: MongoClient
) -> None:
    events = as_log(media_log(new_media_id()) + media_log(new_media_id()))
    live = MongoProjection(mongo_database, client=client)
    assert live.generation == "g1"
    group = f"{mongo_database.kafka.topic_prefix}visionlog-projection-mongo-g1"
    assert live.consumer_group == group
    live.apply(events, {})
    rebuild = _apply(mongo_database, client, "g2", events)
    assert rebuild.generation_changed() is False
    assert mongo_checksum(mongo_database, "g2", client) == mongo_checksum(
        mongo_database, "g1", client
    )

    with pytest.raises(ValueError, match="g3"):
        promote_mongo(mongo_database, "g3", client)
    assert promote_mongo(mongo_database, "g2", client) is None
    assert read_live_generation(mongo_database, client) == "g2"
    assert live.generation_changed() is True
    group = f"{mongo_database.kafka.topic_prefix}visionlog-projection-mongo-g2"
    assert live.consumer_group == group
    assert live.generation_changed() is False

    with pytest.raises(ValueError, match="is live"):
        drop_generation(mongo_database, "g2", client)
    drop_generation(mongo_database, "g1", client)
    names = client[mongo_database.mongo.database].list_collection_names()
    assert not [name for name in names if name.endswith("_g1")]
    assert _count(mongo_database, client, ANALYSIS_RESULTS, "g2") == 12


# ---------------------------------------------------------------- through Kafka


def _apply_then_die(settings: Settings, generation: str) -> None:
    """Child process: apply the first batch, then die before Kafka offsets are committed."""
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    projection = MongoProjection(settings, generation=generation)
    runner = ProjectionRunner(
        projection,
        settings,
        codec,
        EventPublisher(settings.kafka, codec),
        before_commit=lambda: os._exit(CRASHED_EXIT_CODE),
    )
    runner.catch_up(timeout_s=60)
    os._exit(0)  # reaching the end means no batch was written: the test fails on exit code


@pytest.fixture
def kafka_topics(
    initialised: InitReport, isolated_kafka: KafkaSettings, mongo_database: Settings
) -> Iterator[Settings]:
    # One partition per topic keeps the catch-ups quick on a small test machine.
    kafka = isolated_kafka.model_copy(update={"partition_scale": 0.01})
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, CATALOGUE)
    scoped = mongo_database.model_copy(
        update={
            "kafka": kafka,
            "projections": mongo_database.projections.model_copy(
                update={"batch_size": 4, "commit_every_messages": 4}
            ),
        }
    )
    yield scoped
    names = [full_topic_name(spec, kafka) for spec in CATALOGUE]
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)


def test_a_crash_before_the_commit_redelivers_without_duplicates(
    kafka_topics: Settings, client: MongoClient
) -> None:
    settings = kafka_topics
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    publisher = EventPublisher(settings.kafka, codec)
    records = media_log(new_media_id()) + media_log(new_media_id())
    for event_type, record in records:
        publisher.publish(event_type, record)
    publisher.flush()
    # Generations unique to this test keep its consumer groups apart from any other run.
    crashed, clean = (f"g{random.randrange(10**6, 10**7)}" for _ in range(2))

    child = multiprocessing.get_context("spawn").Process(
        target=_apply_then_die, args=(settings, crashed)
    )
    child.start()
    child.join(timeout=90)
    assert child.exitcode == CRASHED_EXIT_CODE
    written = sum(_count(settings, client, base, crashed) for base in (MEDIA_ITEMS, DOCUMENTS))
    written += _count(settings, client, ANALYSIS_RESULTS, crashed)
    assert 0 < written < 12 + 2 + 2, "the child wrote its first batch, not the whole log"

    for generation in (crashed, clean):
        projection = MongoProjection(settings, generation=generation, client=client)
        ProjectionRunner(projection, settings, codec, publisher).catch_up(timeout_s=60)

    assert _count(settings, client, ANALYSIS_RESULTS, crashed) == 12
    assert _count(settings, client, MEDIA_ITEMS, crashed) == 2
    for event_type, record in records[:1]:
        media = _doc(settings, client, MEDIA_ITEMS, crashed, record["media_id"])
        assert event_type == "MediaUploaded"
        assert media["frames"]["count"] == 3
        assert media["progress"]["ocr"]["done"] == 2
    assert mongo_checksum(settings, crashed, client) == mongo_checksum(settings, clean, client)


# ---------------------------------------------------------------- completion and progress


def completion_log(media_id: str) -> list[tuple[str, dict[str, Any]]]:
    upload = sample_event(
        get_catalog(), "MediaUploaded", media_id=media_id, media_kind="PDF", page_count=3
    )
    return [
        ("MediaUploaded", _at(upload, 0)),
        ("MediaProgressed", media_progressed(media_id, 30.0, completed=1, expected=3, seconds=10)),
        ("MediaProgressed", media_progressed(media_id, 60.0, completed=2, expected=3, seconds=20)),
        (
            "EventProcessed",
            event_processed(media_id, "page-0003", [("ocr", "FAILED", "page-0003: corrupt")]),
        ),
        (
            "MediaCompleted",
            media_completed(
                media_id,
                "COMPLETED_WITH_ERRORS",
                completed=2,
                failed=1,
                errors=[("ocr", "page-0003", "page-0003: corrupt"), ("render", None, "slow")],
                seconds=30,
            ),
        ),
        # Read after the completion, with a later time: lowers nothing, moves nothing back.
        ("MediaProgressed", media_progressed(media_id, 90.0, completed=2, expected=3, seconds=40)),
        ("MediaProgressed", media_progressed(media_id, 50.0, run_id="rerun-1", seconds=70)),
        ("MediaCompleted", media_completed(media_id, "FAILED", run_id="rerun-1", seconds=80)),
    ]


def test_completion_is_final_progress_never_lowers_and_runs_stay_apart(
    mongo_database: Settings, client: MongoClient
) -> None:
    media_id = new_media_id()
    events = as_log(completion_log(media_id))
    projection = _apply(mongo_database, client, "g1", events[:3])
    media = _doc(mongo_database, client, MEDIA_ITEMS, "g1", media_id)
    assert media["status"] == "processing" and media["percent"] == 60.0
    assert (media["items_expected"], media["items_completed"]) == (3, 2)

    projection.apply(events[3:], {})
    first = mongo_checksum(mongo_database, "g1", client)
    projection.apply(events, {})  # redelivered
    assert mongo_checksum(mongo_database, "g1", client) == first

    media = _doc(mongo_database, client, MEDIA_ITEMS, "g1", media_id)
    assert media["status"] == "completed_with_errors"
    assert media["percent"] == 100.0
    completion = media["completion"]
    assert completion["status"] == "completed_with_errors" and completion["run_id"] is None
    assert (completion["items_expected"], completion["items_failed"]) == (3, 1)
    assert completion["duration_ms"] == 30_000
    assert media["progress"]["ocr"]["last_error"]["error_message"] == "page-0003: corrupt"
    assert media["progress"]["render"]["last_error"]["error_message"] == "slow"
    run = media["runs"]["rerun-1"]
    assert run["status"] == "failed" and run["percent"] == 100.0
    assert run["completion"]["run_id"] == "rerun-1"

    # Another generation reads the topics the other way round: the same documents.
    reverse = sorted(events, key=lambda event: event.topic, reverse=True)
    _apply(mongo_database, client, "g2", reverse)
    assert mongo_checksum(mongo_database, "g2", client) == first


def test_a_dead_letter_after_a_work_report_gives_the_fuller_last_error(
    mongo_database: Settings, client: MongoClient
) -> None:
    media_id = new_media_id()
    report = event_processed(media_id, "page-0001", [("ocr", "FAILED", "corrupt page")])
    failed = sample_event(
        get_catalog(),
        "ProcessingFailed",
        media_id=media_id,
        stage="ocr",
        error_type="PermanentStageError",
        error_message="corrupt page",
    )
    events = as_log([("EventProcessed", report), ("ProcessingFailed", _at(failed, 9))])
    _apply(mongo_database, client, "g1", events[:1])
    error = _doc(mongo_database, client, MEDIA_ITEMS, "g1", media_id)["progress"]["ocr"]
    assert error["last_error"]["error_message"] == "corrupt page"
    _apply(mongo_database, client, "g1", events[1:])
    _apply(mongo_database, client, "g2", list(reversed(events)))
    for generation in ("g1", "g2"):
        stage = _doc(mongo_database, client, MEDIA_ITEMS, generation, media_id)["progress"]["ocr"]
        assert stage["last_error"]["error_type"] == "PermanentStageError"
        assert stage["failed"] == 1


def test_indexes_nothing_queries_are_dropped_and_the_used_ones_kept(
    mongo_database: Settings, client: MongoClient
) -> None:
    from pymongo import ASCENDING, DESCENDING

    from projections.mongo.projection import ensure_indexes

    database = client[mongo_database.mongo.database]
    items = database[f"{MEDIA_ITEMS}_g7"]
    results = database[f"{ANALYSIS_RESULTS}_g7"]
    # What an earlier layout left behind.
    items.create_index([("owner_id", ASCENDING)])
    items.create_index([("uploaded_at", DESCENDING)])
    results.create_index([("tenant_id", ASCENDING), ("result.class_names", ASCENDING)])
    ensure_indexes(mongo_database, "g7", client)
    ensure_indexes(mongo_database, "g7", client)  # idempotent
    item_indexes = set(items.index_information())
    result_indexes = set(results.index_information())
    assert not {"owner_id_1", "uploaded_at_-1", "status_1"} & item_indexes
    assert "tenant_id_1_result.class_names_1" not in result_indexes
    assert {"tenant_id_1_owner_id_1_uploaded_at_-1", "tenant_id_1_status_1"} <= item_indexes
    assert "media_id_1_stage_1_model_version_1" in result_indexes
