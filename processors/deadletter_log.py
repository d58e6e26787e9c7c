"""The `deadletter` topic, read: dead letters as records, the filter that selects them, and
a scan of the topic that needs no consumer group.

The topic is the source of truth (records are kept forever), so it is read itself: from the
start, or from a time (Kafka's offsets for that time), up to the end each partition had when
the scan began (or its end-of-partition mark, which also passes transaction markers).
Records that do not decode are counted and passed over.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from visionlog.codec import AvroCodec
from visionlog.errors import OutageError, PermanentError
from visionlog.kafka import admin_client, consumer_config, partition_bounds
from visionlog.settings import KafkaSettings
from visionlog.stream.messages import InboundMessage
from visionlog.topics import full_topic_name, topic_for_event

SCAN_TIMEOUT_S = 60.0
# Tenant of a dead letter whose failed message could not be read (no envelope to take it from).
UNKNOWN_TENANT = "unknown"


class DeadLetterError(PermanentError):
    """A browse or redrive request that cannot be served as asked; the message says why."""


class CursorError(DeadLetterError):
    """A paging cursor that this module did not issue."""


class DeadLetterLogUnavailableError(OutageError):
    """The dead-letter topic could not be read (to its end, in time)."""


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    """One `ProcessingFailed` record as read from the topic, with where it was read."""

    event_id: str
    occurred_at: datetime
    tenant_id: str
    trace_id: str | None
    causation_id: str | None
    media_id: str | None
    processor: str
    stage: str
    error_type: str
    error_message: str
    retryable: bool
    attempts: int
    failed_topic: str | None
    failed_partition: int | None
    failed_offset: int | None
    failed_key: bytes | None
    failed_value: bytes | None
    failed_event_type: str | None
    traceback: str | None
    position: Position

    @classmethod
    def from_record(cls, record: dict[str, Any], position: Position) -> DeadLetter:
        envelope = record["envelope"]
        occurred = envelope["occurred_at"]
        if isinstance(occurred, int):
            occurred = datetime.fromtimestamp(occurred / 1000, UTC)
        return cls(
            event_id=str(envelope["event_id"]),
            occurred_at=occurred,
            tenant_id=str(envelope["tenant_id"]),
            trace_id=envelope.get("trace_id"),
            causation_id=envelope.get("causation_id"),
            media_id=record.get("media_id"),
            processor=str(record["processor"]),
            stage=str(record["stage"]),
            error_type=str(record["error_type"]),
            error_message=str(record["error_message"]),
            retryable=bool(record["retryable"]),
            attempts=int(record["attempts"]),
            failed_topic=record.get("failed_topic"),
            failed_partition=record.get("failed_partition"),
            failed_offset=record.get("failed_offset"),
            failed_key=record.get("failed_key"),
            failed_value=record.get("failed_value"),
            failed_event_type=record.get("failed_event_type"),
            traceback=record.get("traceback"),
            position=position,
        )

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """Newest first: by event time, then where it was read (unique per record)."""
        millis = int(self.occurred_at.timestamp() * 1000)
        return (millis, self.position.partition, self.position.offset)

    @property
    def failed_position(self) -> Position | None:
        if self.failed_topic is None or self.failed_partition is None:
            return None
        return Position(self.failed_topic, self.failed_partition, self.failed_offset or 0)

    @property
    def has_bytes(self) -> bool:
        return self.failed_value is not None and self.failed_topic is not None


# ---------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to show or redrive; empty sets and None match everything."""

    event_ids: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    media_ids: frozenset[str] = frozenset()
    error_types: frozenset[str] = frozenset()
    retryable: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    # The tenants whose dead letters are visible; None: every tenant (the command line).
    tenants: frozenset[str] | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.event_ids and letter.event_id not in self.event_ids:
            return False
        if self.stages and letter.stage not in self.stages:
            return False
        if self.media_ids and letter.media_id not in self.media_ids:
            return False
        if self.error_types and letter.error_type not in self.error_types:
            return False
        if self.retryable is not None and letter.retryable != self.retryable:
            return False
        if self.since is not None and letter.occurred_at < _aware(self.since):
            return False
        if self.until is not None and letter.occurred_at >= _aware(self.until):
            return False
        return self.tenants is None or letter.tenant_id in self.tenants


def utc_stamp(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _aware(moment: datetime) -> datetime:
    """Times without a zone are UTC, as every time of the platform; in UTC, so that times
    at the ends of the calendar (year 1 east of Greenwich) compare without overflowing."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year < 2 else datetime.max).replace(tzinfo=UTC)


_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it has no zone) or a span back from now: 30m, 2h, 7d."""
    value = text.strip()
    relative = _RELATIVE.match(value.lower())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError as exc:
        raise DeadLetterError(
            f"{text!r} is neither an ISO 8601 time nor a span like 30m, 2h or 7d"
        ) from exc


def encode_cursor(key: tuple[int, int, int]) -> str:
    raw = f"v1:{key[0]}:{key[1]}:{key[2]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int, int]:
    refused = CursorError(f"the cursor {cursor[:40]!r} was not issued by this listing")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        if len(parts) != 4 or parts[0] != "v1":
            raise refused
        return (int(parts[1]), int(parts[2]), int(parts[3]))
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise refused from exc


# ---------------------------------------------------------------------------- the topic


@dataclass
class ScanStats:
    scanned: int = 0
    unreadable: int = 0


class DeadLetterLog:
    """Reads the `deadletter` topic to its current end, without a consumer group's offsets."""

    def __init__(
        self, kafka: KafkaSettings, codec: AvroCodec, timeout_s: float = SCAN_TIMEOUT_S
    ) -> None:
        self.kafka = kafka
        self.codec = codec
        self.timeout_s = timeout_s
        self.topic = full_topic_name(topic_for_event("ProcessingFailed"), kafka)

    def scan(
        self, since: datetime | None = None, stats: ScanStats | None = None
    ) -> Iterator[DeadLetter]:
        """Every dead letter from `since` (Kafka timestamps) or the start, partition by
        partition in offset order; records that do not decode are counted and passed over."""
        stats = stats if stats is not None else ScanStats()
        consumer = Consumer(
            consumer_config(
                self.kafka,
                # Never committed: a browse leaves no trace in the cluster.
                f"visionlog-deadletters-{uuid.uuid4().hex[:12]}",
                **{"enable.partition.eof": True},
            )
        )
        try:
            ends = self._assign(consumer, since)
            deadline = time.monotonic() + self.timeout_s
            while ends:
                if time.monotonic() > deadline:
                    raise DeadLetterLogUnavailableError(
                        f"{self.topic} was not read to its end within {self.timeout_s:.0f}s "
                        f"({len(ends)} partitions left)"
                    )
                message = consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                partition = message.partition() or 0
                if error is not None:
                    # End of a partition: EOF also passes transaction markers, which a
                    # position check against the end offset would wait for forever.
                    if error.code() == KafkaError._PARTITION_EOF:
                        ends.pop(partition, None)
                        continue
                    if error.fatal() or not error.retriable():
                        raise DeadLetterLogUnavailableError(f"reading {self.topic}: {error.str()}")
                    continue
                offset = message.offset() or 0
                end = ends.get(partition)
                if end is None:
                    continue
                if offset >= end:
                    # Written after the scan began: the snapshot ends here.
                    ends.pop(partition, None)
                    continue
                if offset + 1 >= end:
                    ends.pop(partition, None)
                stats.scanned += 1
                inbound = InboundMessage.from_kafka(message)
                try:
                    decoded = self.codec.decode(inbound.value)
                    letter = DeadLetter.from_record(
                        decoded.record, Position(inbound.topic, inbound.partition, inbound.offset)
                    )
                except (PermanentError, KeyError, TypeError, ValueError):
                    stats.unreadable += 1
                    continue
                yield letter
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer, since: datetime | None) -> dict[int, int]:
        """Assign every partition with something to read; returns partition -> end offset."""
        try:
            metadata = consumer.list_topics(self.topic, timeout=10)
        except KafkaException as exc:
            raise DeadLetterLogUnavailableError(f"the brokers did not answer: {exc}") from exc
        info = metadata.topics.get(self.topic)
        if info is None or info.error is not None or not info.partitions:
            return {}
        keys = [(self.topic, number) for number in sorted(info.partitions)]
        bounds = partition_bounds(admin_client(self.kafka), keys)
        starts = {number: bounds[(self.topic, number)][0] for _, number in keys}
        if since is not None:
            # Kafka reads negative times as "latest" (-1) and "earliest" (-2).
            millis = max(0, int(_aware(since).timestamp() * 1000))
            found = consumer.offsets_for_times(
                [TopicPartition(self.topic, number, millis) for number in starts], timeout=10
            )
            for tp in found:
                # -1: nothing at or after that time in this partition.
                starts[tp.partition] = (
                    tp.offset if tp.offset >= 0 else bounds[(self.topic, tp.partition)][1]
                )
        ends: dict[int, int] = {}
        assignment = []
        for number, start in starts.items():
            end = bounds[(self.topic, number)][1]
            if start < end:
                ends[number] = end
                assignment.append(TopicPartition(self.topic, number, start))
        if assignment:
            consumer.assign(assignment)
        return ends
