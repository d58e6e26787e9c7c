"""Connections to the read-model stores, configured from the one settings object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pymongo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from qdrant_client import QdrantClient

from visionlog.settings import Settings

MongoClient = pymongo.MongoClient[dict[str, Any]]
PgConnection = psycopg.Connection[dict[str, Any]]


def postgres_connect(settings: Settings, *, autocommit: bool = False) -> PgConnection:
    return psycopg.connect(
        settings.postgres.conninfo(),
        autocommit=autocommit,
        row_factory=dict_row,
        connect_timeout=10,
    )


def postgres_pool(settings: Settings, *, max_size: int = 16) -> ConnectionPool[PgConnection]:
    """A pool for request handlers: SCRAM authentication costs milliseconds of CPU per
    connection, more than most read-model queries."""
    return ConnectionPool(
        settings.postgres.conninfo(),
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "connect_timeout": 10},
        open=True,
        timeout=30,
    )


def mongo_client(settings: Settings) -> MongoClient:
    return pymongo.MongoClient(
        settings.mongo.uri.get_secret_value(), serverSelectionTimeoutMS=10_000, tz_aware=True
    )


def qdrant_client(settings: Settings, path: Path | None = None) -> QdrantClient:
    """A server client when a URL is set, else the embedded store (one process at a time)."""
    if settings.qdrant.url:
        api_key = settings.qdrant.api_key.get_secret_value() if settings.qdrant.api_key else None
        return QdrantClient(url=settings.qdrant.url, api_key=api_key, timeout=30)
    return QdrantClient(path=str(path or settings.qdrant_path))
