"""Hosts live projections as threads of one process, each with its own consumer.

A thread whose runner fails (a store down for longer than the retries) stops the host's
other projections too: the supervisor restarts the process, and every projection resumes
from its recorded position.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from qdrant_client import QdrantClient

from projections.runtime import Projection, ProjectionRunner
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import Settings

log = logging.getLogger(__name__)

PROJECTION_NAMES = ("postgres", "mongo", "qdrant")


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


class ProjectionHost:
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
        self.failures: dict[str, BaseException] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.runners: dict[str, ProjectionRunner] = {}

    def _run(self, name: str) -> None:
        try:
            # Building connects to the store and migrates: a failure there stops the
            # host like a failing runner, rather than leaving a dead thread behind.
            projection = build_projection(name, self.settings, self.qdrant)
        except BaseException as error:
            self._fail(name, error)
            return
        try:
            codec = AvroCodec(HttpSchemaRegistry(self.settings.registry))
            runner = ProjectionRunner(
                projection, self.settings, codec, EventPublisher(self.settings.kafka, codec)
            )
            self.runners[name] = runner
            runner.run(self.stop_event)
        except BaseException as error:
            self._fail(name, error)
        finally:
            projection.close()

    def _fail(self, name: str, error: BaseException) -> None:
        log.exception("projection %s failed; stopping the host", name, exc_info=error)
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
        """Why the host is dead (a projection failed or its thread ended), or None.

        Probes call this from their own threads: the dicts are copied before iterating.
        """
        failures = list(self.failures.items())
        if failures:
            return "; ".join(
                f"projection {name} failed: {type(error).__name__}: {error}"
                for name, error in failures
            )
        threads = list(self._threads.items())
        ended = [name for name, thread in threads if not thread.is_alive()]
        if ended:
            return f"projection threads ended: {', '.join(ended)}"
        return None

    def readiness_problem(self) -> str | None:
        """Why the host is not ready (not started, a projection still connecting), or None."""
        dead = self.liveness_problem()
        if dead is not None:
            return dead
        if not self._threads:
            return "projections not started"
        starting = [name for name in self.names if name not in self.runners]
        if starting:
            return f"projections starting: {', '.join(starting)}"
        return None

    def raise_failures(self) -> None:
        if self.failures:
            names = ", ".join(self.failures)
            first = next(iter(self.failures.values()))
            raise RuntimeError(f"projections failed: {names}") from first
