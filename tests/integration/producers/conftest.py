"""Fixtures for producer tests against the real stack: own topics, own blob prefix."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from producers.ingest import Ingestor
from producers.storage import dedupe_scope
from stack.initialise import InitReport
from visionlog.blobstore import ORIGINALS, BlobStore
from visionlog.codec import AvroCodec, DecodedEvent
from visionlog.kafka import EventPublisher, admin_client, consumer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.stream.messages import normalise_headers
from visionlog.topics import TopicSpec, apply_catalogue, full_topic_name, topic_by_name

INGEST_TOPICS: tuple[TopicSpec, ...] = tuple(
    topic_by_name(name) for name in ("media", "media.pages", "media.frames", "deadletter")
)

_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


@dataclass
class EventLog:
    """Reads back what the producers published on this module's own topics."""

    kafka: KafkaSettings
    codec: AvroCodec

    def topic(self, name: str) -> str:
        return full_topic_name(topic_by_name(name), self.kafka)

    def total(self, timeout: float = 20.0) -> int:
        """Events stored on all ingest topics (sum of high watermarks)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._watermark_sum()
            except KafkaException as exc:
                # Leaders of freshly created partitions take a moment to be elected.
                if exc.args[0].code() not in _NOT_READY or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _watermark_sum(self) -> int:
        consumer = Consumer(consumer_config(self.kafka, f"probe-{uuid.uuid4().hex[:8]}"))
        try:
            count = 0
            for spec in INGEST_TOPICS:
                topic = full_topic_name(spec, self.kafka)
                metadata = consumer.list_topics(topic, timeout=10).topics[topic]
                for partition in metadata.partitions:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10
                    )
                    count += high - low
            return count
        finally:
            consumer.close()

    def events_for(self, media_id: str, expected: int, timeout: float = 30.0) -> list[DecodedEvent]:
        """Every event about one media item, in the order of each topic's partition."""
        consumer = Consumer(
            consumer_config(
                self.kafka, f"test-{uuid.uuid4().hex[:8]}", **{"session.timeout.ms": 6000}
            )
        )
        consumer.subscribe([full_topic_name(spec, self.kafka) for spec in INGEST_TOPICS])
        found: list[DecodedEvent] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < expected and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                assert message.error() is None, message.error()
                if (message.key() or b"").decode() != media_id:
                    continue
                found.append(self.codec.decode(message.value()))
        finally:
            consumer.close()
        return found

    def everything_for(self, media_id: str, timeout: float = 30.0) -> list[Message]:
        """Every message about one media item stored so far on the ingest topics: read up
        to each partition's current end, so a missing event is known without waiting."""
        consumer = Consumer(consumer_config(self.kafka, f"test-{uuid.uuid4().hex[:8]}"))
        try:
            assignment: list[TopicPartition] = []
            ends: dict[tuple[str, int], int] = {}
            for spec in INGEST_TOPICS:
                topic = full_topic_name(spec, self.kafka)
                metadata = consumer.list_topics(topic, timeout=10).topics[topic]
                for partition in metadata.partitions:
                    low, high = _watermarks(consumer, TopicPartition(topic, partition))
                    if high > low:
                        assignment.append(TopicPartition(topic, partition, low))
                        ends[(topic, partition)] = high
            consumer.assign(assignment)
            found: list[Message] = []
            deadline = time.monotonic() + timeout
            while ends and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                assert message.error() is None, message.error()
                where = (message.topic() or "", message.partition() or 0)
                if (message.offset() or 0) + 1 >= ends.get(where, 0):
                    ends.pop(where, None)
                if (message.key() or b"").decode() == media_id:
                    found.append(message)
            assert not ends, f"partitions not read to their end: {ends}"
            return found
        finally:
            consumer.close()

    def decoded_for(self, media_id: str) -> list[DecodedEvent]:
        return [self.codec.decode(m.value()) for m in self.everything_for(media_id)]

    def headers_for(self, media_id: str) -> list[dict[str, bytes]]:
        return [
            {name: bytes(value or b"") for name, value in normalise_headers(m.headers())}
            for m in self.everything_for(media_id)
        ]


def _watermarks(consumer: Consumer, partition: TopicPartition) -> tuple[int, int]:
    """(low, high) of a partition; leaders of fresh topics take a moment to be elected."""
    deadline = time.monotonic() + 20.0
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
        except KafkaException as exc:
            if exc.args[0].code() not in _NOT_READY or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        else:
            return int(low), int(high)


def _wait_for_leaders(admin: AdminClient, topics: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=10).topics
        if all(
            name in metadata
            and metadata[name].partitions
            and all(p.leader >= 0 and p.error is None for p in metadata[name].partitions.values())
            for name in topics
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"partitions of {topics} have no leaders after {timeout}s")


@pytest.fixture(scope="module")
def ingest_kafka(initialised: InitReport, settings: Settings) -> Iterator[KafkaSettings]:
    """Kafka settings with this module's own media, pages, frames and dead-letter topics."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    kafka = settings.kafka.model_copy(update={"topic_prefix": prefix})
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, INGEST_TOPICS)
    _wait_for_leaders(admin, [full_topic_name(spec, kafka) for spec in INGEST_TOPICS])
    yield kafka
    names = [full_topic_name(spec, kafka) for spec in INGEST_TOPICS]
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)
    registry = HttpSchemaRegistry(settings.registry)
    for subject in registry.subjects():
        if subject.startswith(prefix):
            registry.delete_subject(subject)


@pytest.fixture(scope="module")
def codec(settings: Settings) -> AvroCodec:
    return AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())


@pytest.fixture(scope="module")
def event_log(ingest_kafka: KafkaSettings, codec: AvroCodec) -> EventLog:
    return EventLog(ingest_kafka, codec)


@pytest.fixture(scope="module")
def blobs(settings: Settings) -> BlobStore:
    return BlobStore.from_settings(settings.minio)


@pytest.fixture
def upload_day(blobs: BlobStore) -> datetime:
    """A far-future upload day of this test alone, so its originals' prefix is its own.

    The store outlives test runs, so a day is only taken when nothing is stored under it.
    """
    first = datetime(2100, 1, 1, 12, tzinfo=UTC).toordinal()
    while True:
        day = datetime.fromordinal(first + random.randrange(36_000)).replace(hour=12, tzinfo=UTC)
        if not originals_on(blobs, day):
            return day


def originals_on(blobs: BlobStore, day: datetime) -> list[str]:
    prefix = f"{day:%Y}/{day:%m}/{day:%d}/"
    return [
        str(item.object_name)
        for item in blobs.client.list_objects(ORIGINALS, prefix=prefix, recursive=True)
    ]


IngestorFactory = Callable[..., Ingestor]
# The dedupe scope of uploads these tests make without an owner.
ANONYMOUS = dedupe_scope(Settings().tenant_id, None)


@pytest.fixture
def make_ingestor(
    settings: Settings, ingest_kafka: KafkaSettings, codec: AvroCodec, upload_day: datetime
) -> Iterator[IngestorFactory]:
    """Ingestors on this module's topics whose clock says `upload_day`."""
    made: list[Ingestor] = []

    def make(**ingest_overrides: object) -> Ingestor:
        tuned = settings.model_copy(
            update={"ingest": settings.ingest.model_copy(update=ingest_overrides)}
        )
        ingestor = Ingestor(
            tuned,
            BlobStore.from_settings(settings.minio),
            EventPublisher(ingest_kafka, codec),
            clock=lambda: upload_day,
        )
        made.append(ingestor)
        return ingestor

    yield make
    for ingestor in made:
        ingestor.close()


@pytest.fixture
def ingestor(make_ingestor: IngestorFactory) -> Ingestor:
    return make_ingestor()
