"""Every contract parses, documents every field, carries the envelope and no large binary."""

from __future__ import annotations

import json
from typing import Any

import fastavro
import pytest

from visionlog.schemas import (
    SCHEMA_ROOT,
    SchemaCatalogError,
    build_event_schema,
    inline_references,
    load_catalog,
)

REQUIRED_EVENTS = {
    "MediaUploaded",
    "PageRendered",
    "FrameCaptured",
    "ObjectsDetected",
    "TextRecognized",
    "CodesDecoded",
    "MediaRedacted",
    "TrackUpdated",
    "SceneDescribed",
    "EmbeddingComputed",
    "OutputGenerated",
    "ProcessingFailed",
    "MediaDeleted",
}
ENVELOPE_FIELDS = {
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "producer",
    "correlation_id",
    "causation_id",
    "tenant_id",
    "owner_id",
    "trace_id",
}
CATALOG = load_catalog()


def _named_nodes(node: Any) -> list[dict[str, Any]]:
    """Every record and enum definition inside a schema."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") in ("record", "enum"):
            found.append(node)
        for value in node.values():
            found.extend(_named_nodes(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_named_nodes(item))
    return found


def _bytes_fields(node: Any, path: str = "") -> list[str]:
    hits: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "record":
            for f in node["fields"]:
                hits.extend(_bytes_fields(f["type"], f"{path}.{f['name']}"))
        elif node.get("type") in ("array",):
            hits.extend(_bytes_fields(node["items"], path))
        elif node.get("type") == "map":
            hits.extend(_bytes_fields(node["values"], path))
        elif isinstance(node.get("type"), (dict, list)):
            hits.extend(_bytes_fields(node["type"], path))
    elif isinstance(node, list):
        for branch in node:
            hits.extend(_bytes_fields(branch, path))
    elif node in ("bytes", "fixed"):
        hits.append(path)
    return hits


def test_catalogue_holds_every_required_event() -> None:
    assert set(CATALOG.events) >= REQUIRED_EVENTS


@pytest.mark.parametrize("name", sorted(CATALOG.events))
def test_event_parses_self_contained(name: str) -> None:
    schema = CATALOG.event(name)
    # The registered text must parse alone, without the shared type files.
    fastavro.parse_schema(json.loads(schema.schema_str))
    assert schema.fullname == f"visionlog.events.{name}"
    assert schema.version >= 1


@pytest.mark.parametrize("name", sorted(CATALOG.events))
def test_every_type_and_field_is_documented(name: str) -> None:
    undocumented = []
    for node in _named_nodes(CATALOG.event(name).definition):
        if not str(node.get("doc", "")).strip():
            undocumented.append(node["name"])
        for f in node.get("fields", []):
            if not str(f.get("doc", "")).strip():
                undocumented.append(f"{node['name']}.{f['name']}")
    assert undocumented == []


@pytest.mark.parametrize("name", sorted(CATALOG.events))
def test_event_starts_with_the_envelope(name: str) -> None:
    first = CATALOG.event(name).definition["fields"][0]
    assert first["name"] == "envelope"
    assert {f["name"] for f in first["type"]["fields"]} == ENVELOPE_FIELDS


@pytest.mark.parametrize("name", sorted(CATALOG.events))
def test_no_binary_payload_except_dead_letter_copy(name: str) -> None:
    # Claim-check: bytes live in the blob store. Only the dead letter keeps the raw failed
    # message (itself a small event) so it can be replayed.
    binary = _bytes_fields(CATALOG.event(name).definition)
    expected = [".failed_key", ".failed_value"] if name == "ProcessingFailed" else []
    assert binary == expected


def test_blobs_are_referenced_with_their_digest() -> None:
    shared = CATALOG.types["visionlog.types.BlobRef"]
    assert {"bucket", "key", "sha256", "size_bytes"} <= {f["name"] for f in shared["fields"]}
    inlined = [
        node
        for schema in CATALOG
        for node in _named_nodes(schema.definition)
        if node["name"] == "BlobRef"
    ]
    # Most events carry a blob; each carries the one shared definition, unchanged.
    assert len(inlined) >= 10
    assert all(node == shared for node in inlined)


def test_shared_types_are_defined_once_per_event() -> None:
    text = CATALOG.event("TextRecognized").schema_str
    # Point outlines blocks, lines and words: referenced three times, defined once.
    assert text.count('"visionlog.types.Point"') >= 2
    assert text.count('"name":"Point"') == 1
    assert text.count('"name":"BlobRef"') == 1


def test_inline_references_rejects_unknown_types() -> None:
    with pytest.raises(SchemaCatalogError, match=r"unknown Avro type 'visionlog\.types\.Nope'"):
        inline_references(
            {
                "type": "record",
                "name": "X",
                "fields": [{"name": "a", "type": "visionlog.types.Nope", "doc": "d"}],
            },
            {},
        )


def test_build_event_schema_requires_a_version() -> None:
    raw = json.loads((SCHEMA_ROOT / "events" / "MediaDeleted.avsc").read_text())
    del raw["version"]
    with pytest.raises(SchemaCatalogError, match="needs an integer 'version'"):
        build_event_schema(raw, CATALOG.types)


def test_enums_have_defaults_so_new_symbols_stay_readable() -> None:
    for schema in CATALOG:
        for node in _named_nodes(schema.definition):
            if node["type"] == "enum":
                assert node.get("default") in node["symbols"], node["name"]
