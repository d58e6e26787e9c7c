"""The platform's own processes on the local stack: processors, projections, reprocess
worker and API, each detached with a pid file and a log under the state directory."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from stack.process import pid_alive, read_pid, spawn, terminate
from visionlog.settings import Settings


@dataclass(frozen=True)
class PlatformProcess:
    name: str
    argv: tuple[str, ...]
    # CPU priority on a shared host: the read side yields to live camera analysis (the
    # processors supervisor sets each worker kind's own).
    nice: int = 0

    def pid_file(self, settings: Settings) -> Path:
        return settings.state_dir / "run" / f"{self.name}.pid"

    def log_file(self, settings: Settings) -> Path:
        return settings.state_dir / "logs" / f"{self.name}.log"

    @property
    def marker(self) -> str:
        return " ".join(self.argv)


PROCESSES: tuple[PlatformProcess, ...] = (
    PlatformProcess("processors", ("processors", "run")),
    PlatformProcess("projections", ("projections", "run"), nice=5),
    PlatformProcess("reprocess-worker", ("replay", "worker"), nice=15),
    PlatformProcess("api", ("api", "serve")),
)


@dataclass
class ProcessStatus:
    name: str
    pid: int | None
    running: bool
    started: bool
    log: Path


def _running_pid(process: PlatformProcess, settings: Settings) -> int | None:
    pid = read_pid(process.pid_file(settings))
    return pid if pid_alive(pid, process.marker) else None


def start_platform(settings: Settings) -> list[ProcessStatus]:
    """Start every platform process that is not running (idempotent)."""
    rows: list[ProcessStatus] = []
    for process in PROCESSES:
        pid = _running_pid(process, settings)
        started = False
        if pid is None:
            pid = spawn(
                [sys.executable, "-m", "stack.cli", *process.argv],
                pid_file=process.pid_file(settings),
                log_file=process.log_file(settings),
                nice=process.nice,
            )
            started = True
        rows.append(ProcessStatus(process.name, pid, True, started, process.log_file(settings)))
    return rows


def platform_status(settings: Settings) -> list[ProcessStatus]:
    rows = []
    for process in PROCESSES:
        pid = _running_pid(process, settings)
        rows.append(
            ProcessStatus(process.name, pid, pid is not None, False, process.log_file(settings))
        )
    return rows


def stop_platform(settings: Settings) -> list[str]:
    """Stop the platform processes (API first, processors last); returns those stopped."""
    stopped: list[str] = []
    for process in reversed(PROCESSES):
        pid = _running_pid(process, settings)
        if pid is not None:
            terminate(pid, timeout=30)
            stopped.append(process.name)
        process.pid_file(settings).unlink(missing_ok=True)
    return stopped


def api_base_url(settings: Settings) -> str:
    return settings.api.public_url or f"http://{settings.api.host}:{settings.api.port}"


def wait_for_api(settings: Settings, timeout_s: float = 180.0) -> None:
    """Wait until the API answers /readyz with 200; raise with the log's tail otherwise."""
    url = f"{api_base_url(settings)}/readyz"
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    api = next(p for p in PROCESSES if p.name == "api")
    while time.monotonic() < deadline:
        if _running_pid(api, settings) is None:
            break
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(1.0)
    log = api.log_file(settings)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"the API did not become ready at {url}: {last}\n{tail}")
