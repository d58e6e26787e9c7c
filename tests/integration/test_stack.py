"""The stack itself: health, idempotent `up`, clean stop and restart with data kept."""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import Any

import pymongo
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic

from stack import manager
from visionlog.kafka import admin_client, consumer_config, producer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import load_catalog
from visionlog.settings import Settings


def test_every_service_is_healthy(stack: list[manager.ServiceStatus], settings: Settings) -> None:
    rows = manager.status(settings)
    assert {row.name for row in rows} == set(manager.SERVICE_NAMES)
    unhealthy = {row.name: row.health.detail for row in rows if not row.health.ok}
    assert unhealthy == {}
    for row in rows:
        if row.managed and row.name != "qdrant":
            assert row.pid is not None, row.name


def test_up_is_idempotent(stack: list[manager.ServiceStatus], settings: Settings) -> None:
    pids = {row.name: row.pid for row in manager.status(settings)}
    rows = manager.up(settings)
    assert [row.name for row in rows if row.started] == []
    assert {row.name: row.pid for row in rows} == pids


def test_servers_listen_on_loopback_only(stack: list[manager.ServiceStatus]) -> None:
    for row in stack:
        if row.managed and row.name != "qdrant":
            host = row.endpoint.split("//")[-1].rsplit(":", 1)[0]
            assert host in ("127.0.0.1", "localhost", "::1"), row


def test_kafka_does_not_create_topics_on_demand(
    stack: list[manager.ServiceStatus], settings: Settings
) -> None:
    admin = admin_client(settings.kafka)
    metadata = admin.list_topics(timeout=10)
    broker = ConfigResource(ConfigResource.Type.BROKER, str(next(iter(metadata.brokers))))
    configs = admin.describe_configs([broker])[broker].result(timeout=10)
    assert configs["auto.create.topics.enable"].value == "false"


def test_stop_and_start_keeps_data(stack: list[manager.ServiceStatus], settings: Settings) -> None:
    database = f"test_restart_{uuid.uuid4().hex[:8]}"
    uri = settings.mongo.uri.get_secret_value()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=5000
    )
    with client:
        client[database].items.insert_one({"_id": "kept", "value": 42})
    assert manager.down(settings, ["ferretdb"]) == ["ferretdb"]
    assert not manager.status(settings, ["ferretdb"])[0].health.ok
    began = time.monotonic()
    (row,) = manager.up(settings, ["ferretdb"])
    assert row.started and row.health.ok
    assert time.monotonic() - began < 60
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    with client:
        assert client[database].items.find_one({"_id": "kept"}) == {"_id": "kept", "value": 42}
        client.drop_database(database)


def test_registry_keeps_a_fresh_schema_through_a_crash(
    initialised: object, settings: Settings
) -> None:
    registry = HttpSchemaRegistry(settings.registry)
    schema_str = load_catalog().event("MediaDeleted").schema_str
    subject = f"test-crash-{uuid.uuid4().hex[:8]}-visionlog.events.MediaDeleted"
    schema_id = registry.register(subject, schema_str)
    (service,) = manager.services(settings, ["registry"])
    pid = service.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while service.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    (row,) = manager.up(settings, ["registry"])
    assert row.started and row.health.ok
    restarted = HttpSchemaRegistry(settings.registry)
    assert subject in restarted.subjects()
    assert restarted.register(subject, schema_str) == schema_id
    restarted.delete_subject(subject)


def test_kafka_keeps_acknowledged_events_across_a_restart(
    initialised: object, settings: Settings
) -> None:
    topic = f"test-restart-{uuid.uuid4().hex[:8]}"
    admin = admin_client(settings.kafka)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=30
    )
    producer = Producer(producer_config(settings.kafka))
    for index in range(20):
        producer.produce(topic, key=b"k", value=str(index).encode())
    assert producer.flush(30) == 0
    assert manager.down(settings, ["kafka"]) == ["kafka"]
    (row,) = manager.up(settings, ["kafka"])
    assert row.started and row.health.ok
    consumer = Consumer(consumer_config(settings.kafka, f"test-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < 20 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value() or b"")
    consumer.close()
    # A new admin client: the first one's connection went down with the broker.
    admin = admin_client(settings.kafka)
    admin.delete_topics([topic])[topic].result(timeout=30)
    assert values == [str(i).encode() for i in range(20)]
