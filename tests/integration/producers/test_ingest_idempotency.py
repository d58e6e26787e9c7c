"""Idempotency keys against the real MinIO and Kafka: one item per key, whatever happens
to the first attempt (see producers/idempotency.py for the record and its states)."""

from __future__ import annotations

import hashlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from producers.idempotency import (
    Fingerprint,
    IdempotencyConflictError,
    IdempotencyStore,
    State,
    record_key,
)
from producers.ingest import Ingestor, IngestResult
from producers.storage import orphan_marker_key
from tests.integration.producers import samples
from tests.integration.producers.conftest import EventLog, IngestorFactory, originals_on
from visionlog.blobstore import ARTIFACTS, BlobStore
from visionlog.stream.headers import new_trace_id


def test_same_key_same_upload_returns_the_first_answer(
    ingestor: Ingestor, event_log: EventLog, blobs: BlobStore, upload_day: datetime
) -> None:
    key = str(uuid.uuid4())
    data = samples.png()
    first = ingestor.ingest_bytes(data, filename="a.png", idempotency_key=key, owner_id="u1")
    again = ingestor.ingest_bytes(data, filename="a.png", idempotency_key=key, owner_id="u1")
    assert first.replayed is False and again.replayed is True
    assert replace(again, replayed=False) == first
    assert [e.event_type for e in event_log.decoded_for(first.media_id)] == ["MediaUploaded"]
    assert originals_on(blobs, upload_day) == [first.original["key"]]


@pytest.mark.parametrize("named", ["content", "profile", "labels", "file name"])
def test_same_key_for_another_upload_is_a_conflict(
    ingestor: Ingestor, blobs: BlobStore, upload_day: datetime, named: str
) -> None:
    key = str(uuid.uuid4())
    data, filename, profile, labels = samples.png(), "a.png", "full", {"case": "1"}
    first = ingestor.ingest_bytes(
        data, filename=filename, profile=profile, labels=labels, idempotency_key=key
    )
    if named == "content":
        data = samples.png()
    elif named == "profile":
        profile = "ocr"
    elif named == "labels":
        labels = {"case": "2"}
    else:
        filename = "b.png"
    with pytest.raises(IdempotencyConflictError) as caught:
        ingestor.ingest_bytes(
            data, filename=filename, profile=profile, labels=labels, idempotency_key=key
        )
    assert caught.value.code == "idempotency_key_reused"
    assert caught.value.http_status == 409
    assert named in str(caught.value) and first.media_id in str(caught.value)
    assert originals_on(blobs, upload_day) == [first.original["key"]]


def test_concurrent_first_uploads_with_one_key_make_one_item(
    make_ingestor: IngestorFactory, event_log: EventLog, blobs: BlobStore, upload_day: datetime
) -> None:
    ingestor = make_ingestor()
    key = str(uuid.uuid4())
    data = samples.jpeg()
    barrier = threading.Barrier(4)

    def upload(_: int) -> IngestResult:
        barrier.wait(timeout=10)
        return ingestor.ingest_bytes(data, filename="x.jpg", idempotency_key=key)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(upload, range(4)))
    assert len({r.media_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    media_id = results[0].media_id
    assert [e.event_type for e in event_log.decoded_for(media_id)] == ["MediaUploaded"]
    assert originals_on(blobs, upload_day) == [results[0].original["key"]]


def _abandoned(
    ingestor: Ingestor, key: str, data: bytes, filename: str, *, state: State
) -> tuple[str, str]:
    """A reservation as a first attempt leaves it when its process died (pending, old) or
    when it failed (failed): returns the reserved media id and event id."""
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    store = IdempotencyStore(ingestor.blobs, clock=lambda: long_ago)
    location = record_key(ingestor.settings.tenant_id, None, key)
    fingerprint = Fingerprint.of(hashlib.sha256(data).hexdigest(), "full", {}, filename)
    reserved = store.reserve(
        location,
        fingerprint,
        tenant_id=ingestor.settings.tenant_id,
        owner_id=None,
        trace_id=new_trace_id(),
        uploaded_at=ingestor.clock(),
    )
    assert reserved is not None
    if state is State.FAILED:
        assert store.fail(reserved, "MediaUploaded could not be published") is not None
    return reserved.media_id, reserved.event_id


@pytest.mark.parametrize("state", [State.PENDING, State.FAILED])
def test_a_retry_finishes_an_abandoned_upload_under_its_reserved_ids(
    make_ingestor: IngestorFactory, event_log: EventLog, blobs: BlobStore, state: State
) -> None:
    ingestor = make_ingestor(idempotency_lease_s=5.0)
    key = str(uuid.uuid4())
    data = samples.png()
    media_id, event_id = _abandoned(ingestor, key, data, "a.png", state=state)
    # A marker the failed attempt may have left behind is cleared once it is published.
    blobs.put_bytes(ARTIFACTS, orphan_marker_key(media_id), b"{}", "application/json")
    result = ingestor.ingest_bytes(data, filename="a.png", idempotency_key=key)
    assert (result.media_id, result.event_id) == (media_id, event_id)
    assert result.replayed is False
    (event,) = event_log.decoded_for(media_id)
    assert event.record["envelope"]["event_id"] == event_id
    assert not blobs.exists(ARTIFACTS, orphan_marker_key(media_id))
    record = IdempotencyStore(blobs).read(record_key(ingestor.settings.tenant_id, None, key))
    assert record is not None and record.state is State.ACCEPTED and record.attempt == 2


def test_a_retry_waits_for_a_first_upload_in_progress_then_gives_up(
    make_ingestor: IngestorFactory, blobs: BlobStore
) -> None:
    ingestor = make_ingestor(idempotency_lease_s=1.0)
    key = str(uuid.uuid4())
    data = samples.png()
    store = IdempotencyStore(blobs)
    # Reserved just now and kept fresh: its owner is alive and busy.
    reserved = store.reserve(
        record_key(ingestor.settings.tenant_id, None, key),
        Fingerprint.of(hashlib.sha256(data).hexdigest(), "full", {}, "a.png"),
        tenant_id=ingestor.settings.tenant_id,
        owner_id=None,
        trace_id=new_trace_id(),
        uploaded_at=ingestor.clock(),
    )
    assert reserved is not None
    # The reservation never ages for this ingestor: it waits out its lease, then refuses.
    ingestor.idempotency = IdempotencyStore(blobs, clock=lambda: reserved.reserved_at)
    with pytest.raises(IdempotencyConflictError) as caught:
        ingestor.ingest_bytes(data, filename="a.png", idempotency_key=key)
    assert caught.value.code == "idempotency_key_in_progress"
    assert reserved.media_id in str(caught.value)
