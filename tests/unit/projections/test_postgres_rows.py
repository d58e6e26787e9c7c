"""The pure mapping from events to PostgreSQL read-model rows (no servers)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from projections.postgres.rows import (
    CONSUMED_EVENT_TYPES,
    JSONB_COLUMNS,
    WHOLE_MEDIA_LABEL,
    RowMappingError,
    event_rows,
    failed_item_label,
)
from tests.factories import sample_event
from tests.processor_factories import (
    MODEL,
    assert_valid,
    blob,
    bounding_box,
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
from visionlog.contracts import (
    BlobRef,
    MediaUploaded,
    RecordContractError,
    typed_record,
    validate_record,
)
from visionlog.schemas import get_catalog

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(record: dict[str, Any], seconds: int) -> dict[str, Any]:
    record["envelope"]["occurred_at"] = T0 + timedelta(seconds=seconds)
    record["envelope"]["owner_id"] = "owner-1"
    assert_valid(record["envelope"]["event_type"], record)
    return record


def media_uploaded(media_id: str, seconds: int = 0, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "media_id": media_id,
        "media_kind": "IMAGE",
        "original": blob(f"{media_id}/original.jpg", "a" * 64),
        "original_filename": "invoice.jpg",
        "source": "LIBRARY",
        "source_uri": None,
        "profile": "default",
        "duplicate_of": None,
        "width": 800,
        "height": 600,
        "page_count": None,
        "duration_ms": None,
        "fps": None,
        "labels": {"project": "alpha"},
    }
    values.update(fields)
    return _at(sample_event(get_catalog(), "MediaUploaded", **values), seconds)


def media_deleted(media_id: str, seconds: int = 100) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "MediaDeleted",
        media_id=media_id,
        reason="user request",
        requested_by="user-7",
        blob_keys=[f"{media_id}/original.jpg"],
    )
    return _at(record, seconds)


def page_rendered(media_id: str, page: int, seconds: int = 1) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "PageRendered",
        media_id=media_id,
        page_number=page,
        page_count=3,
        dpi=200,
        width=1654,
        height=2339,
        image=blob(f"{media_id}/pages/{page:04d}.png"),
        renderer="pypdfium2/4.30",
        repaired=False,
    )
    return _at(record, seconds)


def frame_captured(
    media_id: str, frame: int, captured_at: datetime, camera: str | None = "cam-1"
) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "FrameCaptured",
        media_id=media_id,
        camera_id=camera,
        frame_index=frame,
        timestamp_ms=frame * 40,
        captured_at=captured_at,
        width=640,
        height=480,
        image=blob(f"{media_id}/frames/{frame:08d}.jpg"),
        source_fps=25.0,
        sampling_fps=5.0,
    )
    return _at(record, 2)


def output_generated(media_id: str, ref: dict[str, Any] | None) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "OutputGenerated",
        media_id=media_id,
        item=ref,
        kind="COMBINED_REPORT",
        output=blob(f"{media_id}/report.html"),
        source_event_ids=["e1", "e2"],
        generator="visionlog.outputs/0.1.0",
    )
    return _at(record, 9)


def processing_failed(
    media_id: str | None, input_key: str | None, seconds: int = 5, stage: str = "ocr"
) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "ProcessingFailed",
        media_id=media_id,
        processor="processors.document/0.1.0",
        processor_version="0.1.0",
        stage=stage,
        error_type="PermanentStageError",
        error_message="blob is not a decodable image",
        retryable=False,
        attempts=1,
        failed_topic="media.uploaded",
        failed_partition=0,
        failed_offset=4,
        failed_key=b"secret-key",
        failed_value=b"jane.doe@example.com payload",
        failed_event_type="MediaUploaded",
        input_blob=None if input_key is None else blob(input_key),
        traceback="Traceback: jane.doe@example.com",
    )
    return _at(record, seconds)


def test_every_consumed_event_type_is_mapped() -> None:
    assert set(CONSUMED_EVENT_TYPES) == {
        "MediaUploaded",
        "MediaDeleted",
        "PageRendered",
        "FrameCaptured",
        "TextRecognized",
        "ObjectsDetected",
        "CodesDecoded",
        "TrackUpdated",
        "MediaRedacted",
        "SceneDescribed",
        "OutputGenerated",
        "ProcessingFailed",
        "EventProcessed",
        "MediaProgressed",
        "MediaCompleted",
    }


def test_media_uploaded_maps_the_media_row_and_audit() -> None:
    media_id = new_media_id()
    record = media_uploaded(media_id, labels={"camera_id": "gate-2"})
    rows = event_rows(projected("MediaUploaded", record, topic="media.uploaded", offset=7))
    assert rows.media is not None and rows.media.kind == "upload"
    media = rows.media.values
    assert media["media_id"] == media_id
    assert media["status"] == "uploaded"
    assert media["kind"] == "IMAGE"
    assert media["filename"] == "invoice.jpg"
    assert media["original_key"] == f"{media_id}/original.jpg"
    assert media["original_sha256"] == "a" * 64
    assert media["camera_id"] == "gate-2"
    assert media["uploaded_at"] == T0
    assert media["owner_id"] == "owner-1"
    assert rows.results == {} and rows.processing == [] and not rows.erase
    assert rows.audit is not None
    assert rows.audit["topic"] == "media.uploaded" and rows.audit["offset"] == 7
    assert rows.audit["event_type"] == "MediaUploaded"


def test_media_deleted_erases_and_keeps_the_audit_row() -> None:
    media_id = new_media_id()
    rows = event_rows(projected("MediaDeleted", media_deleted(media_id)))
    assert rows.erase
    assert rows.media is not None and rows.media.kind == "delete"
    assert rows.media.values["status"] == "deleted"
    assert rows.media.values["deleted_at"] == T0 + timedelta(seconds=100)
    assert rows.media.values["deleted_by"] == "user-7"
    assert rows.audit is not None and rows.audit["media_id"] == media_id


def test_page_rendered_marks_the_render_stage_for_its_page() -> None:
    media_id = new_media_id()
    rows = event_rows(projected("PageRendered", page_rendered(media_id, 3)))
    (page,) = rows.results["pages"]
    assert page["item_label"] == "page-0003"
    assert page["page_number"] == 3 and page["dpi"] == 200
    assert page["image_key"] == f"{media_id}/pages/0003.png"
    (status,) = rows.processing
    assert (status["stage"], status["item_label"], status["status"]) == (
        "render",
        "page-0003",
        "done",
    )
    assert (status["model_name"], status["model_version"]) == ("pypdfium2", "4.30")
    assert rows.media is not None and rows.media.values["status"] == "processing"


def test_frame_captured_keeps_camera_and_capture_time() -> None:
    media_id = new_media_id()
    captured = T0 + timedelta(minutes=3)
    rows = event_rows(projected("FrameCaptured", frame_captured(media_id, 42, captured)))
    (frame,) = rows.results["frames"]
    assert frame["item_label"] == "frame-00000042"
    assert frame["captured_at"] == captured
    assert frame["camera_id"] == "cam-1"
    assert rows.processing == []
    assert rows.media is not None and rows.media.values["camera_id"] == "cam-1"


def test_text_recognized_keeps_text_structure_and_model() -> None:
    media_id = new_media_id()
    record = text_event(
        media_id,
        item(media_id, page=2),
        [[[("Hello", (1, 1, 5, 3)), ("world", (6, 1, 9, 3))]], [[("again", (1, 5, 4, 7))]]],
    )
    rows = event_rows(projected("TextRecognized", record))
    (text,) = rows.results["text_results"]
    assert text["item_label"] == "page-0002"
    assert text["full_text"] == "Hello world\n\nagain"
    assert text["block_count"] == 2 and text["word_count"] == 3
    assert text["model_name"] == MODEL["name"] and text["model_version"] == MODEL["version"]
    assert text["blocks"][0]["lines"][0]["words"][1]["text"] == "world"
    assert text["blocks"][0]["lines"][0]["words"][1]["polygon"][0] == {"x": 6.0, "y": 1.0}
    assert math.isclose(text["mean_confidence"], 0.9, rel_tol=1e-6)
    assert rows.processing[0]["stage"] == "ocr"


def test_objects_detected_gives_one_row_per_box() -> None:
    media_id = new_media_id()
    record = detections_event(
        media_id,
        item(media_id, frame=42),
        [("person", 0.91, (10, 20, 110, 220), 4.5), ("car", 0.5, (0, 0, 50, 40), None)],
    )
    rows = event_rows(projected("ObjectsDetected", record))
    person, car = rows.results["detections"]
    assert person["box_index"] == 0 and car["box_index"] == 1
    assert person["item_label"] == "frame-00000042" and person["frame_index"] == 42
    assert (person["x_min"], person["y_min"], person["x_max"], person["y_max"]) == (
        10.0,
        20.0,
        110.0,
        220.0,
    )
    assert person["distance_m"] == 4.5 and car["distance_m"] is None
    assert car["class_name"] == "car" and car["class_id"] == 1
    assert math.isclose(person["confidence"], 0.91, rel_tol=1e-6)
    assert person["observed_at"] == record["envelope"]["occurred_at"]
    (status,) = rows.processing
    assert (status["stage"], status["item_label"], status["model_version"]) == (
        "detection",
        "frame-00000042",
        MODEL["version"],
    )


def test_codes_decoded_gets_a_bounding_box_from_the_polygon() -> None:
    media_id = new_media_id()
    record = codes_event(media_id, item(media_id), [("QR_CODE", "https://x.test", (5, 6, 25, 30))])
    record["models"] = []
    (code,) = event_rows(projected("CodesDecoded", record)).results["codes"]
    assert code["item_label"] == "original"
    assert code["text"] == "https://x.test"
    assert (code["x_min"], code["y_min"], code["x_max"], code["y_max"]) == (5.0, 6.0, 25.0, 30.0)
    assert len(code["polygon"]) == 4
    # Without a models list the decoder names the model.
    assert (code["model_name"], code["model_version"]) == ("zxing", "2")
    record["models"] = [MODEL]
    (with_model,) = event_rows(projected("CodesDecoded", record)).results["codes"]
    assert (with_model["model_name"], with_model["model_version"]) == ("test-model", "test==1")


def test_track_updated_rows_per_track_with_tracker_as_model() -> None:
    media_id = new_media_id()
    record = track_event(media_id, 7, [(1, "person", "TRACKED", 2, 5), (2, "car", "NEW", 7, 1)])
    rows = event_rows(projected("TrackUpdated", record))
    first, second = rows.results["tracks"]
    assert (first["track_id"], first["state"], first["hits"]) == (1, "TRACKED", 5)
    assert second["first_frame_index"] == 7 and second["item_label"] == "frame-00000007"
    assert (first["model_name"], first["model_version"]) == ("test", "1")


def test_media_redacted_keeps_counts_not_content() -> None:
    media_id = new_media_id()
    rows = event_rows(projected("MediaRedacted", redaction_event(media_id, item(media_id))))
    (redaction,) = rows.results["redactions"]
    assert redaction["region_counts"] == {"FACE": 2, "LICENCE_PLATE": 1}
    assert redaction["pii_counts"] == {"email": 2}
    assert redaction["regions"][0]["box"] == {
        "x_min": 1.0,
        "y_min": 1.0,
        "x_max": 5.0,
        "y_max": 5.0,
    }
    assert redaction["method"] == "BLUR"
    assert rows.processing[0]["stage"] == "anonymise"


def test_scene_described_keeps_sentences_per_language() -> None:
    media_id = new_media_id()
    record = scene_event(media_id, item(media_id), {"en": "A cat.", "de": "Eine Katze."})
    (scene,) = event_rows(projected("SceneDescribed", record)).results["scenes"]
    assert scene["sentences"] == {"de": "Eine Katze.", "en": "A cat."}
    assert scene["object_count"] == 0


def test_output_without_item_is_about_the_whole_media() -> None:
    media_id = new_media_id()
    rows = event_rows(projected("OutputGenerated", output_generated(media_id, None)))
    (output,) = rows.results["outputs"]
    assert output["item_label"] == WHOLE_MEDIA_LABEL
    assert output["output_key"] == f"{media_id}/report.html"
    assert (output["model_name"], output["model_version"]) == ("visionlog.outputs", "0.1.0")
    assert rows.processing[0]["item_label"] == WHOLE_MEDIA_LABEL

    with_item = event_rows(
        projected("OutputGenerated", output_generated(media_id, item(media_id, page=1)))
    )
    assert with_item.results["outputs"][0]["item_label"] == "page-0001"


def test_processing_failed_marks_the_stage_failed_without_payload() -> None:
    media_id = new_media_id()
    rows = event_rows(
        projected("ProcessingFailed", processing_failed(media_id, f"{media_id}/pages/0003.png"))
    )
    (status,) = rows.processing
    assert status["status"] == "failed"
    assert (status["stage"], status["item_label"], status["model_version"]) == (
        "ocr",
        "page-0003",
        "",
    )
    assert status["error_type"] == "PermanentStageError"
    # One failed stage does not end the item: its MediaCompleted says how it ended.
    assert rows.media is not None and rows.media.values["status"] == "processing"
    everything = repr((rows.processing, rows.media, rows.audit, rows.results))
    assert "jane.doe@example.com" not in everything
    assert "secret-key" not in everything


def test_processing_failed_without_media_only_audits() -> None:
    rows = event_rows(projected("ProcessingFailed", processing_failed(None, None)))
    assert rows.media is None and rows.processing == [] and rows.media_id is None
    assert rows.audit is not None and rows.audit["event_type"] == "ProcessingFailed"


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("m/pages/0012.png", "page-0012"),
        ("m/frames/00000042.jpg", "frame-00000042"),
        ("m/frames/run-1/00000007.jpg", "frame-00000007"),
        ("m/original.jpg", "original"),
    ],
)
def test_failed_item_label_follows_the_blob_layout(key: str, label: str) -> None:
    ref: BlobRef = {
        "bucket": "media-originals",
        "key": key,
        "sha256": "0" * 64,
        "size_bytes": 1,
        "content_type": "image/png",
    }
    assert failed_item_label(ref) == label
    assert failed_item_label(None) == "original"


def test_audit_rows_carry_no_payload() -> None:
    media_id = new_media_id()
    record = text_event(media_id, item(media_id), [[[("confidential", (1, 1, 2, 2))]]])
    audit = event_rows(projected("TextRecognized", record)).audit
    assert audit is not None and "confidential" not in repr(audit)
    assert set(audit) == {
        "event_id",
        "event_type",
        "media_id",
        "tenant_id",
        "owner_id",
        "producer",
        "correlation_id",
        "causation_id",
        "occurred_at",
        "topic",
        "partition",
        "offset",
    }


def test_a_non_finite_box_is_rejected_with_its_path() -> None:
    media_id = new_media_id()
    record = detections_event(media_id, item(media_id), [("cat", 0.8, (1, 2, 3, 4), None)])
    record["detections"][0]["box"]["x_max"] = math.nan
    with pytest.raises(RowMappingError, match=r"detections\[0\]\.box\.x_max is nan"):
        event_rows(projected("ObjectsDetected", record))


def test_an_inverted_box_is_rejected_with_its_path() -> None:
    media_id = new_media_id()
    record = detections_event(media_id, item(media_id), [("cat", 0.8, (9, 2, 3, 4), None)])
    with pytest.raises(RowMappingError, match=r"detections\[0\]\.box is inverted"):
        event_rows(projected("ObjectsDetected", record))


def test_a_missing_or_mistyped_field_is_the_contract_check() -> None:
    # The codec never hands the projection such a record (it decodes against the contract);
    # a record built by hand is checked with validate_record, and mypy checks the reads.
    media_id = new_media_id()
    missing = text_event(media_id, item(media_id), [[[("x", (1, 1, 2, 2))]]])
    del missing["full_text"]
    with pytest.raises(RecordContractError, match=r"TextRecognized\.full_text: is missing"):
        validate_record("TextRecognized", missing)
    mistyped = detections_event(media_id, item(media_id), [("cat", 0.8, (1, 2, 3, 4), None)])
    mistyped["detections"][0]["box"]["x_max"] = "wide"
    with pytest.raises(RecordContractError, match=r"detections\[0\]\.box\.x_max"):
        validate_record("ObjectsDetected", mistyped)


@pytest.mark.parametrize(
    ("event_type", "spoil", "reason"),
    [
        (
            "ObjectsDetected",
            lambda r: r["detections"][0].update(confidence=1.5),
            r"detections\[0\]\.confidence is 1\.5, expected 0\.\.1",
        ),
        (
            "ObjectsDetected",
            lambda r: r["detections"][0].update(distance_m=math.inf),
            r"detections\[0\]\.distance_m is inf, expected a finite number",
        ),
        (
            "TextRecognized",
            lambda r: r["blocks"][0]["lines"][0]["words"][0]["polygon"][2].update(y=math.nan),
            r"blocks\[0\]\.lines\[0\]\.words\[0\]\.polygon\[2\]\.y is nan",
        ),
        (
            "TrackUpdated",
            lambda r: r["tracks"][1].update(track_id=r["tracks"][0]["track_id"]),
            r"tracks\[1\]\.track_id 1 appears twice",
        ),
        (
            "SceneDescribed",
            lambda r: r.update(
                objects=[
                    {
                        "class_name": "cat",
                        "box": bounding_box((1, 1, 2, 2)),
                        "distance_m": None,
                        "horizontal_position": "left",
                    }
                ],
                relations=[{"subject_index": 0, "predicate": "NEAR", "object_index": 3}],
            ),
            r"relations\[0\]\.object_index is 3, but the scene has 1 objects",
        ),
        (
            "MediaProgressed",
            lambda r: r["stages"][0].update(failed=-1),
            r"stages\[0\]\.failed is -1, expected a count",
        ),
        (
            "MediaUploaded",
            lambda r: r["envelope"].update(event_type="MediaDeleted"),
            r"envelope\.event_type is 'MediaDeleted' but the event is 'MediaUploaded'",
        ),
    ],
)
def test_values_the_contract_allows_but_the_read_model_cannot_hold_are_rejected(
    event_type: str, spoil: Callable[[dict[str, Any]], object], reason: str
) -> None:
    media_id = new_media_id()
    records: dict[str, dict[str, Any]] = {
        "ObjectsDetected": detections_event(
            media_id, item(media_id), [("cat", 0.8, (1, 2, 3, 4), 2.0)]
        ),
        "TextRecognized": text_event(media_id, item(media_id), [[[("x", (1, 1, 2, 2))]]]),
        "TrackUpdated": track_event(
            media_id, 3, [(1, "cat", "NEW", 3, 1), (2, "dog", "NEW", 3, 1)]
        ),
        "SceneDescribed": scene_event(media_id, item(media_id), {"en": "A cat."}),
        "MediaProgressed": media_progressed(media_id, 10.0),
        "MediaUploaded": media_uploaded(media_id),
    }
    record = records[event_type]
    spoil(record)
    # Each spoiled record still has the contract's shape: only its values are wrong.
    validate_record(event_type, record)
    with pytest.raises(RowMappingError, match=reason):
        event_rows(projected(event_type, record))


def test_an_event_type_outside_the_catalogue_is_a_contract_error() -> None:
    media_id = new_media_id()
    record = media_uploaded(media_id)
    with pytest.raises(RecordContractError, match="not an event type of the catalogue"):
        typed_record(MediaUploaded, "NoSuchEvent", record)


def test_an_unprojected_event_type_is_rejected() -> None:
    record = sample_event(get_catalog(), "ReprocessRequested")
    with pytest.raises(RowMappingError, match="not projected to PostgreSQL"):
        event_rows(projected("ReprocessRequested", record))


def test_jsonb_columns_are_plain_python_values() -> None:
    media_id = new_media_id()
    rows = event_rows(projected("MediaRedacted", redaction_event(media_id, item(media_id))))
    for column, value in rows.results["redactions"][0].items():
        if column in JSONB_COLUMNS:
            assert isinstance(value, dict | list), column


# ---------------------------------------------------------------- completion


def test_media_completed_sets_the_final_status_and_the_run() -> None:
    media_id = new_media_id()
    record = media_completed(
        media_id,
        "COMPLETED_WITH_ERRORS",
        expected=3,
        completed=2,
        failed=1,
        errors=[("ocr", "page-0002", "page-0002: not a decodable image")],
    )
    rows = event_rows(projected("MediaCompleted", record, topic="media", offset=3))
    assert rows.media is not None and rows.media.kind == "status"
    assert rows.media.values["status"] == "completed_with_errors"
    assert rows.run is not None and rows.run.kind == "completion"
    run = rows.run.values
    assert run["run_id"] == "" and run["status"] == "completed_with_errors"
    assert (run["items_expected"], run["items_completed"], run["items_failed"]) == (3, 2, 1)
    assert run["percent"] == 100.0
    assert run["errors"] == [
        {"stage": "ocr", "item_label": "page-0002", "message": "page-0002: not a decodable image"}
    ]
    assert run["stages"][0] == {
        "stage": "detection",
        "done": 2,
        "not_applicable": 0,
        "skipped": 0,
        "failed": 1,
    }
    assert run["duration_ms"] == 60_000 and run["completed_at"] == T0 + timedelta(seconds=60)
    assert rows.audit is not None and rows.audit["event_type"] == "MediaCompleted"


def test_a_reprocess_completion_leaves_the_item_status_alone() -> None:
    media_id = new_media_id()
    rows = event_rows(projected("MediaCompleted", media_completed(media_id, run_id="rerun-1")))
    assert rows.media is None
    assert rows.run is not None and rows.run.values["run_id"] == "rerun-1"


def test_an_unknown_completion_status_is_rejected() -> None:
    record = media_completed(new_media_id())
    record["status"] = "UNKNOWN"
    with pytest.raises(RowMappingError, match=r"event\.status is 'UNKNOWN'"):
        event_rows(projected("MediaCompleted", record))


def test_media_progressed_is_processing_with_a_percent_and_not_audited() -> None:
    media_id = new_media_id()
    rows = event_rows(
        projected("MediaProgressed", media_progressed(media_id, 40.0, completed=2, expected=5))
    )
    assert rows.audit is None
    assert rows.media is not None and rows.media.values["status"] == "processing"
    assert rows.run is not None and rows.run.kind == "progress"
    assert rows.run.values["percent"] == 40.0
    assert (rows.run.values["items_expected"], rows.run.values["items_completed"]) == (5, 2)
    record = media_progressed(media_id, 40.0)
    record["percent"] = 140.0
    with pytest.raises(RowMappingError, match=r"percent is 140\.0"):
        event_rows(projected("MediaProgressed", record))


def test_a_skipped_camera_frame_records_skipped_with_the_reason() -> None:
    camera = new_media_id()
    record = event_processed(
        camera,
        "frame-00000042",
        [
            ("detection", "SKIPPED", "stale: 2412 ms old, bound 2000 ms"),
            ("tracking", "NOT_APPLICABLE", None),
        ],
        worker="live",
        camera_id="gate-1",
    )
    rows = event_rows(projected("EventProcessed", record))
    assert rows.audit is None and rows.media is None and rows.run is None
    assert rows.outcome is not None and rows.outcome.table == "frames"
    values = rows.outcome.values
    assert values["frame_index"] == 42 and values["camera_id"] == "gate-1"
    assert values["stages"] == {
        "detection": {"status": "skipped", "reason": "stale: 2412 ms old, bound 2000 ms"}
    }
    assert (values["outcome"], values["outcome_reason"]) == (
        "skipped",
        "stale: 2412 ms old, bound 2000 ms",
    )


def test_work_reports_keep_the_most_telling_outcome_of_a_page() -> None:
    media_id = new_media_id()
    record = event_processed(
        media_id,
        "page-0003",
        [("ocr", "DONE", None), ("codes", "FAILED", "zxing: bad image"), ("pii", "SKIPPED", "x")],
    )
    rows = event_rows(projected("EventProcessed", record))
    assert rows.outcome is not None and rows.outcome.table == "pages"
    assert rows.outcome.values["page_number"] == 3
    assert rows.outcome.values["outcome"] == "failed"
    assert rows.outcome.values["outcome_reason"] == "zxing: bad image"
    assert set(rows.outcome.values["stages"]) == {"ocr", "codes", "pii"}


@pytest.mark.parametrize(
    ("label", "outcomes", "run_id"),
    [
        (None, [("render", "DONE", None)], None),
        ("original", [("detection", "DONE", None)], None),
        ("page-0001", [("render", "NOT_APPLICABLE", None)], None),
        ("frame-00000001", [("detection", "DONE", None)], "rerun-1"),
    ],
)
def test_work_reports_without_a_page_or_frame_outcome_write_nothing(
    label: str | None, outcomes: list[tuple[str, str, str | None]], run_id: str | None
) -> None:
    record = event_processed(new_media_id(), label, outcomes, run_id=run_id)
    rows = event_rows(projected("EventProcessed", record))
    assert rows.outcome is None and rows.audit is None and rows.media is None
