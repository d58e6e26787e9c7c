"""Rebuild a read model from the start of the log into fresh names, then switch over.

While the rebuild runs, the live projection keeps serving and updating the current read
model. When the rebuild has reached the end of the log as it was at its start, the switch
is one atomic step per store (schema rename, pointer update, alias move). The live
projection then follows: PostgreSQL's stored offsets move with the schema, MongoDB's and
Qdrant's consumer groups are per generation, so it carries on from where the rebuild
stopped and applies whatever arrived in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from psycopg import sql
from qdrant_client import QdrantClient

from projections.generations import next_generation
from projections.mongo.projection import MongoProjection, mongo_checksum, promote_mongo
from projections.postgres.checksum import readmodel_checksum
from projections.postgres.projection import PostgresProjection, promote_rebuild
from projections.qdrant.projection import QdrantProjection, promote_qdrant, qdrant_checksum
from projections.runtime import Projection, ProjectionRunner, RunStats
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import Settings
from visionlog.stores import postgres_connect

Store = Literal["postgres", "mongo", "qdrant"]
STORES: tuple[Store, ...] = ("postgres", "mongo", "qdrant")


class RebuildError(RuntimeError):
    pass


@dataclass
class RebuildReport:
    store: str
    target: str
    previous: str | None
    events: int
    seconds: float
    checksum: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _catch_up(projection: Projection, settings: Settings) -> RunStats:
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    runner = ProjectionRunner(projection, settings, codec, EventPublisher(settings.kafka, codec))
    return runner.catch_up()


def rebuild_postgres(settings: Settings) -> RebuildReport:
    live = settings.projections.postgres_schema
    target = f"{live}_rebuild"
    with postgres_connect(settings, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(target)))
    started = time.monotonic()
    projection = PostgresProjection(settings, schema=target)
    try:
        stats = _catch_up(projection, settings)
    finally:
        projection.close()
    seconds = time.monotonic() - started
    previous = promote_rebuild(settings, live, target)
    with postgres_connect(settings) as conn:
        checksum = readmodel_checksum(conn, live)
    return RebuildReport("postgres", live, previous, stats.applied, seconds, checksum)


def rebuild_mongo(settings: Settings) -> RebuildReport:
    live = MongoProjection(settings)
    current = live.generation
    live.close()
    target = next_generation(current)
    started = time.monotonic()
    projection = MongoProjection(settings, generation=target)
    try:
        stats = _catch_up(projection, settings)
    finally:
        projection.close()
    seconds = time.monotonic() - started
    previous = promote_mongo(settings, target)
    checksum = mongo_checksum(settings, target)
    return RebuildReport("mongo", target, previous, stats.applied, seconds, checksum)


def rebuild_qdrant(settings: Settings, client: QdrantClient) -> RebuildReport:
    current = QdrantProjection(settings, client).generation
    target = next_generation(current)
    started = time.monotonic()
    projection = QdrantProjection(settings, client, generation=target)
    stats = _catch_up(projection, settings)
    seconds = time.monotonic() - started
    previous = promote_qdrant(settings, client, target)
    checksum = qdrant_checksum(settings, client, target)
    return RebuildReport("qdrant", target, previous, stats.applied, seconds, checksum)


def rebuild(
    settings: Settings,
    store: str,
    *,
    qdrant: QdrantClient | None = None,
    report: Callable[[str], None] = print,
) -> list[RebuildReport]:
    """Rebuild one store or `all`; Qdrant needs the process's client (embedded mode)."""
    chosen = list(STORES) if store == "all" else [store]
    unknown = [name for name in chosen if name not in STORES]
    if unknown:
        raise RebuildError(f"unknown store {unknown[0]!r}; choose postgres, mongo, qdrant or all")
    reports: list[RebuildReport] = []
    for name in chosen:
        report(f"rebuilding {name} from the start of the log")
        if name == "postgres":
            result = rebuild_postgres(settings)
        elif name == "mongo":
            result = rebuild_mongo(settings)
        else:
            if qdrant is None:
                raise RebuildError(
                    "rebuilding Qdrant needs the Qdrant client of the process that owns the "
                    "store: run it through the API (POST /v1/admin/replay/rebuild) when "
                    "Qdrant is embedded, or set VISIONLOG_QDRANT__URL"
                )
            result = rebuild_qdrant(settings, qdrant)
        report(
            f"{name}: {result.events} events in {result.seconds:.1f}s "
            f"({result.rate:.0f}/s), now live as {result.target}"
            + (f", previous kept as {result.previous}" if result.previous else "")
        )
        reports.append(result)
    return reports
