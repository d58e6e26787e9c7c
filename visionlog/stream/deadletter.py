"""The dead-letter record (`ProcessingFailed`) of a message that could not be processed.

Every consumer dead-letters the same way: the failing message's bytes, topic, partition and
offset travel with the error, its type and traceback, so nothing is lost and the partition
moves on. The event id is deterministic in the message's position, the stage and the part,
so a redelivered message dead-letters under the same id.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from visionlog.contracts import BlobRef, ProcessingFailed
from visionlog.envelope import Envelope, deterministic_event_id, envelope_caused_by
from visionlog.errors import Disposition, classify
from visionlog.schemas import get_catalog
from visionlog.stream.messages import InboundMessage

TRACEBACK_LIMIT = 8000


@dataclass(frozen=True)
class StageFailure:
    stage: str
    error: BaseException
    attempts: int
    retryable: bool

    @classmethod
    def of(cls, stage: str, error: BaseException, attempts: int = 1) -> StageFailure:
        return cls(stage, error, attempts, classify(error) is not Disposition.PERMANENT)

    @property
    def message(self) -> str:
        return str(self.error) or repr(self.error)


def _input_blob(source: Mapping[str, Any] | None) -> BlobRef | None:
    """The stored image the failed input points at: an upload's original, a page's or a
    frame's image; None for other events and for input that did not decode."""
    if source is None:
        return None
    image: BlobRef | None = source.get("image") or source.get("original")
    return image if isinstance(image, Mapping) else None


def failure_record(
    *,
    worker: str,
    failure: StageFailure,
    message: InboundMessage,
    source: Mapping[str, Any] | None,
    event_type: str | None,
    component: str = "processors",
    version: str = "0.2.0",
    part: str | None = None,
) -> ProcessingFailed:
    """The ProcessingFailed record for a stage (or decode) failure of one message.

    `part` names the piece of the input that failed when the rest succeeded (a page of a
    document); it goes into the message and the event id."""
    identity: tuple[object, ...] = (message.topic, message.partition, message.offset, failure.stage)
    if part is not None:
        identity = (*identity, part)
    producer = f"{component}.{worker}/{version}"
    if source is not None and "envelope" in source:
        envelope = envelope_caused_by(source, "ProcessingFailed", producer, *identity)
        media_id = source.get("media_id") or envelope["correlation_id"]
    else:
        key_text = message.key_text
        envelope = Envelope(
            event_type="ProcessingFailed",
            schema_version=get_catalog().event("ProcessingFailed").version,
            producer=producer,
            correlation_id=key_text or f"{message.topic}/{message.partition}/{message.offset}",
            tenant_id="unknown",
            event_id=deterministic_event_id("ProcessingFailed", *identity),
        ).as_record()
        media_id = key_text
    trace = "".join(traceback.format_exception(failure.error))[-TRACEBACK_LIMIT:]
    error_message = failure.message if part is None else f"{part}: {failure.message}"
    return {
        "envelope": envelope,
        "media_id": media_id,
        "processor": producer,
        "processor_version": version,
        "stage": failure.stage,
        "error_type": type(failure.error).__name__,
        "error_message": error_message,
        "retryable": failure.retryable,
        "attempts": failure.attempts,
        "failed_topic": message.topic,
        "failed_partition": message.partition,
        "failed_offset": message.offset,
        "failed_key": message.key,
        "failed_value": message.value,
        "failed_event_type": event_type,
        "input_blob": _input_blob(source),
        "traceback": trace,
    }


def part_failure(
    source: Mapping[str, Any], stage: str, part: str, error: BaseException, worker: str = "stage"
) -> ProcessingFailed:
    """ProcessingFailed for one part of an input a stage otherwise processed (a page of a
    document that would not render): built by the stage itself, without the message's
    position, which the stage does not know; the id is deterministic in the input event,
    the stage and the part."""
    producer = f"processors.{stage}/0.2.0"
    envelope = envelope_caused_by(source, "ProcessingFailed", producer, "failed", stage, part)
    trace = "".join(traceback.format_exception(error))[-TRACEBACK_LIMIT:]
    return {
        "envelope": envelope,
        "media_id": source.get("media_id") or envelope["correlation_id"],
        "processor": f"processors.{worker}",
        "processor_version": "0.2.0",
        "stage": stage,
        "error_type": type(error).__name__,
        "error_message": f"{part}: {str(error) or repr(error)}",
        "retryable": classify(error) is not Disposition.PERMANENT,
        "attempts": 1,
        "failed_topic": None,
        "failed_partition": None,
        "failed_offset": None,
        "failed_key": None,
        "failed_value": None,
        "failed_event_type": str(source["envelope"]["event_type"]),
        "input_blob": _input_blob(source),
        "traceback": trace,
    }
