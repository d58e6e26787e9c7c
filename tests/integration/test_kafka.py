"""Avro events through the real broker: idempotent producer, delivery reports, consumer group."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from stack.initialise import InitReport
from tests.factories import sample_event
from visionlog.codec import AvroCodec, MalformedEventError
from visionlog.kafka import (
    DeliveryError,
    EventPublisher,
    admin_client,
    consumer_config,
    consumer_lags,
    producer_config,
)
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import load_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.topics import (
    CATALOGUE,
    Retention,
    apply_catalogue,
    full_topic_name,
    topic_by_name,
)

CATALOG = load_catalog()


@pytest.fixture
def media_topic(initialised: InitReport, isolated_kafka: KafkaSettings) -> Iterator[str]:
    spec = topic_by_name("media")
    admin = admin_client(isolated_kafka)
    apply_catalogue(admin, isolated_kafka, (spec,))
    name = full_topic_name(spec, isolated_kafka)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def _consume(consumer: Consumer, expected: int, timeout: float = 30.0) -> list[Message]:
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(messages) < expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        assert message.error() is None, message.error()
        messages.append(message)
    return messages


def _wait_for_config(
    admin: AdminClient, topic: str, key: str, value: str, timeout: float = 10.0
) -> bool:
    from confluent_kafka.admin import ConfigResource

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        if admin.describe_configs([resource])[resource].result(timeout=10)[key].value == value:
            return True
        time.sleep(0.1)
    return False


def test_producer_is_idempotent_with_acks_all(settings: Settings) -> None:
    config = producer_config(settings.kafka)
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"


def test_events_flow_in_order_per_media_item(
    settings: Settings, isolated_kafka: KafkaSettings, media_topic: str
) -> None:
    registry = HttpSchemaRegistry(settings.registry)
    publisher = EventPublisher(isolated_kafka, AvroCodec(registry, CATALOG))
    media_ids = [str(uuid.uuid4()) for _ in range(3)]
    sent: dict[str, list[str]] = defaultdict(list)
    for round_ in range(5):
        for media_id in media_ids:
            event = sample_event(
                CATALOG, "MediaUploaded", media_id=media_id, labels={"round": str(round_)}
            )
            assert publisher.publish("MediaUploaded", event) == media_topic
            sent[media_id].append(event["envelope"]["event_id"])
    delivered = publisher.flush()
    assert len(delivered) == 15

    group = f"test-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(isolated_kafka, group, **{"session.timeout.ms": 6000}))
    consumer.subscribe([media_topic])
    messages = _consume(consumer, 15)
    codec = AvroCodec(HttpSchemaRegistry(settings.registry), CATALOG)
    received: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        decoded = codec.decode(message.value())
        assert (message.key() or b"").decode() == decoded.record["media_id"]
        received[decoded.record["media_id"]].append(decoded.record["envelope"]["event_id"])
    assert received == sent
    consumer.commit(asynchronous=False)
    consumer.close()

    # The group's committed offsets hold: a new member of the same group sees nothing old.
    again = Consumer(consumer_config(isolated_kafka, group, **{"session.timeout.ms": 6000}))
    again.subscribe([media_topic])
    assert _consume(again, 1, timeout=8) == []
    committed = again.committed(
        [TopicPartition(media_topic, p) for p in range(topic_by_name("media").partitions)],
        timeout=10,
    )
    assert sum(max(tp.offset, 0) for tp in committed) == 15
    again.close()


def test_threads_sharing_a_publisher_each_get_their_own_reports(
    settings: Settings, isolated_kafka: KafkaSettings, media_topic: str
) -> None:
    publisher = EventPublisher(isolated_kafka, AvroCodec(HttpSchemaRegistry(settings.registry)))
    counts = {"a": 7, "b": 13, "c": 1}
    results: dict[str, int] = {}
    start = threading.Barrier(len(counts))

    def publish_and_flush(name: str) -> None:
        start.wait()
        for _ in range(counts[name]):
            publisher.publish("MediaUploaded", sample_event(CATALOG, "MediaUploaded"))
        results[name] = len(publisher.flush())

    threads = [threading.Thread(target=publish_and_flush, args=(name,)) for name in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == counts


def test_malformed_message_is_named_precisely(
    settings: Settings, isolated_kafka: KafkaSettings, media_topic: str
) -> None:
    producer = Producer(producer_config(isolated_kafka))
    producer.produce(media_topic, key=b"m-1", value=b'{"not": "avro"}')
    assert producer.flush(30) == 0
    consumer = Consumer(
        consumer_config(
            isolated_kafka, f"test-{uuid.uuid4().hex[:8]}", **{"session.timeout.ms": 6000}
        )
    )
    consumer.subscribe([media_topic])
    (message,) = _consume(consumer, 1)
    consumer.close()
    with pytest.raises(MalformedEventError, match="unknown magic byte 123"):
        AvroCodec(HttpSchemaRegistry(settings.registry), CATALOG).decode(message.value())


def test_publishing_to_a_missing_topic_fails_loudly(
    settings: Settings, isolated_kafka: KafkaSettings, initialised: InitReport
) -> None:
    # Topic prefix without topics: auto-creation is off, so delivery must be reported failed.
    producer = Producer(producer_config(isolated_kafka, **{"message.timeout.ms": 5000}))
    publisher = EventPublisher(
        isolated_kafka, AvroCodec(HttpSchemaRegistry(settings.registry), CATALOG), producer
    )
    publisher.publish("MediaDeleted", sample_event(CATALOG, "MediaDeleted"))
    with pytest.raises(DeliveryError, match=r"Unknown topic|timed out|UNKNOWN_TOPIC"):
        publisher.flush(20)


def test_catalogue_is_applied_idempotently_and_repairs_drift(
    initialised: InitReport, isolated_kafka: KafkaSettings
) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    specs = (
        topic_by_name("media"),
        topic_by_name("cameras.status"),
        topic_by_name("vision.detections"),
    )
    admin = admin_client(isolated_kafka)
    names = [full_topic_name(s, isolated_kafka) for s in specs]
    try:
        first = apply_catalogue(admin, isolated_kafka, specs)
        assert sorted(first.created) == sorted(names)
        second = apply_catalogue(admin, isolated_kafka, specs)
        assert sorted(second.unchanged) == sorted(names)
        assert second.created == second.reconfigured == []

        media = names[0]
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            media,
            incremental_configs=[
                ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        admin.incremental_alter_configs([resource])[resource].result(timeout=30)
        # Brokers serve DescribeConfigs from their metadata cache, which trails the
        # committed change by milliseconds: wait until the drift is visible.
        assert _wait_for_config(admin, media, "retention.ms", "1000")
        repaired = apply_catalogue(admin, isolated_kafka, specs)
        assert repaired.reconfigured == [media]
        assert _wait_for_config(admin, media, "retention.ms", "-1")
        compacted = ConfigResource(ConfigResource.Type.TOPIC, names[1])
        assert (
            admin.describe_configs([compacted])[compacted]
            .result(timeout=30)["cleanup.policy"]
            .value
            == "compact"
        )

        doubled = isolated_kafka.model_copy(update={"partition_scale": 2.0})
        grown = apply_catalogue(admin, doubled, specs)
        assert sorted(grown.repartitioned) == sorted(names)
        metadata = admin.list_topics(timeout=10).topics
        assert len(metadata[media].partitions) == 2 * specs[0].partitions
        shrunk = apply_catalogue(admin, isolated_kafka, specs)
        assert len(shrunk.warnings) == 3
        assert len(admin.list_topics(timeout=10).topics[media].partitions) == 12
    finally:
        for future in admin.delete_topics(names).values():
            future.result(timeout=30)


def test_stack_topics_match_the_catalogue(initialised: InitReport, settings: Settings) -> None:
    admin = admin_client(settings.kafka)
    topics = admin.list_topics(timeout=10).topics
    for spec in CATALOGUE:
        name = full_topic_name(spec, settings.kafka)
        assert name in topics
        assert len(topics[name].partitions) >= spec.partitions
        if spec.retention is Retention.SOURCE_OF_TRUTH:
            from confluent_kafka.admin import ConfigResource

            resource = ConfigResource(ConfigResource.Type.TOPIC, name)
            config = admin.describe_configs([resource])[resource].result(timeout=10)
            assert config["retention.ms"].value == "-1"


def test_consumer_lag_counts_what_a_group_committed_against_the_log_end(
    isolated_kafka: KafkaSettings, media_topic: str
) -> None:
    producer = Producer(producer_config(isolated_kafka))
    for index in range(7):
        producer.produce(media_topic, key=b"one-key", value=f"m{index}".encode())
    assert producer.flush(30) == 0
    reading, idle = f"test-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(isolated_kafka, reading, **{"session.timeout.ms": 6000}))
    consumer.subscribe([media_topic])
    messages = _consume(consumer, 3)
    assert len(messages) == 3
    consumer.commit(message=messages[-1], asynchronous=False)
    consumer.close()

    lags = consumer_lags(admin_client(isolated_kafka), [reading, idle])
    assert lags == {reading: {media_topic: 4}, idle: {}}
