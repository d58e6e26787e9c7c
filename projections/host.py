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
        self.failures: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self.runners: dict[str, ProjectionRunner] = {}

    def _run(self, name: str) -> None:
        projection = build_projection(name, self.settings, self.qdrant)
        codec = AvroCodec(HttpSchemaRegistry(self.settings.registry))
        runner = ProjectionRunner(
            projection, self.settings, codec, EventPublisher(self.settings.kafka, codec)
        )
        self.runners[name] = runner
        try:
            runner.run(self.stop_event)
        except BaseException as error:
            log.exception("projection %s failed; stopping the host", name)
            self.failures.append(error)
            self.stop_event.set()
        finally:
            projection.close()

    def start(self) -> None:
        for name in self.names:
            thread = threading.Thread(target=self._run, args=(name,), name=f"projection-{name}")
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)

    def raise_failures(self) -> None:
        if self.failures:
            raise RuntimeError(f"{len(self.failures)} projection(s) failed") from self.failures[0]
