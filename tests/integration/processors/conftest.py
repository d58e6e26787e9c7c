"""Fixtures for processor tests: the whole topic catalogue under a test's own prefix."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, Message

from processors.stage import StageContext
from stack.initialise import InitReport
from visionlog.blobstore import BlobStore
from visionlog.codec import AvroCodec, DecodedEvent
from visionlog.kafka import EventPublisher, admin_client, consumer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import KafkaSettings, Settings
from visionlog.topics import CATALOGUE, apply_catalogue, full_topic_name, topic_for_event


@dataclass
class TopicsUnderTest:
    settings: Settings
    codec: AvroCodec
    publisher: EventPublisher

    def topic(self, event_type: str) -> str:
        return full_topic_name(topic_for_event(event_type), self.settings.kafka)

    def read(self, event_type: str, expected: int, timeout: float = 30.0) -> list[Message]:
        """Messages of the topic carrying `event_type`, from the start, until `expected` arrive."""
        consumer = Consumer(consumer_config(self.settings.kafka, f"reader-{uuid.uuid4().hex[:8]}"))
        consumer.subscribe([self.topic(event_type)])
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

    def read_events(
        self, event_type: str, expected: int, timeout: float = 30.0
    ) -> list[DecodedEvent]:
        return [self.codec.decode(m.value()) for m in self.read(event_type, expected, timeout)]

    def publish(self, event_type: str, record: dict[str, Any]) -> None:
        self.publisher.publish(event_type, record)
        self.publisher.flush()


@pytest.fixture(scope="session")
def ctx(settings: Settings, initialised: InitReport) -> StageContext:
    """What stages get in a worker: the settings and the real blob store."""
    blobs = BlobStore.from_settings(settings.minio)
    blobs.ensure_buckets()
    return StageContext(settings=settings, blobs=blobs)


@pytest.fixture
def topics_under_test(
    initialised: InitReport, isolated_kafka: KafkaSettings, settings: Settings
) -> Iterator[TopicsUnderTest]:
    admin = admin_client(isolated_kafka)
    apply_catalogue(admin, isolated_kafka, CATALOGUE)
    scoped = settings.model_copy(update={"kafka": isolated_kafka})
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    yield TopicsUnderTest(scoped, codec, EventPublisher(isolated_kafka, codec))
    names = [full_topic_name(spec, isolated_kafka) for spec in CATALOGUE]
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)
