"""Runs a projection over the log: consume, decode, apply in batches, record positions.

A projection is a sink that turns decoded events into read-model writes. The runner owns
everything Kafka: subscription or explicit assignment, decoding, dead letters, offsets and
the lag metrics. Two position strategies:

- `offsets_in_sink`: the projection stores the next offset of every partition in the same
  transaction as its rows (PostgreSQL). Those stored offsets are the only truth: the runner
  seeks to them on assignment, and when a transaction finds that the stored position moved
  (a rebuild switched the schema, or another instance got there first) the projection raises
  `PositionMovedError` and the runner seeks to the stored offsets. Exactly-once effect.
- otherwise the writes are idempotent upserts (MongoDB, Qdrant) and the runner commits the
  Kafka offsets after each applied batch: at-least-once delivery, exactly-once effect.
  Each commit carries the store's identity (`store_identity`, an id the store was given
  when its read model was created) as the offsets' metadata: positions committed for
  another identity belong to a store that was wiped or replaced, so the runner reads
  that store's partitions from the beginning instead of resuming an empty store midway.

The live loop writes each batch on a writer thread; when a write takes long, the polling
thread pauses the partitions and keeps polling, so a slow store never costs the consumer
its group membership (max.poll.interval).

Failure policy: an event the projection cannot represent (`PoisonEventError`) or that does
not decode is dead-lettered with the reason and the batch goes on without it. Any other
error (a store that is down) is retried with backoff, and after `max_attempts` the runner
raises without committing, so the batch is read again after a restart.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Gauge

from visionlog.codec import AvroCodec, MalformedEventError
from visionlog.contracts import ProcessingFailed
from visionlog.errors import ContractError, PermanentError
from visionlog.kafka import EventPublisher, admin_client, consumer_config, partition_bounds
from visionlog.settings import Settings
from visionlog.stream.checkpoint import CommitPolicy, OffsetTracker
from visionlog.stream.deadletter import StageFailure, failure_record
from visionlog.stream.messages import InboundMessage
from visionlog.stream.retry import RetryPolicy, call_with_retries
from visionlog.topics import full_topic_name, topic_for_event

log = logging.getLogger(__name__)

PROJECTIONS_VERSION = "0.1.0"

TopicPartitionKey = tuple[str, int]

LAG = Gauge(
    "visionlog_projection_lag_messages",
    "Messages between a projection's position and the end of the partition.",
    ["projection", "topic", "partition"],
)
APPLIED = Counter(
    "visionlog_projection_events_total",
    "Events seen by a projection, by outcome (applied, skipped, dead_lettered).",
    ["projection", "outcome"],
)
FRESH_STORE_REWINDS = Counter(
    "visionlog_projection_fresh_store_rewinds_total",
    "Partitions read from the beginning because their committed positions belong to "
    "another (wiped or replaced) store.",
    ["projection"],
)


@dataclass(frozen=True)
class ProjectedEvent:
    event_type: str
    record: dict[str, Any]
    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int

    @property
    def event_id(self) -> str:
        return str(self.record["envelope"]["event_id"])

    @property
    def position(self) -> TopicPartitionKey:
        return (self.topic, self.partition)


class PoisonEventError(PermanentError):
    """This event cannot be represented in the read model; dead-letter it and go on."""

    def __init__(self, event: ProjectedEvent, reason: str) -> None:
        super().__init__(reason)
        self.event = event


class PositionMovedError(PermanentError):
    """The sink's stored offsets differ from the consumer's: seek to them, drop the batch."""

    def __init__(self, stored: Mapping[TopicPartitionKey, int]) -> None:
        super().__init__(f"stored positions moved: {dict(stored)}")
        self.stored = dict(stored)


# Where a runner's dead letters go instead of the dead-letter topic: a rebuild keeps its own,
# so that it never appends to the log it replays (`projections/replay/deadletters.py`).
DeadLetterSink = Callable[[ProcessingFailed], None]


class Projection(Protocol):
    name: str
    event_types: tuple[str, ...]
    offsets_in_sink: bool

    @property
    def consumer_group(self) -> str: ...

    def stored_offsets(self) -> dict[TopicPartitionKey, int]:
        """Next offset per partition, for projections that keep offsets in the sink."""
        ...

    def store_identity(self) -> str | None:
        """The id the store's read model was created with, for projections whose offsets
        are committed to Kafka (None where the sink keeps its own offsets)."""
        ...

    def apply(
        self, events: Sequence[ProjectedEvent], next_offsets: Mapping[TopicPartitionKey, int]
    ) -> None:
        """Write the events idempotently. With offsets in the sink, also store `next_offsets`
        in the same transaction and raise `PositionMovedError` when the stored ones differ from
        where this batch starts."""
        ...

    def generation_changed(self) -> bool:
        """True when a rebuild switched the live generation away from this instance's one;
        the runner then reopens its consumer in the projection's (new) consumer group."""
        ...

    def close(self) -> None: ...


def projection_topics(projection: Projection, settings: Settings) -> list[str]:
    names: dict[str, None] = {}
    for event_type in projection.event_types:
        names[full_topic_name(topic_for_event(event_type), settings.kafka)] = None
    return list(names)


@dataclass(frozen=True)
class _Written:
    applied: list[ProjectedEvent]
    skipped: int
    moved: PositionMovedError | None


@dataclass
class RunStats:
    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    batches: int = 0


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        settings: Settings,
        codec: AvroCodec,
        publisher: EventPublisher,
        *,
        max_attempts: int = 5,
        retry_backoff_s: float = 0.5,
        before_commit: Callable[[], None] | None = None,
        dead_letters: DeadLetterSink | None = None,
    ) -> None:
        self.projection = projection
        self.settings = settings
        self.codec = codec
        self.publisher = publisher
        self.topics = projection_topics(projection, settings)
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        # Called between the sink write and the Kafka commit: tests kill the process here.
        self.before_commit = before_commit
        # None: dead letters are published to the dead-letter topic; else handed to the sink.
        self.dead_letters = dead_letters
        # Positions are committed after the sink write, every N events or T seconds.
        self.commit_policy = CommitPolicy(
            every_messages=settings.projections.commit_every_messages,
            every_s=settings.projections.commit_every_s,
        )
        self.checkpoint = OffsetTracker(self.commit_policy)
        self.stats = RunStats()
        self._last_lag_check = 0.0
        self._admin: AdminClient | None = None
        # The next offset per partition after the latest batch (or seek).
        self.positions_seen: dict[TopicPartitionKey, int] = {}
        # Messages left per partition at the latest lag measurement (from the brokers).
        self.last_lag: dict[TopicPartitionKey, int] | None = None
        # The live loop writes on this thread while its own thread keeps polling.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"projection-{projection.name}-write"
        )
        self._in_flight: concurrent.futures.Future[_Written] | None = None

    # ---------------------------------------------------------------- consumer plumbing

    def _new_consumer(self) -> Consumer:
        return Consumer(
            consumer_config(
                self.settings.kafka,
                self.projection.consumer_group,
                **{
                    "client.id": f"projection-{self.projection.name}",
                    "session.timeout.ms": self.settings.projections.session_timeout_ms,
                    "max.poll.interval.ms": self.settings.projections.max_poll_interval_ms,
                },
            )
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        writing = self._in_flight
        if writing is not None:
            # A rebalance during a paused write: the store's positions are read after it.
            concurrent.futures.wait([writing])
        self._set_positions(consumer, partitions)
        consumer.assign(partitions)

    def _set_positions(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Each partition's offset: the sink's stored one, or the committed one."""
        if self.projection.offsets_in_sink:
            stored = self.projection.stored_offsets()
            for tp in partitions:
                tp.offset = stored.get((tp.topic, tp.partition), OFFSET_BEGINNING)
        else:
            self._committed_for_store(consumer, partitions)

    def _committed_for_store(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Sets each partition's offset to the committed one, or to the beginning where
        nothing was committed or the commit belongs to another store identity."""
        identity = self.projection.store_identity()
        committed = consumer.committed(partitions, timeout=10)
        foreign: list[str] = []
        for tp, known in zip(partitions, committed, strict=True):
            if known.offset < 0:
                tp.offset = OFFSET_BEGINNING
            elif identity is not None and known.metadata and known.metadata != identity:
                foreign.append(f"{tp.topic}/{tp.partition}@{known.offset}")
                tp.offset = OFFSET_BEGINNING
            else:
                tp.offset = known.offset
        if foreign:
            log.warning(
                "projection %s: the store (identity %s) is not the one the positions %s were "
                "committed for; reading those partitions from the beginning",
                self.projection.name,
                identity,
                ", ".join(foreign),
            )
            FRESH_STORE_REWINDS.labels(self.projection.name).inc(len(foreign))

    def _all_partitions(self, consumer: Consumer) -> list[TopicPartition]:
        metadata = consumer.list_topics(timeout=10)
        partitions: list[TopicPartition] = []
        for topic in self.topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                raise RuntimeError(f"topic {topic} is missing; run `visionlog init`")
            partitions.extend(TopicPartition(topic, p) for p in sorted(info.partitions))
        return partitions

    def _assign_explicitly(self, consumer: Consumer) -> list[TopicPartition]:
        """Assign every partition at the projection's position (stored, committed, or start)."""
        partitions = self._all_partitions(consumer)
        self._set_positions(consumer, partitions)
        consumer.assign(partitions)
        return partitions

    # ---------------------------------------------------------------- one batch

    def _decode(self, messages: Iterable[Message]) -> tuple[list[ProjectedEvent], int]:
        wanted = set(self.projection.event_types)
        events: list[ProjectedEvent] = []
        skipped = 0
        for message in messages:
            inbound = InboundMessage.from_kafka(message)
            try:
                decoded = self.codec.decode(inbound.value)
            except (MalformedEventError, ValueError, KeyError) as error:
                self._dead_letter(inbound, error, None, None)
                continue
            if decoded.event_type not in wanted:
                skipped += 1
                continue
            contract = self.codec.catalog.event(decoded.event_type).fullname
            if decoded.fullname != contract:
                # Written with a schema that is not the contract (same name, another
                # namespace): read without the contract, so its shape is not the one the
                # projections' typed records promise.
                foreign = ContractError(
                    f"{decoded.fullname} is not the contract {contract} of {decoded.event_type}"
                )
                self._dead_letter(inbound, foreign, None, decoded.event_type)
                continue
            events.append(
                ProjectedEvent(
                    event_type=decoded.event_type,
                    record=decoded.record,
                    topic=inbound.topic,
                    partition=inbound.partition,
                    offset=inbound.offset,
                    key=inbound.key.decode("utf-8", "replace") if inbound.key else None,
                    timestamp_ms=message.timestamp()[1],
                )
            )
        return events, skipped

    def _dead_letter(
        self,
        message: InboundMessage,
        error: BaseException,
        source: dict[str, Any] | None,
        event_type: str | None,
    ) -> None:
        record = failure_record(
            worker=self.projection.name,
            failure=StageFailure(
                f"projection-{self.projection.name}", error, attempts=1, retryable=False
            ),
            message=message,
            source=source,
            event_type=event_type,
            component="projections",
            version=PROJECTIONS_VERSION,
        )
        log.warning(
            "projection %s dead-letters %s/%d@%d: %s",
            self.projection.name,
            message.topic,
            message.partition,
            message.offset,
            error,
        )
        if self.dead_letters is None:
            key = record["envelope"]["correlation_id"]
            self.publisher.publish("ProcessingFailed", record, key=key)
            self.publisher.flush()
        else:
            self.dead_letters(record)
        self.stats.dead_lettered += 1
        APPLIED.labels(self.projection.name, "dead_lettered").inc()

    def _apply_with_retries(
        self, events: list[ProjectedEvent], next_offsets: dict[TopicPartitionKey, int]
    ) -> list[ProjectedEvent]:
        """Apply the batch; poison events are dead-lettered and the rest applied again.

        A store that fails is retried with the shared policy (`visionlog.stream.retry`);
        when it gives up, the error propagates and nothing is committed."""
        policy = RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_s=self.retry_backoff_s,
            outage_deadline_s=self.retry_backoff_s * 2**self.max_attempts,
        )
        while True:
            attempted = call_with_retries(
                functools.partial(self.projection.apply, events, next_offsets),
                policy,
                on_retry=lambda attempt, error, delay: log.warning(
                    "projection %s: batch failed (attempt %d: %s), retrying in %.1fs",
                    self.projection.name,
                    attempt,
                    error,
                    delay,
                ),
            )
            error = attempted.error
            if error is None:
                return events
            if isinstance(error, PoisonEventError):
                bad = error.event
                self._dead_letter(
                    InboundMessage(bad.topic, bad.partition, bad.offset, None, None),
                    error,
                    bad.record,
                    bad.event_type,
                )
                events = [e for e in events if e is not bad]
                continue
            raise error

    @staticmethod
    def _accept(messages: Sequence[Message]) -> tuple[list[Message], dict[TopicPartitionKey, int]]:
        """The batch's real messages and the next offset per partition after them."""
        real: list[Message] = []
        for message in messages:
            error = message.error()
            if error is None:
                real.append(message)
            elif not error.retriable() and error.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(error)
        next_offsets: dict[TopicPartitionKey, int] = {}
        for message in real:
            next_offsets[(message.topic() or "", message.partition() or 0)] = (
                message.offset() or 0
            ) + 1
        return real, next_offsets

    def _write(self, real: list[Message], next_offsets: dict[TopicPartitionKey, int]) -> _Written:
        """Decode and apply a batch (on the writer thread of the live loop); no consumer
        calls here, the polling thread owns the consumer."""
        events, skipped = self._decode(real)
        try:
            applied = self._apply_with_retries(events, next_offsets)
        except PositionMovedError as moved:
            return _Written([], skipped, moved)
        return _Written(applied, skipped, None)

    def process(self, consumer: Consumer, messages: Sequence[Message]) -> int:
        """Apply one batch of messages; returns how many events were applied."""
        real, next_offsets = self._accept(messages)
        if not real:
            return 0
        return self._settle(consumer, real, next_offsets, self._write(real, next_offsets))

    def process_polling(self, consumer: Consumer, messages: Sequence[Message]) -> int:
        """`process`, with the write on the writer thread: when it takes longer than
        `pause_after_s`, the partitions are paused and the consumer keeps polling (nothing
        is fetched) so a slow or frozen store never costs the group membership."""
        real, next_offsets = self._accept(messages)
        if not real:
            return 0
        writing = self._writer.submit(self._write, real, next_offsets)
        self._in_flight = writing
        try:
            try:
                written = writing.result(timeout=self.settings.projections.pause_after_s)
            except concurrent.futures.TimeoutError:
                written = self._poll_paused(consumer, writing)
        finally:
            self._in_flight = None
        return self._settle(consumer, real, next_offsets, written)

    def _poll_paused(
        self, consumer: Consumer, writing: concurrent.futures.Future[_Written]
    ) -> _Written:
        paused = consumer.assignment()
        consumer.pause(paused)
        began = time.monotonic()
        log.info(
            "projection %s: a write is taking long; %d partitions paused while it finishes",
            self.projection.name,
            len(paused),
        )
        # Paused partitions deliver nothing; should a message still arrive, the partition
        # is sent back to it after the resume, so nothing is skipped.
        rewind: dict[TopicPartitionKey, int] = {}
        try:
            while True:
                try:
                    return writing.result(timeout=0.5)
                except concurrent.futures.TimeoutError:
                    pass
                message = consumer.poll(0)
                if message is not None and message.error() is None:
                    key = (message.topic() or "", message.partition() or 0)
                    rewind[key] = min(rewind.get(key, message.offset() or 0), message.offset() or 0)
                self._maybe_export_lag(consumer)
        finally:
            # A rebalance during the pause replaces the assignment (new ones are not paused).
            consumer.resume(consumer.assignment())
            for (topic, partition), offset in rewind.items():
                consumer.seek(TopicPartition(topic, partition, offset))
            log.info(
                "projection %s: the write finished after %.1fs; partitions resumed",
                self.projection.name,
                time.monotonic() - began,
            )

    def _settle(
        self,
        consumer: Consumer,
        real: list[Message],
        next_offsets: dict[TopicPartitionKey, int],
        written: _Written,
    ) -> int:
        """After the write: seek where the store says, or record and commit positions."""
        if written.moved is not None:
            moved = written.moved
            log.info("projection %s: %s; seeking", self.projection.name, moved)
            for (topic, partition), offset in moved.stored.items():
                consumer.seek(TopicPartition(topic, partition, offset))
            self.positions_seen.update(moved.stored)
            return 0
        applied, skipped = written.applied, written.skipped
        for message in real:
            self.checkpoint.started(
                (message.topic() or "", message.partition() or 0), message.offset() or 0
            )
            self.checkpoint.finished(
                (message.topic() or "", message.partition() or 0), message.offset() or 0
            )
        if self.checkpoint.due():
            self.commit(consumer)
        self.positions_seen.update(next_offsets)
        self.stats.applied += len(applied)
        self.stats.skipped += skipped
        self.stats.batches += 1
        APPLIED.labels(self.projection.name, "applied").inc(len(applied))
        APPLIED.labels(self.projection.name, "skipped").inc(skipped)
        return len(applied)

    def commit(self, consumer: Consumer) -> None:
        """Commit the applied positions (projections that keep offsets in the sink store
        them with their rows; for them this only resets the schedule)."""
        offsets = self.checkpoint.committable()
        if not offsets:
            return
        if self.before_commit is not None:
            self.before_commit()
        if not self.projection.offsets_in_sink:
            identity = self.projection.store_identity()
            consumer.commit(
                offsets=[TopicPartition(t, p, o, identity) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
        self.checkpoint.committed(offsets)

    # ---------------------------------------------------------------- lag

    def lag(self, consumer: Consumer) -> dict[TopicPartitionKey, int]:
        """Messages left per assigned partition; also exported as the lag gauge."""
        assignment = consumer.assignment()
        if not assignment:
            return {}
        lags: dict[TopicPartitionKey, int] = {}
        bounds = self._bounds([(tp.topic, tp.partition) for tp in assignment])
        for tp in consumer.position(assignment):
            key = (tp.topic, tp.partition)
            low, high = bounds[key]
            position = self.positions_seen.get(key, tp.offset if tp.offset >= 0 else low)
            lags[key] = max(0, high - position)
            LAG.labels(self.projection.name, tp.topic, str(tp.partition)).set(lags[key])
        self.last_lag = lags
        return lags

    def lag_total(self) -> int | None:
        """Messages left at the latest measurement, over every assigned partition."""
        lags = self.last_lag
        return None if lags is None else sum(lags.values())

    def _bounds(self, keys: list[TopicPartitionKey]) -> dict[TopicPartitionKey, tuple[int, int]]:
        if self._admin is None:
            self._admin = admin_client(self.settings.kafka)
        return partition_bounds(self._admin, keys)

    def _maybe_export_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._last_lag_check >= 5.0:
            self._last_lag_check = now
            try:
                self.lag(consumer)
            except KafkaException:
                log.warning("projection %s: lag query failed", self.projection.name)

    # ---------------------------------------------------------------- loops

    def run(self, stop: threading.Event) -> RunStats:
        """The live loop: subscribe in the projection's group until `stop` is set."""
        batch = self.settings.projections.batch_size
        timeout = self.settings.projections.poll_timeout_s
        check_every = self.settings.projections.generation_check_s
        try:
            self._run_subscribed(stop, batch, timeout, check_every)
        finally:
            # A write still stuck on a frozen store is left to finish on its own thread.
            self._writer.shutdown(wait=False)
        return self.stats

    def _run_subscribed(
        self, stop: threading.Event, batch: int, timeout: float, check_every: float
    ) -> None:
        while not stop.is_set():
            consumer = self._new_consumer()
            consumer.subscribe(self.topics, on_assign=self._on_assign)
            last_check = time.monotonic()
            try:
                while not stop.is_set():
                    self.process_polling(consumer, consumer.consume(batch, timeout))
                    self._maybe_export_lag(consumer)
                    if time.monotonic() - last_check >= check_every:
                        last_check = time.monotonic()
                        if self.projection.generation_changed():
                            log.info("projection %s: generation switched", self.projection.name)
                            break
                self.commit(consumer)
            finally:
                consumer.close()
                self.checkpoint = OffsetTracker(self.commit_policy)

    def catch_up(self, timeout_s: float = 600.0) -> RunStats:
        """Consume every partition up to the end offsets seen at the start, then stop.

        Used by rebuilds and tests: explicit assignment, no group rebalancing."""
        batch = self.settings.projections.batch_size
        consumer = self._new_consumer()
        try:
            partitions = self._assign_explicitly(consumer)
            targets: dict[TopicPartitionKey, int] = {}
            bounds = self._bounds([(tp.topic, tp.partition) for tp in partitions])
            for tp in partitions:
                key = (tp.topic, tp.partition)
                low, high = bounds[key]
                targets[key] = high
                self.positions_seen[key] = tp.offset if tp.offset >= 0 else low
            deadline = time.monotonic() + timeout_s
            while True:
                pending = [k for k, high in targets.items() if self.positions_seen[k] < high]
                if not pending:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"projection {self.projection.name} did not reach the end of "
                        f"{len(pending)} partitions within {timeout_s}s"
                    )
                self.process(consumer, consumer.consume(batch, 0.5))
            self.commit(consumer)
            self.lag(consumer)
        finally:
            consumer.close()
            self.checkpoint = OffsetTracker(self.commit_policy)
        return self.stats
