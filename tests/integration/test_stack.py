"""The stack itself: health, idempotent `up`, clean stop and restart with data kept."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pymongo
from confluent_kafka.admin import ConfigResource

from stack import manager
from visionlog.kafka import admin_client
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
