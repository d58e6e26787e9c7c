"""The faust worker of one kind: agents feed a concurrent, key-ordered stage scheduler.

Per input topic one faust agent reads a manual-ack stream and hands each message to the
`Scheduler`, which

- routes it (`processors.runner.WorkerCore`): events the kind does not take are
  acknowledged at once, undecodable ones and events on the wrong topic dead-lettered;
- admits it: a live camera frame goes through the camera's newest-frame-wins lane
  (`visionlog.stream.admission`), superseded frames are skipped, stale ones skipped when
  the stage would start; other inputs take a place in the bounded in-flight window, so a
  backlog waits in Kafka, not in memory (live frames are served first);
- runs the message's stages concurrently on the stage threads (inference never blocks the
  event loop and its heartbeats), several messages at once;
- finishes messages of one key (a media item, a camera) in input order: stateful
  transforms (tracking, state in a faust table with a changelog topic), then the work
  report (`EventProcessed`, acknowledged by the brokers before the results it names), then
  the results and dead letters through faust's producer;
- acknowledges the input only after every event derived from it was acknowledged by the
  brokers. faust commits acknowledged offsets in contiguous runs, every N messages or T
  seconds, after flushing its producer: a crash loses nothing, and the duplicates it may
  cause carry the same deterministic event ids.

A failure to publish stops the worker without acknowledging, so the message is read again
after the restart.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import signal
import ssl
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import faust

from processors.bindings import Items, StageBinding, WorkerKind, worker_kind
from processors.faust_gaps import SkippedMessages, when_revoked
from processors.keyed_state import TableState, keyed_table
from processors.runner import (
    Encoded,
    Handled,
    Ignored,
    Routed,
    StageRun,
    StageStatus,
    Undecodable,
    WorkerCore,
)
from processors.stage import PROCESSORS_VERSION, Outgoing, StageContext
from processors.watchdog import exit_with_stacks
from visionlog.blobstore import BlobStore
from visionlog.codec import AvroCodec
from visionlog.envelope import envelope_caused_by
from visionlog.health import Heartbeat, Readiness
from visionlog.observability.metrics import ProcessorMetrics
from visionlog.observability.tracing import Tracer, get_tracer
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import KafkaSettings, Settings
from visionlog.stream.admission import LatestWins, stale_reason
from visionlog.stream.headers import TRACEPARENT
from visionlog.stream.messages import InboundMessage, normalise_headers
from visionlog.stream.ordered_acks import AckTicket, OrderedAcks
from visionlog.stream.priority_pool import BATCH_PRIORITY, LIVE_PRIORITY, PriorityThreadPool
from visionlog.topics import full_topic_name, topic_for_event

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often the event loop beats; far below the liveness limit (health.stale_after_s).
HEARTBEAT_INTERVAL_S = 5.0


class PublishError(RuntimeError):
    """The brokers did not take an event; the worker stops without acknowledging."""


def credentials(kafka: KafkaSettings) -> Any:
    if kafka.security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=kafka.ssl_ca_location)
    if kafka.security_protocol in ("SASL_SSL", "SASL_PLAINTEXT"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            ssl_context=context if kafka.security_protocol == "SASL_SSL" else None,
            mechanism=kafka.sasl_mechanism or "PLAIN",
        )
    return context


def group_id(kind: str, settings: Settings) -> str:
    return f"{settings.kafka.topic_prefix}visionlog-processors-{kind}"


def input_topics(kind: WorkerKind, kafka: KafkaSettings) -> list[str]:
    names = {
        full_topic_name(topic_for_event(event_type), kafka)
        for binding in kind.stages
        for event_type in binding.consumes
    }
    return sorted(names)


def faust_app(name: str, settings: Settings) -> faust.App:
    """A faust app for one worker kind: raw bytes in and out, our topics only."""
    tuning = settings.processors
    datadir = settings.state_dir / "faust" / name
    datadir.parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        group_id(name, settings),
        broker=[f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")],
        broker_credentials=credentials(settings.kafka),
        value_serializer="raw",
        key_serializer="raw",
        # Our topics come from the catalogue; faust must not create or reconfigure them.
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Events are small (blobs travel by reference); compressing them costs the event
        # loop more than it saves on the wire.
        producer_linger=0.001,
        datadir=str(datadir),
        broker_commit_every=tuning.commit_every_messages,
        broker_commit_interval=tuning.commit_every_s,
        broker_session_timeout=tuning.session_timeout_s,
        broker_heartbeat_interval=max(0.5, tuning.session_timeout_s / 4),
        broker_rebalance_timeout=max(10.0, tuning.session_timeout_s * 2),
        # Frames waiting in a live lane are not acknowledged yet; shutdown must not wait
        # for them (they are read again, stale, after the restart).
        stream_wait_empty=False,
        # Inference runs in threads, so polling goes on; this only bounds a stuck stage.
        broker_max_poll_interval=900.0,
        store="memory://",
    )


class PrioritySlots:
    """A bounded number of places for messages being worked on; live frames go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._waiting: dict[int, list[asyncio.Future[None]]] = {
            LIVE_PRIORITY: [],
            BATCH_PRIORITY: [],
        }

    async def acquire(self, priority: int) -> None:
        if self.used < self.size and not any(self._waiting.values()):
            self.used += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[priority].append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()
            else:
                self._waiting[priority].remove(future)
            raise

    def release(self) -> None:
        for priority in (LIVE_PRIORITY, BATCH_PRIORITY):
            queue = self._waiting[priority]
            while queue:
                future = queue.pop(0)
                if not future.done():
                    future.set_result(None)
                    return
        self.used -= 1


def _all_or_first_failure(outcomes: list[Handled | BaseException]) -> list[Handled]:
    """The turns' results, or their first failure raised (later ones logged)."""
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for later in failures[1:]:
        log.error("another stage of the same message failed too", exc_info=later)
    if failures:
        raise failures[0]
    return [o for o in outcomes if not isinstance(o, BaseException)]


def _priority(routed: Routed) -> int:
    """Camera frames, and uploads someone waits for (the live worker's detection of images),
    share the first priority, first come first served: behind the frames, uploads waited as
    long as any camera had a frame waiting (30 s to detect an image under 4 cameras)."""
    interactive = any(binding.items is Items.INTERACTIVE for binding in routed.bindings)
    return LIVE_PRIORITY if routed.deadline_bound or interactive else BATCH_PRIORITY


def _ungated(routed: Routed) -> dict[str, tuple[asyncio.Future[None] | None, asyncio.Future[None]]]:
    """Turns for a live frame that publishes in no particular order: it waits for no earlier
    message and no later one waits for it (a skipped frame, or one no stage applies to)."""
    loop = asyncio.get_running_loop()
    return {binding.name: (None, loop.create_future()) for binding in routed.bindings}


@dataclass
class _Pending:
    routed: Routed
    event: Any
    stream: Any
    ticket: AckTicket[tuple[Any, Any]]


@dataclass
class CameraCounters:
    camera_id: str
    worker: str
    stage: str
    max_age_ms: int
    received: int = 0
    analysed: int = 0
    stale: int = 0
    superseded: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


class Scheduler:
    """Schedules the messages of one worker process (see the module docstring)."""

    def __init__(
        self,
        core: WorkerCore,
        send: Callable[[Encoded], Awaitable[Awaitable[Any]]],
        *,
        max_in_flight: int,
        stage_threads: int,
        on_fatal: Callable[[BaseException], None],
        tracer: Tracer | None = None,
    ) -> None:
        self.core = core
        self.metrics = core.metrics
        self.tracer = tracer or get_tracer()
        self.send = send
        self.on_fatal = on_fatal
        self.settings = core.settings
        self.slots = PrioritySlots(max_in_flight)
        # Live frames' stage work goes ahead of queued batch work on the stage threads.
        self.executor = PriorityThreadPool(stage_threads, thread_name_prefix=f"{core.worker}-stage")
        self.latest: LatestWins[_Pending] = LatestWins()
        # Acks go to faust in each partition's log order (see visionlog.stream.ordered_acks).
        self.acks: OrderedAcks[tuple[Any, Any]] = OrderedAcks()
        # Per media item (or camera) and stage: the turn of its latest message.
        self.tails: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.detached: set[asyncio.Task[None]] = set()
        self.cameras: dict[str, CameraCounters] = {}
        self.handled = 0
        self.draining = False
        self.counts: dict[str, int] = defaultdict(int)

    # ------------------------------------------------------------------ admission

    async def admit(self, event: Any, stream: Any) -> None:
        message = inbound(event)
        ticket = self.acks.admit(
            (message.topic, message.partition), message.offset, (event, stream)
        )
        routed = self.core.route(message)
        if isinstance(routed, Ignored):
            await self._release(ticket)
            self.counts["ignored"] += 1
            return
        if isinstance(routed, Undecodable):
            log.warning(
                "%s: dead-lettering %s/%d@%d: %s",
                self.core.worker,
                message.topic,
                message.partition,
                message.offset,
                routed.failure.message,
            )
            await self._deliver([self.core.undecodable(routed)])
            await self._release(ticket)
            self.counts["dead_lettered"] += 1
            return
        pending = _Pending(routed, event, stream, ticket)
        if routed.deadline_bound:
            self._admit_live(pending)
            return
        # A backlog of batch work waits in Kafka: the agent blocks here while the window
        # is full, faust's buffer fills and the partition is paused.
        await self.slots.acquire(_priority(routed))
        self._spawn(pending, holds_slot=True)

    async def _release(self, ticket: AckTicket[tuple[Any, Any]]) -> None:
        """Acks the message once it and every earlier message of its partition are done."""
        for event, stream in self.acks.finish(ticket):
            await stream.ack(event)

    def partitions_revoked(self, positions: Iterable[tuple[str, int]]) -> None:
        self.acks.revoke(positions)

    def _admit_live(self, pending: _Pending) -> None:
        routed = pending.routed
        if len(self.core.settled_runs(routed)) == len(routed.bindings):
            # None of this worker's stages is in the camera's profile: nothing to analyse,
            # the frame is only reported on, without waiting for a place.
            self._detach(self._process(pending, _ungated(routed), holds_slot=False, skip=None))
            return
        counters = self._camera(routed)
        counters.received += 1
        offer = self.latest.offer(routed.media_id, pending)
        if offer.superseded is not None:
            counters.superseded += 1
            for binding in routed.bindings:
                self.metrics.frame_skipped(binding.name, "superseded")
            older = offer.superseded.routed.record.get("frame_index")
            reason = (
                f"superseded: frame {routed.record.get('frame_index')} arrived while "
                f"frame {older} waited for the stage"
            )
            # Its report waits for no other frame's: chained behind the camera's earlier
            # reports (each awaiting the brokers) the chain grew faster than it shrank on a
            # busy worker, and the lane's next frame waited at its end for minutes.
            superseded = offer.superseded
            self._detach(
                self._process(
                    superseded, _ungated(superseded.routed), holds_slot=False, skip=reason
                )
            )
        if offer.start:
            self._detach(self._run_lane(routed.media_id))

    def _detach(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.detached.add(task)
        task.add_done_callback(self.detached.discard)

    async def _run_lane(self, source: str) -> None:
        """A camera's lane: whenever a place is free, analyse the newest waiting frame."""
        while True:
            await self.slots.acquire(LIVE_PRIORITY)
            pending = self.latest.take(source)
            if pending is None:
                self.slots.release()
                return
            await self._process(
                pending,
                self._gates(pending.routed),
                holds_slot=True,
                skip=self._stale(pending.routed),
            )

    def _camera(self, routed: Routed) -> CameraCounters:
        counters = self.cameras.get(routed.media_id)
        if counters is None:
            counters = CameraCounters(
                camera_id=str(routed.record.get("camera_id")),
                worker=self.core.worker,
                stage=",".join(b.name for b in routed.bindings),
                max_age_ms=self._bound_ms(routed),
            )
            self.cameras[routed.media_id] = counters
        counters.source = routed.record
        return counters

    def _bound_ms(self, routed: Routed) -> int:
        bound = routed.record.get("max_age_ms")
        return int(bound) if bound else self.settings.processors.live_max_age_ms

    # ------------------------------------------------------------------ processing

    def _gates(
        self, routed: Routed
    ) -> dict[str, tuple[asyncio.Future[None] | None, asyncio.Future[None]]]:
        """Per stage of the message: the previous message's turn (same key and stage) to
        wait for, and this message's turn for the next one. Taken in admission order."""
        loop = asyncio.get_running_loop()
        gates: dict[str, tuple[asyncio.Future[None] | None, asyncio.Future[None]]] = {}
        for binding in routed.bindings:
            tail = (routed.media_id, binding.name)
            previous = self.tails.get(tail)
            done: asyncio.Future[None] = loop.create_future()
            self.tails[tail] = done

            def forget(finished: asyncio.Future[None], tail: tuple[str, str] = tail) -> None:
                if self.tails.get(tail) is finished:
                    del self.tails[tail]

            done.add_done_callback(forget)
            gates[binding.name] = (previous, done)
        return gates

    def _spawn(self, pending: _Pending, *, holds_slot: bool) -> None:
        """Batch work: starts now; each stage publishes after the same stage of the earlier
        messages of its key."""
        self._detach(
            self._process(pending, self._gates(pending.routed), holds_slot=holds_slot, skip=None)
        )

    async def _process(
        self,
        pending: _Pending,
        gates: dict[str, tuple[asyncio.Future[None] | None, asyncio.Future[None]]],
        *,
        holds_slot: bool,
        skip: str | None,
    ) -> None:
        routed = pending.routed
        message = routed.message
        try:
            with (
                self.metrics.in_flight(),
                self.tracer.message(
                    worker=self.core.worker,
                    event_type=routed.event_type,
                    event_id=routed.event_id,
                    media_id=routed.media_id,
                    traceparent=message.header(TRACEPARENT),
                    trace_id=routed.trace_id,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                ),
            ):
                started_ms = time.time() * 1000.0
                self.metrics.queue_age(message.topic, int(routed.input_ms()))
                # Stages that do not apply (or a skipped frame) are known at once and
                # reported together; the others run and report each when it is done.
                settled = self.core.settled_runs(routed, skip)
                running = [b for b in routed.bindings if b.name not in settled]
                computing = [
                    asyncio.ensure_future(self._compute(routed, binding)) for binding in running
                ]
                publishing = [
                    asyncio.ensure_future(
                        self._conclude(routed, [computed], [gates[binding.name]], started_ms)
                    )
                    for binding, computed in zip(running, computing, strict=True)
                ]
                if settled:
                    publishing.append(
                        asyncio.ensure_future(
                            self._conclude(
                                routed,
                                [_done(run) for run in settled.values()],
                                [gates[name] for name in settled],
                                started_ms,
                            )
                        )
                    )
                try:
                    await asyncio.gather(*computing, return_exceptions=True)
                finally:
                    if holds_slot:
                        self.slots.release()
                # Every turn is awaited to its end, so none fails unobserved after another
                # turn's failure already stopped this message; the first failure is fatal.
                handled = _all_or_first_failure(
                    await asyncio.gather(*publishing, return_exceptions=True)
                )
                # Per-key state (tracks) the message wrote must be in its changelog before
                # the message may be committed.
                await self._state_written()
                await self._release(pending.ticket)
                self._account(routed, handled, analysed=bool(running))
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self.on_fatal(error)
        finally:
            for _previous, done in gates.values():
                if not done.done():
                    done.set_result(None)

    async def _state_written(self) -> None:
        state = self.core.context.state
        if isinstance(state, TableState):
            try:
                await state.written()
            except Exception as error:
                raise PublishError(
                    f"a state changelog write was not acknowledged: {error!r}"
                ) from error

    async def _conclude(
        self,
        routed: Routed,
        computed: list[Awaitable[StageRun]],
        gates: list[tuple[asyncio.Future[None] | None, asyncio.Future[None]]],
        started_ms: float,
    ) -> Handled:
        """The stages' turn: after the same stages of the key's earlier message, their
        stateful steps, their report (acknowledged before the results it names) and their
        results."""
        try:
            runs = [await run for run in computed]
            previous = [gate[0] for gate in gates if gate[0] is not None]
            if previous:
                await asyncio.gather(*previous, return_exceptions=True)
            # Stateful steps and encoding run on a stage thread too: the event loop is kept
            # for the brokers (it is the process's one Python thread that must never wait).
            handled: Handled = await self._on_stage_thread(
                routed, self._settle, routed, runs, started_ms
            )
            await self._publish(handled, ordered=not routed.live)
            return handled
        finally:
            for _previous, done in gates:
                if not done.done():
                    done.set_result(None)

    def _settle(self, routed: Routed, runs: list[StageRun], started_ms: float) -> Handled:
        return self.core.conclude(routed, self.core.finish(routed, runs), started_ms=started_ms)

    def _stale(self, routed: Routed) -> str | None:
        captured = routed.captured_ms()
        if captured is None:
            return None
        age = time.time() * 1000.0 - captured
        reason = stale_reason(age, self._bound_ms(routed))
        if reason is not None:
            self._camera(routed).stale += 1
            for binding in routed.bindings:
                self.metrics.frame_skipped(binding.name, "stale")
        return reason

    async def _compute(self, routed: Routed, binding: StageBinding) -> StageRun:
        deadline = None
        captured = routed.captured_ms()
        if captured is not None:
            remaining_s = (captured + self._bound_ms(routed) - time.time() * 1000.0) / 1000.0
            deadline = time.monotonic() + max(0.0, remaining_s)
        run: StageRun = await self._on_stage_thread(
            routed, self.core.run_stage, binding, routed, deadline
        )
        return run

    async def _on_stage_thread(self, routed: Routed, work: Callable[..., T], *args: Any) -> T:
        job = self.executor.submit_at(
            _priority(routed), contextvars.copy_context().run, work, *args
        )
        return await asyncio.wrap_future(job)

    async def _publish(self, handled: Handled, *, ordered: bool) -> None:
        outputs = list(handled.outputs)
        if handled.report is not None:
            if ordered:
                # The report names the results; it must be on the log before them, so the
                # completion processor never counts a result's report before its cause's.
                await self._confirmed([await self.send(handled.report)])
            else:
                outputs.insert(0, handled.report)
        await self._deliver(outputs)

    async def _deliver(self, encoded: list[Encoded]) -> None:
        futures = [await self.send(item) for item in encoded]
        await self._confirmed(futures)

    @staticmethod
    async def _confirmed(futures: list[Awaitable[Any]]) -> None:
        results = await asyncio.gather(*futures, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise PublishError(f"{len(failures)} event(s) not acknowledged: {failures[0]!r}")

    def _account(self, routed: Routed, handled: list[Handled], *, analysed: bool) -> None:
        self.handled += 1
        statuses = {run.status for each in handled for run in each.runs}
        for status in statuses:
            self.counts[status.value] += 1
        outcome = next(
            (
                name
                for status, name in (
                    (StageStatus.FAILED, "failed"),
                    (StageStatus.DONE, "done"),
                    (StageStatus.SKIPPED, "skipped"),
                )
                if status in statuses
            ),
            "not_applicable",
        )
        self.metrics.item(routed.event_type, outcome)  # type: ignore[arg-type]
        if routed.deadline_bound and routed.media_id in self.cameras:
            counters = self._camera(routed)
            captured = routed.captured_ms()
            if not analysed:
                return  # skipped before its stages ran, and counted there
            if StageStatus.SKIPPED in statuses:
                # Its deadline passed while a stage retried.
                counters.stale += 1
            elif captured is not None:
                # A stage ran on the frame to its end, whether it found anything or not.
                counters.analysed += 1
                counters.latencies_ms.append(time.time() * 1000.0 - captured)
                self.metrics.frame_analysed(counters.camera_id, int(captured))

    # ------------------------------------------------------------------ camera health

    def camera_reports(self, window_s: float) -> list[Encoded]:
        reports = []
        for media_id, counters in self.cameras.items():
            latencies = sorted(counters.latencies_ms)
            counters.latencies_ms = []
            record = {
                "envelope": envelope_caused_by(
                    counters.source,
                    "CameraAnalysisReported",
                    f"processors.{counters.worker}/{PROCESSORS_VERSION}",
                    counters.worker,
                    time.time_ns(),
                ),
                "media_id": media_id,
                "camera_id": counters.camera_id,
                "worker": counters.worker,
                "stage": counters.stage,
                "max_age_ms": counters.max_age_ms,
                "frames_received": counters.received,
                "frames_analysed": counters.analysed,
                "frames_skipped_stale": counters.stale,
                "frames_skipped_superseded": counters.superseded,
                "window_s": float(window_s),
                "latency_p50_ms": _percentile(latencies, 0.50),
                "latency_p99_ms": _percentile(latencies, 0.99),
                "latency_max_ms": latencies[-1] if latencies else None,
            }
            reports.append(
                self.core.encode(
                    Outgoing("CameraAnalysisReported", record, media_id),
                    counters.source["envelope"].get("trace_id"),
                )
            )
        return reports

    async def drain(self, timeout_s: float = 60.0) -> None:
        """Stop admitting and wait for the messages in flight to finish."""
        self.draining = True
        deadline = time.monotonic() + timeout_s
        while (self.tails or self.detached) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)


async def _done(run: StageRun) -> StageRun:
    return run


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(fraction * (len(values) - 1))))
    return float(values[index])


def inbound(event: Any) -> InboundMessage:
    message = event.message
    timestamp = getattr(message, "timestamp", None)
    return InboundMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=normalise_headers(getattr(message, "headers", None)),
        timestamp_ms=int(timestamp * 1000) if timestamp else 0,
    )


def kind_settings(kind: WorkerKind, settings: Settings) -> Settings:
    """The settings a worker of this kind runs with: the live worker tunes its detector
    for the fastest single frame, and takes no more frames at once than it serves."""
    if kind.name != "live":
        return settings
    tuning = settings.processors
    update: dict[str, Any] = {"detection_performance_hint": tuning.live_detection_performance_hint}
    if tuning.live_max_in_flight:
        update["max_in_flight"] = tuning.live_max_in_flight
    return settings.model_copy(update={"processors": tuning.model_copy(update=update)})


def build_context(settings: Settings) -> StageContext:
    return StageContext(settings=settings, blobs=BlobStore.from_settings(settings.minio))


@dataclass
class WorkerApp:
    app: faust.App
    scheduler: Scheduler
    kind: WorkerKind


def build_worker(
    kind_name: str,
    settings: Settings,
    *,
    context: StageContext | None = None,
    codec: AvroCodec | None = None,
    tracer: Tracer | None = None,
) -> WorkerApp:
    kind = worker_kind(kind_name)
    settings = kind_settings(kind, settings)
    app = faust_app(kind.name, settings)
    codec = codec or AvroCodec(HttpSchemaRegistry(settings.registry))
    context = context or build_context(settings)
    if kind.state_topic is not None:
        context.state = TableState(keyed_table(app, "state", kind.state_topic, settings))
    metrics = ProcessorMetrics(kind.name)
    metrics.prime(
        stages=[b.name for b in (*kind.stages, *kind.transforms)],
        topics=input_topics(kind, settings.kafka),
        live_stages=[b.name for b in kind.stages if b.items is not Items.RECORDED],
    )
    core = WorkerCore(kind, settings, codec, context, metrics=metrics)
    # Models compile and warm up now, one at a time, before the first message: no input
    # waits for a compile, and no two threads race through a model's first inference.
    built = context.engines.prepare(b.name for b in kind.stages)
    log.info("%s worker: engines ready: %s", kind.name, ", ".join(built) or "none")
    tuning = settings.processors
    cpus = os.cpu_count() or 2
    in_flight = tuning.max_in_flight or 2 * cpus
    threads = tuning.stage_threads or max(4, 2 * cpus)

    def fatal(error: BaseException) -> None:
        log.critical(
            "%s worker: %s: %s; stopping without acknowledging",
            kind.name,
            type(error).__name__,
            error,
            exc_info=error,
        )
        os.kill(os.getpid(), signal.SIGTERM)

    async def send(encoded: Encoded) -> Awaitable[Any]:
        future: Awaitable[Any] = await app.producer.send(
            encoded.topic,
            encoded.key,
            encoded.value,
            partition=None,
            timestamp=None,
            headers=list(encoded.headers),
        )
        return future

    scheduler = Scheduler(
        core, send, max_in_flight=in_flight, stage_threads=threads, on_fatal=fatal, tracer=tracer
    )

    skipped = SkippedMessages(app)

    def make_agent(topic_name: str) -> Callable[[Any], Coroutine[Any, Any, None]]:
        async def agent(stream: Any) -> None:
            manual = stream.noack()
            async for event in manual.events():
                if scheduler.draining:
                    # Recycling: leave the rest for the next process.
                    await asyncio.Event().wait()
                if not await skipped.take(event.message):
                    continue  # not acknowledged: it comes again after the seek
                await scheduler.admit(event, manual)

        agent.__name__ = f"consume_{topic_name.replace('.', '_').replace('-', '_')}"
        return agent

    for topic_name in input_topics(kind, settings.kafka):
        topic = app.topic(topic_name, key_type=bytes, value_type=bytes)
        app.agent(topic, name=f"{kind.name}.{topic_name}")(make_agent(topic_name))

    when_revoked(app, scheduler.partitions_revoked)

    if isinstance(context.state, TableState):
        state = context.state

        async def bind_state() -> None:
            state.bind(asyncio.get_running_loop())

        app.task(bind_state)

    async def report_cameras() -> None:
        window = tuning.camera_report_interval_s
        reports = scheduler.camera_reports(window)
        if reports:
            await scheduler._deliver(reports)

    app.timer(interval=tuning.camera_report_interval_s)(report_cameras)
    return WorkerApp(app, scheduler, kind)


def watch_event_loop(
    worker: WorkerApp, heartbeat: Heartbeat, readiness: Readiness, settings: Settings
) -> None:
    """Beats from the app's event loop (a blocked loop turns liveness red), marks the worker
    ready once faust has started, and recycles it gracefully when it grows too big."""
    app = worker.app
    limits = settings.processors

    async def app_started() -> None:
        heartbeat.beat()
        readiness.mark_ready()

    async def event_loop_heartbeat() -> None:
        heartbeat.beat()
        stuck_s = worker.scheduler.executor.longest_running_s()
        if limits.stage_timeout_s and stuck_s > limits.stage_timeout_s:
            log.critical(
                "%s worker: a stage has run for %.0f s (limit %.0f s); writing every thread's "
                "stack and exiting, its inputs are read again after the restart",
                worker.kind.name,
                stuck_s,
                limits.stage_timeout_s,
            )
            exit_with_stacks()
        reason = recycle_reason(worker.scheduler.handled, limits)
        if reason and not worker.scheduler.draining:
            log.warning("recycling the %s worker: %s", worker.kind.name, reason)
            readiness.mark_not_ready(f"recycling: {reason}")
            await worker.scheduler.drain()
            # The worker's signal handler stops gracefully and commits offsets; the
            # supervisor (`visionlog processors run`) starts a fresh process.
            os.kill(os.getpid(), signal.SIGTERM)

    # Registered by call: faust's decorators are untyped.
    app.task(app_started)
    app.timer(interval=HEARTBEAT_INTERVAL_S)(event_loop_heartbeat)


def resident_memory_mb() -> float:
    """Current resident set size of this process (Linux), 0 where unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def recycle_reason(handled: int, limits: Any) -> str | None:
    """Why this worker should restart now, or None."""
    if limits.recycle_after_items and handled >= limits.recycle_after_items:
        return f"handled {handled} items (limit {limits.recycle_after_items})"
    rss = resident_memory_mb()
    if rss > limits.recycle_above_rss_mb:
        return f"resident memory {rss:.0f} MB above {limits.recycle_above_rss_mb} MB"
    return None
