"""Rebuild a read model from the start of the log into fresh names, then switch over.

While the rebuild runs, the live projection keeps serving and updating the current read
model. When the rebuild has reached the end of the log as it was at its start, the switch
is one atomic step per store (schema rename, pointer update, alias move). The live
projection then follows: PostgreSQL's stored offsets move with the schema, MongoDB's and
Qdrant's consumer groups are per generation, so it carries on from where the rebuild
stopped and applies whatever arrived in between.

A rebuild never appends to the log it replays: its dead letters are not published but
kept in its report (`projections/replay/deadletters.py`), so two rebuilds of the same log
give the same read models and the dead-letter topic does not grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Set
from dataclasses import dataclass, field
from typing import Literal

from psycopg import sql
from qdrant_client import QdrantClient

from projections.generations import next_generation
from projections.mongo.projection import MongoProjection, mongo_checksum, promote_mongo
from projections.postgres.checksum import readmodel_checksum
from projections.postgres.projection import PostgresProjection, promote_rebuild
from projections.qdrant.projection import QdrantProjection, promote_qdrant, qdrant_checksum
from projections.replay.deadletters import (
    REPORTED_LIMIT,
    DeadLetterKey,
    RebuildDeadLetter,
    RebuildDeadLetters,
    dead_letters_on_log,
    stages_of,
)
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
    # Poison events the rebuild left out; it publishes no dead letter for any of them.
    dead_letters: int = 0
    # Of those, how many the dead-letter topic already holds (the live projection's).
    dead_letters_on_log: int = 0
    # The others, with their reasons (the first REPORTED_LIMIT; all of them are logged).
    new_dead_letters: list[RebuildDeadLetter] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _catch_up(
    projection: Projection, settings: Settings, on_log: Set[DeadLetterKey] | None
) -> tuple[RunStats, RebuildDeadLetters]:
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    if on_log is None:
        on_log = dead_letters_on_log(settings, codec, stages_of([projection.name]))
    sink = RebuildDeadLetters(on_log)
    runner = ProjectionRunner(
        projection, settings, codec, EventPublisher(settings.kafka, codec), dead_letters=sink
    )
    return runner.catch_up(), sink


def _report(
    store: str,
    target: str,
    previous: str | None,
    stats: RunStats,
    seconds: float,
    checksum: dict[str, str],
    sink: RebuildDeadLetters,
) -> RebuildReport:
    return RebuildReport(
        store,
        target,
        previous,
        stats.applied,
        seconds,
        checksum,
        dead_letters=sink.count,
        dead_letters_on_log=sink.already_on_log,
        new_dead_letters=sink.new[:REPORTED_LIMIT],
    )


def rebuild_postgres(settings: Settings, on_log: Set[DeadLetterKey] | None = None) -> RebuildReport:
    """`on_log`: the dead letters already on the dead-letter topic (read when not given)."""
    live = settings.projections.postgres_schema
    target = f"{live}_rebuild"
    with postgres_connect(settings, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(target)))
    started = time.monotonic()
    projection = PostgresProjection(settings, schema=target)
    try:
        stats, sink = _catch_up(projection, settings, on_log)
    finally:
        projection.close()
    seconds = time.monotonic() - started
    previous = promote_rebuild(settings, live, target)
    with postgres_connect(settings) as conn:
        checksum = readmodel_checksum(conn, live)
    return _report("postgres", live, previous, stats, seconds, checksum, sink)


def rebuild_mongo(settings: Settings, on_log: Set[DeadLetterKey] | None = None) -> RebuildReport:
    live = MongoProjection(settings)
    current = live.generation
    live.close()
    target = next_generation(current)
    started = time.monotonic()
    projection = MongoProjection(settings, generation=target)
    try:
        stats, sink = _catch_up(projection, settings, on_log)
    finally:
        projection.close()
    seconds = time.monotonic() - started
    previous = promote_mongo(settings, target)
    checksum = mongo_checksum(settings, target)
    return _report("mongo", target, previous, stats, seconds, checksum, sink)


def rebuild_qdrant(
    settings: Settings, client: QdrantClient, on_log: Set[DeadLetterKey] | None = None
) -> RebuildReport:
    current = QdrantProjection(settings, client).generation
    target = next_generation(current)
    started = time.monotonic()
    projection = QdrantProjection(settings, client, generation=target)
    stats, sink = _catch_up(projection, settings, on_log)
    seconds = time.monotonic() - started
    previous = promote_qdrant(settings, client, target)
    checksum = qdrant_checksum(settings, client, target)
    return _report("qdrant", target, previous, stats, seconds, checksum, sink)


def _dead_letter_lines(result: RebuildReport) -> list[str]:
    if not result.dead_letters:
        return []
    new = result.dead_letters - result.dead_letters_on_log
    lines = [
        f"{result.store}: {result.dead_letters} poison events left out, none dead-lettered "
        f"again ({result.dead_letters_on_log} already on the dead-letter topic, {new} not)"
    ]
    for entry in result.new_dead_letters:
        lines.append(
            f"  not on the dead-letter topic: {entry.topic}/{entry.partition}@{entry.offset} "
            f"({entry.stage}): {entry.error_type}: {entry.error_message}"
        )
    if new > len(result.new_dead_letters):
        lines.append(f"  ... and {new - len(result.new_dead_letters)} more (in the log output)")
    return lines


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
    # The dead letters the live projections wrote, read once: the rebuilds publish none.
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    on_log = dead_letters_on_log(settings, codec, stages_of(chosen))
    for name in chosen:
        report(f"rebuilding {name} from the start of the log")
        if name == "postgres":
            result = rebuild_postgres(settings, on_log)
        elif name == "mongo":
            result = rebuild_mongo(settings, on_log)
        else:
            if qdrant is None:
                raise RebuildError(
                    "rebuilding Qdrant needs the Qdrant client of the process that owns the "
                    "store: run it through the API (POST /v1/admin/replay/rebuild) when "
                    "Qdrant is embedded, or set VISIONLOG_QDRANT__URL"
                )
            result = rebuild_qdrant(settings, qdrant, on_log)
        report(
            f"{name}: {result.events} events in {result.seconds:.1f}s "
            f"({result.rate:.0f}/s), now live as {result.target}"
            + (f", previous kept as {result.previous}" if result.previous else "")
        )
        for line in _dead_letter_lines(result):
            report(line)
        reports.append(result)
    return reports
