"""`visionlog api serve`: the query API under uvicorn.

With embedded Qdrant only one process may open the store, so this process then also hosts
the Qdrant projection (a thread with its own consumer) and shares its client with the API.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import typer
import uvicorn
from fastapi import FastAPI

from projections.host import ProjectionHost, qdrant_hosted_by_api
from visionlog.observability.logs import configure_logging
from visionlog.settings import Settings, get_settings
from visionlog.stores import qdrant_client

app = typer.Typer(help="The query API.", no_args_is_help=True)
log = logging.getLogger(__name__)


def build_served_app(settings: Settings) -> FastAPI:
    from api.app import create_app

    client = qdrant_client(settings)
    api = create_app(settings, qdrant=client)
    host = (
        ProjectionHost(settings, ["qdrant"], qdrant=client)
        if qdrant_hosted_by_api(settings)
        else None
    )
    inner = api.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        if host is not None:
            host.start()
            log.info("hosting the Qdrant projection in the API process")
        try:
            async with inner(application):
                yield
        finally:
            if host is not None:
                host.stop()
            client.close()

    api.router.lifespan_context = lifespan
    return api


def served_app() -> FastAPI:
    """The app of one worker process (uvicorn's factory when there are several)."""
    settings = get_settings()
    configure_logging(settings, "api")
    return build_served_app(settings)


def worker_count(settings: Settings) -> int:
    """`settings.api.workers`, honoured only where no worker opens embedded Qdrant or hosts
    its projection (a Qdrant server, and its projection run elsewhere); else 1."""
    wanted = max(1, settings.api.workers)
    if wanted > 1 and (settings.qdrant_embedded or qdrant_hosted_by_api(settings)):
        log.warning(
            "api.workers=%d ignored: with embedded Qdrant (or its projection in the API)"
            " one API process serves",
            wanted,
        )
        return 1
    return wanted


@app.command("serve")
def serve(host: str | None = None, port: int | None = None, loglevel: str = "info") -> None:
    """Serve the API (and, with embedded Qdrant, its projection) until SIGTERM."""
    configure_logging(get_settings(), "api")
    logging.getLogger().setLevel(loglevel.upper())
    settings = get_settings()
    workers = worker_count(settings)
    # uvloop and httptools (dependencies) are cheaper per request than asyncio and h11;
    # named explicitly so a missing one shows in the log line rather than as slowness.
    options: dict[str, Any] = {
        "host": host or settings.api.host,
        "port": port or settings.api.port,
        "log_level": loglevel,
        "proxy_headers": True,
        "loop": "uvloop" if _installed("uvloop") else "asyncio",
        "http": "httptools" if _installed("httptools") else "h11",
    }
    if workers > 1:
        uvicorn.run("api.serve:served_app", factory=True, workers=workers, **options)
    else:
        uvicorn.run(build_served_app(settings), **options)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
