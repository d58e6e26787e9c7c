"""Thin Kafka adapters: an idempotent event publisher that checks every delivery report,
and consumer settings for at-least-once processing with manual commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from visionlog.codec import AvroCodec
from visionlog.errors import OutageError
from visionlog.settings import KafkaSettings
from visionlog.stream.headers import event_headers
from visionlog.topics import full_topic_name, topic_for_event


class DeliveryError(OutageError):
    """One or more events were not acknowledged by the brokers."""


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    return {
        **settings.client_config(),
        # Idempotence gives exactly-once, in-order writes per partition across retries.
        "enable.idempotence": True,
        "acks": "all",
        # Java-compatible murmur2, as faust's producers (aiokafka) partition: a key lands on
        # the same partition whichever part of the platform wrote it, so per-key state of
        # the workers (faust tables) lives where the key's events arrive.
        "partitioner": "murmur2_random",
        "compression.type": "zstd",
        # A short linger: an upload or a result waits for its acknowledgement, and batches
        # still form under load while earlier requests are in flight.
        "linger.ms": 1,
        "delivery.timeout.ms": 120_000,
        **overrides,
    }


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        **settings.client_config(),
        "group.id": group_id,
        # Offsets are committed by the caller after the work is done: at-least-once.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **overrides,
    }


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient(settings.client_config())


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


@dataclass
class _Reports:
    errors: list[str] = field(default_factory=list)
    delivered: list[Delivered] = field(default_factory=list)


class EventPublisher:
    """Publishes contract events to the topic the catalogue assigns them."""

    def __init__(
        self, settings: KafkaSettings, codec: AvroCodec, producer: Producer | None = None
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.producer = producer or Producer(producer_config(settings))
        self._lock = threading.Lock()
        # Reports are kept per publishing thread: several threads may share one publisher,
        # and each flush() must answer for the calling thread's events only.
        self._local = threading.local()

    def _reports(self) -> _Reports:
        reports: _Reports | None = getattr(self._local, "reports", None)
        if reports is None:
            reports = self._local.reports = _Reports()
        return reports

    def _on_delivery(self, reports: _Reports, error: KafkaError | None, message: Message) -> None:
        with self._lock:
            if error is not None:
                reports.errors.append(f"{message.topic()}: {error.str()}")
            else:
                reports.delivered.append(
                    Delivered(
                        message.topic() or "", message.partition() or 0, message.offset() or 0
                    )
                )

    def publish(
        self,
        event_type: str,
        record: Mapping[str, Any],
        key: str | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> str:
        """Queue one event; returns the topic. Call flush() to learn whether it was stored."""
        spec = topic_for_event(event_type)
        topic = full_topic_name(spec, self.settings)
        key_value = key if key is not None else record.get(spec.key_field)
        if not key_value:
            raise ValueError(f"{event_type} has no {spec.key_field!r} to key it by")
        value = self.codec.encode(topic, event_type, record)
        if headers is None:
            trace = (record.get("envelope") or {}).get("trace_id")
            headers = event_headers(event_type, str(trace) if trace else None)
        self.publish_bytes(topic, str(key_value).encode(), value, headers)
        return topic

    def publish_bytes(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue an already encoded event (flush() reports on it like on the others)."""
        reports = self._reports()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            self._on_delivery(reports, error, message)

        while True:
            try:
                self.producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=list(headers),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, never drop.
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self, timeout: float = 30.0) -> list[Delivered]:
        """Wait for every queued event's delivery report; raise if any failed."""
        remaining = self.producer.flush(timeout)
        reports = self._reports()
        with self._lock:
            errors, delivered = reports.errors, reports.delivered
            reports.errors, reports.delivered = [], []
        if remaining:
            errors.append(f"{remaining} events still unacknowledged after {timeout}s")
        if errors:
            raise DeliveryError("; ".join(errors))
        return delivered


_LEADER_PENDING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def _leader_pending(error: KafkaException) -> bool:
    cause = error.args[0] if error.args else None
    if not isinstance(cause, KafkaError):
        return False
    return cause.code() in _LEADER_PENDING or cause.retriable()


def partition_bounds(
    admin: AdminClient, partitions: Sequence[tuple[str, int]], timeout: float = 30.0
) -> dict[tuple[str, int], tuple[int, int]]:
    """(earliest, latest) offsets of many partitions in two batched requests.

    One watermark query per partition costs a round trip each; a projection reads
    dozens of partitions, so the bounds are asked for all at once."""
    if not partitions:
        return {}
    result: dict[tuple[str, int], list[int]] = {key: [0, 0] for key in partitions}
    specs = (OffsetSpec.earliest(), OffsetSpec.latest())  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + timeout
    for index, spec in enumerate(specs):
        pending = list(partitions)
        while pending:
            request = {TopicPartition(topic, number): spec for topic, number in pending}
            futures = admin.list_offsets(
                request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
            )
            retry: list[tuple[str, int]] = []
            for tp, future in futures.items():
                try:
                    result[(tp.topic, tp.partition)][index] = future.result().offset
                except KafkaException as error:
                    # Fresh topics answer "not leader" until their leaders are elected.
                    if not _leader_pending(error) or time.monotonic() > deadline:
                        raise
                    retry.append((tp.topic, tp.partition))
            if retry:
                time.sleep(0.2)
            pending = retry
    return {key: (low, high) for key, (low, high) in result.items()}


def consumer_lags(
    admin: AdminClient, groups: Sequence[str], timeout: float = 15.0
) -> dict[str, dict[str, int]]:
    """Per consumer group and topic: how many committed messages the group has yet to read.

    A partition listed without a committed offset counts from its earliest offset (the
    workers read from the beginning). A group that committed nothing has no topics."""
    committed: dict[str, list[TopicPartition]] = {}
    for group in groups:
        futures = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=timeout
        )
        for future in futures.values():
            committed[group] = list(future.result().topic_partitions or [])
    wanted = sorted({(tp.topic, tp.partition) for tps in committed.values() for tp in tps})
    bounds = partition_bounds(admin, wanted, timeout)
    lags: dict[str, dict[str, int]] = {}
    for group, tps in committed.items():
        per_topic = lags.setdefault(group, {})
        for tp in tps:
            low, high = bounds[(tp.topic, tp.partition)]
            position = tp.offset if tp.offset >= 0 else low
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, high - position)
    return lags
