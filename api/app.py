"""The query API's application factory: `create_app()` wires stores, auth and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from qdrant_client import QdrantClient
from starlette.concurrency import run_in_threadpool

from api.accepted import AcceptedUploads
from api.auth.bootstrap import ensure_admin
from api.auth.dependencies import Uploader, require
from api.auth.keys import load_signing_key
from api.auth.roles import Permission
from api.auth.store import AUTH_SCHEMA, AuthStore
from api.auth.tokens import TokenService
from api.context import ApiContext, api_pool
from api.observability import ObservabilityMiddleware
from api.problems import Problem, install_problem_handlers, problem_responses
from api.rebind import rebound_router
from api.responses import TtlCache
from api.routes import admin, auth, health, media, search
from producers import http as ingest_http
from producers.ingest import Ingestor
from visionlog import stores
from visionlog.blobstore import BlobStore
from visionlog.settings import Settings, get_settings

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
# Answers any operation may give: bad parameters, an unexpected error, a store down.
_GLOBAL_PROBLEMS = (
    ("422", "Validation error"),
    ("500", "Unexpected error"),
    ("503", "A store is unreachable or a read model is not built yet"),
)


def build_context(
    settings: Settings,
    *,
    qdrant: QdrantClient | None = None,
    ingestor: Ingestor | None = None,
    auth_schema: str = AUTH_SCHEMA,
) -> ApiContext:
    qdrant_factory: Callable[[], QdrantClient]
    if qdrant is not None:
        given = qdrant
        qdrant_factory = lambda: given  # noqa: E731
    else:
        qdrant_factory = lambda: stores.qdrant_client(settings)  # noqa: E731
    pool = api_pool(settings)
    return ApiContext(
        settings=settings,
        pool=pool,
        auth=AuthStore(settings, auth_schema, pool),
        tokens=TokenService(load_signing_key(settings), settings.api),
        blobs=BlobStore.from_settings(settings.minio),
        mongo=stores.mongo_client(settings),
        qdrant_factory=qdrant_factory,
        accepted=AcceptedUploads(pool, auth_schema, settings.projections.postgres_schema),
        ingestor=ingestor,
        details=TtlCache(settings.api.detail_cache_ttl_s),
    )


def _prepare_auth(context: ApiContext) -> None:
    context.auth.migrate()
    username, generated = ensure_admin(context.settings, store=context.auth)
    if generated:
        log.warning("bootstrapped the admin %r with a generated password", username)


def create_app(
    settings: Settings | None = None,
    *,
    qdrant: QdrantClient | None = None,
    ingestor: Ingestor | None = None,
    auth_schema: str = AUTH_SCHEMA,
) -> FastAPI:
    """The API. Startup applies the auth migrations and creates the admin if none exists;
    a Qdrant client passed in is shared and left open, one opened here is closed."""
    settings = settings or get_settings()
    context = build_context(settings, qdrant=qdrant, ingestor=ingestor, auth_schema=auth_schema)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_prepare_auth, context)
        yield
        context.close(close_qdrant=qdrant is None)

    app = FastAPI(
        title="visionlog API",
        version=API_VERSION,
        summary="Media, analysis results and search over the visionlog read models.",
        lifespan=lifespan,
    )
    app.state.context = context
    install_problem_handlers(app)
    app.add_middleware(ObservabilityMiddleware)

    def owner_from_principal(principal: Uploader) -> ingest_http.Uploader:
        return ingest_http.Uploader(tenant_id=principal.tenant_id, owner_id=principal.user_id)

    def ingestor_from_context() -> Ingestor:
        return context.get_ingestor()

    def listener_from_context() -> ingest_http.AcceptedListener:
        return context.accepted.listener

    # Replaced in the routes' signatures, not through `app.dependency_overrides`: any
    # override makes FastAPI rebuild every request's dependency tree (see api.rebind).
    ingest_router = rebound_router(
        ingest_http.router,
        {
            ingest_http.current_owner: owner_from_principal,
            ingest_http.get_ingestor: ingestor_from_context,
            ingest_http.accepted_listener: listener_from_context,
        },
    )

    app.include_router(health.router)
    app.include_router(auth.router)
    # The dependency documents the upload's security in the OpenAPI; the override of
    # `current_owner` enforces the same permission and supplies the owner.
    app.include_router(
        ingest_router,
        prefix="/v1",
        dependencies=[Depends(require(Permission.UPLOAD))],
        responses=problem_responses(401, 403),
    )
    app.include_router(media.router)
    app.include_router(search.router)
    app.include_router(admin.router)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Adds the shared Problem schema and the 422/500 problem answers to the OpenAPI."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema()
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                for status, description in _GLOBAL_PROBLEMS:
                    entry = responses.setdefault(status, {"description": description})
                    entry["content"] = {"application/problem+json": {"schema": problem_ref}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
