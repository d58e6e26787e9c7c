"""Accepted uploads through the real stack: blob first, then events, pages and frames."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from processors.render.stage import render_media
from processors.stage import StageContext
from producers.ingest import PRODUCER, Ingestor, UploadSource
from producers.media_types import MediaKind
from producers.storage import (
    OriginalStore,
    StoredOriginal,
    original_key,
    read_json,
    sha256_index_key,
)
from tests.integration.producers import samples
from tests.integration.producers.conftest import ANONYMOUS, EventLog, originals_on
from visionlog.blobstore import ORIGINALS, PROCESSED, BlobStore
from visionlog.media.keys import decrypted_key
from visionlog.settings import Settings
from visionlog.stream.headers import new_trace_id, parse_traceparent


def test_image_is_stored_then_announced(
    ingestor: Ingestor, event_log: EventLog, blobs: BlobStore, upload_day: datetime
) -> None:
    data = samples.png(200, 100)
    result = ingestor.ingest_bytes(
        data,
        filename="scan.png",
        profile="ocr",
        source=UploadSource.CLI,
        owner_id="user-7",
        labels={"case": "A-17"},
    )
    assert result.original["key"] == (f"{upload_day:%Y/%m/%d}/{result.media_id}.png")
    assert blobs.get_bytes(result.original) == data
    (event,) = event_log.events_for(result.media_id, 1)
    record = event.record
    assert event.event_type == "MediaUploaded"
    assert record["envelope"]["event_id"] == result.event_id
    assert record["envelope"]["producer"] == PRODUCER
    assert record["envelope"]["owner_id"] == "user-7"
    assert record["envelope"]["causation_id"] is None
    assert record["media_kind"] == "IMAGE"
    assert record["original"] == result.original
    assert record["original"]["content_type"] == "image/png"
    assert (record["width"], record["height"]) == (200, 100)
    assert record["page_count"] is None and record["duration_ms"] is None
    assert record["source"] == "CLI" and record["profile"] == "ocr"
    assert record["original_filename"] == "scan.png"
    assert record["labels"] == {"case": "A-17"}
    assert record["duplicate_of"] is None


def test_same_bytes_are_stored_once_and_the_second_upload_points_at_the_first(
    ingestor: Ingestor, event_log: EventLog, blobs: BlobStore, upload_day: datetime
) -> None:
    data = samples.jpeg()
    first = ingestor.ingest_bytes(data, filename="a.jpg")
    second = ingestor.ingest_bytes(data, filename="copy-of-a.jpg", source=UploadSource.HTTP)
    assert second.media_id != first.media_id
    assert second.duplicate_of == first.media_id
    assert second.original == first.original
    assert originals_on(blobs, upload_day) == [first.original["key"]]
    index = read_json(blobs, ORIGINALS, sha256_index_key(first.original["sha256"], ANONYMOUS))
    assert index["media_id"] == first.media_id
    (event,) = event_log.events_for(second.media_id, 1)
    assert event.record["duplicate_of"] == first.media_id
    assert event.record["original"] == first.original
    assert event.record["original_filename"] == "copy-of-a.jpg"


def test_erased_original_is_stored_again(
    ingestor: Ingestor, blobs: BlobStore, upload_day: datetime
) -> None:
    data = samples.png()
    first = ingestor.ingest_bytes(data)
    blobs.delete(first.original["bucket"], first.original["key"])
    again = ingestor.ingest_bytes(data)
    assert again.duplicate_of is None
    assert again.original["key"] != first.original["key"]
    assert OriginalStore(blobs).lookup(first.original["sha256"], ANONYMOUS) == (
        again.media_id,
        again.original,
    )


def test_the_same_bytes_of_another_owner_are_their_own(
    ingestor: Ingestor, event_log: EventLog, blobs: BlobStore, upload_day: datetime
) -> None:
    data = samples.jpeg()
    mine = ingestor.ingest_bytes(data, filename="a.jpg", owner_id="alice")
    again = ingestor.ingest_bytes(data, filename="b.jpg", owner_id="alice")
    theirs = ingestor.ingest_bytes(data, filename="c.jpg", owner_id="bob")
    assert again.duplicate_of == mine.media_id
    # Nothing of alice's item reaches bob: his upload is stored and announced on its own.
    assert theirs.duplicate_of is None
    assert theirs.original["key"] != mine.original["key"]
    assert sorted(originals_on(blobs, upload_day)) == sorted(
        [mine.original["key"], theirs.original["key"]]
    )
    (event,) = event_log.events_for(theirs.media_id, 1)
    assert event.record["duplicate_of"] is None


@pytest.mark.parametrize("stale_entry", [False, True], ids=["no-entry", "stale-entry"])
def test_concurrent_first_stores_of_the_same_bytes_keep_one_copy(
    blobs: BlobStore, upload_day: datetime, stale_entry: bool
) -> None:
    data = samples.png()
    sha256 = hashlib.sha256(data).hexdigest()
    store = OriginalStore(blobs)

    def store_as(media_id: str) -> StoredOriginal:
        return store.store(
            media_id,
            sha256=sha256,
            scope=ANONYMOUS,
            key=original_key(media_id, "png", upload_day),
            content_type="image/png",
            data=data,
            stored_at=upload_day,
        )

    if stale_entry:
        erased = store_as(str(uuid.uuid4()))
        blobs.delete(ORIGINALS, erased.ref["key"])
    media_ids = [str(uuid.uuid4()) for _ in range(6)]
    barrier = threading.Barrier(len(media_ids))

    def race(media_id: str) -> StoredOriginal:
        barrier.wait(timeout=10)
        return store_as(media_id)

    with ThreadPoolExecutor(len(media_ids)) as pool:
        results = dict(zip(media_ids, pool.map(race, media_ids), strict=True))
    winners = [media_id for media_id, stored in results.items() if stored.newly_stored]
    assert len(winners) == 1, winners
    winner = results[winners[0]]
    assert winner.ref["key"] == original_key(winners[0], "png", upload_day)
    for media_id, stored in results.items():
        if media_id != winners[0]:
            assert (stored.duplicate_of, stored.ref) == (winners[0], winner.ref)
    # The losers removed their copies: one blob holds the bytes, and the index names it.
    assert originals_on(blobs, upload_day) == [winner.ref["key"]]
    assert store.lookup(sha256, ANONYMOUS) == (winners[0], winner.ref)


def test_multi_page_tiff_reports_its_pages(ingestor: Ingestor, event_log: EventLog) -> None:
    pages = [samples.unique_image(120, 90) for _ in range(3)]
    data = samples.encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    result = ingestor.ingest_bytes(data, filename="fax.tiff")
    assert result.page_count == 3
    (event,) = event_log.events_for(result.media_id, 1)
    assert event.record["page_count"] == 3
    assert event.record["original"]["content_type"] == "image/tiff"


def _only_the_upload(event_log: EventLog, media_id: str) -> dict[str, Any]:
    """The item's one event: ingest announces the upload and renders nothing."""
    events = event_log.decoded_for(media_id)
    assert [e.event_type for e in events] == ["MediaUploaded"]
    return events[0].record


def test_pdf_is_checked_and_announced_not_rendered(
    ingestor: Ingestor, event_log: EventLog, blobs: BlobStore
) -> None:
    result = ingestor.ingest_bytes(samples.pdf([(595, 842), (842, 595), (300, 300)]))
    assert result.media_kind is MediaKind.PDF
    assert result.page_count == 3 and result.warnings == ()
    record = _only_the_upload(event_log, result.media_id)
    assert record["media_kind"] == "PDF" and record["page_count"] == 3
    # Pages are the document worker's job (processors.render): none exist yet.
    assert blobs.list_keys(PROCESSED, f"{result.media_id}/") == []


def test_encrypted_pdf_with_its_password_is_rendered_from_its_decrypted_copy(
    ingestor: Ingestor, event_log: EventLog, blobs: BlobStore, settings: Settings
) -> None:
    data = samples.pdf([(400, 400)], password="s3cret")
    result = ingestor.ingest_bytes(data, filename="locked.pdf", password="s3cret")
    assert result.page_count == 1
    record = _only_the_upload(event_log, result.media_id)
    # The password is in no event and in no blob: only the decrypted copy is stored.
    encoded = json.dumps(record, default=str)
    assert "s3cret" not in encoded
    assert blobs.get_bytes(result.original) == data
    copy = blobs.get_object_bytes(PROCESSED, decrypted_key(result.media_id))
    assert b"s3cret" not in copy and b"/Encrypt" not in copy
    # The document worker renders it without any password.
    ctx = StageContext(settings=settings, blobs=blobs)
    (page,) = [o.record for o in render_media(record, ctx) if o.event_type == "PageRendered"]
    assert page["page_number"] == 1 and page["width"] == 834


def test_video_is_probed_and_announced_not_sampled(
    ingestor: Ingestor, event_log: EventLog, blobs: BlobStore, tmp_path: Path
) -> None:
    clip = samples.video(tmp_path / "clip.avi", frames=20, fps=10.0)
    result = ingestor.ingest_bytes(clip)
    assert result.media_kind is MediaKind.VIDEO
    assert (result.width, result.height) == (96, 64)
    assert result.duration_ms == 2000 and result.fps == 10.0
    uploaded = _only_the_upload(event_log, result.media_id)
    assert uploaded["media_kind"] == "VIDEO" and uploaded["duration_ms"] == 2000
    assert uploaded["original"]["content_type"] == "video/x-msvideo"
    assert blobs.list_keys(PROCESSED, f"{result.media_id}/") == []


def test_video_given_as_bytes_is_probed(
    ingestor: Ingestor, event_log: EventLog, tmp_path: Path
) -> None:
    data = samples.video(tmp_path / "clip.avi", frames=20).read_bytes()
    result = ingestor.ingest_bytes(data, filename="clip.avi")
    assert _only_the_upload(event_log, result.media_id)["fps"] == 10.0


def test_every_upload_starts_a_trace_or_continues_the_callers(
    ingestor: Ingestor, event_log: EventLog
) -> None:
    fresh = ingestor.ingest_bytes(samples.png())
    record = _only_the_upload(event_log, fresh.media_id)
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.trace_id)
    assert record["envelope"]["trace_id"] == fresh.trace_id
    other = ingestor.ingest_bytes(samples.png())
    assert other.trace_id != fresh.trace_id
    given = new_trace_id()
    continued = ingestor.ingest_bytes(samples.png(), trace_id=given)
    assert continued.trace_id == given
    assert _only_the_upload(event_log, continued.media_id)["envelope"]["trace_id"] == given
    with pytest.raises(ValueError, match="32 lower-case hex digits"):
        ingestor.ingest_bytes(samples.png(), trace_id="not-a-trace")


def test_the_trace_travels_in_the_kafka_headers_too(
    ingestor: Ingestor, event_log: EventLog
) -> None:
    result = ingestor.ingest_bytes(samples.png())
    (headers,) = event_log.headers_for(result.media_id)
    assert headers["event-type"] == b"MediaUploaded"
    parsed = parse_traceparent(headers["traceparent"].decode())
    assert parsed is not None and parsed[0] == result.trace_id


def test_trusted_content_overrides_a_misleading_extension(
    ingestor: Ingestor, event_log: EventLog
) -> None:
    result = ingestor.ingest_bytes(samples.png(), filename="photo.pdf", trust_content=True)
    assert result.media_type == "png"
    (event,) = event_log.events_for(result.media_id, 1)
    assert event.record["media_kind"] == "IMAGE"
    assert event.record["original"]["key"].endswith(".png")
    assert event.record["original_filename"] == "photo.pdf"
