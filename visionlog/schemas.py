"""Loads the Avro contracts in ``schemas/avro``.

Shared named types live in ``schemas/avro/types`` and are referenced by full name from the
event schemas in ``schemas/avro/events``. Registries and downstream consumers get each event
as one self-contained schema: references are inlined at their first use.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_ROOT = Path(__file__).resolve().parents[1] / "schemas" / "avro"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class SchemaCatalogError(ValueError):
    """A schema file is missing, malformed or refers to an unknown type."""


def _fullname(schema: dict[str, Any], enclosing_namespace: str | None) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    namespace = schema.get("namespace", enclosing_namespace)
    return f"{namespace}.{name}" if namespace else name


def inline_references(schema: Any, named_types: dict[str, dict[str, Any]]) -> Any:
    """Return a copy of ``schema`` with every reference to ``named_types`` expanded once.

    Avro requires a named type to be defined before it is referenced by name, in document
    order; the first reference is replaced by the definition and later ones stay names.
    """
    defined: set[str] = set()

    def walk(node: Any, namespace: str | None) -> Any:
        if isinstance(node, str):
            if node in _PRIMITIVES or node in defined:
                return node
            qualified = node if "." in node or namespace is None else f"{namespace}.{node}"
            for candidate in (node, qualified):
                if candidate in defined:
                    return candidate
                if candidate in named_types:
                    return walk(copy.deepcopy(named_types[candidate]), namespace)
            raise SchemaCatalogError(f"unknown Avro type {node!r}")
        if isinstance(node, list):
            return [walk(branch, namespace) for branch in node]
        if not isinstance(node, dict):
            raise SchemaCatalogError(f"unexpected schema node {node!r}")
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            full = _fullname(node, namespace)
            if full in defined:
                raise SchemaCatalogError(f"type {full} is defined twice")
            defined.add(full)
            inner_namespace = full.rsplit(".", 1)[0] if "." in full else None
            out = dict(node)
            if kind in ("record", "error"):
                out["fields"] = [
                    {**f, "type": walk(f["type"], inner_namespace)} for f in node["fields"]
                ]
            return out
        if kind == "array":
            return {**node, "items": walk(node["items"], namespace)}
        if kind == "map":
            return {**node, "values": walk(node["values"], namespace)}
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES):
            # a wrapped type such as {"type": {"type": "array", ...}} or {"type": "a.Named"}
            return {**node, "type": walk(kind, namespace)}
        return node

    return walk(schema, None)


@dataclass(frozen=True)
class EventSchema:
    """One event contract, self-contained and parsed."""

    name: str
    fullname: str
    version: int
    definition: dict[str, Any]
    parsed: Any = field(repr=False, compare=False)

    @property
    def schema_str(self) -> str:
        """The JSON text that is registered and shipped to consumers."""
        return json.dumps(self.definition, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class SchemaCatalog:
    types: dict[str, dict[str, Any]]
    events: dict[str, EventSchema]

    def event(self, name: str) -> EventSchema:
        try:
            return self.events[name]
        except KeyError:
            raise SchemaCatalogError(
                f"unknown event type {name!r}; known: {', '.join(sorted(self.events))}"
            ) from None

    def by_fullname(self, fullname: str) -> EventSchema | None:
        for schema in self.events.values():
            if schema.fullname == fullname:
                return schema
        return None

    def __iter__(self) -> Iterator[EventSchema]:
        return iter(self.events.values())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SchemaCatalogError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict) or "name" not in data:
        raise SchemaCatalogError(f"{path}: top level must be a named Avro type")
    return data


def build_event_schema(raw: dict[str, Any], types: dict[str, dict[str, Any]]) -> EventSchema:
    """Inline and parse one event definition (also used to test candidate schema changes)."""
    definition = inline_references(raw, types)
    try:
        parsed = fastavro.parse_schema(copy.deepcopy(definition))
    except Exception as exc:  # fastavro raises several exception types for bad schemas
        raise SchemaCatalogError(f"event {raw.get('name')}: {exc}") from exc
    version = raw.get("version")
    if not isinstance(version, int) or version < 1:
        raise SchemaCatalogError(f"event {raw['name']}: needs an integer 'version' >= 1")
    return EventSchema(
        name=str(raw["name"]).rsplit(".", 1)[-1],
        fullname=_fullname(raw, None),
        version=version,
        definition=definition,
        parsed=parsed,
    )


def load_catalog(root: Path = SCHEMA_ROOT) -> SchemaCatalog:
    types_dir, events_dir = root / "types", root / "events"
    if not events_dir.is_dir():
        raise SchemaCatalogError(f"no event schemas under {events_dir}")
    types = {}
    for path in sorted(types_dir.glob("*.avsc")):
        raw = _read_json(path)
        types[_fullname(raw, None)] = raw
    events = {}
    for path in sorted(events_dir.glob("*.avsc")):
        schema = build_event_schema(_read_json(path), types)
        if schema.name != path.stem:
            raise SchemaCatalogError(f"{path}: file name must match record name {schema.name}")
        events[schema.name] = schema
    return SchemaCatalog(types=types, events=events)


def load_history(root: Path = SCHEMA_ROOT) -> dict[str, dict[int, EventSchema]]:
    """Every released version of every event, frozen self-contained in ``history/``.

    A released version never changes: a schema change means a new version number and a
    new frozen file, and the tests prove each new version reads all earlier ones.
    """
    history: dict[str, dict[int, EventSchema]] = {}
    for path in sorted((root / "history").glob("*.v*.avsc")):
        schema = build_event_schema(_read_json(path), {})
        name, _, version = path.stem.rpartition(".v")
        if (schema.name, schema.version) != (name, int(version)):
            raise SchemaCatalogError(f"{path}: holds {schema.name} version {schema.version}")
        history.setdefault(schema.name, {})[schema.version] = schema
    return history


@cache
def get_catalog() -> SchemaCatalog:
    """The repository's contracts, loaded once per process."""
    return load_catalog()
