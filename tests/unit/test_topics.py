from __future__ import annotations

import pytest

from visionlog.schemas import load_catalog
from visionlog.settings import KafkaSettings
from visionlog.topics import (
    CATALOGUE,
    CatalogueError,
    Retention,
    full_topic_name,
    partitions_for,
    topic_for_event,
)


def test_every_event_has_exactly_one_topic() -> None:
    carried = [event for spec in CATALOGUE for event in spec.events]
    assert sorted(carried) == sorted(load_catalog().events)
    assert len(carried) == len(set(carried))


def test_every_topic_is_keyed_by_a_field_of_each_event_it_carries() -> None:
    catalog = load_catalog()
    for spec in CATALOGUE:
        for event in spec.events:
            fields = {f["name"] for f in catalog.event(event).definition["fields"]}
            assert spec.key_field in fields, (spec.name, event)


def test_sources_of_truth_are_kept_forever() -> None:
    sources = {s.name for s in CATALOGUE if s.retention is Retention.SOURCE_OF_TRUTH}
    assert {"media", "media.frames", "deadletter"} <= sources
    for spec in CATALOGUE:
        if spec.retention is Retention.SOURCE_OF_TRUTH:
            assert spec.config["retention.ms"] == "-1"
            assert spec.config["cleanup.policy"] == "delete"


def test_derived_topics_are_bounded_or_compacted() -> None:
    for spec in CATALOGUE:
        if spec.retention in (Retention.DERIVED, Retention.TRANSIENT):
            assert int(spec.config["retention.ms"]) > 0
        if spec.retention is Retention.COMPACTED:
            assert spec.config["cleanup.policy"] == "compact"


def test_dead_letter_topic_carries_processing_failures() -> None:
    assert topic_for_event("ProcessingFailed").name == "deadletter"


def test_unknown_event_type_is_reported() -> None:
    with pytest.raises(CatalogueError, match="no topic carries event type 'Nope'"):
        topic_for_event("Nope")


def test_prefix_and_partition_scale_come_from_settings() -> None:
    spec = topic_for_event("ObjectsDetected")
    settings = KafkaSettings(topic_prefix="staging.", partition_scale=0.25)
    assert full_topic_name(spec, settings) == "staging.vision.detections"
    assert partitions_for(spec, settings) == 3
    assert partitions_for(topic_for_event("ReprocessRequested"), settings) == 1
