"""`visionlog api serve`: the query API under uvicorn.

With embedded Qdrant only one process may open the store, so this process then also hosts
the Qdrant projection (a thread with its own consumer) and shares its client with the API.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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


@app.command("serve")
def serve(host: str | None = None, port: int | None = None, loglevel: str = "info") -> None:
    """Serve the API (and, with embedded Qdrant, its projection) until SIGTERM."""
    configure_logging(get_settings(), "api")
    logging.getLogger().setLevel(loglevel.upper())
    settings = get_settings()
    uvicorn.run(
        build_served_app(settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level=loglevel,
        proxy_headers=True,
    )
