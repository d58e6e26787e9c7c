"""Liveness, readiness (every store reachable) and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from api.context import ApiContext, get_context
from api.problems import problem_response
from producers.http import PROBLEM_JSON
from visionlog.blobstore import ORIGINALS

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class StoreCheck(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, StoreCheck]
    # Messages each read model has yet to apply (from the brokers and each projection's
    # position); readiness fails above `max_lag`.
    lag: dict[str, int]
    max_lag: int
    lag_error: str | None = None


@router.get("/healthz", response_model=Liveness, summary="The process is alive")
def healthz() -> Liveness:
    return Liveness()


def _check(name: str, context: ApiContext) -> StoreCheck:
    try:
        if name == "postgres":
            context.auth.ping()
        elif name == "mongo":
            context.mongo.admin.command("ping")
        elif name == "minio":
            if not context.blobs.client.bucket_exists(ORIGINALS):
                return StoreCheck(ok=False, detail=f"bucket {ORIGINALS} is missing")
        else:
            context.qdrant.get_collections()
    except Exception as exc:  # readiness reports any failure of a store as its detail
        return StoreCheck(ok=False, detail=f"{type(exc).__name__}: {exc}")
    return StoreCheck(ok=True, detail="reachable")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary=(
        "Every store (PostgreSQL, MongoDB, MinIO, Qdrant) is reachable and no read model is "
        "further behind the log than the configured lag"
    ),
    responses={
        503: {
            "description": (
                "A store is unreachable (`checks` has the detail per store) or a read model "
                "is behind (`lag` per read model, `max_lag` the limit)"
            ),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    },
)
def readyz(context: Annotated[ApiContext, Depends(get_context)]) -> Readiness | JSONResponse:
    checks = {name: _check(name, context) for name in ("postgres", "mongo", "minio", "qdrant")}
    failing = [name for name, check in checks.items() if not check.ok]
    limit = context.settings.projections.ready_max_lag
    # A lag that cannot be measured (the brokers away) is shown; the stores' checks decide.
    reading = context.read_model_lag().reading()
    behind = reading.behind(limit)
    extra = {
        "checks": {name: check.model_dump() for name, check in checks.items()},
        "lag": reading.lags,
        "max_lag": limit,
        "lag_error": reading.error,
    }
    if failing:
        return problem_response(
            503, "not_ready", "Not ready", f"unreachable: {', '.join(failing)}", extra=extra
        )
    if behind:
        detail = ", ".join(f"{name} {lag} messages" for name, lag in sorted(behind.items()))
        return problem_response(
            503, "not_ready", "Not ready", f"read models behind: {detail} (> {limit})", extra=extra
        )
    return Readiness(checks=checks, lag=reading.lags, max_lag=limit, lag_error=reading.error)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics of this process",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics() -> PlainTextResponse:
    return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
