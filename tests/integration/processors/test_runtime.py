"""The worker core against the real broker and blob store: retries, outages, dead letters,
poison and misplaced events, deterministic ids, and the work report of each input."""

from __future__ import annotations

import errno
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Message

from processors.bindings import StageBinding, WorkerKind
from processors.runner import Handled, Routed, StageStatus, Undecodable, WorkerCore
from processors.stage import Outgoing, PermanentStageError, StageContext, derived_envelope
from tests.factories import sample_event
from tests.integration.processors.conftest import TopicsUnderTest
from visionlog.blobstore import BlobStore
from visionlog.schemas import get_catalog
from visionlog.stream.messages import InboundMessage

CATALOG = get_catalog()


def _text_output(event: dict[str, Any], _ctx: StageContext) -> list[Outgoing]:
    record = sample_event(CATALOG, "OutputGenerated", media_id=event["media_id"])
    record["envelope"] = derived_envelope(event, "OutputGenerated", "test", "text")
    record["kind"] = "TEXT"
    record["source_event_ids"] = [event["envelope"]["event_id"]]
    return [Outgoing("OutputGenerated", record, event["media_id"])]


class FlakyStage:
    """Fails a set number of times with `error`, then works."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return _text_output(event, ctx)


def _rejects_poison(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    if event["labels"].get("poison") == "yes":
        raise PermanentStageError("the image is truncated after 12 bytes")
    return _text_output(event, ctx)


def _core(topics: TopicsUnderTest, **stages: Any) -> WorkerCore:
    settings = topics.settings.model_copy(
        update={
            "processors": topics.settings.processors.model_copy(
                update={
                    "max_attempts": 3,
                    "retry_backoff_s": 0.01,
                    "retry_max_backoff_s": 0.05,
                    "outage_deadline_s": 2.0,
                }
            )
        }
    )
    bindings = tuple(StageBinding(name, "tests:unused", ("MediaUploaded",)) for name in stages)
    context = StageContext(settings=settings, blobs=BlobStore.from_settings(settings.minio))
    return WorkerCore(WorkerKind("test", bindings), settings, topics.codec, context, stages=stages)


def _upload(topics: TopicsUnderTest, **labels: str) -> InboundMessage:
    record = sample_event(CATALOG, "MediaUploaded", labels=labels, media_kind="IMAGE")
    topics.publish("MediaUploaded", record)
    deadline = time.monotonic() + 30
    ours: list[Message] = []
    while not ours and time.monotonic() < deadline:
        messages = topics.read("MediaUploaded", 100, timeout=2.0)
        ours = [m for m in messages if m.key() == record["media_id"].encode()]
    [message] = ours
    return InboundMessage.from_kafka(message)


def _handle(core: WorkerCore, message: InboundMessage) -> Handled:
    """The core's handling of a message for a worker of one stage."""
    routed = core.route(message)
    assert isinstance(routed, Routed), routed
    (handled,) = core.handle(routed)
    return handled


def _publish(topics: TopicsUnderTest, handled: Handled) -> None:
    for item in [handled.report, *handled.outputs]:
        assert item is not None
        topics.publisher.publish_bytes(item.topic, item.key, item.value, item.headers)
    topics.publisher.flush()


@pytest.mark.timeout(120)
def test_transient_failures_are_retried_then_published(topics_under_test: TopicsUnderTest) -> None:
    flaky = FlakyStage(2, RuntimeError("a race"))
    core = _core(topics_under_test, flaky=flaky)
    handled = _handle(core, _upload(topics_under_test))
    assert flaky.calls == 3
    [run] = handled.runs
    assert (run.status, run.attempts) == (StageStatus.DONE, 3)
    _publish(topics_under_test, handled)
    [output] = topics_under_test.read_events("OutputGenerated", 1)
    assert output.record["kind"] == "TEXT"
    [report] = topics_under_test.read_events("EventProcessed", 1)
    [outcome] = report.record["outcomes"]
    assert outcome["attempts"] == 3
    assert [o["event_id"] for o in outcome["outputs"]] == [output.record["envelope"]["event_id"]]


@pytest.mark.timeout(120)
def test_an_outage_is_waited_out_longer_than_the_transient_attempts(
    topics_under_test: TopicsUnderTest,
) -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")
    flaky = FlakyStage(8, refused)
    core = _core(topics_under_test, store=flaky)
    [run] = _handle(core, _upload(topics_under_test)).runs
    assert run.status is StageStatus.DONE
    assert flaky.calls == 9


@pytest.mark.timeout(120)
def test_exhausted_retries_dead_letter_as_retryable(topics_under_test: TopicsUnderTest) -> None:
    flaky = FlakyStage(100, RuntimeError("still broken"))
    core = _core(topics_under_test, flaky=flaky)
    message = _upload(topics_under_test)
    handled = _handle(core, message)
    _publish(topics_under_test, handled)
    assert flaky.calls == 3
    [dead] = topics_under_test.read_events("ProcessingFailed", 1)
    assert dead.record["retryable"] is True
    assert dead.record["attempts"] == 3
    assert dead.record["error_type"] == "RuntimeError"
    assert dead.record["failed_value"] == message.value
    [report] = topics_under_test.read_events("EventProcessed", 1)
    [outcome] = report.record["outcomes"]
    assert outcome["status"] == "FAILED"
    assert outcome["reason"] == "still broken"
    assert outcome["outputs"][0]["event_type"] == "ProcessingFailed"


@pytest.mark.timeout(120)
def test_poison_event_is_dead_lettered_and_the_partition_moves_on(
    topics_under_test: TopicsUnderTest,
) -> None:
    core = _core(topics_under_test, picky=_rejects_poison)
    poison = _upload(topics_under_test, poison="yes")
    _publish(topics_under_test, _handle(core, poison))
    healthy = _upload(topics_under_test, poison="no")
    _publish(topics_under_test, _handle(core, healthy))

    [dead] = topics_under_test.read_events("ProcessingFailed", 1)
    failed = dead.record
    assert failed["stage"] == "picky"
    assert failed["retryable"] is False
    assert failed["attempts"] == 1
    assert failed["error_message"] == "the image is truncated after 12 bytes"
    assert (failed["failed_topic"], failed["failed_offset"]) == (poison.topic, poison.offset)
    assert failed["failed_value"] == poison.value
    [output] = topics_under_test.read_events("OutputGenerated", 1)
    assert healthy.key is not None
    assert output.record["media_id"] == healthy.key.decode()


@pytest.mark.timeout(120)
def test_undecodable_bytes_are_dead_lettered_with_their_bytes(
    topics_under_test: TopicsUnderTest,
) -> None:
    core = _core(topics_under_test, any=_text_output)
    garbage = InboundMessage(topics_under_test.topic("MediaUploaded"), 0, 7, b"k-1", b"\x00junk")
    routed = core.route(garbage)
    assert isinstance(routed, Undecodable)
    dead = core.undecodable(routed)
    topics_under_test.publisher.publish_bytes(dead.topic, dead.key, dead.value, dead.headers)
    topics_under_test.publisher.flush()
    [record] = topics_under_test.read_events("ProcessingFailed", 1)
    assert record.record["error_type"] == "MalformedEventError"
    assert record.record["failed_value"] == b"\x00junk"
    assert record.record["failed_key"] == b"k-1"
    assert record.record["media_id"] == "k-1"


@pytest.mark.timeout(120)
def test_a_valid_event_on_the_wrong_topic_is_dead_lettered(
    topics_under_test: TopicsUnderTest,
) -> None:
    core = _core(topics_under_test, any=_text_output)
    text = sample_event(CATALOG, "TextRecognized")
    pages = topics_under_test.topic("PageRendered")
    value = topics_under_test.codec.encode(pages, "TextRecognized", text)
    routed = core.route(InboundMessage(pages, 0, 3, text["media_id"].encode(), value))
    assert isinstance(routed, Undecodable)
    assert routed.failure.retryable is False
    assert "TextRecognized does not belong on topic" in routed.failure.message


@pytest.mark.timeout(120)
def test_reprocessing_yields_the_same_event_ids(topics_under_test: TopicsUnderTest) -> None:
    core = _core(topics_under_test, text=_text_output)
    message = _upload(topics_under_test)
    first = _handle(core, message)
    second = _handle(core, message)
    assert first.report is not None and second.report is not None
    assert first.report.event_id == second.report.event_id
    assert [o.event_id for o in first.outputs] == [o.event_id for o in second.outputs]


@pytest.mark.timeout(120)
def test_an_event_pointing_at_a_missing_blob_is_not_answered_from_memory(
    topics_under_test: TopicsUnderTest, ctx: StageContext
) -> None:
    """Two blobs with the same bytes: the second is deleted; reading it must fail although
    the decoded image of the first is in the cache."""
    import cv2
    import numpy as np

    ok, png = cv2.imencode(".png", np.full((8, 8, 3), 200, np.uint8))
    assert ok
    key = f"tests/{uuid.uuid4().hex}"
    first = ctx.blobs.put_bytes("media-processed", f"{key}-a.png", png.tobytes(), "image/png")
    second = ctx.blobs.put_bytes("media-processed", f"{key}-b.png", png.tobytes(), "image/png")
    ctx.blobs.delete(second["bucket"], second["key"])
    context = StageContext(settings=ctx.settings, blobs=ctx.blobs)
    assert context.load_image(first).shape == (8, 8, 3)
    from visionlog.blobstore import BlobNotFoundError

    with pytest.raises(BlobNotFoundError):
        context.load_image(second)


@pytest.mark.timeout(120)
def test_a_redriven_message_reruns_only_the_stage_that_failed(
    topics_under_test: TopicsUnderTest,
) -> None:
    ran: list[str] = []

    def stage(name: str) -> Any:
        def run(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
            ran.append(name)
            return _text_output(event, ctx)

        return run

    core = _core(topics_under_test, first=stage("first"), second=stage("second"))
    message = _upload(topics_under_test)
    redriven = InboundMessage(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        (("redrive-of", b"some-dead-letter"), ("redrive-stage", b"second")),
    )
    routed = core.route(redriven)
    assert isinstance(routed, Routed)
    assert [b.name for b in routed.bindings] == ["second"]
    [handled] = core.handle(routed)
    assert ran == ["second"]
    assert handled.report is not None
