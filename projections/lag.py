"""How far each live read model is behind the log, measured from outside the projections.

The end offsets come from the brokers; each projection's position from where it keeps it:
PostgreSQL stores its next offsets with its rows, MongoDB and Qdrant commit theirs in the
consumer group of their live generation. So the figure stays true whether or not the
projection runs, and through its restarts (a gauge inside a dead thread would read 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg import sql
from qdrant_client import QdrantClient

from projections.generations import FIRST_GENERATION
from projections.mongo.documents import EVENT_TYPES as MONGO_EVENTS
from projections.mongo.projection import read_live_generation
from projections.postgres.projection import CONSUMER_GROUP as POSTGRES_GROUP
from projections.postgres.rows import CONSUMED_EVENT_TYPES as POSTGRES_EVENTS
from projections.qdrant.projection import EVENT_TYPES as QDRANT_EVENTS
from projections.qdrant.projection import live_qdrant_generation
from visionlog.kafka import partition_bounds
from visionlog.settings import Settings
from visionlog.stores import MongoClient, PgConnection
from visionlog.topics import full_topic_name, topic_for_event

Key = tuple[str, int]


def _topics(settings: Settings, event_types: Iterable[str]) -> list[str]:
    return sorted({full_topic_name(topic_for_event(e), settings.kafka) for e in event_types})


def _partitions(admin: AdminClient, topics: list[str], timeout: float) -> list[Key]:
    metadata = admin.list_topics(timeout=timeout).topics
    found: list[Key] = []
    for topic in topics:
        info = metadata.get(topic)
        if info is None or info.error is not None:
            raise RuntimeError(f"topic {topic} is missing; run `visionlog init`")
        found.extend((topic, number) for number in sorted(info.partitions))
    return found


def _behind(
    partitions: list[Key], positions: Mapping[Key, int], bounds: Mapping[Key, tuple[int, int]]
) -> int:
    """Messages from each position (the partition's start when there is none) to the end."""
    total = 0
    for key in partitions:
        low, high = bounds[key]
        position = positions.get(key, -1)
        total += max(0, high - (position if position >= 0 else low))
    return total


def _committed(
    admin: AdminClient, group: str, partitions: list[Key], timeout: float
) -> dict[Key, int]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    futures = admin.list_consumer_group_offsets([request], request_timeout=timeout)
    committed: dict[Key, int] = {}
    for future in futures.values():
        for tp in future.result().topic_partitions or []:
            committed[(tp.topic, tp.partition)] = tp.offset
    return committed


def postgres_positions(conn: PgConnection, settings: Settings) -> dict[Key, int]:
    query = sql.SQL(
        "SELECT topic, partition, next_offset FROM {}.projection_offsets WHERE consumer = %s"
    ).format(sql.Identifier(settings.projections.postgres_schema))
    group = f"{settings.kafka.topic_prefix}{POSTGRES_GROUP}"
    rows = conn.execute(query, (group,)).fetchall()
    return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}


@dataclass(frozen=True)
class ReadModelPositions:
    """Where each read model is on every partition it reads, and the partitions' bounds."""

    # store -> partition -> the next offset it applies (absent: from the partition's start)
    positions: dict[str, dict[Key, int]]
    # store -> the partitions it reads
    partitions: dict[str, list[Key]]
    bounds: dict[Key, tuple[int, int]]

    def lags(self) -> dict[str, int]:
        return {
            name: _behind(self.partitions[name], self.positions[name], self.bounds)
            for name in self.positions
        }


def read_model_positions(
    settings: Settings,
    admin: AdminClient,
    *,
    postgres: PgConnection | None = None,
    mongo: MongoClient | None = None,
    qdrant_generation: str | None = None,
    timeout: float = 10.0,
) -> ReadModelPositions:
    """Each live read model's position, for the stores given."""
    stores: dict[str, tuple[list[str], str | None]] = {}
    prefix = settings.kafka.topic_prefix
    if postgres is not None:
        stores["postgres"] = (_topics(settings, POSTGRES_EVENTS), None)
    if mongo is not None:
        mongo_group = f"{prefix}visionlog-projection-mongo-{read_live_generation(settings, mongo)}"
        stores["mongo"] = (_topics(settings, MONGO_EVENTS), mongo_group)
    if qdrant_generation is not None:
        qdrant_group = f"{prefix}visionlog-projection-qdrant-{qdrant_generation}"
        stores["qdrant"] = (_topics(settings, QDRANT_EVENTS), qdrant_group)
    all_topics = sorted({t for topics, _ in stores.values() for t in topics})
    partitions = _partitions(admin, all_topics, timeout)
    # Positions before the bounds: a position read later could pass a bound read earlier.
    positions: dict[str, dict[Key, int]] = {}
    own: dict[str, list[Key]] = {}
    for name, (topics, group) in stores.items():
        own[name] = [key for key in partitions if key[0] in topics]
        if group is None:
            assert postgres is not None
            positions[name] = postgres_positions(postgres, settings)
        else:
            positions[name] = _committed(admin, group, own[name], timeout)
    bounds = partition_bounds(admin, partitions, timeout)
    return ReadModelPositions(positions, own, bounds)


def qdrant_generation(settings: Settings, client: QdrantClient) -> str:
    """The Qdrant projection's live generation (its first before any collection exists)."""
    return live_qdrant_generation(settings, client) or FIRST_GENERATION
