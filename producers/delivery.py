"""Checked publishing of one upload event: wait for its own delivery report, resend only
after a definitive failure.

Why not "produce, flush, count the reports": during a Kafka restart the first flush timed
out while the event was still queued in the client, the upload was retried, and the late
report of the first copy arrived together with the retry's, so one upload saw two reports
("too many values to unpack") and was answered 503 although it had been published. Here:

- every message gets its own delivery callback and slot, so only its own report counts;
  a report of an earlier attempt, or of another thread's message, cannot be mistaken for it;
- a message still in flight is never produced again: the client retries it by itself until
  its delivery timeout (`ingest.publish_timeout_s` for the ingest producer), so a broker
  restart shorter than that is simply waited out;
- the event is produced again (same event id) only after a definitive failure report, or
  when encoding or producing itself failed (schema registry away, local queue trouble);
- when no report came before the deadline, the outcome is unknown: that is a
  `DeliveryUncertainError`, never reported as "not published".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from visionlog.kafka import Delivered, DeliveryError, EventPublisher
from visionlog.registry import RegistryError
from visionlog.stream.headers import event_headers
from visionlog.stream.retry import RetryPolicy, call_with_retries
from visionlog.topics import full_topic_name, topic_for_event

_POLL_S = 0.1
_BACKOFF_S = 0.2
_BACKOFF_MAX_S = 5.0
_METADATA_TIMEOUT_S = 2.0
# The client reports a message when its delivery timeout expires; wait a little past our
# own deadline for that verdict rather than give up a moment before it arrives.
_REPORT_GRACE_S = 5.0
_TIMED_OUT = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT})


class DeliveryUncertainError(DeliveryError):
    """No delivery report arrived in time: the event may still be stored by the brokers."""


class _Refused(Exception):  # noqa: N818 - an outcome of one attempt, not raised to callers
    """One attempt failed definitively: it may be made again, a bounded number of times."""


@dataclass
class _Slot:
    """The delivery report of one produced message."""

    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    # A message that timed out after it was sent may have been stored all the same.
    maybe_stored: bool = False
    delivered: Delivered | None = None

    def report(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.error = f"{message.topic()}: {error.str()}"
            self.maybe_stored = error.code() in _TIMED_OUT
        else:
            self.delivered = Delivered(
                message.topic() or "", message.partition() or 0, message.offset() or 0
            )
        self.done.set()


def _produce(
    publisher: EventPublisher,
    topic: str,
    key: str,
    value: bytes,
    headers: list[tuple[str, str | bytes | None]],
) -> _Slot:
    slot = _Slot()
    while True:
        try:
            publisher.producer.produce(
                topic, key=key.encode(), value=value, headers=headers, on_delivery=slot.report
            )
        except BufferError:
            # Local queue full: serve delivery reports to make room, never drop.
            publisher.producer.poll(_POLL_S)
        else:
            return slot


def _topic_missing(publisher: EventPublisher, topic: str) -> bool:
    """Whether the brokers say the topic does not exist (then nothing can have been stored
    in it); False when that cannot be told (brokers unreachable)."""
    try:
        metadata = publisher.producer.list_topics(topic, timeout=_METADATA_TIMEOUT_S)
    except KafkaException:
        return False
    found = metadata.topics.get(topic)
    return found is None or (
        found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    )


def _await(publisher: EventPublisher, slot: _Slot, deadline: float) -> bool:
    """Serve delivery reports until this slot's arrives; False when the deadline passed."""
    while not slot.done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        # Any thread's poll may serve this slot's callback; the event says when it did.
        publisher.producer.poll(min(_POLL_S, remaining))
    return True


def publish_checked(
    publisher: EventPublisher,
    event_type: str,
    record: dict[str, Any],
    *,
    trace_id: str | None,
    attempts: int,
    timeout_s: float,
) -> Delivered:
    """Publish one event and return where it was stored (see the module docstring).

    Raises DeliveryError when every attempt failed definitively (nothing was stored),
    DeliveryUncertainError when the last copy's report did not come within `timeout_s`.
    Attempts follow the platform's one retry policy (`visionlog.stream.retry`).
    """
    spec = topic_for_event(event_type)
    topic = full_topic_name(spec, publisher.settings)
    key = str(record[spec.key_field])
    headers: list[tuple[str, str | bytes | None]] = list(event_headers(event_type, trace_id))
    deadline = time.monotonic() + timeout_s
    encoded: list[bytes] = []
    errors: list[str] = []
    maybe_stored = False

    def attempt() -> Delivered:
        nonlocal maybe_stored
        try:
            if not encoded:
                encoded.append(publisher.codec.encode(topic, event_type, record))
            slot = _produce(publisher, topic, key, encoded[0], headers)
        except (KafkaException, RegistryError) as exc:
            errors.append(str(exc))
            raise _Refused(str(exc)) from exc
        if not _await(publisher, slot, deadline + _REPORT_GRACE_S):
            raise DeliveryUncertainError(
                f"{event_type} to {topic}: no delivery report within {timeout_s:.0f}s; the "
                "brokers may still store it"
            )
        if slot.delivered is not None:
            return slot.delivered
        maybe_stored = maybe_stored or slot.maybe_stored
        errors.append(str(slot.error))
        raise _Refused(str(slot.error))

    policy = RetryPolicy(
        max_attempts=max(1, attempts),
        backoff_s=_BACKOFF_S,
        max_backoff_s=_BACKOFF_MAX_S,
    )
    result = call_with_retries(
        attempt,
        policy,
        deadline=deadline,
        # An uncertain outcome is never sent again: the first copy may still be stored.
        give_up=lambda error: isinstance(error, DeliveryUncertainError),
    )
    if result.value is not None:
        return result.value
    if isinstance(result.error, DeliveryUncertainError):
        raise result.error
    summary = "; ".join(f"attempt {n}: {e}" for n, e in enumerate(errors, 1)) or "no attempt"
    if maybe_stored and not _topic_missing(publisher, topic):
        raise DeliveryUncertainError(
            f"{event_type} to {topic} timed out and may still have been stored: {summary}"
        )
    raise DeliveryError(f"{event_type} was not stored: {summary}")
