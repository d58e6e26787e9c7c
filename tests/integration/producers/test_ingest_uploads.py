"""Accepted uploads through the real stack: blob first, then events, pages and frames."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from producers.ingest import PRODUCER, Ingestor, UploadSource
from producers.media_types import MediaKind
from producers.storage import (
    OriginalStore,
    StoredOriginal,
    frame_key,
    original_key,
    page_key,
    read_json,
    sha256_index_key,
)
from tests.integration.producers import samples
from tests.integration.producers.conftest import EventLog, IngestorFactory, originals_on
from visionlog.blobstore import ORIGINALS, PROCESSED, BlobStore
from visionlog.envelope import deterministic_event_id


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
    index = read_json(blobs, ORIGINALS, sha256_index_key(first.original["sha256"]))
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
    assert OriginalStore(blobs).lookup(first.original["sha256"]) == (again.media_id, again.original)


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
    assert store.lookup(sha256) == (winners[0], winner.ref)


def test_multi_page_tiff_reports_its_pages(ingestor: Ingestor, event_log: EventLog) -> None:
    pages = [samples.unique_image(120, 90) for _ in range(3)]
    data = samples.encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    result = ingestor.ingest_bytes(data, filename="fax.tiff")
    assert result.page_count == 3
    (event,) = event_log.events_for(result.media_id, 1)
    assert event.record["page_count"] == 3
    assert event.record["original"]["content_type"] == "image/tiff"


def test_pdf_pages_are_rendered_stored_and_announced(
    ingestor: Ingestor, event_log: EventLog, blobs: BlobStore
) -> None:
    result = ingestor.ingest_bytes(samples.pdf([(595, 842), (842, 595), (300, 300)]))
    assert result.media_kind is MediaKind.PDF
    assert result.page_count == 3 and len(result.page_event_ids) == 3
    assert result.failure is None
    events = event_log.events_for(result.media_id, 4)
    uploaded = [e.record for e in events if e.event_type == "MediaUploaded"]
    pages = sorted(
        (e.record for e in events if e.event_type == "PageRendered"),
        key=lambda r: r["page_number"],
    )
    assert len(uploaded) == 1 and uploaded[0]["page_count"] == 3
    assert [p["page_number"] for p in pages] == [1, 2, 3]
    for page in pages:
        assert page["page_count"] == 3
        assert page["envelope"]["causation_id"] == result.event_id
        assert page["envelope"]["event_id"] == deterministic_event_id(
            "PageRendered", result.event_id, "page", page["page_number"]
        )
        assert page["image"]["bucket"] == PROCESSED
        assert page["image"]["key"] == page_key(result.media_id, page["page_number"])
        rendered = Image.open(io.BytesIO(blobs.get_bytes(page["image"])))
        assert rendered.format == "PNG"
        assert rendered.size == (page["width"], page["height"])
        assert page["renderer"].startswith("pypdfium2/")
    # Landscape page 2 is wider than tall; at 150 dpi A4 is about 1240 px wide.
    assert pages[1]["width"] > pages[1]["height"]
    assert abs(pages[0]["width"] - 1240) <= 2


def test_encrypted_pdf_with_its_password_is_rendered(
    ingestor: Ingestor, event_log: EventLog
) -> None:
    data = samples.pdf([(400, 400)], password="s3cret")
    result = ingestor.ingest_bytes(data, filename="locked.pdf", password="s3cret")
    assert result.page_count == 1 and result.failure is None
    kinds = sorted(e.event_type for e in event_log.events_for(result.media_id, 2))
    assert kinds == ["MediaUploaded", "PageRendered"]


def test_video_frames_are_sampled_stored_and_announced(
    make_ingestor: IngestorFactory, event_log: EventLog, blobs: BlobStore, tmp_path: Path
) -> None:
    ingestor: Ingestor = make_ingestor(video_sample_fps=2.0)
    clip = samples.video(tmp_path / "clip.avi", frames=20, fps=10.0)
    result = ingestor.ingest_bytes(clip)
    assert result.media_kind is MediaKind.VIDEO
    assert (result.width, result.height) == (96, 64)
    assert result.duration_ms == 2000 and result.fps == 10.0
    assert len(result.frame_event_ids) == 4
    events = event_log.events_for(result.media_id, 5)
    frames = sorted(
        (e.record for e in events if e.event_type == "FrameCaptured"),
        key=lambda r: r["frame_index"],
    )
    assert [f["frame_index"] for f in frames] == [0, 5, 10, 15]
    assert [f["timestamp_ms"] for f in frames] == [0, 500, 1000, 1500]
    for frame in frames:
        assert frame["image"]["key"] == frame_key(result.media_id, frame["frame_index"])
        assert frame["sampling_fps"] == 2.0 and frame["source_fps"] == 10.0
        assert frame["camera_id"] is None
        decoded = Image.open(io.BytesIO(blobs.get_bytes(frame["image"])))
        assert decoded.format == "JPEG" and decoded.size == (96, 64)
    (uploaded,) = [e.record for e in events if e.event_type == "MediaUploaded"]
    assert uploaded["media_kind"] == "VIDEO" and uploaded["duration_ms"] == 2000
    assert uploaded["original"]["content_type"] == "video/x-msvideo"


def test_video_given_as_bytes_every_nth_frame(
    make_ingestor: IngestorFactory, event_log: EventLog, tmp_path: Path
) -> None:
    ingestor: Ingestor = make_ingestor(video_every_n_frames=7, max_video_frames=2)
    data = samples.video(tmp_path / "clip.avi", frames=20).read_bytes()
    result = ingestor.ingest_bytes(data, filename="clip.avi")
    events = event_log.events_for(result.media_id, 3)
    frames = sorted(e.record["frame_index"] for e in events if e.event_type == "FrameCaptured")
    assert frames == [0, 7]
    assert all(e.record["sampling_fps"] is None for e in events if e.event_type == "FrameCaptured")


def test_trusted_content_overrides_a_misleading_extension(
    ingestor: Ingestor, event_log: EventLog
) -> None:
    result = ingestor.ingest_bytes(samples.png(), filename="photo.pdf", trust_content=True)
    assert result.media_type == "png"
    (event,) = event_log.events_for(result.media_id, 1)
    assert event.record["media_kind"] == "IMAGE"
    assert event.record["original"]["key"].endswith(".png")
    assert event.record["original_filename"] == "photo.pdf"
