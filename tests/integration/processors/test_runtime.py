"""The stage runner against the real broker: retries, dead letters, poison messages, ids."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Message, Producer

from processors.bindings import StageBinding
from processors.runtime import InboundMessage, StageRunner
from processors.stage import Outgoing, PermanentStageError, StageContext, derived_envelope
from tests.factories import sample_event
from tests.integration.processors.conftest import TopicsUnderTest
from visionlog.blobstore import BlobStore
from visionlog.kafka import DeliveryError, EventPublisher, producer_config
from visionlog.schemas import get_catalog

CATALOG = get_catalog()


def _text_output(event: dict[str, Any], _ctx: StageContext) -> list[Outgoing]:
    record = sample_event(CATALOG, "OutputGenerated", media_id=event["media_id"])
    record["envelope"] = derived_envelope(event, "OutputGenerated", "test", "text")
    record["kind"] = "TEXT"
    record["source_event_ids"] = [event["envelope"]["event_id"]]
    return [Outgoing("OutputGenerated", record, event["media_id"])]


class FlakyStage:
    """Fails a set number of times, then works: a transient outage."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"transient outage {self.calls}")
        return _text_output(event, ctx)


def _rejects_poison(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    if event["labels"].get("poison") == "yes":
        raise PermanentStageError("the image is truncated after 12 bytes")
    return _text_output(event, ctx)


def _runner(topics: TopicsUnderTest, *stages: tuple[str, Any]) -> StageRunner:
    settings = topics.settings.model_copy(
        update={
            "processors": topics.settings.processors.model_copy(
                update={"max_attempts": 3, "retry_backoff_s": 0.01, "recycle_after_items": 3}
            )
        }
    )
    bindings = [(StageBinding(name, "tests:unused", ("MediaUploaded",)), fn) for name, fn in stages]
    context = StageContext(settings=settings, blobs=BlobStore.from_settings(settings.minio))
    return StageRunner("test", settings, bindings, topics.codec, topics.publisher, context)


def _upload(topics: TopicsUnderTest, **labels: str) -> InboundMessage:
    record = sample_event(CATALOG, "MediaUploaded", labels=labels)
    topics.publish("MediaUploaded", record)
    deadline = time.monotonic() + 30
    ours: list[Message] = []
    while not ours and time.monotonic() < deadline:
        # Several uploads may sit on different partitions: pick this one by its key.
        messages = topics.read("MediaUploaded", 100, timeout=2.0)
        ours = [m for m in messages if m.key() == record["media_id"].encode()]
    [message] = ours
    return InboundMessage(
        message.topic() or "",
        message.partition() or 0,
        message.offset() or 0,
        message.key(),
        message.value(),
    )


@pytest.mark.timeout(120)
def test_transient_failures_are_retried_then_published(topics_under_test: TopicsUnderTest) -> None:
    flaky = FlakyStage(failures=2)
    runner = _runner(topics_under_test, ("flaky", flaky))
    report = runner.handle(_upload(topics_under_test))
    assert flaky.calls == 3
    assert report.dead_lettered == []
    [output] = topics_under_test.read_events("OutputGenerated", 1)
    assert output.record["kind"] == "TEXT"


@pytest.mark.timeout(120)
def test_exhausted_retries_dead_letter_as_retryable(topics_under_test: TopicsUnderTest) -> None:
    flaky = FlakyStage(failures=10)
    runner = _runner(topics_under_test, ("flaky", flaky))
    message = _upload(topics_under_test)
    report = runner.handle(message)
    assert flaky.calls == 3
    assert report.dead_lettered == ["flaky"]
    [dead] = topics_under_test.read_events("ProcessingFailed", 1)
    assert dead.record["retryable"] is True
    assert dead.record["attempts"] == 3
    assert dead.record["error_type"] == "ConnectionError"
    assert dead.record["failed_value"] == message.value


@pytest.mark.timeout(120)
def test_poison_event_is_dead_lettered_and_the_partition_moves_on(
    topics_under_test: TopicsUnderTest,
) -> None:
    runner = _runner(topics_under_test, ("picky", _rejects_poison))
    poison = _upload(topics_under_test, poison="yes")
    report = runner.handle(poison)
    assert report.dead_lettered == ["picky"]
    healthy = _upload(topics_under_test, poison="no")
    assert runner.handle(healthy).dead_lettered == []

    [dead] = topics_under_test.read_events("ProcessingFailed", 1)
    failed = dead.record
    assert failed["stage"] == "picky"
    assert failed["retryable"] is False
    assert failed["attempts"] == 1
    assert failed["error_message"] == "the image is truncated after 12 bytes"
    assert (failed["failed_topic"], failed["failed_offset"]) == (poison.topic, poison.offset)
    assert failed["failed_value"] == poison.value
    assert failed["failed_event_type"] == "MediaUploaded"
    [output] = topics_under_test.read_events("OutputGenerated", 1)
    assert healthy.key is not None
    assert output.record["media_id"] == healthy.key.decode()


@pytest.mark.timeout(120)
def test_undecodable_bytes_are_dead_lettered_with_their_bytes(
    topics_under_test: TopicsUnderTest,
) -> None:
    runner = _runner(topics_under_test, ("any", _text_output))
    garbage = InboundMessage(topics_under_test.topic("MediaUploaded"), 0, 7, b"k-1", b"\x00junk")
    report = runner.handle(garbage)
    assert report.event_type is None
    assert report.dead_lettered == ["decode"]
    [dead] = topics_under_test.read_events("ProcessingFailed", 1)
    assert dead.record["error_type"] == "MalformedEventError"
    assert dead.record["failed_value"] == b"\x00junk"
    assert dead.record["failed_key"] == b"k-1"
    assert dead.record["media_id"] == "k-1"


@pytest.mark.timeout(120)
def test_reprocessing_yields_the_same_event_ids(topics_under_test: TopicsUnderTest) -> None:
    runner = _runner(topics_under_test, ("text", _text_output))
    message = _upload(topics_under_test)
    first = runner.handle(message).published
    second = runner.handle(message).published
    assert [o.record["envelope"]["event_id"] for o in first] == [
        o.record["envelope"]["event_id"] for o in second
    ]
    assert runner.should_recycle() is None
    runner.handle(message)
    reason = runner.should_recycle()
    assert reason is not None
    assert "3 items" in reason


@pytest.mark.timeout(120)
def test_a_failure_to_publish_propagates_so_the_offset_is_not_committed(
    topics_under_test: TopicsUnderTest,
) -> None:
    message = _upload(topics_under_test)
    # Outputs go to a prefix whose topics do not exist (automatic creation is off).
    missing = topics_under_test.settings.kafka.model_copy(
        update={"topic_prefix": f"missing-{uuid.uuid4().hex[:8]}."}
    )
    producer = Producer(producer_config(missing, **{"message.timeout.ms": 3000}))
    publisher = EventPublisher(missing, topics_under_test.codec, producer)
    runner = _runner(topics_under_test, ("text", _text_output))
    runner.publisher = publisher
    with pytest.raises(DeliveryError, match=r"outputs"):
        runner.handle(message)
