"""CPU priority of started processes: the session's scheduling group gets the nice value
too, and a supervisor's workers stop when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from visionlog.priority import child_setup


def _nice_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19: nice


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_child_in_its_own_session_gets_the_nice_value_for_its_group_and_threads() -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True, preexec_fn=child_setup(7))
    try:
        time.sleep(0.2)
        assert _nice_of(child.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 7
        autogroup = Path(f"/proc/{child.pid}/autogroup")
        if not autogroup.exists():
            pytest.skip("this kernel schedules without autogroups")
        assert autogroup.read_text().split()[-1] == str(_nice_of(child.pid))
        # Its own group, not this test's. A process in the kernel's default group (a
        # session that init or a container runtime started) reads an empty file.
        own_group = (Path("/proc/self/autogroup").read_text().split() or ["default"])[0]
        assert autogroup.read_text().split()[0] != own_group
    finally:
        child.kill()
        child.wait()


def test_nice_zero_changes_nothing() -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True, preexec_fn=child_setup(0))
    try:
        time.sleep(0.2)
        assert _nice_of(child.pid) == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        child.kill()
        child.wait()


def test_a_worker_stops_when_its_supervisor_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, sys, time\n"
            "from visionlog.priority import child_setup\n"
            "w = subprocess.Popen(['sleep', '60'], start_new_session=True,\n"
            "    preexec_fn=child_setup(5, die_with_parent_signal=signal.SIGTERM))\n"
            f"open({str(pid_file)!r}, 'w').write(str(w.pid))\n"
            "time.sleep(60)\n",
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the supervisor never started its worker"
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    assert _alive(worker)
    # Not in the supervisor's process group: killing the group alone would miss it.
    assert os.getpgid(worker) != os.getpgid(supervisor.pid)
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker), "the worker outlived its supervisor"


def test_a_long_job_that_notes_progress_is_not_counted_as_stuck() -> None:
    from visionlog.stream.priority_pool import PriorityThreadPool, note_progress

    pool = PriorityThreadPool(1)
    try:
        release = threading.Event()
        noted = threading.Event()

        def long_job() -> None:
            time.sleep(0.3)
            note_progress()
            noted.set()
            release.wait(10)

        future = pool.submit(long_job)
        time.sleep(0.25)
        assert pool.longest_running_s() >= 0.2
        assert noted.wait(5)
        # The clock restarted when the job said it was still working.
        assert pool.longest_running_s() < 0.2
        release.set()
        future.result(5)
        assert pool.longest_running_s() == 0.0
        note_progress()  # outside a pool's thread: nothing happens
    finally:
        release.set()
        pool.shutdown()
