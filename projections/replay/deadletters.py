"""Dead letters of a rebuild: kept apart from the log the rebuild replays.

A live projection dead-letters a poison event onto the dead-letter topic (ProcessingFailed),
which the projections read again. A rebuild replays that same log: were it to publish its
dead letters too, every rebuild would append again what the last one (or the live
projection) already wrote, with a new event time, so the read models' checksums would
change with each rebuild and the dead-letter topic would grow.

So a rebuild publishes nothing. Its runners hand their dead letters to a
`RebuildDeadLetters` sink, which tells them apart by their deterministic identity (the
poison event's topic, partition and offset, and the projection's stage,
`projection-{name}`):

- already on the dead-letter topic (the live projection wrote it): the read model the
  rebuild builds has it from the log, as the live one does; only counted;
- not on it (the live projection has not reached the event, or an older reader accepted
  it): listed in the rebuild's report with the reason, and logged, so nothing is lost
  and the reason is visible; the event itself stays on the log at its position.

Two rebuilds of the same log therefore read the same events and give the same checksums.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection, Iterable, Set
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from visionlog.codec import AvroCodec, MalformedEventError
from visionlog.contracts import ProcessingFailed
from visionlog.kafka import admin_client, consumer_config, partition_bounds
from visionlog.settings import Settings
from visionlog.topics import full_topic_name, topic_for_event

log = logging.getLogger(__name__)

# New dead letters listed one by one in a rebuild's report; the rest are counted (and logged).
REPORTED_LIMIT = 100


def dead_letter_stage(projection: str) -> str:
    """The `stage` a projection's runner names in its dead letters."""
    return f"projection-{projection}"


@dataclass(frozen=True)
class DeadLetterKey:
    """What identifies a projection's dead letter: the poison event's position and the
    stage that refused it. The same event refused by the same projection has the same key
    in every rebuild (and in the live projection)."""

    topic: str
    partition: int
    offset: int
    stage: str

    @classmethod
    def of(cls, record: ProcessingFailed) -> DeadLetterKey | None:
        topic, partition, offset = (
            record["failed_topic"],
            record["failed_partition"],
            record["failed_offset"],
        )
        if topic is None or partition is None or offset is None:
            return None
        return cls(topic, partition, offset, record["stage"])


@dataclass(frozen=True)
class RebuildDeadLetter:
    """One poison event a rebuild left out (not published): where it is and why."""

    stage: str
    topic: str | None
    partition: int | None
    offset: int | None
    event_id: str
    media_id: str | None
    failed_event_type: str | None
    error_type: str
    error_message: str
    # True when the dead-letter topic already holds this dead letter.
    on_log: bool


class RebuildDeadLetters:
    """A runner's dead-letter sink (`ProjectionRunner(dead_letters=...)`) for rebuilds:
    records each dead letter, publishes none."""

    def __init__(self, on_log: Set[DeadLetterKey]) -> None:
        self.on_log = on_log
        self._entries: dict[str, RebuildDeadLetter] = {}

    def __call__(self, record: ProcessingFailed) -> None:
        key = DeadLetterKey.of(record)
        known = key is not None and key in self.on_log
        entry = RebuildDeadLetter(
            stage=record["stage"],
            topic=record["failed_topic"],
            partition=record["failed_partition"],
            offset=record["failed_offset"],
            event_id=str(record["envelope"]["event_id"]),
            media_id=record["media_id"],
            failed_event_type=record["failed_event_type"],
            error_type=record["error_type"],
            error_message=record["error_message"],
            on_log=known,
        )
        # The id is deterministic in the position and the stage: a batch read twice (a
        # retried store error) lists the event once.
        self._entries[entry.event_id] = entry
        if not known:
            log.warning(
                "rebuild: %s refused %s/%s@%s (%s: %s); the dead-letter topic does not hold "
                "it and a rebuild does not publish: see the rebuild report",
                entry.stage,
                entry.topic,
                entry.partition,
                entry.offset,
                entry.error_type,
                entry.error_message,
            )

    @property
    def entries(self) -> list[RebuildDeadLetter]:
        return list(self._entries.values())

    @property
    def count(self) -> int:
        return len(self._entries)

    @property
    def already_on_log(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.on_log)

    @property
    def new(self) -> list[RebuildDeadLetter]:
        """Those the dead-letter topic does not hold, in the order they were found."""
        return [entry for entry in self._entries.values() if not entry.on_log]


def dead_letters_on_log(
    settings: Settings, codec: AvroCodec, stages: Collection[str], timeout_s: float = 120.0
) -> frozenset[DeadLetterKey]:
    """The keys of the dead letters of `stages` on the dead-letter topic, read from its
    start to its end as it is now (explicit assignment, nothing committed)."""
    topic = full_topic_name(topic_for_event("ProcessingFailed"), settings.kafka)
    consumer = Consumer(
        consumer_config(
            settings.kafka,
            f"{settings.kafka.topic_prefix}visionlog-rebuild-scan-{uuid.uuid4().hex[:8]}",
            **{"client.id": "rebuild-dead-letter-scan"},
        )
    )
    found: set[DeadLetterKey] = set()
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            return frozenset()
        keys = [(topic, number) for number in sorted(info.partitions)]
        bounds = partition_bounds(admin_client(settings.kafka), keys)
        pending = {key: high for key, (low, high) in bounds.items() if high > low}
        if not pending:
            return frozenset()
        assigned = [TopicPartition(t, p, bounds[(t, p)][0]) for t, p in pending]
        consumer.assign(assigned)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading the dead-letter topic {topic} took longer than {timeout_s}s"
                )
            for message in consumer.consume(500, 0.5):
                error = message.error()
                if error is not None:
                    if not error.retriable() and error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    continue
                key = _key(codec, message.value(), stages)
                if key is not None:
                    found.add(key)
            # The position, not the last offset read, passes transaction markers.
            for tp in consumer.position(assigned):
                position = (tp.topic, tp.partition)
                if position in pending and tp.offset >= pending[position]:
                    del pending[position]
    finally:
        consumer.close()
    return frozenset(found)


def _key(codec: AvroCodec, value: bytes | None, stages: Collection[str]) -> DeadLetterKey | None:
    try:
        decoded = codec.decode(value)
    except (MalformedEventError, ValueError, KeyError):
        return None  # not a dead letter a projection wrote
    if decoded.event_type != "ProcessingFailed":
        return None
    stage = decoded.record.get("stage")
    if stage not in stages:
        return None
    topic = decoded.record.get("failed_topic")
    partition = decoded.record.get("failed_partition")
    offset = decoded.record.get("failed_offset")
    if not isinstance(topic, str) or not isinstance(partition, int) or not isinstance(offset, int):
        return None
    return DeadLetterKey(topic, partition, offset, str(stage))


def stages_of(projections: Iterable[str]) -> frozenset[str]:
    return frozenset(dead_letter_stage(name) for name in projections)
