"""Hosts live projections as threads of one process, each with its own consumer.

A projection whose runner fails (a store down for longer than a batch's retries, a broker
error) is restarted on its own after a backoff and resumes from its recorded position; the
other projections never stop for it. Only an error of the host itself stops the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter
from qdrant_client import QdrantClient

from projections.runtime import Projection, ProjectionRunner
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import Settings

log = logging.getLogger(__name__)

PROJECTION_NAMES = ("postgres", "mongo", "qdrant")

RESTARTS = Counter(
    "visionlog_projection_restarts_total",
    "Times a projection was rebuilt and restarted after it failed.",
    ["projection"],
)


def qdrant_hosted_by_api(settings: Settings) -> bool:
    """Embedded Qdrant allows one process: then the API process hosts its projection."""
    configured = settings.projections.qdrant_in_api
    return settings.qdrant_embedded if configured is None else configured


def default_projection_names(settings: Settings) -> list[str]:
    return [
        name
        for name in PROJECTION_NAMES
        if not (name == "qdrant" and qdrant_hosted_by_api(settings))
    ]


def build_projection(name: str, settings: Settings, qdrant: QdrantClient | None) -> Projection:
    if name == "postgres":
        from projections.postgres.projection import PostgresProjection

        return PostgresProjection(settings)
    if name == "mongo":
        from projections.mongo.projection import MongoProjection

        return MongoProjection(settings)
    if name == "qdrant":
        from projections.qdrant.projection import QdrantProjection
        from visionlog.stores import qdrant_client

        return QdrantProjection(settings, qdrant or qdrant_client(settings))
    raise ValueError(f"unknown projection {name!r}; choose from {PROJECTION_NAMES}")


@dataclass
class ProjectionState:
    """What the host knows of one projection: its runner while it runs, its failures."""

    restarts: int = 0
    last_error: BaseException | None = None
    # Monotonic time of the next restart while the projection waits out a failure.
    restart_at: float | None = None


def restart_delay_s(failures_in_a_row: int, *, first_s: float, max_s: float) -> float:
    """Exponential backoff: first_s, doubling per failure in a row, capped at max_s."""
    return float(min(max_s, first_s * 2 ** max(0, failures_in_a_row - 1)))


class ProjectionHost:
    """Runs each projection in its own thread with its own consumer. A projection that
    fails (a store down for longer than a batch's retries, a broker error) is closed and
    rebuilt after a backoff on its own: the host's other projections never stop or wait
    for it, and it resumes from its recorded position."""

    def __init__(
        self, settings: Settings, names: Sequence[str], *, qdrant: QdrantClient | None = None
    ) -> None:
        unknown = [name for name in names if name not in PROJECTION_NAMES]
        if unknown:
            raise ValueError(f"unknown projections {unknown}; choose from {PROJECTION_NAMES}")
        self.settings = settings
        self.names = list(names)
        self.qdrant = qdrant
        self.stop_event = threading.Event()
        self.states: dict[str, ProjectionState] = {name: ProjectionState() for name in names}
        for name in names:  # each series exists from the start, so a first restart shows
            RESTARTS.labels(name)
        # Errors that end the host (not a store's outage: a bug of the host itself).
        self.failures: dict[str, BaseException] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.runners: dict[str, ProjectionRunner] = {}

    def _run(self, name: str) -> None:
        state = self.states[name]
        tuning = self.settings.projections
        in_a_row = 0
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                error = self._run_once(name)
                if error is None or self.stop_event.is_set():
                    return
                # A projection that ran a good while before failing starts its backoff over.
                if time.monotonic() - started >= tuning.restart_reset_after_s:
                    in_a_row = 0
                in_a_row += 1
                delay = restart_delay_s(
                    in_a_row, first_s=tuning.restart_first_s, max_s=tuning.restart_max_s
                )
                state.last_error = error
                state.restart_at = time.monotonic() + delay
                log.error(
                    "projection %s failed (%s: %s); restarting it in %.1fs, the other "
                    "projections go on",
                    name,
                    type(error).__name__,
                    error,
                    delay,
                    exc_info=error,
                )
                if self.stop_event.wait(delay):
                    return
                state.restarts += 1
                state.restart_at = None
                RESTARTS.labels(name).inc()
        except BaseException as error:  # the host's own bug: nothing to wait out
            self._fail(name, error)

    def _run_once(self, name: str) -> Exception | None:
        """Build the projection and run it until stopped; returns what made it fail."""
        self.runners.pop(name, None)
        try:
            # Building connects to the store and migrates: a store that is down fails
            # here, and is waited out like a failing runner.
            projection = build_projection(name, self.settings, self.qdrant)
        except Exception as error:
            return error
        try:
            codec = AvroCodec(HttpSchemaRegistry(self.settings.registry))
            runner = ProjectionRunner(
                projection, self.settings, codec, EventPublisher(self.settings.kafka, codec)
            )
            self.runners[name] = runner
            runner.run(self.stop_event)
        except Exception as error:
            return error
        finally:
            self.runners.pop(name, None)
            try:
                projection.close()
            except Exception:
                log.exception("projection %s: closing its store failed", name)
        return None

    def _fail(self, name: str, error: BaseException) -> None:
        log.critical("projection %s: host error; stopping the host", name, exc_info=error)
        self.failures[name] = error
        self.stop_event.set()

    def start(self) -> None:
        for name in self.names:
            thread = threading.Thread(target=self._run, args=(name,), name=f"projection-{name}")
            thread.start()
            self._threads[name] = thread

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self._threads.values():
            thread.join(timeout)

    def liveness_problem(self) -> str | None:
        """Why the host is dead (a host error, or a projection thread that ended while the
        host runs), or None. A projection waiting out a store's outage is not dead.

        Probes call this from their own threads: the dicts are copied before iterating.
        """
        failures = list(self.failures.items())
        if failures:
            return "; ".join(
                f"projection {name} failed: {type(error).__name__}: {error}"
                for name, error in failures
            )
        if self.stop_event.is_set():
            return None
        threads = list(self._threads.items())
        ended = [name for name, thread in threads if not thread.is_alive()]
        if ended:
            return f"projection threads ended: {', '.join(ended)}"
        return None

    def readiness_problem(self) -> str | None:
        """Why the host is not ready, or None: not started, a projection connecting or
        waiting out a failure, or one further behind the log than `ready_max_lag`."""
        dead = self.liveness_problem()
        if dead is not None:
            return dead
        if not self._threads:
            return "projections not started"
        problems = []
        for name in self.names:
            state = self.states[name]
            runner = self.runners.get(name)
            if state.restart_at is not None and state.last_error is not None:
                wait_s = max(0.0, state.restart_at - time.monotonic())
                problems.append(
                    f"projection {name} restarts in {wait_s:.0f}s after "
                    f"{type(state.last_error).__name__}: {state.last_error}"
                )
            elif runner is None:
                problems.append(f"projection {name} starting")
            else:
                behind = runner.lag_total()
                limit = self.settings.projections.ready_max_lag
                if behind is not None and behind > limit:
                    problems.append(f"projection {name} is {behind} messages behind (> {limit})")
        return "; ".join(problems) or None

    def lags(self) -> dict[str, int | None]:
        """Messages each running projection has yet to apply (None: not measured yet)."""
        runners = dict(self.runners)
        return {name: (r.lag_total() if (r := runners.get(name)) else None) for name in self.names}

    def restart_counts(self) -> dict[str, int]:
        return {name: state.restarts for name, state in self.states.items()}

    def raise_failures(self) -> None:
        if self.failures:
            names = ", ".join(self.failures)
            first = next(iter(self.failures.values()))
            raise RuntimeError(f"projections failed: {names}") from first
