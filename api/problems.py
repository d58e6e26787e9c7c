"""RFC 9457 problem details for every error the API answers with."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import pymongo.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers.http import PROBLEM_JSON, ProblemError

log = logging.getLogger(__name__)

BEARER_CHALLENGE = 'Bearer realm="visionlog"'


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    reason: str


class ApiError(Exception):
    """An error the handlers raise; rendered as problem+json with optional headers."""

    def __init__(
        self,
        status: int,
        reason: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}

    def response(self) -> JSONResponse:
        return problem_response(
            self.status, self.reason, self.title, self.detail, self.headers, self.extra
        )


def problem_response(
    status: int,
    reason: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:visionlog:problem:{reason}",
        "title": title,
        "status": status,
        "detail": detail,
        "reason": reason,
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def unauthorized(detail: str, *, error: str = "invalid_token") -> ApiError:
    challenge = f'{BEARER_CHALLENGE}, error="{error}"'
    return ApiError(
        401,
        "unauthorized",
        "Authentication required",
        detail,
        headers={"WWW-Authenticate": challenge},
    )


def forbidden(detail: str) -> ApiError:
    return ApiError(403, "forbidden", "Permission denied", detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", "Not found", detail)


def bad_request(detail: str) -> ApiError:
    return ApiError(400, "bad_request", "Bad request", detail)


def unavailable(detail: str) -> ApiError:
    return ApiError(503, "unavailable", "Service unavailable", detail)


def _problem_content(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "model": Problem,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json answers."""
    descriptions = {
        400: "Bad request",
        401: "Missing, expired, revoked or forged credentials",
        403: "The principal's role does not allow this",
        404: "Not found (or not visible to this principal)",
        409: "Conflict",
        413: "Payload too large",
        415: "Unsupported media type",
        422: "Validation error",
        500: "Unexpected error",
        503: "A store is unavailable",
    }
    return {status: _problem_content(descriptions[status]) for status in statuses}


_STATUS_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def _json_safe(errors: list[Any]) -> list[dict[str, Any]]:
    safe = []
    for error in errors:
        safe.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return safe


def install_problem_handlers(app: FastAPI) -> None:
    async def api_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def producer_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return exc.response()

    async def http_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        reason = _STATUS_REASONS.get(exc.status_code, f"http_{exc.status_code}")
        title = reason.replace("_", " ").capitalize()
        return problem_response(
            exc.status_code, reason, title, str(exc.detail), dict(exc.headers or {})
        )

    async def validation_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _json_safe(list(exc.errors()))
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem_response(
            422,
            "validation_error",
            "Request validation failed",
            where or "the request is invalid",
            extra={"errors": errors},
        )

    async def store_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # A store that is down or a read model not built yet is a 503, logged with its cause.
        log.error("store unavailable: %s: %s", type(exc).__name__, exc)
        if isinstance(exc, psycopg.errors.UndefinedTable):
            detail = "the read model is not initialised yet; its projection has not run"
        else:
            detail = f"a store is unreachable ({type(exc).__name__})"
        return problem_response(503, "unavailable", "Service unavailable", detail)

    app.add_exception_handler(ApiError, api_problem)
    app.add_exception_handler(psycopg.errors.UndefinedTable, store_unavailable)
    app.add_exception_handler(psycopg.OperationalError, store_unavailable)
    app.add_exception_handler(pymongo.errors.ConnectionFailure, store_unavailable)
    app.add_exception_handler(ProblemError, producer_problem)
    app.add_exception_handler(StarletteHTTPException, http_problem)
    app.add_exception_handler(RequestValidationError, validation_problem)
