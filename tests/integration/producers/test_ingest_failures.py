"""Failures after acceptance (ProcessingFailed) and the delivery policy's two ends:
no event without a stored blob, no silent orphan when publishing fails."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from producers.ingest import (
    PRODUCER_NAME,
    Ingestor,
    PublishFailedError,
    StorageFailedError,
)
from producers.storage import OriginalStore, orphan_marker_key, read_json
from tests.integration.producers import samples
from tests.integration.producers.conftest import EventLog, IngestorFactory, originals_on
from visionlog.blobstore import ARTIFACTS, BlobStore
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher, producer_config
from visionlog.settings import KafkaSettings, Settings


def test_unrenderable_page_publishes_processing_failed_after_the_good_pages(
    make_ingestor: IngestorFactory, event_log: EventLog, codec: AvroCodec
) -> None:
    # Page 3 is 200 x 200 inches: even at the lowest dpi it exceeds the pixel limit.
    ingestor = make_ingestor(max_image_pixels=2_000_000)
    result = ingestor.ingest_bytes(samples.pdf([(595, 842), (300, 300), (14_400, 14_400)]))
    assert result.page_count == 3
    assert len(result.page_event_ids) == 2
    assert result.failure is not None
    assert result.failure.error_type == "MediaRejectedError.DIMENSIONS_TOO_LARGE"
    assert result.failure.retryable is False
    events = event_log.events_for(result.media_id, 4)
    by_type = sorted(e.event_type for e in events)
    assert by_type == ["MediaUploaded", "PageRendered", "PageRendered", "ProcessingFailed"]
    (failed,) = [e.record for e in events if e.event_type == "ProcessingFailed"]
    assert failed["envelope"]["event_id"] == result.failure.event_id
    assert failed["envelope"]["causation_id"] == result.event_id
    assert failed["stage"] == "ingest" and failed["processor"] == PRODUCER_NAME
    assert "page 3" in failed["error_message"]
    assert failed["failed_event_type"] == "MediaUploaded"
    assert failed["failed_topic"] == event_log.topic("media")
    assert failed["input_blob"] == result.original
    assert failed["traceback"] is None
    # The dead letter carries the upload event verbatim, ready to replay.
    replay = codec.decode(failed["failed_value"])
    assert replay.record["envelope"]["event_id"] == result.event_id


def test_video_breaking_mid_way_publishes_processing_failed(
    ingestor: Ingestor, event_log: EventLog, tmp_path: Path
) -> None:
    clip = bytearray(samples.video(tmp_path / "clip.avi", frames=20).read_bytes())
    starts = [m.start() for m in re.finditer(b"\xff\xd8\xff", bytes(clip))]
    assert len(starts) == 20
    # Frame 10's JPEG data is wiped; the container and the last frame stay intact.
    clip[starts[10] : starts[11] - 8] = bytes(starts[11] - 8 - starts[10])
    result = ingestor.ingest_bytes(bytes(clip), filename="damaged.avi")
    assert result.failure is not None
    assert "decoding stopped after 10 of 20" in result.failure.message
    assert len(result.frame_event_ids) == 1  # frame 0, at the default 1 frame per second
    kinds = sorted(e.event_type for e in event_log.events_for(result.media_id, 3))
    assert kinds == ["FrameCaptured", "MediaUploaded", "ProcessingFailed"]


def test_unpublished_upload_leaves_an_orphan_marker_not_a_silent_orphan(
    settings: Settings,
    isolated_kafka: KafkaSettings,
    codec: AvroCodec,
    blobs: BlobStore,
    upload_day: datetime,
) -> None:
    # No topics exist under this prefix and auto-creation is off: delivery must fail.
    producer = Producer(producer_config(isolated_kafka, **{"message.timeout.ms": 1500}))
    tuned = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"publish_attempts": 2})}
    )
    ingestor = Ingestor(
        tuned, blobs, EventPublisher(isolated_kafka, codec, producer), clock=lambda: upload_day
    )
    data = samples.png()
    with pytest.raises(PublishFailedError, match="recorded as an orphan") as caught:
        ingestor.ingest_bytes(data, filename="lost.png")
    media_id = caught.value.media_id
    (stored_key,) = originals_on(blobs, upload_day)
    assert stored_key.endswith(f"{media_id}.png")
    marker = read_json(blobs, ARTIFACTS, orphan_marker_key(media_id))
    assert marker["media_id"] == media_id
    assert marker["blob"]["key"] == stored_key
    assert "MediaUploaded could not be published" in marker["reason"]
    assert caught.value.orphan_marker is not None
    # The digest is free again: the next upload of these bytes stores and announces them.
    import hashlib

    assert OriginalStore(blobs).lookup(hashlib.sha256(data).hexdigest()) is None


def test_blob_store_failure_publishes_nothing(
    settings: Settings, ingest_kafka: KafkaSettings, codec: AvroCodec, event_log: EventLog
) -> None:
    refused = settings.minio.model_copy(update={"secret_key": SecretStr("not-the-secret")})
    before = event_log.total()
    ingestor = Ingestor(
        settings, BlobStore.from_settings(refused), EventPublisher(ingest_kafka, codec)
    )
    with pytest.raises(StorageFailedError, match="nothing was published"):
        ingestor.ingest_bytes(samples.jpeg())
    assert event_log.total() == before
