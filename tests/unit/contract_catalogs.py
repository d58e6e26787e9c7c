"""A small contract catalogue with every case the repository's own contracts lack, for the
code generator's tests: namesakes in two namespaces, a record named like a builtin, a field
named like a Python keyword, a recursive record, logical types, fixed, a wide union, a field
too long for one line, and a doc with quotes and a backslash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from visionlog.schemas import SchemaCatalog, load_catalog

SHARED_POINT: dict[str, Any] = {
    "type": "record",
    "name": "Point",
    "namespace": "visionlog.types",
    "doc": "A point.",
    "fields": [{"name": "x", "type": "float", "doc": "Horizontal."}],
}

EDGE_EVENT: dict[str, Any] = {
    "type": "record",
    "name": "EdgeCases",
    "namespace": "visionlog.events",
    "version": 3,
    "doc": 'Doc with "quotes", a backslash \\ and """triple quotes""", ending in a quote "',
    "fields": [
        {"name": "here", "type": "visionlog.types.Point", "doc": "The shared point."},
        {
            "name": "there",
            "type": {
                "type": "record",
                "name": "Point",
                "namespace": "other.geo",
                "doc": "A namesake of the shared point.",
                "fields": [{"name": "lat", "type": "double", "doc": "Latitude."}],
            },
            "doc": "A point of another namespace.",
        },
        {
            "name": "tree",
            "type": {
                "type": "record",
                "name": "Node",
                "doc": "A recursive record.",
                "fields": [
                    {
                        "name": "children",
                        "type": {"type": "array", "items": "Node"},
                        "default": [],
                        "doc": "Sub-trees.",
                    },
                    {"name": "parent", "type": ["null", "Node"], "default": None, "doc": "Up."},
                ],
            },
            "doc": "A tree.",
        },
        {"name": "day", "type": {"type": "int", "logicalType": "date"}, "doc": "A date."},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}, "doc": "A time."},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}, "doc": "A UUID."},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            "doc": "Money.",
        },
        {
            "name": "digest",
            "type": {"type": "fixed", "name": "Digest", "size": 4},
            "doc": "Four bytes.",
        },
        {
            "name": "odd",
            "type": {"type": "string", "logicalType": "not-a-logical-type"},
            "doc": "An unknown logical type is its base type.",
        },
        {
            "name": "multi",
            "type": [
                "null",
                "int",
                "long",
                "string",
                {"type": "array", "items": "visionlog.types.Point"},
            ],
            "default": None,
            "doc": "A wide union (int and long are one Python type).",
        },
        {
            "name": "a_field_name_long_enough_to_push_its_annotation_over_the_line",
            "type": [
                "null",
                {
                    "type": "map",
                    "values": {
                        "type": "array",
                        "items": {"type": "map", "values": "other.geo.Point"},
                    },
                },
            ],
            "default": None,
            "doc": "Wrapped the way ruff format wraps it.",
        },
        {
            "name": "bucket",
            "type": {
                "type": "record",
                "name": "list",
                "doc": "A record named like a builtin, with a keyword field.",
                "fields": [
                    {"name": "from", "type": "string", "doc": "Named like a keyword."},
                    {"name": "count", "type": "int", "default": 1, "doc": "Defaulted."},
                ],
            },
            "doc": "Uses the builtin namesake.",
        },
        {
            "name": "single",
            "type": {"type": "enum", "name": "One", "symbols": ["ONLY"], "doc": "One symbol."},
            "doc": "An enum without default.",
        },
    ],
}


def write_catalog(root: Path, events: list[dict[str, Any]], types: list[dict[str, Any]]) -> Path:
    for folder, schemas in (("events", events), ("types", types)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for schema in schemas:
            (root / folder / f"{schema['name']}.avsc").write_text(json.dumps(schema, indent=1))
    return root


def edge_case_catalog(root: Path) -> SchemaCatalog:
    return load_catalog(write_catalog(root, [EDGE_EVENT], [SHARED_POINT]))
