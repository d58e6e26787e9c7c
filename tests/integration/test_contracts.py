"""Every contract round-trips through the codec and the real registry; the registry
enforces compatibility of schema changes."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stack.initialise import InitReport
from tests.factories import sample_event
from visionlog.codec import AvroCodec, EventEncodingError, MalformedEventError, frame
from visionlog.registry import HttpSchemaRegistry, IncompatibleSchemaError, subject_for
from visionlog.schemas import SchemaCatalog, build_event_schema, load_catalog, load_history
from visionlog.settings import Settings
from visionlog.topics import CATALOGUE, full_topic_name, topic_for_event

CATALOG = load_catalog()


@pytest.fixture
def registry(initialised: InitReport, settings: Settings) -> HttpSchemaRegistry:
    return HttpSchemaRegistry(settings.registry)


@pytest.fixture
def scratch_subjects(registry: HttpSchemaRegistry) -> Iterator[list[str]]:
    subjects: list[str] = []
    yield subjects
    for subject in subjects:
        registry.delete_subject(subject)


def _raw(name: str) -> dict[str, Any]:
    from visionlog.schemas import SCHEMA_ROOT

    data: dict[str, Any] = json.loads((SCHEMA_ROOT / "events" / f"{name}.avsc").read_text())
    return data


def test_init_registered_every_event_under_its_topics(
    initialised: InitReport, settings: Settings, registry: HttpSchemaRegistry
) -> None:
    expected = {
        subject_for(full_topic_name(spec, settings.kafka), CATALOG.event(e).fullname)
        for spec in CATALOGUE
        for e in spec.events
    }
    assert set(initialised.subjects) == expected
    assert expected <= set(registry.subjects())
    for subject in expected:
        assert registry.compatibility(subject) == settings.registry.compatibility


@pytest.mark.parametrize("name", sorted(CATALOG.events))
def test_event_round_trips_through_codec_and_registry(
    name: str, registry: HttpSchemaRegistry, settings: Settings, initialised: InitReport
) -> None:
    topic = full_topic_name(topic_for_event(name), settings.kafka)
    record = sample_event(CATALOG, name)
    encoded = AvroCodec(registry, CATALOG).encode(topic, name, record)
    # A fresh codec knows no ids: the writer schema must come from the registry.
    decoded = AvroCodec(HttpSchemaRegistry(settings.registry), CATALOG).decode(encoded)
    assert decoded.event_type == name
    assert decoded.schema_id == int.from_bytes(encoded[1:5], "big")
    assert decoded.record["envelope"]["event_id"] == record["envelope"]["event_id"]
    assert decoded.record["envelope"]["occurred_at"] == record["envelope"]["occurred_at"]
    reencoded = AvroCodec(registry, CATALOG).encode(topic, name, decoded.record)
    assert reencoded == encoded


def test_encoding_rejects_a_record_that_breaks_the_contract(
    registry: HttpSchemaRegistry, settings: Settings
) -> None:
    codec = AvroCodec(registry, CATALOG)
    record = sample_event(CATALOG, "MediaDeleted")
    record["blob_keys"] = "not-a-list"
    with pytest.raises(EventEncodingError, match="MediaDeleted does not match its contract"):
        codec.encode("media", "MediaDeleted", record)
    record = sample_event(CATALOG, "MediaDeleted")
    record["envelope"]["event_type"] = "MediaUploaded"
    with pytest.raises(EventEncodingError, match="expected 'MediaDeleted'"):
        codec.encode("media", "MediaDeleted", record)


def test_decoding_an_unknown_schema_id_is_a_clear_error(registry: HttpSchemaRegistry) -> None:
    with pytest.raises(MalformedEventError, match="writer schema id 987654321"):
        AvroCodec(registry, CATALOG).decode(frame(987654321, b"\x00"))


def _with_field(raw: dict[str, Any], new_field: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    changed["fields"].append(new_field)
    changed["version"] = raw["version"] + 1
    return changed


def test_registry_rejects_an_incompatible_change_and_accepts_a_compatible_one(
    registry: HttpSchemaRegistry, settings: Settings, scratch_subjects: list[str]
) -> None:
    subject = f"test-{uuid.uuid4().hex[:8]}-visionlog.events.MediaDeleted"
    scratch_subjects.append(subject)
    registry.set_compatibility(subject, settings.registry.compatibility)
    original = CATALOG.event("MediaDeleted")
    first_id = registry.register(subject, original.schema_str)

    required = build_event_schema(
        _with_field(_raw("MediaDeleted"), {"name": "erased_by", "type": "string", "doc": "d"}),
        CATALOG.types,
    )
    retyped_raw = copy.deepcopy(_raw("MediaDeleted"))
    next(f for f in retyped_raw["fields"] if f["name"] == "reason")["type"] = "int"
    retyped = build_event_schema(retyped_raw, CATALOG.types)
    for incompatible in (required, retyped):
        assert registry.is_compatible(subject, incompatible.schema_str) is False
        with pytest.raises(IncompatibleSchemaError, match="HTTP 409"):
            registry.register(subject, incompatible.schema_str)

    optional = build_event_schema(
        _with_field(
            _raw("MediaDeleted"),
            {"name": "erased_by", "type": ["null", "string"], "default": None, "doc": "d"},
        ),
        CATALOG.types,
    )
    assert registry.is_compatible(subject, optional.schema_str) is True
    second_id = registry.register(subject, optional.schema_str)
    assert second_id != first_id
    # Registering the same text again is idempotent.
    assert registry.register(subject, optional.schema_str) == second_id


def test_old_events_stay_readable_after_a_compatible_change(
    registry: HttpSchemaRegistry, settings: Settings, scratch_subjects: list[str]
) -> None:
    topic = f"test-{uuid.uuid4().hex[:8]}"
    scratch_subjects.append(subject_for(topic, "visionlog.events.MediaDeleted"))
    old_record = sample_event(CATALOG, "MediaDeleted")
    old_bytes = AvroCodec(registry, CATALOG).encode(topic, "MediaDeleted", old_record)

    new_schema = build_event_schema(
        _with_field(
            _raw("MediaDeleted"),
            {"name": "erased_by", "type": ["null", "string"], "default": None, "doc": "d"},
        ),
        CATALOG.types,
    )
    new_catalog = SchemaCatalog(CATALOG.types, {**CATALOG.events, "MediaDeleted": new_schema})
    decoded = AvroCodec(registry, new_catalog).decode(old_bytes)
    assert decoded.record["erased_by"] is None
    assert decoded.record["reason"] == old_record["reason"]


@pytest.mark.parametrize(
    "name", sorted(name for name, versions in load_history().items() if len(versions) > 1)
)
def test_registry_accepts_every_released_version_in_order(
    name: str, registry: HttpSchemaRegistry, settings: Settings, scratch_subjects: list[str]
) -> None:
    subject = f"test-{uuid.uuid4().hex[:8]}-visionlog.events.{name}"
    scratch_subjects.append(subject)
    registry.set_compatibility(subject, settings.registry.compatibility)
    ids = [
        registry.register(subject, schema.schema_str)
        for _, schema in sorted(load_history()[name].items())
    ]
    assert len(set(ids)) == len(ids)
    assert registry.register(subject, CATALOG.event(name).schema_str) == ids[-1]
