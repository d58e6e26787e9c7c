"""The delivery policy's two ends: no event without a stored blob, no silent orphan when
publishing fails. (Pages and frames that fail are the render stage's: see
tests/integration/processors/test_render_stage.py.)"""

from __future__ import annotations

from datetime import datetime

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from producers.ingest import (
    Ingestor,
    PublishFailedError,
    StorageFailedError,
)
from producers.storage import OriginalStore, orphan_marker_key, read_json
from tests.integration.producers import samples
from tests.integration.producers.conftest import ANONYMOUS, EventLog, originals_on
from visionlog.blobstore import ARTIFACTS, BlobStore
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher, producer_config
from visionlog.settings import KafkaSettings, Settings


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
    # The topic does not exist: certainly not stored, not an "outcome unknown".
    assert caught.value.uncertain is False
    (stored_key,) = originals_on(blobs, upload_day)
    assert stored_key.endswith(f"{media_id}.png")
    marker = read_json(blobs, ARTIFACTS, orphan_marker_key(media_id))
    assert marker["media_id"] == media_id
    assert marker["blob"]["key"] == stored_key
    assert "MediaUploaded could not be published" in marker["reason"]
    assert caught.value.orphan_marker is not None
    # The digest is free again: the next upload of these bytes stores and announces them.
    import hashlib

    assert OriginalStore(blobs).lookup(hashlib.sha256(data).hexdigest(), ANONYMOUS) is None


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
