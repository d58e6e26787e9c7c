"""`validate_record` checks a record against its contract at run time and names the wrong
field; `typed_record` types a decoded record after checking it belongs to the type."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro.utils import generate_many

from visionlog.codec import EventEncodingError
from visionlog.contracts import (
    ObjectsDetected,
    RecordContractError,
    TextRecognized,
    typed_record,
    validate_record,
)
from visionlog.errors import ContractError
from visionlog.schemas import get_catalog

CATALOG = get_catalog()


def objects_detected() -> ObjectsDetected:
    """A valid record, built through the typed record (mypy checks this literal)."""
    return {
        "envelope": {
            "event_id": "6c1d1f5e-3f39-4b5e-9f64-0c3c9f6a7b10",
            "event_type": "ObjectsDetected",
            "schema_version": 1,
            "occurred_at": datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
            "producer": "tests/0",
            "correlation_id": "media-1",
            "tenant_id": "tests",
        },
        "media_id": "media-1",
        "item": {
            "media_id": "media-1",
            "frame_index": 42,
            "image": {
                "bucket": "frames",
                "key": "media-1/frames/00000042.jpg",
                "sha256": "0" * 64,
                "size_bytes": 1234,
                "content_type": "image/jpeg",
            },
        },
        "image_width": 640,
        "image_height": 480,
        "detections": [
            {
                "class_id": 0,
                "class_name": "person",
                "confidence": 0.9,
                "box": {"x_min": 1.0, "y_min": 2.0, "x_max": 30.0, "y_max": 60.0},
                "track_id": 7,
            }
        ],
        "model": {"name": "nanodet-coco", "version": "1", "source": "tests"},
        "score_threshold": 0.35,
        "inference_ms": 12.5,
    }


@pytest.mark.parametrize("name", sorted(CATALOG.events))
def test_records_fastavro_generates_pass(name: str) -> None:
    random.seed(name)
    for record in generate_many(CATALOG.event(name).parsed, 25):
        validate_record(name, record)


def test_a_typed_record_with_defaults_left_out_passes() -> None:
    validate_record("ObjectsDetected", objects_detected())


def _detection(record: dict[str, Any]) -> dict[str, Any]:
    detection: dict[str, Any] = record["detections"][0]
    return detection


MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    (
        "misspelled key",
        lambda r: r.update(detectionz=r.pop("detections")),
        "detectionz",
        "is not a field of visionlog.events.ObjectsDetected (did you mean detections?)",
    ),
    (
        "missing field",
        lambda r: r.pop("detections"),
        "detections",
        "is missing (the field has no default)",
    ),
    (
        "misspelled optional key",
        lambda r: _detection(r).update(track_idd=_detection(r).pop("track_id")),
        "detections[0].track_idd",
        "is not a field of visionlog.types.Detection (did you mean track_id?)",
    ),
    (
        "wrong type",
        lambda r: r.update(image_width="640"),
        "image_width",
        "'640' is not a valid int",
    ),
    (
        "wrong nested type",
        lambda r: _detection(r)["box"].update(x_max="wide"),
        "detections[0].box.x_max",
        "'wide' is not a valid float",
    ),
    (
        "wrong type in a union",
        lambda r: _detection(r).update(track_id="7"),
        "detections[0].track_id",
        "'7' is not a valid null or long",
    ),
    (
        "int out of range",
        lambda r: r.update(image_height=2**31),
        "image_height",
        "is not a valid int",
    ),
    (
        "timestamp as text",
        lambda r: r["envelope"].update(occurred_at="2026-05-01"),
        "envelope.occurred_at",
        "is not a valid long (timestamp-millis)",
    ),
    ("bool is not an int", lambda r: r.update(image_width=True), "image_width", "True is not"),
    (
        "record missing",
        lambda r: r["item"].update(image=None),
        "item.image",
        "expected a record visionlog.types.BlobRef",
    ),
    ("array as text", lambda r: r.update(detections="x"), "detections", "expected an array"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [case[1:] for case in MUTATIONS],
    ids=[case[0] for case in MUTATIONS],
)
def test_a_wrong_record_is_refused_with_the_field_path(
    mutate: Callable[[dict[str, Any]], Any], path: str, reason: str
) -> None:
    record: dict[str, Any] = copy.deepcopy(dict(objects_detected()))
    mutate(record)
    with pytest.raises(RecordContractError) as caught:
        validate_record("ObjectsDetected", record)
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"ObjectsDetected.{path}: ")
    # The codec's error, a contract error: dead-lettered at once, 422 through the API.
    assert isinstance(caught.value, EventEncodingError)
    assert isinstance(caught.value, ContractError)


def test_enum_symbols_and_map_values_are_checked() -> None:
    [record] = generate_many(CATALOG.event("MediaUploaded").parsed, 1)
    record["media_kind"] = "GIF"
    with pytest.raises(RecordContractError, match=r"MediaUploaded\.media_kind: 'GIF' is not a"):
        validate_record("MediaUploaded", record)
    record["media_kind"] = "IMAGE"
    record["labels"] = {"case": 4711}
    with pytest.raises(RecordContractError, match=r"MediaUploaded\.labels\['case'\]: 4711 is"):
        validate_record("MediaUploaded", record)


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(RecordContractError, match="unknown event type 'ObjectDetected'"):
        validate_record("ObjectDetected", objects_detected())


def test_typed_record_returns_the_record_typed_after_checking_the_pairing() -> None:
    record: dict[str, Any] = dict(objects_detected())
    typed = typed_record(ObjectsDetected, "ObjectsDetected", record)
    assert typed is record
    assert typed["detections"][0]["box"]["x_max"] == 30.0
    with pytest.raises(
        TypeError, match="ObjectsDetected records are typed ObjectsDetected, not Te"
    ):
        typed_record(TextRecognized, "ObjectsDetected", record)
    with pytest.raises(RecordContractError, match="is not an event type"):
        typed_record(ObjectsDetected, "Nope", record)
    broken: dict[str, Any] = {**record, "image_width": "wide"}
    typed_record(ObjectsDetected, "ObjectsDetected", broken)  # trusted by default
    with pytest.raises(RecordContractError, match="image_width"):
        typed_record(ObjectsDetected, "ObjectsDetected", broken, check=True)
