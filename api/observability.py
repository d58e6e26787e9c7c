"""Request metrics by route template, and the last line of defence for unexpected errors."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "visionlog_api_requests_total",
    "HTTP requests answered by the API, by method, route template and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "visionlog_api_request_duration_seconds",
    "Time to answer an HTTP request (until the handler returned), by route template.",
    ["method", "route"],
)


def route_template(scope: Scope) -> str:
    # The router stores the matched route in the scope; unmatched paths share one label so
    # scanners cannot blow up the label cardinality.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False

        async def observe(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, observe)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if response_started:
                raise
            status = 500
            response = problem_response(
                500,
                "internal_error",
                "Internal server error",
                "an unexpected error occurred; it has been logged",
            )
            await response(scope, receive, send)
        finally:
            method = str(scope.get("method", ""))
            template = route_template(scope)
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
