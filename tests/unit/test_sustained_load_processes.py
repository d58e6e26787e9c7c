"""The sustained-load benchmark's process monitor on real processes: a stand-in
supervisor (found by its pid file) whose worker is killed and restarted, and a process the
benchmark started and stops itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from bench.load.processes import ProcessMonitor
from visionlog.settings import Settings

# Restarts its "live worker" whenever it exits and logs it like `processors run` does.
SUPERVISOR = """
import subprocess, sys
log, argv = sys.argv[1], [sys.executable, "-c", "import time; time.sleep(120)"]
argv += ["processors", "worker", "live"]
child = subprocess.Popen(argv)
while True:
    code = child.wait()
    with open(log, "a") as handle:
        handle.write(f"live worker exited with {code}; restarting\\n")
    child = subprocess.Popen(argv)
"""


def _wait(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[Settings, psutil.Process]]:
    settings = Settings(state_dir=tmp_path)
    log = tmp_path / "logs" / "processors.log"
    log.parent.mkdir()
    log.write_text("live worker exited with 3; restarting\n")  # before the run: not counted
    process = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(log), "processors", "run"],
        start_new_session=True,
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "processors.pid").write_text(str(process.pid))
    supervisor = psutil.Process(process.pid)
    _wait(lambda: len(supervisor.children()) == 1)
    yield settings, supervisor
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_restarts_crashes_and_rss_are_counted_per_role(
    supervisor: tuple[Settings, psutil.Process],
) -> None:
    settings, parent = supervisor
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    monitor = ProcessMonitor(settings, interval_s=0.1)
    monitor.add("camera producer", helper.pid)
    monitor.start()
    try:
        monitor.mark_baseline()
        first = parent.children()[0]
        first.send_signal(signal.SIGKILL)
        _wait(lambda: any(child.pid != first.pid for child in parent.children()))
        second = next(child for child in parent.children() if child.pid != first.pid)
        _wait(lambda: "worker live" in {r.role for r in monitor.records()})
        _wait(
            lambda: second.pid in next(r.pids for r in monitor.records() if r.role == "worker live")
        )
        monitor.mark_end()
        # The benchmark stops its own process: no crash.
        monitor.release("camera producer")
        helper.kill()
        helper.wait()
        time.sleep(0.3)
    finally:
        monitor.stop()
        if helper.poll() is None:
            helper.kill()
    records = {record.role: record for record in monitor.records()}
    worker = records["worker live"]
    assert worker.pids == (first.pid, second.pid)
    assert worker.exits == (-9,)
    assert (worker.restarts, worker.crashes) == (1, 1)
    assert not worker.same_pid_for_rss  # a restarted worker's RSS is not compared
    assert worker.rss_baseline_mb is not None and worker.rss_end_mb is not None
    top = records["processors"]
    assert top.pids == (parent.pid,)
    assert (top.restarts, top.crashes) == (0, 0)
    assert top.same_pid_for_rss and top.rss_end_mb and top.rss_end_mb > 1
    camera = records["camera producer"]
    assert (camera.crashes, camera.vanished) == (0, False)
    # The platform's other processes are not running here: they are not reported.
    assert "api" not in records


def test_a_top_level_process_that_vanishes_crashed(
    supervisor: tuple[Settings, psutil.Process],
) -> None:
    settings, parent = supervisor
    monitor = ProcessMonitor(settings, interval_s=0.1)
    monitor.start()
    try:
        monitor.mark_baseline()
        os.killpg(parent.pid, signal.SIGKILL)
        _wait(lambda: next(r for r in monitor.records() if r.role == "processors").vanished)
    finally:
        monitor.stop()
    assert next(r for r in monitor.records() if r.role == "processors").crashes == 1
