"""The pure event -> MongoDB write mapping, and generation ids."""

from __future__ import annotations

import math
from typing import Any

import pytest

from projections.generations import (
    InvalidGenerationError,
    generation_number,
    next_generation,
)
from projections.mongo.documents import (
    ANALYSIS_RESULTS,
    DOCUMENTS,
    EVENT_TYPES,
    MEDIA_ITEMS,
    STATUS_DELETED,
    STATUS_PENDING,
    STATUS_PROCESSING,
    STATUS_STREAM,
    STATUS_UPLOADED,
    EventWrites,
    UnmappableEventError,
    Upsert,
    field_key,
    item_label,
    split_versioned,
    writes_for_event,
)
from projections.postgres.rows import event_rows
from tests.factories import sample_event
from tests.processor_factories import (
    MODEL,
    blob,
    detections_event,
    item,
    new_media_id,
    text_event,
)
from tests.projection_factories import projected
from tests.unit.projections.completion_events import (
    event_processed,
    media_completed,
    media_progressed,
)
from visionlog.contracts import (
    ItemRef,
    ObjectsDetected,
    RecordContractError,
    typed_record,
    validate_record,
)
from visionlog.schemas import get_catalog
from visionlog.stream.deadletter import StageFailure, failure_record
from visionlog.stream.messages import InboundMessage


def _one(upserts: list[Upsert], collection: str) -> Upsert:
    found = [u for u in upserts if u.collection == collection]
    assert len(found) == 1, found
    return found[0]


def test_generation_ids_count_up_and_reject_malformed_ids() -> None:
    assert next_generation("g1") == "g2"
    assert next_generation("g9") == "g10"
    assert generation_number("g12") == 12
    for bad in ("g0", "1", "G1", "g01", "g1x", ""):
        with pytest.raises(InvalidGenerationError, match="g<n>"):
            generation_number(bad)


def test_field_keys_escape_dots_and_dollars_without_collisions() -> None:
    assert field_key("pp-ocr@2.7.0") == "pp-ocr@2%2E7%2E0"
    assert field_key("$x") == "%24x"
    # The escape character itself is escaped, so distinct inputs stay distinct.
    assert field_key("1.0") != field_key("1%2E0")
    assert "." not in field_key("a.b.c")


def test_item_labels_name_pages_and_share_one_key_for_frames() -> None:
    media_id = new_media_id()

    def ref(page: int | None = None, frame: int | None = None) -> ItemRef:
        record = detections_event(media_id, item(media_id, page=page, frame=frame), [])
        return typed_record(ObjectsDetected, "ObjectsDetected", record, check=True)["item"]

    assert item_label(ref(page=3)) == "page-3"
    assert item_label(ref(frame=7)) == "frame"
    assert item_label(ref()) == "image"
    assert item_label(None) == "media"


def test_split_versioned_takes_the_last_slash() -> None:
    assert split_versioned("processors.outputs/0.1.0") == ("processors.outputs", "0.1.0")
    assert split_versioned("bytetrack/visionlog-0.1") == ("bytetrack", "visionlog-0.1")
    assert split_versioned("noversion") == ("noversion", None)


def test_media_uploaded_sets_the_media_document() -> None:
    media_id = new_media_id()
    record = sample_event(
        get_catalog(),
        "MediaUploaded",
        media_id=media_id,
        media_kind="PDF",
        original=blob("doc.pdf"),
        source="HTTP",
        source_uri=None,
        width=None,
        height=None,
        page_count=4,
        labels={"case": "42"},
    )
    writes = writes_for_event(projected("MediaUploaded", record))
    assert writes.media_id == media_id
    assert writes.guarded == [] and writes.erasure is None
    upsert = _one(writes.upserts, MEDIA_ITEMS)
    assert upsert.document_id == media_id
    document = upsert.update["$set"]
    assert document["media_kind"] == "PDF"
    assert document["dimensions"]["page_count"] == 4
    assert document["labels"] == {"case": "42"}
    assert document["uploaded_at"] == record["envelope"]["occurred_at"]
    assert document["tenant_id"] == "tests"
    # Upload facts are $set, so they win over a result that came first; the status only
    # moves up its ladder, so progress or a completion read before the upload stays.
    assert upsert.update["$setOnInsert"] == {"status": STATUS_UPLOADED}
    (status,) = writes.conditional
    assert status.filter() == {"_id": media_id, "status": {"$in": [STATUS_PENDING]}}
    assert status.update == {"$set": {"status": STATUS_UPLOADED}}


def test_text_result_maps_to_three_collections_with_a_guarded_counter() -> None:
    media_id = new_media_id()
    record = text_event(media_id, item(media_id, page=2), [[[("Hello", (1, 1, 9, 9))]]])
    event = projected("TextRecognized", record, topic="ocr.text", partition=3, offset=17)
    writes = writes_for_event(event)

    media = _one(writes.upserts, MEDIA_ITEMS)
    assert media.update["$setOnInsert"]["status"] == STATUS_PENDING
    assert media.update["$max"]["progress.ocr.last_at"] == record["envelope"]["occurred_at"]

    result = _one(writes.upserts, ANALYSIS_RESULTS)
    assert result.document_id == event.event_id
    stored = result.update["$set"]
    assert stored["stage"] == "ocr"
    assert stored["model_name"] == MODEL["name"]
    assert stored["model_version"] == MODEL["version"]
    assert stored["item"]["page_number"] == 2
    assert stored["result"]["full_text"] == "Hello"
    # Compact: blocks keep their text, not the word geometry.
    assert "lines" not in stored["result"]["blocks"][0]

    document = _one(writes.upserts, DOCUMENTS)
    version_key = field_key(f"{MODEL['name']}@{MODEL['version']}")
    assert document.update["$set"][f"pages.page-2.versions.{version_key}"]["text"] == "Hello"

    (counter,) = writes.guarded
    assert counter.guard_field == "log_positions.ocr%2Etext:3"
    assert counter.filter() == {
        "_id": media_id,
        "log_positions.ocr%2Etext:3": {"$not": {"$gte": 17}},
    }
    update = counter.guarded_update()
    assert update["$inc"] == {"progress.ocr.done": 1}
    assert update["$set"] == {"log_positions.ocr%2Etext:3": 17}


def test_detections_keep_boxes_and_class_names() -> None:
    media_id = new_media_id()
    record = detections_event(
        media_id,
        item(media_id),
        [("person", 0.9, (1, 2, 3, 4), 5.0), ("car", 0.5, (5, 6, 7, 8), None)],
    )
    writes = writes_for_event(projected("ObjectsDetected", record))
    result = _one(writes.upserts, ANALYSIS_RESULTS).update["$set"]["result"]
    assert result["class_names"] == ["car", "person"]
    assert result["detections"][0]["box"] == {"x_min": 1, "y_min": 2, "x_max": 3, "y_max": 4}
    assert result["detections"][0]["distance_m"] == 5.0
    assert not [u for u in writes.upserts if u.collection == DOCUMENTS]


def test_frames_are_counted_by_a_guarded_update_not_an_array() -> None:
    media_id = new_media_id()
    record = sample_event(
        get_catalog(), "FrameCaptured", media_id=media_id, camera_id="gate", frame_index=41
    )
    writes = writes_for_event(projected("FrameCaptured", record, topic="media.frames", offset=9))
    media = _one(writes.upserts, MEDIA_ITEMS)
    assert media.update["$set"] == {"camera_id": "gate"}
    # A camera stream never has an upload: its document is a stream, not pending.
    assert media.update["$setOnInsert"]["status"] == STATUS_STREAM
    (counter,) = writes.guarded
    update = counter.guarded_update()
    assert update["$inc"] == {"frames.count": 1}
    assert update["$set"]["frames.latest"]["frame_index"] == 41
    assert not any("$push" in u.update or "$addToSet" in u.update for u in writes.upserts)


def test_failures_count_per_stage_and_ownerless_failures_write_nothing() -> None:
    media_id = new_media_id()
    failed = sample_event(
        get_catalog(), "ProcessingFailed", media_id=media_id, stage="detect.v2", retryable=False
    )
    writes = writes_for_event(projected("ProcessingFailed", failed))
    (counter,) = writes.guarded
    update = counter.guarded_update()
    assert update["$inc"] == {"progress.detect%2Ev2.failed": 1}
    assert update["$set"]["progress.detect%2Ev2.last_error"]["retryable"] is False
    assert _one(writes.upserts, ANALYSIS_RESULTS).update["$set"]["stage"] == "detect.v2"

    rejected = sample_event(get_catalog(), "ProcessingFailed", media_id=None)
    rejected["media_id"] = None
    nothing = writes_for_event(projected("ProcessingFailed", rejected))
    assert nothing.media_id is None
    assert nothing.upserts == [] and nothing.guarded == []


def test_embeddings_only_count_progress() -> None:
    media_id = new_media_id()
    record = sample_event(get_catalog(), "EmbeddingComputed", media_id=media_id)
    writes = writes_for_event(projected("EmbeddingComputed", record))
    assert [u.collection for u in writes.upserts] == [MEDIA_ITEMS]
    assert writes.guarded[0].guarded_update()["$inc"] == {"progress.embedding.done": 1}


def test_media_deleted_becomes_an_erasure_with_a_tombstone() -> None:
    media_id = new_media_id()
    record = sample_event(get_catalog(), "MediaDeleted", media_id=media_id, reason="user_request")
    writes = writes_for_event(projected("MediaDeleted", record))
    assert writes.upserts == [] and writes.guarded == []
    assert writes.erasure is not None
    tombstone: dict[str, Any] = writes.erasure.tombstone
    assert tombstone["_id"] == media_id
    assert tombstone["status"] == STATUS_DELETED
    assert tombstone["deletion_reason"] == "user_request"
    # Erasure keeps nothing of the upload: no file name, labels or blobs.
    assert not {"original", "original_filename", "labels"} & set(tombstone)


def test_every_projected_event_type_is_mapped() -> None:
    for event_type in EVENT_TYPES:
        record = sample_event(get_catalog(), event_type)
        try:
            assert isinstance(writes_for_event(projected(event_type, record)), EventWrites)
        except UnmappableEventError as error:
            # Random sample values may break a value rule; none may be an unmapped type.
            assert "does not map" not in str(error)


def test_unknown_types_are_rejected_and_broken_records_are_the_contract_check() -> None:
    media_id = new_media_id()
    record = sample_event(get_catalog(), "CameraStatusReported")
    with pytest.raises(UnmappableEventError, match="does not map CameraStatusReported"):
        writes_for_event(projected("CameraStatusReported", record))
    # A missing or mistyped field never reaches the mapping (the codec decodes against the
    # contract); a record built by hand is checked with validate_record.
    broken = text_event(media_id, item(media_id), [[[("x", (1, 1, 2, 2))]]])
    del broken["full_text"]
    with pytest.raises(RecordContractError, match=r"TextRecognized\.full_text: is missing"):
        validate_record("TextRecognized", broken)


@pytest.mark.parametrize("percent", [140.0, -1.0, math.nan])
def test_a_percent_outside_0_to_100_is_rejected(percent: float) -> None:
    record = media_progressed(new_media_id(), 40.0)
    record["percent"] = percent
    validate_record("MediaProgressed", record)
    with pytest.raises(UnmappableEventError, match=r"expected 0\.\.100"):
        writes_for_event(projected("MediaProgressed", record))


def test_an_unknown_completion_status_is_rejected() -> None:
    record = media_completed(new_media_id())
    record["status"] = "UNKNOWN"
    with pytest.raises(UnmappableEventError, match="status is 'UNKNOWN'"):
        writes_for_event(projected("MediaCompleted", record))


def test_progress_only_grows_and_moves_the_status_to_processing() -> None:
    media_id = new_media_id()
    record = media_progressed(media_id, 40.0, completed=2, expected=5)
    writes = writes_for_event(projected("MediaProgressed", record, topic="processing"))
    media = _one(writes.upserts, MEDIA_ITEMS)
    assert media.update["$max"]["percent"] == 40.0
    assert media.update["$max"]["items_completed"] == 2
    assert media.update["$max"]["items_expected"] == 5
    (status,) = writes.conditional
    assert status.filter() == {
        "_id": media_id,
        "status": {"$in": [STATUS_PENDING, STATUS_UPLOADED]},
    }
    assert status.update == {"$set": {"status": STATUS_PROCESSING}}
    assert writes.guarded == []


def test_a_reprocess_run_keeps_its_progress_and_completion_apart() -> None:
    media_id = new_media_id()
    progress = writes_for_event(
        projected("MediaProgressed", media_progressed(media_id, 10.0, run_id="r.1"))
    )
    assert _one(progress.upserts, MEDIA_ITEMS).update["$max"]["runs.r%2E1.percent"] == 10.0
    assert progress.conditional[0].condition == {"runs.r%2E1.status": None}
    done = writes_for_event(
        projected("MediaCompleted", media_completed(media_id, "FAILED", run_id="r.1"))
    )
    (completion,) = done.conditional
    assert set(completion.update["$set"]) == {
        "runs.r%2E1.status",
        "runs.r%2E1.completion",
        "runs.r%2E1.run_id",
    }
    assert completion.update["$set"]["runs.r%2E1.status"] == "failed"
    assert "status" not in completion.update["$set"]


def test_completion_is_final_and_names_the_last_error_of_failed_stages() -> None:
    media_id = new_media_id()
    record = media_completed(
        media_id,
        "COMPLETED_WITH_ERRORS",
        failed=1,
        errors=[("ocr", "page-0002", "corrupt page"), ("ocr", "page-0003", "later")],
    )
    writes = writes_for_event(projected("MediaCompleted", record, topic="media"))
    assert _one(writes.upserts, MEDIA_ITEMS).update["$max"]["percent"] == 100.0
    completion, last_error = writes.conditional
    assert "$or" in completion.condition
    assert completion.update["$set"]["status"] == "completed_with_errors"
    assert completion.update["$set"]["completion"]["items_failed"] == 1
    # Only where no dead letter set it already, and the first error of the stage.
    assert last_error.condition == {"progress.ocr.last_error": None}
    error = last_error.update["$set"]["progress.ocr.last_error"]
    assert (error["error_message"], error["item_label"]) == ("corrupt page", "page-0002")


def test_work_reports_write_only_failure_reasons() -> None:
    media_id = new_media_id()
    skipped = event_processed(
        media_id, "frame-00000001", [("detection", "SKIPPED", "stale")], camera_id="gate"
    )
    nothing = writes_for_event(projected("EventProcessed", skipped))
    assert nothing.upserts == [] and nothing.conditional == [] and nothing.guarded == []
    failed = event_processed(media_id, "page-0001", [("ocr", "FAILED", "no text layer")])
    writes = writes_for_event(projected("EventProcessed", failed))
    (error,) = writes.conditional
    assert error.update["$set"]["progress.ocr.last_error"]["error_message"] == "no text layer"


def test_a_dead_letter_gives_its_stage_the_last_error_the_postgres_row_holds() -> None:
    media_id = new_media_id()
    page = sample_event(
        get_catalog(),
        "PageRendered",
        media_id=media_id,
        page_number=3,
        image=blob(f"{media_id}/pages/0003.png"),
    )
    # As a stage's runner writes it: the page it failed on is the input's image.
    failed = failure_record(
        worker="ocr",
        failure=StageFailure("ocr", RuntimeError("corrupt page"), attempts=3, retryable=False),
        message=InboundMessage("media.pages", 1, 41, media_id.encode(), b""),
        source=page,
        event_type="PageRendered",
    )
    event = projected("ProcessingFailed", dict(failed), topic="processing.failed", offset=5)
    (counter,) = writes_for_event(event).guarded
    update = counter.guarded_update()
    assert update["$inc"] == {"progress.ocr.failed": 1}
    error = update["$set"]["progress.ocr.last_error"]
    (row,) = event_rows(event).processing
    # Reason, item, time and event: what PostgreSQL's error columns hold.
    assert error["error_message"] == row["error"] == "corrupt page"
    assert error["error_type"] == row["error_type"] == "RuntimeError"
    assert error["item_label"] == row["item_label"] == "page-0003"
    assert error["occurred_at"] == row["event_at"] == failed["envelope"]["occurred_at"]
    assert error["event_id"] == row["event_id"] == event.event_id
    assert (error["retryable"], error["attempts"]) == (row["retryable"], row["attempts"])
    # Set after the upserts and guarded by the log position: it overwrites a work report's
    # reason and a redelivery of the same dead letter changes nothing.
    assert counter.filter()[counter.guard_field] == {"$not": {"$gte": 5}}


def test_a_failed_work_report_gives_its_reason_time_and_event_only_where_none_is_set() -> None:
    media_id = new_media_id()
    report = event_processed(
        media_id,
        "frame-00000007",
        [("detection", "FAILED", "x" * 5000), ("ocr", "FAILED", None), ("codes", "DONE", None)],
    )
    event = projected("EventProcessed", report)
    (error,) = writes_for_event(event).conditional
    assert error.condition == {"progress.detection.last_error": None}
    reason = error.update["$set"]["progress.detection.last_error"]
    assert len(reason["error_message"]) == 2000
    assert reason["item_label"] == "frame-00000007"
    assert reason["event_id"] == event.event_id
    assert reason["occurred_at"] == report["envelope"]["occurred_at"]
