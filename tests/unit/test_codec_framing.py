"""Confluent wire framing and Avro bodies, without a registry."""

from __future__ import annotations

from typing import Any

import pytest
from fastavro.utils import generate_one

from visionlog.codec import HEADER, MalformedEventError, frame, read_body, unframe, write_body
from visionlog.schemas import load_catalog

CATALOG = load_catalog()


def test_frame_layout_is_magic_byte_then_big_endian_id() -> None:
    framed = frame(258, b"body")
    assert framed[:5] == b"\x00\x00\x00\x01\x02"
    assert unframe(framed) == (258, b"body")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "a tombstone"),
        (b"", "shorter than the 5-byte header"),
        (b"\x00\x00\x01", "shorter than the 5-byte header"),
        (b"\x01\x00\x00\x00\x01body", "unknown magic byte 1"),
        (b'{"json": true}', "unknown magic byte 123"),
    ],
)
def test_unframe_rejects_malformed_messages(data: bytes | None, message: str) -> None:
    with pytest.raises(MalformedEventError, match=message):
        unframe(data)


def test_frame_rejects_ids_outside_four_bytes() -> None:
    with pytest.raises(ValueError, match="out of range"):
        frame(2**32, b"")


@pytest.mark.parametrize("name", sorted(CATALOG.events))
def test_every_event_round_trips_its_body(name: str) -> None:
    schema = CATALOG.event(name)
    record: dict[str, Any] = generate_one(schema.parsed)
    decoded = read_body(write_body(schema.parsed, record), schema.parsed)
    # timestamp-millis values come back as datetimes, so the canonical form is the decoded
    # one: it must survive a second trip unchanged, and plain fields must match the input.
    assert read_body(write_body(schema.parsed, decoded), schema.parsed) == decoded
    assert decoded["envelope"]["event_id"] == record["envelope"]["event_id"]
    assert set(decoded) == set(record)


def test_truncated_body_is_reported_as_corrupt() -> None:
    schema = CATALOG.event("MediaDeleted")
    body = write_body(schema.parsed, generate_one(schema.parsed))
    with pytest.raises(MalformedEventError, match="corrupt Avro body"):
        read_body(body[: len(body) // 2], schema.parsed)


def test_trailing_garbage_is_reported_as_corrupt() -> None:
    schema = CATALOG.event("MediaDeleted")
    body = write_body(schema.parsed, generate_one(schema.parsed))
    with pytest.raises(MalformedEventError, match="3 trailing bytes"):
        read_body(body + b"\x00\x01\x02", schema.parsed)


def test_header_is_five_bytes_as_in_the_confluent_format() -> None:
    assert HEADER.size == 5
