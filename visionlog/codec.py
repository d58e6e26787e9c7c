"""Avro codec in the Confluent wire format.

A message value is: magic byte 0, the writer schema's registry id (4 bytes, big-endian),
then the Avro binary body. Readers resolve the writer schema against their own version of
the contract, so old events stay readable after compatible changes.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate

from visionlog.errors import ContractError
from visionlog.registry import RegistryError, SchemaRegistry, subject_for
from visionlog.schemas import SchemaCatalog, get_catalog

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")


class MalformedEventError(ContractError, ValueError):
    """Bytes that are not a valid event: wrong framing, unknown schema or a corrupt body."""


class EventEncodingError(ContractError, ValueError):
    """A record does not match its event contract."""


def frame(schema_id: int, body: bytes) -> bytes:
    if not 0 <= schema_id < 2**32:
        raise ValueError(f"schema id {schema_id} out of range")
    return HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(data: bytes | None) -> tuple[int, bytes]:
    if data is None:
        raise MalformedEventError("message has no value (a tombstone), not an event")
    if len(data) < HEADER.size:
        raise MalformedEventError(f"message of {len(data)} bytes is shorter than the 5-byte header")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise MalformedEventError(f"unknown magic byte {magic}; expected {MAGIC_BYTE}")
    return schema_id, data[HEADER.size :]


def write_body(parsed_schema: Any, record: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed_schema, record)
    return buffer.getvalue()


def read_body(body: bytes, writer_schema: Any, reader_schema: Any | None = None) -> Any:
    buffer = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(buffer, writer_schema, reader_schema)
    except Exception as exc:  # fastavro signals corrupt input with many exception types
        raise MalformedEventError(f"corrupt Avro body: {type(exc).__name__}: {exc}") from exc
    if buffer.tell() != len(body):
        raise MalformedEventError(
            f"corrupt Avro body: {len(body) - buffer.tell()} trailing bytes after the record"
        )
    return record


def _list_fields(definition: Mapping[str, Any]) -> tuple[str, ...]:
    """Top-level fields of an event whose type is a list (or a list or null)."""
    fields = definition["fields"]

    def is_list(kind: Any) -> bool:
        if isinstance(kind, list):
            return any(is_list(branch) for branch in kind)
        return isinstance(kind, dict) and kind.get("type") == "array"

    return tuple(str(f["name"]) for f in fields if is_list(f["type"]))


@dataclass(frozen=True)
class DecodedEvent:
    event_type: str
    fullname: str
    schema_id: int
    record: dict[str, Any]


class AvroCodec:
    """Encodes records of the platform's contracts and decodes any registered event."""

    def __init__(self, registry: SchemaRegistry, catalog: SchemaCatalog | None = None) -> None:
        self.registry = registry
        self.catalog = catalog or get_catalog()
        self._ids: dict[str, int] = {}
        self._lists: dict[str, tuple[str, ...]] = {}
        # schema id -> (writer schema, this process's reader schema or None, full name)
        self._resolved: dict[int, tuple[Any, Any, str]] = {}

    def schema_id(self, topic: str, event_type: str) -> int:
        schema = self.catalog.event(event_type)
        subject = subject_for(topic, schema.fullname)
        if subject not in self._ids:
            self._ids[subject] = self.registry.register(subject, schema.schema_str)
        return self._ids[subject]

    def encode(self, topic: str, event_type: str, record: Mapping[str, Any]) -> bytes:
        schema = self.catalog.event(event_type)
        envelope = record.get("envelope") or {}
        if envelope.get("event_type") != schema.name:
            raise EventEncodingError(
                f"envelope.event_type is {envelope.get('event_type')!r}, expected {schema.name!r}"
            )
        if envelope.get("schema_version") != schema.version:
            raise EventEncodingError(
                f"{schema.name}: envelope.schema_version is {envelope.get('schema_version')!r}, "
                f"the contract is version {schema.version}"
            )
        # The compiled writer refuses what does not fit, at a third of the cost of the
        # pure validation, which then only runs to say precisely what. The one mistake the
        # writer would take silently, a string where a list belongs (it writes the
        # characters), is checked first.
        lists = self._lists.get(schema.name)
        if lists is None:
            lists = self._lists[schema.name] = _list_fields(schema.definition)
        for name in lists:
            value = record.get(name)
            if isinstance(value, (str, bytes)):
                raise EventEncodingError(
                    f"{schema.name} does not match its contract: {name} is a "
                    f"{type(value).__name__}, not a list"
                )
        try:
            body = write_body(schema.parsed, record)
        except Exception as writing:  # fastavro signals a mismatch with many types
            try:
                validate(record, schema.parsed, raise_errors=True)
            except ValidationError as exc:
                raise EventEncodingError(
                    f"{schema.name} does not match its contract: {exc}"
                ) from exc
            raise EventEncodingError(
                f"{schema.name} does not match its contract: {writing}"
            ) from writing
        return frame(self.schema_id(topic, event_type), body)

    def _resolve(self, schema_id: int) -> tuple[Any, Any, str]:
        if schema_id not in self._resolved:
            try:
                schema_str = self.registry.schema_by_id(schema_id)
            except RegistryError as exc:
                raise MalformedEventError(f"writer schema id {schema_id}: {exc}") from exc
            writer = fastavro.parse_schema(json.loads(schema_str))
            fullname = str(writer["name"]) if isinstance(writer, dict) else ""
            local = self.catalog.by_fullname(fullname)
            self._resolved[schema_id] = (writer, local.parsed if local else None, fullname)
        return self._resolved[schema_id]

    def decode(self, data: bytes | None) -> DecodedEvent:
        schema_id, body = unframe(data)
        writer, reader, fullname = self._resolve(schema_id)
        record = read_body(body, writer, reader)
        if not isinstance(record, dict):
            raise MalformedEventError(f"schema id {schema_id} is not a record schema")
        return DecodedEvent(
            event_type=fullname.rsplit(".", 1)[-1],
            fullname=fullname,
            schema_id=schema_id,
            record=record,
        )
