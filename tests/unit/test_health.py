"""The probe server, over real HTTP on a free loopback port."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import Counter

from tests.ports import free_port
from visionlog.health import (
    HealthServer,
    Heartbeat,
    Readiness,
    serving_health,
    start_health_server,
)
from visionlog.settings import HealthSettings, Settings

PROBES_SEEN = Counter("visionlog_test_health_probes", "A metric registered by the health test.")


class FakeClock:
    """A clock the test moves by hand, so staleness needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    server: HealthServer
    clock: FakeClock
    heartbeat: Heartbeat
    readiness: Readiness

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.server.url}{path}", timeout=5.0)


@pytest.fixture
def served() -> Iterator[Served]:
    clock = FakeClock()
    heartbeat = Heartbeat(clock)
    readiness = Readiness("warming up")
    settings = HealthSettings(port=free_port(), stale_after_s=30.0)
    server = start_health_server(settings, heartbeat, readiness)
    assert server is not None
    with server:
        yield Served(server, clock, heartbeat, readiness)


def test_liveness_is_ok_while_the_heartbeat_is_fresh_and_503_when_stale(served: Served) -> None:
    served.clock.now += 29.0
    fresh = served.get("/healthz")
    assert fresh.status_code == 200
    assert fresh.json() == {"status": "ok"}

    served.clock.now += 2.0
    stale = served.get("/healthz")
    assert stale.status_code == 503
    body = stale.json()
    assert body["status"] == "stale"
    assert body["heartbeat_age_s"] == pytest.approx(31.0)
    assert body["stale_after_s"] == 30.0
    assert "no heartbeat for 31.0s" in body["reason"]

    served.heartbeat.beat()
    assert served.get("/healthz").status_code == 200


def test_readiness_follows_the_check(served: Served) -> None:
    before = served.get("/readyz")
    assert before.status_code == 503
    assert before.json() == {"status": "not_ready", "reason": "warming up"}

    served.readiness.mark_ready()
    after = served.get("/readyz")
    assert after.status_code == 200
    assert after.json() == {"status": "ready"}

    served.readiness.mark_not_ready("draining")
    assert served.get("/readyz").json()["reason"] == "draining"


def test_a_check_that_raises_answers_503_with_the_error_and_the_server_stays_up() -> None:
    def broken_store() -> str | None:
        raise ConnectionError("store unreachable")

    settings = HealthSettings(port=free_port())
    server = start_health_server(settings, Heartbeat(), broken_store, alive=broken_store)
    assert server is not None
    with server:
        ready = httpx.get(f"{server.url}/readyz", timeout=5.0)
        assert ready.status_code == 503
        assert ready.json()["reason"] == (
            "readiness check failed: ConnectionError: store unreachable"
        )
        live = httpx.get(f"{server.url}/healthz", timeout=5.0)
        assert live.status_code == 503
        assert live.json()["status"] == "failing"
        assert "ConnectionError: store unreachable" in live.json()["reason"]
        # Still serving after the failures.
        assert httpx.get(f"{server.url}/metrics", timeout=5.0).status_code == 200


def test_liveness_fails_when_the_liveness_check_names_a_problem() -> None:
    problem: list[str] = []
    settings = HealthSettings(port=free_port())
    server = start_health_server(
        settings, Heartbeat(), lambda: None, alive=lambda: problem[0] if problem else None
    )
    assert server is not None
    with server:
        assert httpx.get(f"{server.url}/healthz", timeout=5.0).status_code == 200
        problem.append("projection threads ended: postgres")
        answer = httpx.get(f"{server.url}/healthz", timeout=5.0)
        assert answer.status_code == 503
        assert answer.json()["reason"] == "projection threads ended: postgres"


def test_metrics_serve_the_default_registry(served: Served) -> None:
    PROBES_SEEN.inc(3)
    answer = served.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "visionlog_test_health_probes_total 3.0" in answer.text


def test_unknown_paths_are_404(served: Served) -> None:
    answer = served.get("/nope")
    assert answer.status_code == 404
    assert json.loads(answer.text)["path"] == "/nope"
    # Query strings do not change the route.
    assert served.get("/healthz?verbose=1").status_code == 200


def test_probes_are_answered_concurrently_and_close_frees_the_port() -> None:
    port = free_port()
    settings = HealthSettings(port=port)
    server = start_health_server(settings, Heartbeat(), lambda: None)
    assert server is not None
    codes: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: codes.append(httpx.get(f"{server.url}/readyz", timeout=5.0).status_code)
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 8
    server.close()
    # The port is free again: a restarted process binds it at once.
    again = start_health_server(settings, Heartbeat(), lambda: None)
    assert again is not None
    again.close()


def test_port_zero_turns_the_server_off() -> None:
    assert start_health_server(HealthSettings(port=0), Heartbeat(), lambda: None) is None


def test_serving_health_closes_the_port_when_the_block_ends() -> None:
    settings = HealthSettings(port=free_port())
    with serving_health(settings, Heartbeat(), lambda: None) as server:
        assert server is not None
        assert httpx.get(f"{server.url}/readyz", timeout=5.0).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/readyz", timeout=5.0)
    with serving_health(HealthSettings(port=0), Heartbeat(), lambda: None) as off:
        assert off is None


def test_a_taken_port_fails_loudly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(OSError):
            start_health_server(HealthSettings(port=port), Heartbeat(), lambda: None)


def test_health_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).health == HealthSettings()  # type: ignore[call-arg]
    monkeypatch.setenv("VISIONLOG_HEALTH__HOST", "0.0.0.0")
    monkeypatch.setenv("VISIONLOG_HEALTH__PORT", "8081")
    monkeypatch.setenv("VISIONLOG_HEALTH__STALE_AFTER_S", "45")
    health = Settings(_env_file=None).health  # type: ignore[call-arg]
    assert (health.host, health.port, health.stale_after_s) == ("0.0.0.0", 8081, 45.0)
