"""The platform's processes over the run: pids, restarts, exits and resident memory.

Top-level processes are found by their pid files (`stack.platform`), worker processes as
the children of the processor supervisor by their command line (`processors worker
KIND`), so workers of other people's tests on the same machine are never counted. Exit
codes come from the supervisor's log ("KIND worker exited with CODE"), since only the
supervisor can wait for its children.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.load.model import ProcessRecord
from stack.platform import PROCESSES
from stack.process import pid_alive, read_pid
from visionlog.settings import Settings

_EXITED = re.compile(r"(\w[\w-]*) worker exited with (-?\d+)")
_WORKER = re.compile(r"processors worker (\S+)")
_MB = 1024 * 1024


@dataclass
class _Role:
    pids: list[int] = field(default_factory=list)
    rss: dict[int, float] = field(default_factory=dict)  # pid -> last RSS in MB
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> last CPU seconds
    cpu_first: dict[int, float] = field(default_factory=dict)  # pid -> first CPU seconds
    peak_mb: float | None = None
    baseline: tuple[int, float] | None = None
    end: tuple[int, float] | None = None
    current: int | None = None
    vanished: bool = False


def worker_kind(cmdline: list[str]) -> str | None:
    match = _WORKER.search(" ".join(cmdline))
    return match.group(1) if match else None


def exits_in(log_text: str) -> list[tuple[str, int]]:
    """(kind, exit code) of every worker exit the supervisor logged."""
    return [(match.group(1), int(match.group(2))) for match in _EXITED.finditer(log_text)]


class ProcessMonitor:
    """Polls the platform's processes on a thread every `interval_s`."""

    def __init__(self, settings: Settings, interval_s: float = 2.0) -> None:
        self._settings = settings
        self._interval_s = interval_s
        self._roles: dict[str, _Role] = {}
        self._extra: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processes", daemon=True)
        supervisor = next(p for p in PROCESSES if p.name == "processors")
        self._supervisor_log = supervisor.log_file(settings)
        self._log_offset = _size(self._supervisor_log)
        self._exits: list[tuple[str, int]] = []
        # Roles the benchmark stops itself: their exit is no crash.
        self._released: set[str] = set()

    def add(self, role: str, pid: int) -> None:
        """Watch a process the benchmark started (the camera producer)."""
        with self._lock:
            self._extra[role] = pid

    def release(self, role: str) -> None:
        """Stop watching a role before the benchmark stops it."""
        with self._lock:
            self._released.add(role)

    def start(self) -> None:
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.poll()

    def _current(self) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        for process in PROCESSES:
            pid = read_pid(process.pid_file(self._settings))
            found[process.name] = pid if pid_alive(pid, process.marker) else None
            if process.name == "processors" and found[process.name] is not None:
                try:
                    children = psutil.Process(found[process.name]).children()
                except psutil.Error:
                    children = []
                for child in children:
                    try:
                        kind = worker_kind(child.cmdline())
                    except psutil.Error:
                        continue
                    if kind is not None:
                        found[f"worker {kind}"] = child.pid
        with self._lock:
            for role, pid in self._extra.items():
                found[role] = pid if psutil.pid_exists(pid) else None
        return found

    def poll(self) -> None:
        found = self._current()
        samples: dict[str, tuple[int, float, float]] = {}
        for role, pid in found.items():
            if pid is None:
                continue
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    rss = process.memory_info().rss / _MB
                    times = process.cpu_times()
            except psutil.Error:
                continue
            samples[role] = (pid, rss, times.user + times.system)
        new_log = _read_from(self._supervisor_log, self._log_offset)
        # Whole lines only: the rest is read again with its end at the next poll.
        new_log = new_log[: new_log.rfind(b"\n") + 1]
        with self._lock:
            self._log_offset += len(new_log)
            self._exits += exits_in(new_log.decode("utf-8", errors="replace"))
            for role, pid in found.items():
                if role in self._released or (pid is None and role not in self._roles):
                    continue  # ours to stop, or never running during the run
                state = self._roles.setdefault(role, _Role())
                if pid is None:
                    # Nobody restarts a top-level process or the camera producer.
                    state.vanished = state.vanished or state.current is not None
                    state.current = None
                    continue
                if pid not in state.pids:
                    state.pids.append(pid)
                state.current = pid
            for role, (pid, rss, cpu) in samples.items():
                if role in self._released:
                    continue
                state = self._roles[role]
                state.rss[pid] = rss
                state.cpu[pid] = cpu
                state.cpu_first.setdefault(pid, cpu)
                state.peak_mb = rss if state.peak_mb is None else max(state.peak_mb, rss)

    def _mark(self, which: str) -> None:
        self.poll()
        with self._lock:
            for state in self._roles.values():
                if state.current is not None and state.current in state.rss:
                    setattr(state, which, (state.current, state.rss[state.current]))

    def mark_baseline(self) -> None:
        """The RSS every process has now is the baseline (minute 2 of the load)."""
        self._mark("baseline")

    def mark_end(self) -> None:
        """The RSS every process has now is the end figure (the end of the load);
        restarts and exits are counted on until `stop()`, through the drain."""
        self._mark("end")

    def records(self) -> list[ProcessRecord]:
        with self._lock:
            records: list[ProcessRecord] = []
            for role, state in sorted(self._roles.items()):
                kind = role.removeprefix("worker ") if role.startswith("worker ") else None
                baseline, end = state.baseline, state.end
                records.append(
                    ProcessRecord(
                        role=role,
                        pids=tuple(state.pids),
                        exits=tuple(code for k, code in self._exits if k == kind),
                        rss_baseline_mb=None if baseline is None else baseline[1],
                        rss_end_mb=None if end is None else end[1],
                        rss_peak_mb=state.peak_mb,
                        same_pid_for_rss=baseline is None or end is None or baseline[0] == end[0],
                        vanished=state.vanished and kind is None,
                        cpu_s=sum(state.cpu[pid] - state.cpu_first[pid] for pid in state.cpu)
                        if state.cpu
                        else None,
                    )
                )
            return records


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""
