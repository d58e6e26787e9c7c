"""Runs stages on raw Kafka messages: decode, call, retry, publish, dead-letter.

`StageRunner.handle` is synchronous and free of the stream framework, so the faust agents
call it in an executor thread (long inference never stalls the poll loop and its
heartbeats) and tests can drive it with messages read from the real broker.

Failure policy, per stage:
- `PermanentStageError` (corrupt input, unsupported content) and contract violations of a
  stage's own output are dead-lettered at once;
- anything else is retried `processors.max_attempts` times with exponential backoff, then
  dead-lettered as retryable (a reprocess after the cause is fixed will succeed);
- a message that cannot be decoded is dead-lettered with its raw bytes.
The dead-letter event carries the failing message's bytes, topic, partition and offset, so
nothing is lost and the partition moves on: a poison message never blocks it. Only a
failure to publish (the brokers refuse our writes) propagates, so the offset is not
committed and the message is seen again after the worker restarts.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from processors.bindings import StageBinding
from processors.stage import PROCESSORS_VERSION, Outgoing, PermanentStageError, Stage, StageContext
from producers.errors import MediaRejectedError
from visionlog.codec import AvroCodec, EventEncodingError, MalformedEventError
from visionlog.envelope import Envelope, deterministic_event_id, envelope_caused_by
from visionlog.kafka import EventPublisher
from visionlog.schemas import get_catalog
from visionlog.settings import Settings

log = logging.getLogger(__name__)

PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PermanentStageError,
    MediaRejectedError,
    EventEncodingError,
)
_TRACEBACK_LIMIT = 8000


@dataclass(frozen=True)
class InboundMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def from_kafka(cls, message: Message) -> InboundMessage:
        return cls(
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
            message.key(),
            message.value(),
        )


@dataclass
class HandleReport:
    event_type: str | None
    published: list[Outgoing] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    stages_run: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StageFailure:
    stage: str
    error: BaseException
    attempts: int
    retryable: bool


def failure_record(
    *,
    worker: str,
    failure: StageFailure,
    message: InboundMessage,
    source: dict[str, Any] | None,
    event_type: str | None,
    component: str = "processors",
    version: str = PROCESSORS_VERSION,
) -> dict[str, Any]:
    """The ProcessingFailed record for a stage (or decode) failure of one message."""
    identity = (message.topic, message.partition, message.offset, failure.stage)
    producer = f"{component}.{worker}/{version}"
    if source is not None and "envelope" in source:
        envelope = envelope_caused_by(source, "ProcessingFailed", producer, *identity)
        media_id = source.get("media_id") or envelope["correlation_id"]
    else:
        key_text = message.key.decode("utf-8", "replace") if message.key else None
        envelope = Envelope(
            event_type="ProcessingFailed",
            schema_version=get_catalog().event("ProcessingFailed").version,
            producer=producer,
            correlation_id=key_text or f"{message.topic}/{message.partition}/{message.offset}",
            tenant_id="unknown",
            event_id=deterministic_event_id("ProcessingFailed", *identity),
        ).as_record()
        media_id = key_text
    trace = "".join(traceback.format_exception(failure.error))[-_TRACEBACK_LIMIT:]
    image = None
    if source is not None:
        image = source.get("image") or source.get("original")
    return {
        "envelope": envelope,
        "media_id": media_id,
        "processor": producer,
        "processor_version": version,
        "stage": failure.stage,
        "error_type": type(failure.error).__name__,
        "error_message": str(failure.error) or repr(failure.error),
        "retryable": failure.retryable,
        "attempts": failure.attempts,
        "failed_topic": message.topic,
        "failed_partition": message.partition,
        "failed_offset": message.offset,
        "failed_key": message.key,
        "failed_value": message.value,
        "failed_event_type": event_type,
        "input_blob": image if isinstance(image, dict) else None,
        "traceback": trace,
    }


def resident_memory_mb() -> float:
    """Current resident set size of this process (Linux), 0 where unknown."""
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return 0.0
    pages = int(statm.read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


class StageRunner:
    def __init__(
        self,
        worker: str,
        settings: Settings,
        stages: Sequence[tuple[StageBinding, Stage]],
        codec: AvroCodec,
        publisher: EventPublisher,
        context: StageContext,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.worker = worker
        self.settings = settings
        self.stages = list(stages)
        self.codec = codec
        self.publisher = publisher
        self.context = context
        self.sleep = sleep
        self.items_handled = 0

    def _stages_for(self, event_type: str) -> list[tuple[StageBinding, Stage]]:
        return [
            (binding, stage) for binding, stage in self.stages if event_type in binding.consumes
        ]

    def _dead_letter(
        self,
        failure: StageFailure,
        message: InboundMessage,
        source: dict[str, Any] | None,
        event_type: str | None,
    ) -> None:
        log.warning(
            "dead-lettering %s@%s/%s stage %s after %d attempt(s): %s",
            message.topic,
            message.partition,
            message.offset,
            failure.stage,
            failure.attempts,
            failure.error,
        )
        record = failure_record(
            worker=self.worker,
            failure=failure,
            message=message,
            source=source,
            event_type=event_type,
        )
        self.publisher.publish("ProcessingFailed", record, key=record["envelope"]["correlation_id"])

    def _run_stage(
        self, binding: StageBinding, stage: Stage, record: dict[str, Any]
    ) -> list[Outgoing] | StageFailure:
        attempts = 0
        max_attempts = max(1, self.settings.processors.max_attempts)
        while True:
            attempts += 1
            try:
                outputs = stage(record, self.context)
            except PERMANENT_ERRORS as exc:
                return StageFailure(binding.name, exc, attempts, retryable=False)
            except Exception as exc:
                if attempts >= max_attempts:
                    return StageFailure(binding.name, exc, attempts, retryable=True)
                delay = self.settings.processors.retry_backoff_s * 2 ** (attempts - 1)
                log.info(
                    "stage %s attempt %d failed (%s); retrying in %.2fs",
                    binding.name,
                    attempts,
                    exc,
                    delay,
                )
                self.sleep(delay)
            else:
                return outputs

    def handle(self, message: InboundMessage) -> HandleReport:
        self.items_handled += 1
        try:
            decoded = self.codec.decode(message.value)
        except MalformedEventError as exc:
            report = HandleReport(event_type=None, dead_lettered=["decode"])
            self._dead_letter(StageFailure("decode", exc, 1, False), message, None, None)
            self.publisher.flush()
            return report
        report = HandleReport(event_type=decoded.event_type)
        for binding, stage in self._stages_for(decoded.event_type):
            report.stages_run.append(binding.name)
            result = self._run_stage(binding, stage, decoded.record)
            if isinstance(result, StageFailure):
                report.dead_lettered.append(binding.name)
                self._dead_letter(result, message, decoded.record, decoded.event_type)
                continue
            for outgoing in result:
                try:
                    self.publisher.publish(outgoing.event_type, outgoing.record, key=outgoing.key)
                except EventEncodingError as exc:
                    report.dead_lettered.append(binding.name)
                    failure = StageFailure(binding.name, exc, 1, retryable=False)
                    self._dead_letter(failure, message, decoded.record, decoded.event_type)
                    continue
                report.published.append(outgoing)
        # Every report must be positive before the offset may be committed.
        self.publisher.flush()
        return report

    def should_recycle(self) -> str | None:
        """Why this worker should restart now, or None."""
        limits = self.settings.processors
        if self.items_handled >= limits.recycle_after_items:
            return f"handled {self.items_handled} items (limit {limits.recycle_after_items})"
        rss = resident_memory_mb()
        if rss > limits.recycle_above_rss_mb:
            return f"resident memory {rss:.0f} MB above {limits.recycle_above_rss_mb} MB"
        return None
