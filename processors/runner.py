"""What a worker does with one message, free of the stream framework.

`WorkerCore` decodes and routes an inbound message, runs one stage on it (with the retry
policy), reworks stage outputs through stateful transforms (tracking), and builds the work
report and the dead letters. The faust worker (`processors.worker`) schedules these steps
concurrently and publishes; the reprocess worker and tests call `handle` to run them in
order on one thread.

Failure policy, per stage (vocabulary in `visionlog.errors`):
- permanent errors and contract violations of a stage's own output are dead-lettered at
  once;
- outages of a store are waited out (bounded), other errors retried a few times, then
  dead-lettered as retryable (`visionlog deadletters redrive` sends them again);
- a message that cannot be decoded, or whose event type does not belong on its topic, is
  dead-lettered with its raw bytes;
- a live frame whose deadline passes while a store is down is skipped as stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from processors.bindings import StageBinding, WorkerKind, is_live_input
from processors.stage import PROCESSORS_VERSION, Outgoing, Stage, StageContext, item_label
from visionlog.codec import AvroCodec, EventEncodingError
from visionlog.envelope import envelope_caused_by
from visionlog.errors import ContractError, PermanentError
from visionlog.observability.metrics import Outcome, ProcessorMetrics
from visionlog.observability.tracing import current_trace
from visionlog.profiles import stage_wanted
from visionlog.settings import Settings
from visionlog.stream.deadletter import StageFailure, failure_record
from visionlog.stream.headers import EVENT_TYPE, REDRIVE_STAGE, event_headers
from visionlog.stream.messages import Headers, InboundMessage
from visionlog.stream.retry import Attempted, RetryPolicy, call_with_retries
from visionlog.topics import CatalogueError, topic_for_event

log = logging.getLogger(__name__)
# Why a stage did not run on an input: the input's processing profile does not ask for it.
NOT_IN_PROFILE = "not in profile"


class StageStatus(StrEnum):
    DONE = "DONE"
    NOT_APPLICABLE = "NOT_APPLICABLE"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


_OUTCOMES: dict[StageStatus, Outcome] = {
    StageStatus.DONE: "done",
    StageStatus.NOT_APPLICABLE: "not_applicable",
    StageStatus.SKIPPED: "skipped",
    StageStatus.FAILED: "failed",
}


class WrongTopicError(ContractError):
    """A valid event of a type that does not belong on the topic it was read from."""


@dataclass
class Routed:
    """A decoded message this worker takes, with the stages that take it."""

    message: InboundMessage
    event_type: str
    record: dict[str, Any]
    live: bool
    bindings: list[StageBinding]

    @property
    def media_id(self) -> str:
        media = self.record.get("media_id")
        return str(media) if media else (self.message.key_text or "")

    @property
    def event_id(self) -> str:
        return str(self.record["envelope"]["event_id"])

    @property
    def trace_id(self) -> str | None:
        trace = self.record["envelope"].get("trace_id")
        return str(trace) if trace else None

    @property
    def deadline_bound(self) -> bool:
        """A live camera frame: analysed against its staleness bound, newest frame first."""
        return self.live and self.event_type == "FrameCaptured"

    def captured_ms(self) -> float | None:
        """Capture time of a live frame in epoch milliseconds, None for other inputs."""
        captured = self.record.get("captured_at")
        if self.deadline_bound and isinstance(captured, datetime):
            return captured.timestamp() * 1000.0
        return None

    def input_ms(self) -> float:
        """When the input came to be: capture for a frame, otherwise publication."""
        captured = self.captured_ms()
        if captured is not None:
            return captured
        if self.message.timestamp_ms:
            return float(self.message.timestamp_ms)
        occurred = self.record["envelope"].get("occurred_at")
        return (
            occurred.timestamp() * 1000.0 if isinstance(occurred, datetime) else time.time() * 1000
        )


@dataclass
class Ignored:
    """A message this worker does not take (another kind's event type, or a live frame of a
    camera whose profile asks nothing of this worker)."""

    message: InboundMessage
    event_type: str | None


@dataclass
class Undecodable:
    message: InboundMessage
    failure: StageFailure
    event_type: str | None = None
    record: dict[str, Any] | None = None


@dataclass
class StageRun:
    """One stage's outcome on one input."""

    stage: str
    status: StageStatus
    outputs: list[Outgoing] = field(default_factory=list)
    failure: StageFailure | None = None
    reason: str | None = None
    attempts: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Encoded:
    """An event ready for the producer: topic, key, Avro value and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers
    event_type: str
    event_id: str


@dataclass
class Handled:
    """Everything to publish for one input, in order: the report first, then the rest."""

    report: Encoded | None
    outputs: list[Encoded]
    runs: list[StageRun]


def input_item_label(record: Mapping[str, Any], event_type: str) -> str | None:
    if event_type == "PageRendered":
        return f"page-{int(record['page_number']):04d}"
    if event_type == "FrameCaptured":
        return f"frame-{int(record['frame_index']):08d}"
    if event_type == "MediaUploaded":
        return "original" if record.get("media_kind") == "IMAGE" else None
    item = record.get("item")
    if isinstance(item, Mapping):
        return item_label(item)
    return None


def output_item_label(outgoing: Outgoing, input_label: str | None) -> str | None:
    """The image a derived event is about: its own item, else the input's."""
    if outgoing.item_label is not None:
        return outgoing.item_label
    found = input_item_label(outgoing.record, outgoing.event_type)
    return found if found is not None else input_label


def _models(outputs: Sequence[Outgoing]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for outgoing in outputs:
        refs = list(outgoing.record.get("models") or [])
        single = outgoing.record.get("model")
        if isinstance(single, Mapping):
            refs.append(single)
        for ref in refs:
            if isinstance(ref, Mapping) and ref.get("name"):
                seen[(str(ref["name"]), str(ref.get("version")))] = dict(ref)
    return list(seen.values())


class WorkerCore:
    """The framework-free steps of one worker kind."""

    def __init__(
        self,
        kind: WorkerKind,
        settings: Settings,
        codec: AvroCodec,
        context: StageContext,
        *,
        worker_name: str | None = None,
        stages: Mapping[str, Stage] | None = None,
        metrics: ProcessorMetrics | None = None,
    ) -> None:
        self.kind = kind
        self.worker = worker_name or kind.name
        self.metrics = metrics or ProcessorMetrics(self.worker)
        self.settings = settings
        self.codec = codec
        self.context = context
        tuning = settings.processors
        self.policy = RetryPolicy(
            max_attempts=max(1, tuning.max_attempts),
            backoff_s=tuning.retry_backoff_s,
            max_backoff_s=tuning.retry_max_backoff_s,
            outage_deadline_s=tuning.outage_deadline_s,
        )
        self.prefix = settings.kafka.topic_prefix
        loaded = dict(stages or {})
        for binding in (*kind.stages, *kind.transforms):
            if binding.name not in loaded:
                loaded[binding.name] = binding.load()
        self.stages: dict[str, Stage] = loaded

    # ---------------------------------------------------------------- routing

    def _topic_base(self, topic: str) -> str:
        return topic[len(self.prefix) :] if self.prefix and topic.startswith(self.prefix) else topic

    def route(self, message: InboundMessage) -> Routed | Ignored | Undecodable:
        hinted = message.header(EVENT_TYPE)
        if hinted is not None and not any(self.kind.takes(hinted, live) for live in (False, True)):
            # The type header lets a worker pass over other kinds' events undecoded.
            return Ignored(message, hinted)
        try:
            decoded = self.codec.decode(message.value)
        except PermanentError as error:
            return Undecodable(message, StageFailure.of("decode", error))
        event_type = decoded.event_type
        try:
            expected = topic_for_event(event_type).name
        except CatalogueError as error:
            return Undecodable(
                message, StageFailure.of("decode", WrongTopicError(str(error))), event_type
            )
        contract = self.codec.catalog.event(event_type).fullname
        if decoded.fullname != contract:
            # Same name, another schema: its record need not look like ours.
            foreign = ContractError(
                f"written with schema {decoded.fullname}, not the contract {contract}"
            )
            return Undecodable(message, StageFailure.of("decode", foreign), event_type)
        if expected != self._topic_base(message.topic):
            misplaced = WrongTopicError(
                f"{event_type} does not belong on topic {message.topic}; "
                f"its topic is {self.prefix}{expected}"
            )
            return Undecodable(
                message, StageFailure.of("decode", misplaced), event_type, decoded.record
            )
        live = is_live_input(decoded.record)
        bindings = [b for b in self.kind.stages if b.takes(event_type, live)]
        redriven = message.header(REDRIVE_STAGE)
        if redriven and redriven != "decode":
            # A redrive is for the stage that failed (and the stateful steps after it).
            bindings = [b for b in bindings if redriven in (b.name, *b.then)]
        if not bindings:
            return Ignored(message, event_type)
        if live and not any(stage_wanted(b.name, decoded.record) for b in bindings):
            return Ignored(message, event_type)
        return Routed(message, event_type, decoded.record, live, bindings)

    # ---------------------------------------------------------------- stages

    def run_stage(
        self, binding: StageBinding, routed: Routed, deadline: float | None = None
    ) -> StageRun:
        """Run one stage with the retry policy; `deadline` (monotonic) bounds live frames."""
        if not stage_wanted(binding.name, routed.record):
            return StageRun(binding.name, StageStatus.NOT_APPLICABLE, reason=NOT_IN_PROFILE)
        stage = self.stages[binding.name]

        def retrying(attempt: int, error: BaseException, delay: float) -> None:
            log.info(
                "%s: stage %s attempt %d on %s failed (%s: %s); retrying in %.2fs",
                self.worker,
                binding.name,
                attempt,
                routed.event_id,
                type(error).__name__,
                error,
                delay,
            )

        attempted: Attempted[list[Outgoing]] = call_with_retries(
            lambda: stage(routed.record, self.context),
            self.policy,
            deadline=deadline,
            on_retry=retrying,
        )
        if attempted.error is None:
            outputs = list(attempted.value or [])
            status = StageStatus.DONE if outputs else StageStatus.NOT_APPLICABLE
            return StageRun(
                binding.name,
                status,
                outputs,
                attempts=attempted.attempts,
                seconds=attempted.seconds,
            )
        if attempted.deadline_passed and routed.deadline_bound:
            return StageRun(
                binding.name,
                StageStatus.SKIPPED,
                reason=f"stale: deadline passed while retrying ({attempted.error})",
                attempts=attempted.attempts,
                seconds=attempted.seconds,
            )
        failure = StageFailure.of(binding.name, attempted.error, attempted.attempts)
        return StageRun(
            binding.name,
            StageStatus.FAILED,
            failure=failure,
            reason=failure.message,
            attempts=attempted.attempts,
            seconds=attempted.seconds,
        )

    def settled_runs(self, routed: Routed, skip: str | None = None) -> dict[str, StageRun]:
        """The stages whose outcome is known without running them: every stage of a skipped
        frame, and the stages the input's profile does not ask for."""
        if skip is not None:
            return {
                b.name: StageRun(b.name, StageStatus.SKIPPED, reason=skip) for b in routed.bindings
            }
        return {
            b.name: StageRun(b.name, StageStatus.NOT_APPLICABLE, reason=NOT_IN_PROFILE)
            for b in routed.bindings
            if not stage_wanted(b.name, routed.record)
        }

    def transform(self, name: str, outputs: list[Outgoing]) -> tuple[list[Outgoing], StageRun]:
        """Rework outputs through a stateful transform (in key order, on one thread).

        Returns the reworked outputs of the stage (same event types, e.g. detections with
        their track ids) and the transform's own run, holding the events it added."""
        stage = self.stages[name]
        started = time.monotonic()
        reworked: list[Outgoing] = []
        try:
            for outgoing in outputs:
                if outgoing.event_type in self.kind.transform(name).consumes:
                    reworked.extend(stage(outgoing.record, self.context))
                else:
                    reworked.append(outgoing)
        except Exception as error:
            failure = StageFailure.of(name, error)
            log.warning("%s: transform %s failed: %s", self.worker, name, error, exc_info=error)
            return outputs, StageRun(
                name,
                StageStatus.FAILED,
                failure=failure,
                reason=failure.message,
                attempts=1,
                seconds=time.monotonic() - started,
            )
        kept = {x.event_type for x in outputs}
        added = [o for o in reworked if o.event_type not in kept]
        status = StageStatus.DONE if added else StageStatus.NOT_APPLICABLE
        return [o for o in reworked if o.event_type in kept], StageRun(
            name, status, added, attempts=1, seconds=time.monotonic() - started
        )

    def finish(self, routed: Routed, runs: list[StageRun]) -> list[StageRun]:
        """Apply the stateful transforms of each stage that names some (key order)."""
        finished: list[StageRun] = []
        for run in runs:
            finished.append(run)
            binding = next((b for b in routed.bindings if b.name == run.stage), None)
            if binding is None or run.status is not StageStatus.DONE:
                continue
            for name in binding.then:
                run.outputs, transformed = self.transform(name, run.outputs)
                finished.append(transformed)
        return finished

    # ---------------------------------------------------------------- publishing

    def dead_letter(self, routed: Routed | Undecodable, failure: StageFailure) -> Outgoing:
        message = routed.message
        record = failure_record(
            worker=self.worker,
            failure=failure,
            message=message,
            source=routed.record,
            event_type=routed.event_type,
            version=PROCESSORS_VERSION,
        )
        return Outgoing("ProcessingFailed", dict(record), str(record["envelope"]["correlation_id"]))

    def report(
        self,
        routed: Routed,
        runs: Sequence[StageRun],
        *,
        queue_ms: float,
        run_id: str | None = None,
        dead_letters: Mapping[str, Outgoing] | None = None,
    ) -> Outgoing:
        """The EventProcessed work report of one stage (and the stateful steps after it) on
        one input; published before the outputs it names."""
        input_label = input_item_label(routed.record, routed.event_type)
        outcomes = []
        for run in runs:
            published = list(run.outputs)
            if dead_letters and run.stage in dead_letters:
                published.append(dead_letters[run.stage])
            outcomes.append(
                {
                    "stage": run.stage,
                    "status": run.status.value,
                    "reason": run.reason,
                    "attempts": max(run.attempts, 1)
                    if run.status is not StageStatus.NOT_APPLICABLE
                    else max(run.attempts, 0),
                    "duration_ms": run.seconds * 1000.0,
                    "outputs": [
                        {
                            "event_id": str(o.record["envelope"]["event_id"]),
                            "event_type": o.event_type,
                            "item_label": output_item_label(o, input_label),
                        }
                        for o in published
                    ],
                    "models": _models(run.outputs),
                }
            )
        record = {
            "envelope": envelope_caused_by(
                routed.record,
                "EventProcessed",
                f"processors.{self.worker}/{PROCESSORS_VERSION}",
                self.worker,
                runs[0].stage if runs else "",
                run_id or "",
            ),
            "media_id": routed.media_id,
            "worker": self.worker,
            "run_id": run_id,
            "input_event_id": routed.event_id,
            "input_event_type": routed.event_type,
            "input_topic": routed.message.topic,
            "input_partition": routed.message.partition,
            "input_offset": routed.message.offset,
            "item_label": input_label,
            "camera_id": routed.record.get("camera_id")
            or (routed.record.get("item") or {}).get("camera_id"),
            "queue_ms": float(max(0.0, queue_ms)),
            "outcomes": outcomes,
        }
        return Outgoing("EventProcessed", record, routed.media_id)

    def encode(self, outgoing: Outgoing, trace_id: str | None) -> Encoded:
        spec = topic_for_event(outgoing.event_type)
        topic = f"{self.prefix}{spec.name}"
        value = self.codec.encode(topic, outgoing.event_type, outgoing.record)
        handling = current_trace()
        headers = (
            handling.headers(outgoing.event_type)
            if handling is not None and handling.trace_id == trace_id
            else event_headers(outgoing.event_type, trace_id)
        )
        return Encoded(
            topic,
            outgoing.key.encode(),
            value,
            headers,
            outgoing.event_type,
            str(outgoing.record["envelope"]["event_id"]),
        )

    def encode_runs(self, runs: list[StageRun], trace_id: str | None) -> list[Encoded]:
        """Encode every output; a stage whose output breaks its contract fails instead
        (its other outputs are not published either)."""
        encoded: list[Encoded] = []
        for index, run in enumerate(runs):
            try:
                ready = [self.encode(outgoing, trace_id) for outgoing in run.outputs]
            except (EventEncodingError, CatalogueError) as error:
                failure = StageFailure.of(run.stage, error, run.attempts)
                runs[index] = StageRun(
                    run.stage,
                    StageStatus.FAILED,
                    failure=failure,
                    reason=failure.message,
                    attempts=run.attempts,
                    seconds=run.seconds,
                )
                continue
            encoded.extend(ready)
        return encoded

    def conclude(
        self,
        routed: Routed,
        runs: list[StageRun],
        *,
        started_ms: float,
        run_id: str | None = None,
    ) -> Handled:
        """After the stages (and transforms): the encoded outputs, dead letters and report."""
        trace = routed.trace_id
        outputs = self.encode_runs(runs, trace)
        dead = {
            run.stage: self.dead_letter(routed, run.failure)
            for run in runs
            if run.failure is not None
        }
        outputs.extend(self.encode(o, trace) for o in dead.values())
        if routed.deadline_bound and all(run.reason == NOT_IN_PROFILE for run in runs):
            # A camera frame none of these stages is asked for: nobody waits for its
            # completion, and a report per frame and worker would only load the brokers
            # and the read side (a camera's health comes from its analysis reports).
            return Handled(None, outputs, runs)
        report = self.report(
            routed,
            runs,
            queue_ms=started_ms - routed.input_ms(),
            run_id=run_id,
            dead_letters=dead,
        )
        return Handled(self.encode(report, trace), outputs, runs)

    def undecodable(self, failed: Undecodable) -> Encoded:
        return self.encode(self.dead_letter(failed, failed.failure), None)

    # ---------------------------------------------------------------- one message, in order

    def handle(self, routed: Routed, *, run_id: str | None = None) -> list[Handled]:
        """Every step for one routed message on the calling thread: per stage, its report
        and the events to publish after it."""
        started_ms = time.time() * 1000.0
        handled = []
        settled = self.settled_runs(routed)
        for binding in routed.bindings:
            if binding.name in settled:
                continue
            runs = self.finish(routed, [self.run_stage(binding, routed)])
            handled.append(self.conclude(routed, runs, started_ms=started_ms, run_id=run_id))
        if settled:
            runs = list(settled.values())
            handled.append(self.conclude(routed, runs, started_ms=started_ms, run_id=run_id))
        return handled
