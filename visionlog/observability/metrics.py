"""The processors' Prometheus metrics, declared once, and the facade the runtime calls.

Every worker process serves them on its health port (`visionlog.health`, `GET /metrics`,
the default registry). The families (all labelled by `worker`, the worker kind):

- `visionlog_processor_stage_duration_seconds` (histogram; stage, outcome): one stage on
  one input, retries and waits included;
- `visionlog_processor_queue_age_seconds` (histogram; topic): from an input's publication
  (a live frame's capture) until the worker starts it;
- `visionlog_processor_live_latency_seconds` (histogram): a live frame's capture until its
  analysis is done;
- `visionlog_processor_items_total` (counter; event_type, outcome): inputs handled;
- `visionlog_processor_retries_total` (counter; stage, disposition): attempts repeated after
  a failure (transient, outage);
- `visionlog_processor_dead_letters_total` (counter; stage): inputs, or parts, dead-lettered;
- `visionlog_processor_skipped_frames_total` (counter; stage, reason): live frames not
  analysed, `stale` or `superseded`;
- `visionlog_processor_in_flight_messages` (gauge): inputs being worked on now;
- `visionlog_processor_camera_latency_seconds` (gauge; camera_id): capture-to-done latency
  of each camera's latest analysed frame.

Outcomes are the statuses of the `EventProcessed` work report, lower-cased: `done`,
`not_applicable`, `skipped`, `failed`. The facade caches each label set's child, so a call
on the hot path is a dict look-up and a locked add (about a microsecond).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from visionlog.errors import Disposition, classify

Outcome = Literal["done", "not_applicable", "skipped", "failed"]
SkipReason = Literal["stale", "superseded"]

# One histogram has one set of buckets for all its stages, so they span both figures: a live
# frame's detection (tens of ms, the 1.5 s p99 target gets its own edge) and an OCR page
# or a video's embedding (up to a minute or two).
STAGE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.4, 0.6,
    1.0, 1.5, 2.5, 4.0, 6.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)  # fmt: skip
# Live frames wait milliseconds; documents queued behind a 60-page PDF wait minutes.
QUEUE_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0,
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
)  # fmt: skip
# Capture to analysed, around the 2 s staleness bound and the 1.5 s p99 target.
LIVE_BUCKETS = (
    0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip


@dataclass(frozen=True)
class ProcessorCollectors:
    """The metric families, registered once in one registry."""

    stage_duration: Histogram
    queue_age: Histogram
    live_latency: Histogram
    items: Counter
    retries: Counter
    dead_letters: Counter
    skipped_frames: Counter
    in_flight: Gauge
    camera_latency: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ProcessorCollectors:
        return cls(
            stage_duration=Histogram(
                "visionlog_processor_stage_duration_seconds",
                "Time one stage took on one input, retries included, by outcome.",
                ["worker", "stage", "outcome"],
                buckets=STAGE_BUCKETS,
                registry=registry,
            ),
            queue_age=Histogram(
                "visionlog_processor_queue_age_seconds",
                "Time from an input's publication (a live frame's capture) until a worker "
                "started it.",
                ["worker", "topic"],
                buckets=QUEUE_BUCKETS,
                registry=registry,
            ),
            live_latency=Histogram(
                "visionlog_processor_live_latency_seconds",
                "Time from a live frame's capture until its analysis was done.",
                ["worker"],
                buckets=LIVE_BUCKETS,
                registry=registry,
            ),
            items=Counter(
                "visionlog_processor_items_total",
                "Inputs a worker handled, by event type and outcome "
                "(done, not_applicable, skipped, failed).",
                ["worker", "event_type", "outcome"],
                registry=registry,
            ),
            retries=Counter(
                "visionlog_processor_retries_total",
                "Stage attempts repeated after a failure, by the failure's disposition.",
                ["worker", "stage", "disposition"],
                registry=registry,
            ),
            dead_letters=Counter(
                "visionlog_processor_dead_letters_total",
                "Inputs (or parts of inputs) a stage dead-lettered.",
                ["worker", "stage"],
                registry=registry,
            ),
            skipped_frames=Counter(
                "visionlog_processor_skipped_frames_total",
                "Live frames a stage did not analyse, by reason (stale, superseded).",
                ["worker", "stage", "reason"],
                registry=registry,
            ),
            in_flight=Gauge(
                "visionlog_processor_in_flight_messages",
                "Inputs a worker is working on now.",
                ["worker"],
                registry=registry,
            ),
            camera_latency=Gauge(
                "visionlog_processor_camera_latency_seconds",
                "Capture-to-done latency of the latest analysed frame of each camera.",
                ["worker", "camera_id"],
                registry=registry,
            ),
        )


# Families per registry: prometheus_client refuses a second family of the same name in one
# registry, so every facade of a process (and of a test's own registry) shares them.
_COLLECTORS: weakref.WeakKeyDictionary[CollectorRegistry, ProcessorCollectors] = (
    weakref.WeakKeyDictionary()
)
_COLLECTORS_LOCK = threading.Lock()


def collectors(registry: CollectorRegistry = REGISTRY) -> ProcessorCollectors:
    """The processors' metric families in `registry`, registered on first use."""
    with _COLLECTORS_LOCK:
        found = _COLLECTORS.get(registry)
        if found is None:
            found = _COLLECTORS[registry] = ProcessorCollectors.register(registry)
        return found


class StageTimer:
    """Times a stage in a `with` block and records it with its outcome on the way out.

    The outcome is `done` unless set (`timer.outcome = "failed"`), or `failed` when the
    block raises. `seconds` holds the duration afterwards (for the work report).
    """

    __slots__ = ("_metrics", "_started", "outcome", "seconds", "stage")

    def __init__(self, metrics: ProcessorMetrics, stage: str) -> None:
        self._metrics = metrics
        self.stage = stage
        self.outcome: Outcome | None = None
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> StageTimer:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = time.perf_counter() - self._started
        outcome = self.outcome or ("failed" if exc_type is not None else "done")
        self._metrics.stage_finished(self.stage, outcome, self.seconds)


class InFlight:
    """Counts an input as in flight for the length of a `with` block."""

    __slots__ = ("_gauge",)

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge

    def __enter__(self) -> InFlight:
        self._gauge.inc()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._gauge.dec()


class ProcessorMetrics:
    """The metrics of one worker (kind), e.g. `ProcessorMetrics("live")`.

    Thread-safe: stages on executor threads may call it directly.
    """

    def __init__(
        self,
        worker: str,
        registry: CollectorRegistry = REGISTRY,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.worker = worker
        self._families = collectors(registry)
        self._clock = clock
        # Children by label values: `.labels()` takes a lock and builds a tuple each time.
        self._stage: dict[tuple[str, str], Histogram] = {}
        self._queue: dict[str, Histogram] = {}
        self._items: dict[tuple[str, str], Counter] = {}
        self._retries: dict[tuple[str, str], Counter] = {}
        self._dead: dict[str, Counter] = {}
        self._skipped: dict[tuple[str, str], Counter] = {}
        self._cameras: dict[str, Gauge] = {}
        self._live: Histogram | None = None
        self._in_flight = self._families.in_flight.labels(worker)

    def prime(
        self,
        *,
        stages: Iterable[str] = (),
        event_types: Iterable[str] = (),
        topics: Iterable[str] = (),
        live_stages: Iterable[str] = (),
    ) -> None:
        """Creates the series a worker will have at zero, at start-up.

        A series that appears only with its first increment hides that increment from
        `rate()` and `increase()`, and a dashboard shows "no data" instead of 0 for a worker
        that has not failed yet.
        """
        families = self._families
        for stage in stages:
            for outcome in ("done", "failed"):
                families.stage_duration.labels(self.worker, stage, outcome)
            for disposition in (Disposition.TRANSIENT, Disposition.OUTAGE):
                families.retries.labels(self.worker, stage, str(disposition))
            families.dead_letters.labels(self.worker, stage)
        for event_type in event_types:
            for outcome in ("done", "failed"):
                families.items.labels(self.worker, event_type, outcome)
        for topic in topics:
            families.queue_age.labels(self.worker, topic)
        for stage in live_stages:
            for reason in ("stale", "superseded"):
                families.skipped_frames.labels(self.worker, stage, reason)
            if self._live is None:
                self._live = families.live_latency.labels(self.worker)

    # -- stages --

    def stage_finished(self, stage: str, outcome: Outcome, seconds: float) -> None:
        """One stage finished on one input after `seconds` (retries and waits included)."""
        key = (stage, outcome)
        child = self._stage.get(key)
        if child is None:
            child = self._stage[key] = self._families.stage_duration.labels(
                self.worker, stage, outcome
            )
        child.observe(seconds)

    def stage_timer(self, stage: str) -> StageTimer:
        """`with metrics.stage_timer("detect") as timer: ...` records the stage's duration."""
        return StageTimer(self, stage)

    def retried(self, stage: str, disposition: Disposition | str) -> None:
        """A stage's attempt failed and will be tried again."""
        key = (stage, str(disposition))
        child = self._retries.get(key)
        if child is None:
            child = self._retries[key] = self._families.retries.labels(
                self.worker, stage, str(disposition)
            )
        child.inc()

    def retry_hook(self, stage: str) -> Callable[[int, BaseException, float], None]:
        """An `on_retry` for `visionlog.stream.retry.call_with_retries`: counts each retry."""

        def on_retry(_attempt: int, error: BaseException, _delay: float) -> None:
            self.retried(stage, classify(error))

        return on_retry

    def dead_lettered(self, stage: str, count: int = 1) -> None:
        """A stage dead-lettered an input, or `count` parts of one (pages of a PDF)."""
        child = self._dead.get(stage)
        if child is None:
            child = self._dead[stage] = self._families.dead_letters.labels(self.worker, stage)
        child.inc(count)

    # -- inputs --

    def queue_age(self, topic: str, since_ms: int, *, now_s: float | None = None) -> float:
        """Records how long an input waited: from `since_ms` (its publication, or a live
        frame's capture, in epoch milliseconds) until now, when the worker starts it.

        Returns the age in seconds for the work report (`queue_ms`). A clock behind the
        producer's gives a negative age; it counts as 0. An unknown time (0) records nothing.
        """
        if since_ms <= 0:
            return 0.0
        now = self._clock() if now_s is None else now_s
        age = max(0.0, now - since_ms / 1000.0)
        child = self._queue.get(topic)
        if child is None:
            child = self._queue[topic] = self._families.queue_age.labels(self.worker, topic)
        child.observe(age)
        return age

    def item(self, event_type: str, outcome: Outcome) -> None:
        """An input was handled; `outcome` as in its work report (failed if any stage was)."""
        key = (event_type, outcome)
        child = self._items.get(key)
        if child is None:
            child = self._items[key] = self._families.items.labels(self.worker, event_type, outcome)
        child.inc()

    def in_flight(self) -> InFlight:
        """`with metrics.in_flight(): ...` around the handling of one input."""
        return InFlight(self._in_flight)

    # -- live frames --

    def frame_skipped(self, stage: str, reason: SkipReason) -> None:
        """A live frame was not analysed by `stage`: too old, or a newer one came."""
        key = (stage, reason)
        child = self._skipped.get(key)
        if child is None:
            child = self._skipped[key] = self._families.skipped_frames.labels(
                self.worker, stage, reason
            )
        child.inc()

    def frame_analysed(
        self, camera_id: str, captured_ms: int, *, now_s: float | None = None
    ) -> float:
        """A live frame of `camera_id` captured at `captured_ms` (epoch milliseconds) is
        analysed: records its capture-to-done latency and returns it in seconds."""
        now = self._clock() if now_s is None else now_s
        latency = max(0.0, now - captured_ms / 1000.0)
        if self._live is None:
            self._live = self._families.live_latency.labels(self.worker)
        self._live.observe(latency)
        child = self._cameras.get(camera_id)
        if child is None:
            child = self._cameras[camera_id] = self._families.camera_latency.labels(
                self.worker, camera_id
            )
        child.set(latency)
        return latency

    def forget_camera(self, camera_id: str) -> None:
        """Drops a camera's gauge (the camera was removed), so its last value stops showing."""
        if self._cameras.pop(camera_id, None) is not None:
            self._families.camera_latency.remove(self.worker, camera_id)
