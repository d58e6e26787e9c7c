"""The read models' lag as the API's readiness sees it, measured at most every few seconds
(a probe every second must not become a broker round trip each)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient

from projections.lag import qdrant_generation, read_model_positions
from visionlog import stores
from visionlog.kafka import admin_client
from visionlog.settings import Settings


@dataclass(frozen=True)
class LagReading:
    lags: dict[str, int]
    error: str | None
    measured_at: float

    def behind(self, limit: int) -> dict[str, int]:
        """The read models further behind than `limit` messages."""
        return {name: lag for name, lag in self.lags.items() if lag > limit}


class ReadModelLag:
    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool[stores.PgConnection],
        mongo: stores.MongoClient,
        qdrant: Callable[[], QdrantClient],
        *,
        max_age_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.mongo = mongo
        self.qdrant = qdrant
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._admin: AdminClient | None = None
        self._last: LagReading | None = None

    def reading(self) -> LagReading:
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.measured_at < self.max_age_s:
                return last
            self._last = self._measure()
            return self._last

    def _measure(self) -> LagReading:
        try:
            if self._admin is None:
                self._admin = admin_client(self.settings.kafka)
            with self.pool.connection() as conn:
                lags = read_model_positions(
                    self.settings,
                    self._admin,
                    postgres=conn,
                    mongo=self.mongo,
                    qdrant_generation=qdrant_generation(self.settings, self.qdrant()),
                ).lags()
        except Exception as error:  # shown in the probe's answer; the stores' checks decide
            if isinstance(error, KafkaException):
                # A client that timed out across a broker restart kept timing out: the
                # next reading asks through a new one.
                self._admin = None
            return LagReading({}, f"{type(error).__name__}: {error}", time.monotonic())
        return LagReading(lags, None, time.monotonic())
