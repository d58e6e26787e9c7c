"""What the app holds for its requests: settings and the clients of every store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient

from api.auth.store import AuthStore
from api.auth.tokens import TokenService
from api.lag import ReadModelLag
from api.responses import TtlCache
from visionlog import stores
from visionlog.blobstore import BlobStore
from visionlog.settings import Settings

if TYPE_CHECKING:
    from api.accepted import AcceptedUploads
    from processors.embeddings.text import TextEmbedder
    from producers.ingest import Ingestor
    from visionlog.kafka import EventPublisher


@dataclass
class ReplayJob:
    job_id: str
    kind: str
    store: str
    requested_by: str
    status: str = "running"
    messages: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class ApiContext:
    settings: Settings
    auth: AuthStore
    tokens: TokenService
    blobs: BlobStore
    mongo: stores.MongoClient
    pool: ConnectionPool[stores.PgConnection]
    qdrant_factory: Callable[[], QdrantClient]
    # Uploads accepted and not yet in the read model (read your own writes).
    accepted: AcceptedUploads
    ingestor: Ingestor | None = None
    # Final items' details as sent (JSON), for `settings.api.detail_cache_ttl_s`.
    details: TtlCache = field(default_factory=lambda: TtlCache(0))
    jobs: dict[str, ReplayJob] = field(default_factory=dict)
    _qdrant: QdrantClient | None = None
    _embedder: TextEmbedder | None = None
    _lag: ReadModelLag | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def qdrant(self) -> QdrantClient:
        # Opened on first use: the embedded store admits one process, and most requests
        # never touch it.
        with self._lock:
            if self._qdrant is None:
                self._qdrant = self.qdrant_factory()
            return self._qdrant

    def read_model_lag(self) -> ReadModelLag:
        """The read models' lag, for readiness (measured at most every few seconds)."""
        with self._lock:
            if self._lag is None:
                self._lag = ReadModelLag(self.settings, self.pool, self.mongo, lambda: self.qdrant)
            return self._lag

    def text_embedder(self) -> TextEmbedder:
        with self._lock:
            if self._embedder is None:
                from processors.embeddings.text import get_text_embedder

                self._embedder = get_text_embedder()
            return self._embedder

    def get_ingestor(self) -> Ingestor:
        with self._lock:
            if self.ingestor is None:
                from producers.ingest import Ingestor

                self.ingestor = Ingestor.from_settings(self.settings)
            return self.ingestor

    def publisher(self) -> EventPublisher:
        """The event publisher: the ingestor's (it carries the configured topics)."""
        return self.get_ingestor().publisher

    def pg(self) -> AbstractContextManager[stores.PgConnection]:
        return self.pool.connection()

    def close(self, *, close_qdrant: bool) -> None:
        self.mongo.close()
        self.pool.close()
        if close_qdrant and self._qdrant is not None:
            self._qdrant.close()


def api_pool(settings: Settings) -> ConnectionPool[stores.PgConnection]:
    """The API's PostgreSQL pool. Autocommit: a read is one round trip instead of three
    (BEGIN, the query, COMMIT); what must be atomic opens `conn.transaction()`."""
    return ConnectionPool(
        settings.postgres.conninfo(),
        min_size=min(settings.api.pool_min_size, settings.api.pool_max_size),
        max_size=settings.api.pool_max_size,
        kwargs={"row_factory": dict_row, "connect_timeout": 10, "autocommit": True},
        open=True,
        timeout=30,
    )


async def get_context(request: Request) -> ApiContext:
    # Async, so FastAPI calls it on the event loop instead of handing it to a thread.
    context: ApiContext = request.app.state.context
    return context
