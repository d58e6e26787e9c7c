"""Dead-letter browse and redrive against the real broker and MinIO: dead letters of real
failed messages (built with `failure_record` / `part_failure`, as the workers build them),
listed and filtered newest first, redriven once onto their original topic with the same
bytes, refused a second time, part failures and permanent failures skipped with the reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from processors.bindings import StageBinding, WorkerKind
from processors.deadletters import (
    REDRIVE_OF,
    REDRIVE_STAGE,
    CursorError,
    DeadLetterError,
    DeadLetterFilter,
    RedriveLedger,
    RedriveSelection,
)
from processors.runner import Routed, StageStatus, WorkerCore
from processors.stage import Outgoing, StageContext, derived_envelope
from stack.cli import app as cli_app
from stack.initialise import InitReport
from tests.factories import sample_event
from tests.integration.deadletter_lab import CATALOG, T0, DeadLetterLab, open_lab, read_topic
from visionlog.errors import OutageError, PermanentError
from visionlog.settings import KafkaSettings, Settings, get_settings
from visionlog.stream.deadletter import StageFailure, failure_record
from visionlog.stream.headers import EVENT_TYPE, TRACEPARENT, parse_traceparent
from visionlog.stream.messages import InboundMessage


@pytest.fixture
def lab(
    initialised: InitReport, isolated_kafka: KafkaSettings, settings: Settings
) -> Iterator[DeadLetterLab]:
    with open_lab(settings, isolated_kafka) as opened:
        yield opened


def test_list_filters_newest_first_and_pages(lab: DeadLetterLab) -> None:
    media = str(uuid.uuid4())
    outage, _ = lab.stage_failure(
        "ocr", OutageError("MinIO at 127.0.0.1:19000: connection refused")
    )
    corrupt, _ = lab.stage_failure("detection", PermanentError("truncated JPEG"), media)
    page = lab.page_failure(media)
    busy, _ = lab.stage_failure("ocr", RuntimeError("Infer Request is busy"))
    service = lab.service(with_publisher=False)

    everything = service.browse(DeadLetterFilter())
    assert [i.letter.event_id for i in everything.items] == [busy, page, corrupt, outage]
    assert (everything.total, everything.scanned, everything.next_cursor) == (4, 4, None)
    first = everything.items[-1].letter
    assert (first.stage, first.error_type, first.retryable, first.attempts) == (
        "ocr",
        "OutageError",
        True,
        3,
    )
    assert first.failed_topic == lab.topic("media") and first.failed_event_type == "MediaUploaded"
    assert first.failed_value is not None and first.traceback and "OutageError" in first.traceback
    assert all(item.redrive is None for item in everything.items)

    def ids(**criteria: Any) -> list[str]:
        return [i.letter.event_id for i in service.browse(DeadLetterFilter(**criteria)).items]

    assert ids(stages=frozenset({"ocr"})) == [busy, outage]
    assert ids(media_ids=frozenset({media})) == [page, corrupt]
    assert ids(retryable=False) == [corrupt]
    assert ids(retryable=True) == [busy, page, outage]
    assert ids(error_types=frozenset({"RuntimeError"})) == [busy]
    assert ids(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)) == [page, corrupt]
    assert ids(tenants=frozenset({"another-tenant"})) == []
    # Kafka's offsets for a time to come: nothing to read at all.
    later = service.browse(DeadLetterFilter(since=datetime.now(UTC) + timedelta(hours=1)))
    assert (later.items, later.scanned) == ([], 0)

    first_page = service.browse(DeadLetterFilter(), limit=3)
    assert [i.letter.event_id for i in first_page.items] == [busy, page, corrupt]
    assert first_page.next_cursor is not None
    rest = service.browse(DeadLetterFilter(), limit=3, cursor=first_page.next_cursor)
    assert [i.letter.event_id for i in rest.items] == [outage]
    assert rest.next_cursor is None and rest.total == 4
    with pytest.raises(CursorError):
        service.browse(DeadLetterFilter(), cursor="not-a-cursor")


def test_redrive_republishes_the_bytes_once(lab: DeadLetterLab) -> None:
    event_id, failed = lab.stage_failure("ocr", OutageError("MinIO did not answer for 25 s"))
    service = lab.service()

    report = service.redrive(RedriveSelection(event_ids=(event_id,)), "tests")
    assert report.skipped == []
    (done,) = report.redriven
    assert done.target is not None and done.target.topic == failed.topic

    # On its original topic: the same key and bytes, with the redrive's headers.
    again = [
        InboundMessage.from_kafka(m)
        for m in read_topic(lab.kafka, failed.topic, 2)
        if m.key() == failed.key and m.offset() != failed.offset
    ]
    (copy,) = again
    assert copy.value == failed.value and copy.partition == done.target.partition
    assert copy.offset == done.target.offset
    assert copy.header(REDRIVE_OF) == event_id
    assert copy.header(REDRIVE_STAGE) == "ocr"
    assert copy.header(EVENT_TYPE) == "MediaUploaded"
    decoded = lab.codec.decode(copy.value)
    trace = parse_traceparent(copy.header(TRACEPARENT))
    assert trace is not None and trace[0] == decoded.record["envelope"]["trace_id"]

    # Recorded durably, shown by the listing, refused a second time, sent again when forced.
    (listed,) = service.browse(DeadLetterFilter(event_ids=frozenset({event_id}))).items
    assert listed.redrive is not None and listed.redrive.state == "redriven"
    assert listed.redrive.requested_by == "tests" and listed.redrive.target == done.target
    second = service.redrive(RedriveSelection(event_ids=(event_id,)), "someone else")
    assert second.redriven == []
    (refused,) = second.skipped
    assert refused.reason == "already_redriven" and "by tests" in refused.detail
    forced = service.redrive(RedriveSelection(event_ids=(event_id,), force=True), "tests")
    assert len(forced.redriven) == 1
    record = RedriveLedger(lab.blobs).get(event_id)
    assert record is not None and record.count == 2 and record.requested_by == "tests"


def test_part_failures_permanent_and_unknown_ones_are_skipped_with_the_reason(
    lab: DeadLetterLab,
) -> None:
    page = lab.page_failure()
    permanent, _ = lab.stage_failure("detection", PermanentError("unsupported pixel format"))
    source, message = lab.uploaded()
    gone_topic = f"{lab.kafka.topic_prefix}gone"
    on_gone_topic = lab.dead_letter(
        failure_record(
            worker="vision",
            failure=StageFailure.of("ocr", OutageError("MinIO did not answer")),
            message=replace(message, topic=gone_topic),
            source=source,
            event_type="MediaUploaded",
        )
    )
    missing = str(uuid.uuid4())
    before = lab.end_offsets("media")
    service = lab.service()

    chosen = (page, permanent, on_gone_topic, missing)
    report = service.redrive(RedriveSelection(event_ids=chosen), "tests")
    assert report.redriven == []
    reasons = {item.event_id: item for item in report.skipped}
    assert reasons[missing].reason == "not_found"
    assert reasons[page].reason == "part_failure"
    assert reasons[page].detail.startswith(
        "a part failure of stage render (page-0003: page-0003 would not render: MinIO did not "
        "answer): the stage processed its input MediaUploaded "
    )
    assert "so there is no failed message to re-publish" in reasons[page].detail
    assert "stage render cannot be reprocessed; upload the item again" in reasons[page].detail
    assert reasons[permanent].reason == "permanent"
    assert "include-permanent" in reasons[permanent].detail
    assert reasons[on_gone_topic].reason == "topic_missing"
    assert gone_topic in reasons[on_gone_topic].detail
    assert lab.end_offsets("media") == before
    assert all(RedriveLedger(lab.blobs).get(event_id) is None for event_id in chosen)

    fixed = service.redrive(
        RedriveSelection(event_ids=(permanent,), include_permanent=True), "tests"
    )
    assert [item.event_id for item in fixed.redriven] == [permanent]


def test_dry_run_and_all_retryable(lab: DeadLetterLab) -> None:
    outage, _ = lab.stage_failure("ocr", OutageError("MinIO did not answer"))
    lab.stage_failure("detection", PermanentError("truncated JPEG"))
    page = lab.page_failure()
    before = lab.end_offsets("media")
    service = lab.service()

    dry = service.redrive(RedriveSelection(all_retryable=True), "tests", dry_run=True)
    assert dry.dry_run and [item.event_id for item in dry.redriven] == [outage]
    assert dry.redriven[0].target is None
    assert [(item.event_id, item.reason) for item in dry.skipped] == [(page, "part_failure")]
    assert lab.end_offsets("media") == before
    assert RedriveLedger(lab.blobs).get(outage) is None

    done = service.redrive(RedriveSelection(all_retryable=True), "tests")
    assert [item.event_id for item in done.redriven] == [outage]
    assert lab.end_offsets("media") != before

    with pytest.raises(DeadLetterError, match="choose the dead letters"):
        service.redrive(RedriveSelection(), "tests")
    with pytest.raises(DeadLetterError, match="retryable dead letters only"):
        service.redrive(RedriveSelection(all_retryable=True, include_permanent=True), "tests")


def test_a_dead_letter_is_claimed_by_one_redrive_only(lab: DeadLetterLab) -> None:
    event_id, _ = lab.stage_failure("ocr", OutageError("MinIO did not answer"))
    (listed,) = lab.service(False).browse(DeadLetterFilter(event_ids=frozenset({event_id}))).items
    ledger = RedriveLedger(lab.blobs)
    now = datetime.now(UTC)
    first = ledger.claim(listed.letter, "one", None, now)
    assert first is not None and first.state == "pending"
    assert ledger.claim(listed.letter, "two", None, now) is None
    # Confirmed with the claim's ETag; a stale ETag cannot take it over.
    ledger.confirm(first, listed.letter.position, now)
    assert ledger.claim(listed.letter, "three", first, now) is None
    stored = ledger.get(event_id)
    assert stored is not None and stored.state == "redriven" and stored.requested_by == "one"


@pytest.fixture
def cli_kafka(lab: DeadLetterLab, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI reads settings from the environment: point it at this test's topics."""
    monkeypatch.setenv("VISIONLOG_KAFKA__TOPIC_PREFIX", lab.kafka.topic_prefix)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_kafka")
def test_cli_lists_shows_and_redrives(lab: DeadLetterLab) -> None:
    outage, _ = lab.stage_failure("ocr", OutageError("MinIO did not answer for 25 s"))
    page = lab.page_failure()
    runner = CliRunner()

    listed = runner.invoke(cli_app, ["deadletters", "list", "--stage", "ocr"])
    assert listed.exit_code == 0, listed.output
    assert outage in listed.output and page not in listed.output
    assert "1 shown of 1 matching" in listed.output

    shown = runner.invoke(cli_app, ["deadletters", "show", outage])
    assert shown.exit_code == 0, shown.output
    assert "OutageError: MinIO did not answer for 25 s" in shown.output
    assert "bytes" in shown.output and "Traceback" in shown.output

    dry = runner.invoke(cli_app, ["deadletters", "redrive", "--all-retryable", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would redrive: 1" in dry.output and "part_failure" in dry.output
    done = runner.invoke(cli_app, ["deadletters", "redrive", outage, "--requested-by", "ops"])
    assert done.exit_code == 0, done.output
    assert "redriven: 1" in done.output
    again = runner.invoke(cli_app, ["deadletters", "redrive", outage])
    assert again.exit_code == 0, again.output
    assert "already_redriven" in again.output
    record = RedriveLedger(lab.blobs).get(outage)
    assert record is not None and record.requested_by == "ops"


class StoreBackedStage:
    """A stage whose store is down until `back` is set, like MinIO in the fault test."""

    def __init__(self) -> None:
        self.back = False
        self.calls = 0

    def __call__(self, event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
        self.calls += 1
        if not self.back:
            raise OutageError("MinIO at 127.0.0.1:19000: connection refused")
        record = sample_event(CATALOG, "OutputGenerated", media_id=event["media_id"])
        record["envelope"] = derived_envelope(event, "OutputGenerated", "store", "text")
        record["kind"] = "TEXT"
        record["source_event_ids"] = [event["envelope"]["event_id"]]
        return [Outgoing("OutputGenerated", record, event["media_id"])]


def test_a_redriven_message_is_processed_again_by_the_worker_core(lab: DeadLetterLab) -> None:
    """The whole loop with the workers' own core: an outage outlasts the wait and the
    message is dead-lettered; after a redrive the copy routes to the same stage and, with the
    store back, yields the result a first run would have (same deterministic event id)."""
    settings = get_settings().model_copy(
        update={
            "kafka": lab.kafka,
            "processors": get_settings().processors.model_copy(
                update={
                    "max_attempts": 2,
                    "retry_backoff_s": 0.01,
                    "retry_max_backoff_s": 0.05,
                    "outage_deadline_s": 0.3,
                }
            ),
        }
    )
    stage = StoreBackedStage()
    kind = WorkerKind("test", (StageBinding("store", "tests:unused", ("MediaUploaded",)),))
    context = StageContext(settings=settings, blobs=lab.blobs)
    core = WorkerCore(kind, settings, lab.codec, context, stages={"store": stage})
    _, message = lab.uploaded()

    routed = core.route(message)
    assert isinstance(routed, Routed)
    (failed,) = core.handle(routed)
    (run,) = failed.runs
    assert run.status is StageStatus.FAILED
    dead = [item for item in failed.outputs if item.topic == lab.topic("deadletter")]
    assert len(dead) == 1
    for item in dead:
        lab.publisher.publish_bytes(item.topic, item.key, item.value, item.headers)
    lab.publisher.flush()
    (listed,) = lab.service(False).browse(DeadLetterFilter(stages=frozenset({"store"}))).items
    lab.ids.append(listed.letter.event_id)
    assert listed.letter.retryable and listed.letter.error_type == "OutageError"

    stage.back = True
    report = lab.service().redrive(RedriveSelection(stages=frozenset({"store"})), "tests")
    assert [item.event_id for item in report.redriven] == [listed.letter.event_id]
    copies = [
        InboundMessage.from_kafka(m)
        for m in read_topic(lab.kafka, message.topic, 2)
        if m.offset() != message.offset
    ]
    (copy,) = copies
    again = core.route(copy)
    assert isinstance(again, Routed), again
    ((done,),) = (handled.runs for handled in core.handle(again))
    assert done.status is StageStatus.DONE
    (output,) = done.outputs
    first_run = stage(routed.record, context)[0]
    assert output.record["envelope"]["event_id"] == first_run.record["envelope"]["event_id"]
