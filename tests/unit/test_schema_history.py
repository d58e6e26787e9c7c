"""Every released event version stays frozen, and every newer version reads the older ones."""

from __future__ import annotations

import io
import random
from typing import Any, cast

import fastavro
import pytest
from fastavro.utils import generate_many

from visionlog.schemas import EventSchema, get_catalog, load_history

CATALOG = get_catalog()
HISTORY = load_history()
RELEASED = [(name, version) for name, versions in HISTORY.items() for version in versions]


def test_every_current_event_is_frozen_at_its_version() -> None:
    for schema in CATALOG:
        frozen = HISTORY.get(schema.name, {}).get(schema.version)
        assert frozen is not None, (
            f"{schema.name} version {schema.version} has no frozen copy in schemas/avro/history"
        )
        # A changed schema with an unchanged version number would silently fork the contract.
        assert frozen.definition == schema.definition, (
            f"{schema.name} changed but is still version {schema.version}: bump the version "
            "and freeze the new one"
        )


def test_versions_only_grow_from_one_without_gaps() -> None:
    for name, versions in HISTORY.items():
        assert sorted(versions) == list(range(1, max(versions) + 1)), name
        assert CATALOG.event(name).version == max(versions), name


def _read(data: bytes, reader_schema: EventSchema) -> list[dict[str, Any]]:
    records = list(fastavro.reader(io.BytesIO(data), reader_schema.parsed))
    assert all(isinstance(record, dict) for record in records)
    return cast(list[dict[str, Any]], records)


def _write(schema: EventSchema, records: list[dict[str, object]]) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema.parsed, records)
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "version"), RELEASED)
def test_current_schema_reads_every_released_version(name: str, version: int) -> None:
    old = HISTORY[name][version]
    current = CATALOG.event(name)
    random.seed(version)
    data = _write(old, list(generate_many(old.parsed, 5)))
    as_written = _read(data, old)
    decoded = _read(data, current)
    assert len(decoded) == len(as_written) == 5
    for written, read in zip(as_written, decoded, strict=True):
        # Fields both versions know keep their values; fields added later get defaults.
        for field in old.definition["fields"]:
            assert read[field["name"]] == written[field["name"]], (name, field["name"])


def test_version_two_additions_default_when_reading_version_one() -> None:
    for name in ("CodesDecoded", "SceneDescribed"):
        old = HISTORY[name][1]
        [record] = list(generate_many(old.parsed, 1))
        [read] = _read(_write(old, [record]), CATALOG.event(name))
        assert read["models"] == []
