"""Idempotency keys: validation, scoping and the record's round trip (pure functions)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from producers.idempotency import (
    Fingerprint,
    IdempotencyKeyError,
    Reservation,
    State,
    check_key,
    record_key,
    wait_step,
)


@pytest.mark.parametrize(
    "key", ["a", "order-4711", "3f2b6c1e-8f5a-4c1b-9e0d-0123456789ab", "x" * 255]
)
def test_good_keys_pass(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", " padded", "padded ", "x" * 256, "tab\there", "ümlaut"])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(IdempotencyKeyError, match="1 to 255 printable ASCII"):
        check_key(key)


def test_records_are_scoped_to_tenant_and_owner() -> None:
    mine = record_key("t1", "alice", "k")
    assert mine == record_key("t1", "alice", "k")
    assert mine.startswith("idempotency/") and mine.endswith(".json")
    assert len({mine, record_key("t1", "bob", "k"), record_key("t2", "alice", "k")}) == 3
    assert record_key("t1", None, "k") == record_key("t1", "", "k")
    # The key is hashed: nothing a client sends becomes part of a blob path.
    assert re.fullmatch(r"idempotency/[0-9a-f]{64}\.json", record_key("t", "o", "../../etc"))


def test_fingerprints_name_what_differs() -> None:
    first = Fingerprint.of("a" * 64, "full", {"b": "2", "a": "1"}, "x.png")
    assert first == Fingerprint.of("a" * 64, "full", {"a": "1", "b": "2"}, "x.png")
    assert first.differences(first) == []
    other = Fingerprint.of("b" * 64, "ocr", {}, None)
    named = other.differences(first)
    assert [n.split(" ")[0] for n in named] == ["content", "profile", "labels", "file"]
    assert Fingerprint.from_record(first.as_record()) == first


def test_reservation_round_trips_and_keeps_unknown_fields() -> None:
    moment = datetime(2026, 5, 1, 12, tzinfo=UTC)
    reservation = Reservation(
        key="idempotency/x.json",
        etag="e1",
        state=State.ACCEPTED,
        fingerprint=Fingerprint.of("c" * 64, "vision", {"k": "v"}, None),
        media_id="m",
        event_id="e",
        trace_id="0" * 31 + "1",
        uploaded_at=moment,
        attempt=2,
        reserved_at=moment + timedelta(seconds=3),
        tenant_id="t",
        owner_id=None,
        result={"media_id": "m"},
    )
    raw = {**reservation.as_record(), "written_by": "a newer version"}
    again = Reservation.from_record("idempotency/x.json", "e1", raw)
    assert again.extra == {"written_by": "a newer version"}
    assert again.as_record() == raw
    assert again == Reservation.from_record("idempotency/x.json", "e1", raw)


def test_waiting_for_a_pending_upload_is_bounded() -> None:
    assert wait_step(time.monotonic(), 10.0) == 0.25
    assert wait_step(time.monotonic() - 9.9, 10.0) == pytest.approx(0.1, abs=0.05)
    assert wait_step(time.monotonic() - 11, 10.0) is None
