from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.factories import sample_event
from visionlog.contracts import validate_record
from visionlog.envelope import Envelope, deterministic_event_id
from visionlog.schemas import get_catalog


def _upload_envelope() -> Envelope:
    return Envelope(
        event_type="MediaUploaded",
        schema_version=1,
        producer="producers.upload/0.1.0",
        correlation_id=str(uuid.uuid4()),
        tenant_id="acme",
        owner_id="alice",
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )


def test_deterministic_ids_repeat_for_the_same_inputs() -> None:
    first = deterministic_event_id("TextRecognized", "cause-1", "pp-ocrv6", 3)
    assert first == deterministic_event_id("TextRecognized", "cause-1", "pp-ocrv6", 3)
    assert uuid.UUID(first).version == 5


def test_deterministic_ids_differ_when_any_input_differs() -> None:
    base = deterministic_event_id("TextRecognized", "cause-1", "model-a")
    assert base != deterministic_event_id("TextRecognized", "cause-1", "model-b")
    assert base != deterministic_event_id("ObjectsDetected", "cause-1", "model-a")
    # Parts are separated, so ("ab", "c") and ("a", "bc") do not collide.
    assert deterministic_event_id("X", "ab", "c") != deterministic_event_id("X", "a", "bc")


def test_deterministic_ids_need_an_identity() -> None:
    with pytest.raises(ValueError, match="at least one identifying part"):
        deterministic_event_id("X")


def test_derived_envelope_keeps_the_chain() -> None:
    upload = _upload_envelope()
    derived = upload.derive("PageRendered", 1, "producers.pdf/0.1.0", "page", 2)
    assert derived.causation_id == upload.event_id
    assert derived.correlation_id == upload.correlation_id
    assert (derived.tenant_id, derived.owner_id, derived.trace_id) == (
        upload.tenant_id,
        upload.owner_id,
        upload.trace_id,
    )
    again = upload.derive("PageRendered", 1, "producers.pdf/0.1.0", "page", 2)
    assert again.event_id == derived.event_id
    other_page = upload.derive("PageRendered", 1, "producers.pdf/0.1.0", "page", 3)
    assert other_page.event_id != derived.event_id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"event_id": "not-a-uuid"}, "badly formed"),
        ({"trace_id": "XYZ"}, "32 lower-case hex digits"),
        ({"correlation_id": ""}, "correlation_id"),
        ({"occurred_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_envelope_rejects_bad_values(changes: dict[str, object], message: str) -> None:
    fields = {
        "event_type": "MediaUploaded",
        "schema_version": 1,
        "producer": "p/1",
        "correlation_id": "m-1",
        "tenant_id": "t",
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        Envelope(**fields)  # type: ignore[arg-type]


def test_record_round_trip_accepts_epoch_millis() -> None:
    envelope = _upload_envelope()
    # Not a contract record any more: occurred_at as epoch millis, as some inputs carry it.
    record: dict[str, Any] = {
        **envelope.as_record(),
        "occurred_at": int(envelope.occurred_at.timestamp() * 1000),
    }
    restored = Envelope.from_record(record)
    assert restored == envelope
    assert restored.occurred_at.tzinfo == UTC


def test_as_record_is_the_envelope_of_the_contracts() -> None:
    envelope = _upload_envelope()
    event = sample_event(get_catalog(), "MediaUploaded", media_id=envelope.correlation_id)
    event["envelope"] = envelope.as_record()
    validate_record("MediaUploaded", event)
    assert Envelope.from_record(envelope.as_record()) == envelope
