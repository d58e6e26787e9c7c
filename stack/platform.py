"""The platform's own processes on the local stack: processors, projections, reprocess
worker and API, each with a pid file and a log under the state directory, kept running by
one detached supervisor (`stack.supervisor`) that restarts any that exits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from stack import supervisor
from stack.process import pid_alive, read_pid, terminate
from stack.supervisor import Child, children_from_json
from visionlog.settings import Settings

# Names a JSON file of stand-in children for the supervisor (tests); see supervised_children.
CHILDREN_ENV = "VISIONLOG_PLATFORM_CHILDREN"


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

    def child(self, settings: Settings) -> Child:
        return Child(
            name=self.name,
            command=(sys.executable, "-m", "stack.cli", *self.argv),
            pid_file=self.pid_file(settings),
            log_file=self.log_file(settings),
            marker=self.marker,
            nice=self.nice,
        )


PROCESSES: tuple[PlatformProcess, ...] = (
    PlatformProcess("processors", ("processors", "run")),
    # Read models keep up at the live worker's priority (see FerretDBService.nice).
    PlatformProcess("projections", ("projections", "run")),
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
    # What the supervisor's status file says (epoch seconds; None when unknown).
    started_at: float | None = None
    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: float | None = None

    def uptime_s(self, now: float | None = None) -> float | None:
        if not self.running or self.started_at is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.started_at)


@dataclass
class SupervisorStatus:
    pid: int | None
    running: bool
    # "starting", "running", "stopping", "stopped" or "died" (not running, yet its status
    # file was not closed as stopped); None when there never was one.
    state: str | None
    started_at: float | None
    log: Path


# The supervisor stops each child with `terminate(pid, 30)` in turn; its own stop waits for
# all of them before it resorts to SIGKILL (the children are then stopped one by one).
SUPERVISOR_STOP_TIMEOUT_S = 30.0 * len(PROCESSES) + 15.0
# How long `start_platform` waits for the supervisor to report every child's pid.
SUPERVISOR_START_TIMEOUT_S = 30.0


def supervised_children(settings: Settings) -> list[Child]:
    """The processes the supervisor keeps running: the platform's, or (for tests) the list
    in the JSON file that VISIONLOG_PLATFORM_CHILDREN names."""
    override = os.environ.get(CHILDREN_ENV)
    if override:
        return children_from_json(Path(override).read_text(), settings.state_dir)
    return [process.child(settings) for process in PROCESSES]


def _supervisor_pid(settings: Settings) -> int | None:
    pid = read_pid(supervisor.pid_path(settings.state_dir))
    return pid if pid_alive(pid, supervisor.MARKER) else None


def supervisor_status(settings: Settings) -> SupervisorStatus:
    pid = _supervisor_pid(settings)
    status = supervisor.read_status(settings.state_dir) or {}
    own = status.get("supervisor", {})
    current = pid is not None and own.get("pid") == pid
    if current:
        state = own.get("state")
    elif pid is not None:
        state = "starting"  # it has not written its status yet
    elif own and own.get("state") != "stopped":
        state = "died"  # killed or crashed: its children, if any, run unsupervised
    else:
        state = "stopped" if own else None
    return SupervisorStatus(
        pid=pid,
        running=pid is not None,
        state=state,
        started_at=own.get("started_at") if current else None,
        log=supervisor.log_path(settings.state_dir),
    )


def _row(child: Child, entry: dict[str, Any]) -> ProcessStatus:
    pid = read_pid(child.pid_file)
    running = pid_alive(pid, child.marker)
    started_at = None
    if running:
        # The status file's start time when it describes this pid; else the kernel's.
        known = entry.get("pid") == pid and entry.get("started_at") is not None
        started_at = entry["started_at"] if known else supervisor.process_started_at(pid)
    last_exit = None
    if entry.get("last_exit_at") is not None:
        last_exit = supervisor.describe_exit(
            entry.get("last_exit_code"), entry.get("last_exit_signal")
        )
    return ProcessStatus(
        name=child.name,
        pid=pid if running else None,
        running=running,
        started=False,
        log=child.log_file,
        started_at=started_at,
        restarts=int(entry.get("restarts", 0)),
        last_exit=last_exit,
        last_exit_at=entry.get("last_exit_at"),
    )


def platform_status(settings: Settings) -> list[ProcessStatus]:
    """Each platform process as its pid file and the supervisor's status file tell it."""
    entries = (supervisor.read_status(settings.state_dir) or {}).get("processes", {})
    return [_row(child, entries.get(child.name, {})) for child in supervised_children(settings)]


def start_platform(settings: Settings) -> list[ProcessStatus]:
    """Start the platform supervisor, which starts every platform process (idempotent: with
    a supervisor running nothing new starts). A process already running from an older
    layout is adopted by the supervisor, not started twice; `started` tells them apart."""
    if _supervisor_pid(settings) is not None:
        return platform_status(settings)
    running_before = {row.name for row in platform_status(settings) if row.running}
    state_dir = settings.state_dir
    log_file = supervisor.log_path(state_dir)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        # Its own session: it outlives the CLI, and a signal to the CLI's group spares it.
        process = subprocess.Popen(
            [sys.executable, "-m", "stack.supervisor"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "VISIONLOG_STATE_DIR": str(state_dir)},
            start_new_session=True,
        )
    deadline = time.monotonic() + SUPERVISOR_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _all_reported(settings, process.pid):
            break
        if process.poll() is not None:
            if process.returncode == 0 and _supervisor_pid(settings) is not None:
                # Another start won the race; its supervisor is in charge.
                return platform_status(settings)
            tail = log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"the platform supervisor exited with code {process.returncode}:\n{tail}"
            )
        time.sleep(0.1)
    else:
        raise RuntimeError(
            f"the platform supervisor (pid {process.pid}) did not report its processes "
            f"within {SUPERVISOR_START_TIMEOUT_S:.0f}s; see {log_file}"
        )
    rows = platform_status(settings)
    for row in rows:
        row.started = row.name not in running_before
    return rows


def _all_reported(settings: Settings, supervisor_pid: int) -> bool:
    """The supervisor `supervisor_pid` has started (or tried to start) every child."""
    status = supervisor.read_status(settings.state_dir) or {}
    if status.get("supervisor", {}).get("pid") != supervisor_pid:
        return False
    entries = status.get("processes", {})

    def reported(child: Child) -> bool:
        entry = entries.get(child.name, {})
        # Running once it has exec'd (until then its command line is the supervisor's), or
        # failed and waiting for its restart.
        return pid_alive(entry.get("pid"), child.marker) or entry.get("last_exit_at") is not None

    return all(reported(child) for child in supervised_children(settings))


def stop_platform(settings: Settings) -> list[str]:
    """Stop the supervisor, which stops the platform processes (API first, processors
    last), then any process left without one (an older layout, or a supervisor that had to
    be killed); returns the names of what was stopped."""
    children = supervised_children(settings)
    running = {row.name for row in platform_status(settings) if row.running}
    stopped: list[str] = []
    pid = _supervisor_pid(settings)
    if pid is not None:
        terminate(pid, timeout=SUPERVISOR_STOP_TIMEOUT_S)
        stopped.append(supervisor.NAME)
    for child in reversed(children):
        child_pid = read_pid(child.pid_file)
        if pid_alive(child_pid, child.marker) and child_pid is not None:
            terminate(child_pid, timeout=30)
            running.add(child.name)
        child.pid_file.unlink(missing_ok=True)
    stopped.extend(child.name for child in reversed(children) if child.name in running)
    supervisor.pid_path(settings.state_dir).unlink(missing_ok=True)
    return stopped


def api_base_url(settings: Settings) -> str:
    return settings.api.public_url or f"http://{settings.api.host}:{settings.api.port}"


# Exits of the API while `wait_for_api` waits after which it gives up (a crash loop: a
# taken port or a bad setting) rather than waiting out its timeout.
API_EXITS_TOLERATED = 2


def _api_row(settings: Settings) -> ProcessStatus | None:
    return next((row for row in platform_status(settings) if row.name == "api"), None)


def _serving_behind(response: httpx.Response) -> bool:
    """Not ready only because a read model is behind: every store answers, so the API
    serves (what it shows catches up); a platform start need not wait for the backlog."""
    if response.status_code != 503:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    checks = body.get("checks") or {}
    return bool(body.get("lag")) and bool(checks) and all(c.get("ok") for c in checks.values())


def wait_for_api(settings: Settings, timeout_s: float = 180.0) -> None:
    """Wait until the API answers /readyz with 200 (or is not ready only because a read
    model is behind); raise with the log's tail otherwise, or as soon as nothing would
    restart it or it keeps exiting."""
    url = f"{api_base_url(settings)}/readyz"
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    api = next(p for p in PROCESSES if p.name == "api")
    first = _api_row(settings)
    restarts_before = first.restarts if first is not None else 0
    while time.monotonic() < deadline:
        row = _api_row(settings)
        if row is not None and not row.running and _supervisor_pid(settings) is None:
            last = "the API is not running and no supervisor restarts it"
            break
        if row is not None and row.restarts - restarts_before > API_EXITS_TOLERATED:
            last = f"the API exited {row.restarts - restarts_before} times ({row.last_exit})"
            break
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200 or _serving_behind(response):
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(1.0)
    log = api.log_file(settings)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"the API did not become ready at {url}: {last}\n{tail}")
