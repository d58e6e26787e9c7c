"""Keeps the platform's processes running: one detached supervisor starts each as its child,
restarts one that exits with exponential backoff, writes what it knows to a status file, and
on SIGTERM stops them in reverse order.

Its entry point is `python -m stack.supervisor` (what `stack.platform.start_platform`
spawns) rather than a `visionlog` command: importing the whole CLI takes seconds and holds
about 200 MB for the supervisor's whole life, this module a fraction of both.

The supervisor knows nothing of the platform itself: `stack.platform.supervised_children`
gives the children (the four platform processes, or a list from the file that
VISIONLOG_PLATFORM_CHILDREN names, which the tests use for stand-ins).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.process import pid_alive, read_pid, terminate
from visionlog.priority import child_setup

log = logging.getLogger("stack.supervisor")

NAME = "platform-supervisor"
# What its command line contains (pid_alive's check against a recycled pid).
MARKER = "-m stack.supervisor"


def run_dir(state_dir: Path) -> Path:
    return state_dir / "run"


def status_path(state_dir: Path) -> Path:
    return run_dir(state_dir) / f"{NAME}.json"


def pid_path(state_dir: Path) -> Path:
    return run_dir(state_dir) / f"{NAME}.pid"


def lock_path(state_dir: Path) -> Path:
    return run_dir(state_dir) / f"{NAME}.lock"


def log_path(state_dir: Path) -> Path:
    return state_dir / "logs" / f"{NAME}.log"


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a process that exited: `initial_s` after the first of a run of
    failures, doubling up to `max_s`; a process that stayed up `reset_after_s` or longer
    counts as healthy again, so its next exit waits `initial_s` only."""

    initial_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 60.0

    def failures_after(self, failures: int, uptime_s: float) -> int:
        """Consecutive failures, this exit included."""
        return 1 if uptime_s >= self.reset_after_s else failures + 1

    def delay_s(self, failures: int) -> float:
        """How long to wait before restarting after `failures` consecutive failures."""
        if failures <= 0:
            return 0.0
        # The exponent is bounded: float(2**1100) overflows long after max_s is reached.
        return float(min(self.max_s, self.initial_s * 2.0 ** min(failures - 1, 60)))


@dataclass(frozen=True)
class Child:
    name: str
    command: tuple[str, ...]
    pid_file: Path
    log_file: Path
    # A string of its command line, to tell it from a recycled pid (see `pid_alive`).
    marker: str
    nice: int = 0


def children_from_json(text: str, state_dir: Path) -> list[Child]:
    """Children from a JSON list of {"name", "command", "nice"?}, with pid files and logs
    where the platform's own have theirs."""
    children = []
    for entry in json.loads(text):
        command = tuple(str(part) for part in entry["command"])
        name = str(entry["name"])
        children.append(
            Child(
                name=name,
                command=command,
                pid_file=run_dir(state_dir) / f"{name}.pid",
                log_file=state_dir / "logs" / f"{name}.log",
                marker=str(entry.get("marker") or " ".join(command)),
                nice=int(entry.get("nice", 0)),
            )
        )
    return children


def launch(child: Child) -> subprocess.Popen[bytes]:
    """Start a child in a session of its own (so `terminate` stops its whole process group,
    the processors' workers included) at its nice level, appending to its log."""
    child.log_file.parent.mkdir(parents=True, exist_ok=True)
    child.pid_file.parent.mkdir(parents=True, exist_ok=True)
    nice = child.nice
    with child.log_file.open("ab") as out:
        process = subprocess.Popen(
            list(child.command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=child_setup(nice),
        )
    child.pid_file.write_text(str(process.pid))
    return process


def describe_exit(code: int | None, signal_name: str | None) -> str:
    if signal_name is not None:
        return f"killed by {signal_name}"
    if code is None:
        return "exited (status unknown: not its child)"
    return f"exit code {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass
class ChildState:
    child: Child
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    # Wall clock for the status file; monotonic for the uptime that decides the backoff.
    started_at: float | None = None
    started_mono: float = 0.0
    restarts: int = 0
    failures: int = 0
    last_exit_code: int | None = None
    last_exit_signal: str | None = None
    last_exit_at: float | None = None
    next_start_mono: float | None = None
    next_start_at: float | None = None
    # Found running at the supervisor's start (an older layout, or a previous supervisor
    # that was killed): watched by pid, since only a parent can wait for its exit status.
    adopted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "failures": self.failures,
            "last_exit_code": self.last_exit_code,
            "last_exit_signal": self.last_exit_signal,
            "last_exit_at": self.last_exit_at,
            "next_start_at": self.next_start_at,
            "adopted": self.adopted,
            "command": list(self.child.command),
            "log": str(self.child.log_file),
        }


class Supervisor:
    """Starts the children in order, restarts those that exit, and stops them in reverse."""

    def __init__(
        self,
        children: Sequence[Child],
        status_file: Path,
        *,
        policy: RestartPolicy | None = None,
        poll_s: float = 0.5,
        stop_timeout_s: float = 30.0,
        previous: dict[str, Any] | None = None,
        start: Callable[[Child], subprocess.Popen[bytes]] = launch,
    ) -> None:
        self.states = [ChildState(child) for child in children]
        self.status_file = status_file
        self.policy = policy or RestartPolicy()
        self.poll_s = poll_s
        self.stop_timeout_s = stop_timeout_s
        self.started_at = time.time()
        self.state = "starting"
        self._start = start
        self._previous = (previous or {}).get("processes", {})

    def run(self, stop: threading.Event) -> None:
        self.start_all()
        self.state = "running"
        self.write_status()
        while not stop.wait(self.poll_s):
            if self.poll(time.monotonic()):
                self.write_status()
        self.state = "stopping"
        self.write_status()
        self.stop_all()
        self.state = "stopped"
        self.write_status()

    def start_all(self) -> None:
        now = time.monotonic()
        for state in self.states:
            pid = read_pid(state.child.pid_file)
            if pid_alive(pid, state.child.marker):
                self._adopt(state, pid, now)
            else:
                self._launch(state, now)

    def _adopt(self, state: ChildState, pid: int | None, now: float) -> None:
        earlier = self._previous.get(state.child.name, {})
        known = earlier.get("pid") == pid
        state.pid, state.adopted, state.started_mono = pid, True, now
        state.started_at = earlier.get("started_at") if known else process_started_at(pid)
        state.restarts = int(earlier.get("restarts", 0)) if known else 0
        log.info("%s is already running (pid %s): watching it", state.child.name, pid)

    def _launch(self, state: ChildState, now: float) -> None:
        state.next_start_mono = state.next_start_at = None
        try:
            state.process = self._start(state.child)
        except (OSError, subprocess.SubprocessError):
            # A missing program, a full disk or a failed nice: a failure, retried with backoff.
            log.exception("%s could not be started", state.child.name)
            self._exited(state, now, code=None, signal_name=None)
            return
        state.pid = state.process.pid
        state.adopted = False
        state.started_at, state.started_mono = time.time(), now
        log.info("%s started (pid %s, restart %d)", state.child.name, state.pid, state.restarts)

    def poll(self, now: float) -> bool:
        """Notice exits and restart what is due; True when something changed."""
        changed = False
        for state in self.states:
            if state.pid is not None:
                ended = self._ended(state)
                if ended is not None:
                    self._exited(state, now, *ended)
                    changed = True
            elif state.next_start_mono is not None and now >= state.next_start_mono:
                state.restarts += 1
                self._launch(state, now)
                changed = True
        return changed

    def _ended(self, state: ChildState) -> tuple[int | None, str | None] | None:
        """(exit code, signal name) when the child has exited, else None."""
        if state.process is not None:
            code = state.process.poll()
            if code is None:
                return None
            return (None, _signal_name(-code)) if code < 0 else (code, None)
        if pid_alive(state.pid, state.child.marker):
            return None
        return (None, None)

    def _exited(
        self, state: ChildState, now: float, code: int | None, signal_name: str | None
    ) -> None:
        uptime = now - state.started_mono if state.pid is not None else 0.0
        state.failures = self.policy.failures_after(state.failures, uptime)
        delay = self.policy.delay_s(state.failures)
        state.last_exit_code, state.last_exit_signal = code, signal_name
        state.last_exit_at = time.time()
        state.next_start_mono, state.next_start_at = now + delay, state.last_exit_at + delay
        if state.pid is not None:
            log.warning(
                "%s (pid %s) %s after %.1fs up; restarting in %.1fs (failure %d in a row)",
                state.child.name,
                state.pid,
                describe_exit(code, signal_name),
                uptime,
                delay,
                state.failures,
            )
        state.process, state.pid = None, None
        state.child.pid_file.unlink(missing_ok=True)

    def stop_all(self) -> None:
        """Stop the children in reverse order (the API first, the processors last)."""
        for state in reversed(self.states):
            if state.pid is None:
                continue
            log.info("stopping %s (pid %s)", state.child.name, state.pid)
            try:
                if terminate(state.pid, timeout=self.stop_timeout_s):
                    log.warning("%s did not stop on SIGTERM: killed", state.child.name)
            except OSError:
                log.exception("stopping %s failed", state.child.name)
            if state.process is not None:
                # Reap it (terminate waited until it was gone or a zombie).
                code = state.process.wait()
                state.last_exit_code, state.last_exit_signal = (
                    (None, _signal_name(-code)) if code < 0 else (code, None)
                )
                state.last_exit_at = time.time()
            state.process, state.pid = None, None
            state.child.pid_file.unlink(missing_ok=True)

    def snapshot(self) -> dict[str, Any]:
        return {
            "supervisor": {
                "pid": os.getpid(),
                "state": self.state,
                "started_at": self.started_at,
                "updated_at": time.time(),
                "policy": {
                    "initial_s": self.policy.initial_s,
                    "max_s": self.policy.max_s,
                    "reset_after_s": self.policy.reset_after_s,
                },
            },
            "processes": {state.child.name: state.to_json() for state in self.states},
        }

    def write_status(self) -> None:
        # Written aside and renamed, so a reader never sees half a file.
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.status_file.with_suffix(".tmp")
        partial.write_text(json.dumps(self.snapshot(), indent=2))
        partial.replace(self.status_file)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The supervisor's last status file, or None when there is none (or it is unreadable,
    which is logged)."""
    path = status_path(state_dir)
    try:
        status: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("cannot read %s: %s", path, error)
        return None
    return status


def process_started_at(pid: int | None) -> float | None:
    """When a process started (epoch seconds), from /proc; None when unknown."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    """The supervisor process: one per state directory (a lock file says which)."""
    from stack.platform import supervised_children
    from visionlog.observability.logs import configure_logging
    from visionlog.settings import get_settings

    settings = get_settings()
    configure_logging(settings, NAME)
    state_dir = settings.state_dir
    run_dir(state_dir).mkdir(parents=True, exist_ok=True)
    lock = lock_path(state_dir).open("a")
    try:
        # Held for the process's life: a second supervisor (two `visionlog run` at once)
        # leaves the children to the first.
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another platform supervisor runs for %s; leaving it in charge", state_dir)
        return 0
    pid_file = pid_path(state_dir)
    pid_file.write_text(str(os.getpid()))
    stop = threading.Event()

    def on_signal(number: int, _frame: object) -> None:
        log.info("%s: stopping the platform", _signal_name(number))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor = Supervisor(
        supervised_children(settings),
        status_path(state_dir),
        previous=read_status(state_dir),
    )
    try:
        supervisor.run(stop)
    except Exception:
        # The children keep running: a later `start_platform` adopts them and `visionlog
        # stop` still finds them by their pid files.
        log.critical("the platform supervisor failed; its children run unsupervised", exc_info=True)
        return 1
    finally:
        if read_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)
    log.info("the platform's processes are stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
