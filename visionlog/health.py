"""Liveness, readiness and metrics endpoints of a long-running worker process.

Kubernetes probes `GET /healthz` (liveness: restart the process when it fails) and
`GET /readyz` (readiness), and Prometheus scrapes `GET /metrics`. The server is the
standard library's, in a daemon thread, so it answers even while the process's main loop
is stuck: exactly what liveness must detect, through a heartbeat the main loop beats.

Checks answer `None` when all is well and otherwise a short reason, which the probe
returns with its 503.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from visionlog.settings import HealthSettings

log = logging.getLogger(__name__)

# None: healthy (or ready); a string: why not.
HealthCheck = Callable[[], str | None]


class Heartbeat:
    """When the process's main loop last showed it makes progress.

    A fresh heartbeat counts as a beat: a process is alive while it starts up.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()

    def beat(self) -> None:
        now = self._clock()
        with self._lock:
            self._last = now

    def age(self) -> float:
        """Seconds since the last beat."""
        with self._lock:
            last = self._last
        return max(0.0, self._clock() - last)


class Readiness:
    """A readiness flag: not ready, with a reason, until marked ready. Usable as a check."""

    def __init__(self, reason: str = "starting") -> None:
        self._lock = threading.Lock()
        self._reason: str | None = reason

    def mark_ready(self) -> None:
        with self._lock:
            self._reason = None

    def mark_not_ready(self, reason: str) -> None:
        with self._lock:
            self._reason = reason

    @property
    def ready(self) -> bool:
        return self() is None

    def __call__(self) -> str | None:
        with self._lock:
            return self._reason


@dataclass(frozen=True)
class ProbeAnswer:
    status: HTTPStatus
    body: dict[str, Any]


def _run_check(check: HealthCheck, what: str) -> str | None:
    """The check's reason; a check that raises reports its error instead of crashing."""
    try:
        return check()
    except Exception as exc:  # the probe turns red with the error; the server stays up
        log.warning("%s check raised", what, exc_info=True)
        return f"{what} check failed: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Probes:
    """The answers of the probes, apart from HTTP."""

    heartbeat: Heartbeat
    stale_after_s: float
    ready: HealthCheck
    # Beyond the heartbeat: what else makes the process dead (a worker thread that died).
    alive: HealthCheck | None = None
    # Figures readiness shows with its answer, ready or not (a projection's lag).
    details: Callable[[], dict[str, Any]] | None = None

    def liveness(self) -> ProbeAnswer:
        age = self.heartbeat.age()
        if age > self.stale_after_s:
            return ProbeAnswer(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {
                    "status": "stale",
                    "reason": f"no heartbeat for {age:.1f}s (limit {self.stale_after_s:g}s)",
                    "heartbeat_age_s": round(age, 3),
                    "stale_after_s": self.stale_after_s,
                },
            )
        reason = _run_check(self.alive, "liveness") if self.alive is not None else None
        if reason is not None:
            return ProbeAnswer(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"status": "failing", "reason": reason, "heartbeat_age_s": round(age, 3)},
            )
        return ProbeAnswer(HTTPStatus.OK, {"status": "ok"})

    def readiness(self) -> ProbeAnswer:
        reason = _run_check(self.ready, "readiness")
        extra = self._details()
        if reason is not None:
            return ProbeAnswer(
                HTTPStatus.SERVICE_UNAVAILABLE, {"status": "not_ready", "reason": reason, **extra}
            )
        return ProbeAnswer(HTTPStatus.OK, {"status": "ready", **extra})

    def _details(self) -> dict[str, Any]:
        if self.details is None:
            return {}
        try:
            return self.details()
        except Exception as exc:  # the figures are extra: their failure is shown, not fatal
            log.warning("readiness details raised", exc_info=True)
            return {"details_error": f"{type(exc).__name__}: {exc}"}


class _HealthHTTPServer(ThreadingHTTPServer):
    # Probes are short; a request thread must never keep the process from exiting.
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], probes: Probes, registry: CollectorRegistry
    ) -> None:
        super().__init__(address, _HealthRequestHandler)
        self.probes = probes
        self.registry = registry


class _HealthRequestHandler(BaseHTTPRequestHandler):
    server: _HealthHTTPServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                self._send_json(self.server.probes.liveness())
            elif path == "/readyz":
                self._send_json(self.server.probes.readiness())
            elif path == "/metrics":
                metrics = generate_latest(self.server.registry)
                self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, metrics)
            else:
                self._send_json(
                    ProbeAnswer(HTTPStatus.NOT_FOUND, {"status": "not_found", "path": path})
                )
        except Exception:
            log.exception("health endpoint %s failed", path)
            self._send_json(
                ProbeAnswer(HTTPStatus.INTERNAL_SERVER_ERROR, {"status": "error", "path": path})
            )

    def _send_json(self, answer: ProbeAnswer) -> None:
        self._send(answer.status, "application/json", json.dumps(answer.body).encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # A probe every few seconds would flood stderr; access lines go to debug.
        log.debug("%s %s", self.address_string(), format % args)

    def log_error(self, format: str, *args: Any) -> None:
        log.warning("%s %s", self.address_string(), format % args)


class HealthServer:
    """The probe and metrics endpoints, served from a daemon thread until `close()`."""

    def __init__(
        self,
        host: str,
        port: int,
        probes: Probes,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.probes = probes
        self._server = _HealthHTTPServer((host, port), probes, registry)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def start_health_server(
    settings: HealthSettings,
    heartbeat: Heartbeat,
    ready: HealthCheck,
    *,
    alive: HealthCheck | None = None,
    registry: CollectorRegistry = REGISTRY,
    details: Callable[[], dict[str, Any]] | None = None,
) -> HealthServer | None:
    """Serves the probes on `settings.host:settings.port`; None when the port is 0 (off).

    A port that is taken raises `OSError`: a process without its probes must not start.
    """
    if settings.port == 0:
        return None
    probes = Probes(heartbeat, settings.stale_after_s, ready, alive, details)
    server = HealthServer(settings.host, settings.port, probes, registry)
    log.info("health endpoints on %s (/healthz, /readyz, /metrics)", server.url)
    return server


@contextmanager
def serving_health(
    settings: HealthSettings,
    heartbeat: Heartbeat,
    ready: HealthCheck,
    *,
    alive: HealthCheck | None = None,
    details: Callable[[], dict[str, Any]] | None = None,
) -> Iterator[HealthServer | None]:
    """`start_health_server` for the length of a `with` block (None when the port is 0)."""
    server = start_health_server(settings, heartbeat, ready, alive=alive, details=details)
    try:
        yield server
    finally:
        if server is not None:
            server.close()
