"""Kafka's storage tool reads a cluster id starting with "-" as an option: never make one."""

from __future__ import annotations

from stack.services.kafka import new_cluster_id


def test_kafka_cluster_ids_never_look_like_options() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
