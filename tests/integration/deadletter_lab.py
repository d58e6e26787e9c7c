"""Dead letters of real failed messages for the dead-letter tests (no tests here): a
test's own `media` and `deadletter` topics, MediaUploaded events published for real, and
ProcessingFailed records built from them with `failure_record` / `part_failure`, as the
workers build them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, Message

from processors.deadletters import DeadLetters, RedriveLedger
from tests.factories import sample_event
from visionlog.blobstore import ARTIFACTS, BlobStore
from visionlog.codec import AvroCodec
from visionlog.contracts import ProcessingFailed
from visionlog.errors import OutageError
from visionlog.kafka import EventPublisher, admin_client, consumer_config, partition_bounds
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.stream.deadletter import StageFailure, failure_record, part_failure
from visionlog.stream.headers import event_headers, new_trace_id
from visionlog.stream.messages import InboundMessage
from visionlog.topics import CATALOGUE, apply_catalogue, full_topic_name, topic_by_name

CATALOG = get_catalog()
TOPICS = ("media", "media.pages", "deadletter")
# Dead letters of the last hour, a minute apart: an order that does not depend on timing.
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def read_topic(
    kafka: KafkaSettings, topic: str, expected: int, timeout: float = 30.0
) -> list[Message]:
    consumer = Consumer(consumer_config(kafka, f"test-reader-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
    finally:
        consumer.close()
    return messages


def _throw(error: BaseException) -> None:
    raise error


def raised(error: BaseException) -> BaseException:
    """The error with a traceback, as a stage would have raised it."""
    try:
        _throw(error)
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


@dataclass
class DeadLetterLab:
    """A test's own topics, codec and publisher, and the dead letters it wrote."""

    kafka: KafkaSettings
    codec: AvroCodec
    publisher: EventPublisher
    blobs: BlobStore
    ids: list[str] = field(default_factory=list)
    minute: int = 0

    def topic(self, name: str) -> str:
        return full_topic_name(topic_by_name(name), self.kafka)

    def uploaded(
        self, media_id: str | None = None, tenant: str = "tests"
    ) -> tuple[dict[str, Any], InboundMessage]:
        """A MediaUploaded published for real: the message (bytes and position) a worker
        failed on."""
        media_id = media_id or str(uuid.uuid4())
        record = sample_event(CATALOG, "MediaUploaded", media_id=media_id)
        record["envelope"]["tenant_id"] = tenant
        trace_id = new_trace_id()
        record["envelope"]["trace_id"] = trace_id
        topic = self.topic("media")
        value = self.codec.encode(topic, "MediaUploaded", record)
        headers = event_headers("MediaUploaded", trace_id)
        self.publisher.publish_bytes(topic, media_id.encode(), value, headers)
        (stored,) = self.publisher.flush()
        message = InboundMessage(
            stored.topic, stored.partition, stored.offset, media_id.encode(), value, headers
        )
        return record, message

    def dead_letter(self, record: ProcessingFailed) -> str:
        """Publish a ProcessingFailed a minute after the previous one; returns its id."""
        self.minute += 1
        record["envelope"]["occurred_at"] = T0 + timedelta(minutes=self.minute)
        self.publisher.publish("ProcessingFailed", record)
        self.publisher.flush()
        event_id = str(record["envelope"]["event_id"])
        self.ids.append(event_id)
        return event_id

    def stage_failure(
        self, stage: str, error: BaseException, media_id: str | None = None, tenant: str = "tests"
    ) -> tuple[str, InboundMessage]:
        source, message = self.uploaded(media_id, tenant)
        record = failure_record(
            worker="vision",
            failure=StageFailure.of(stage, raised(error), attempts=3),
            message=message,
            source=source,
            event_type="MediaUploaded",
        )
        return self.dead_letter(record), message

    def page_failure(self, media_id: str | None = None) -> str:
        source, _ = self.uploaded(media_id)
        error = raised(OutageError("page-0003 would not render: MinIO did not answer"))
        return self.dead_letter(part_failure(source, "render", "page-0003", error, "document"))

    def service(self, with_publisher: bool = True) -> DeadLetters:
        return DeadLetters.create(
            self.kafka, self.codec, self.blobs, self.publisher if with_publisher else None
        )

    def end_offsets(self, name: str) -> dict[tuple[str, int], tuple[int, int]]:
        topic = self.topic(name)
        metadata = admin_client(self.kafka).list_topics(topic, timeout=10)
        keys = [(topic, number) for number in metadata.topics[topic].partitions]
        return partition_bounds(admin_client(self.kafka), keys)


@contextmanager
def open_lab(settings: Settings, kafka: KafkaSettings) -> Iterator[DeadLetterLab]:
    """The lab on `kafka`'s own topics; its topics and redrive records removed afterwards."""
    specs = tuple(spec for spec in CATALOGUE if spec.name in TOPICS)
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, specs)
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    blobs = BlobStore.from_settings(settings.minio)
    blobs.ensure_buckets()
    lab = DeadLetterLab(kafka, codec, EventPublisher(kafka, codec), blobs)
    try:
        yield lab
    finally:
        ledger = RedriveLedger(blobs)
        for event_id in lab.ids:
            blobs.delete(ARTIFACTS, ledger.key(event_id))
        names = [full_topic_name(spec, kafka) for spec in specs]
        for future in admin.delete_topics(names).values():
            future.result(timeout=30)
