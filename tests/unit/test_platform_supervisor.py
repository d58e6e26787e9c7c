"""The platform supervisor's restart policy and loop, with stand-in processes (no forks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from stack.platform import PROCESSES
from stack.supervisor import (
    Child,
    RestartPolicy,
    Supervisor,
    children_from_json,
    describe_exit,
    read_status,
    status_path,
)
from visionlog.settings import Settings

# Beyond any pid_max: a stand-in's pid can never name a real process.
FAKE_PID = 10**9


class FakeProcess:
    """What the supervisor uses of a Popen: pid, poll() and wait()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int:
        assert self.returncode is not None
        return self.returncode


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    policy = RestartPolicy()
    assert [policy.delay_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay_s(0) == 0
    # No float overflow however long a crash loop lasts.
    assert policy.delay_s(5000) == 30


def test_failures_count_in_a_row_and_reset_after_a_healthy_run() -> None:
    policy = RestartPolicy(initial_s=1, max_s=30, reset_after_s=60)
    assert policy.failures_after(0, uptime_s=0.5) == 1
    assert policy.failures_after(3, uptime_s=59.9) == 4
    # Up for a minute: its next exit is a first failure again.
    assert policy.failures_after(5, uptime_s=60.0) == 1
    assert policy.delay_s(policy.failures_after(5, uptime_s=600)) == 1


def test_exit_descriptions() -> None:
    assert describe_exit(None, "SIGKILL") == "killed by SIGKILL"
    assert describe_exit(3, None) == "exit code 3"
    assert "unknown" in describe_exit(None, None)


def test_children_from_json_put_pid_files_and_logs_in_the_state_dir(tmp_path: Path) -> None:
    text = json.dumps(
        [{"name": "a", "command": ["sleep", "9"]}, {"name": "b", "command": ["x"], "nice": 5}]
    )
    a, b = children_from_json(text, tmp_path)
    assert a == Child(
        "a", ("sleep", "9"), tmp_path / "run/a.pid", tmp_path / "logs/a.log", "sleep 9"
    )
    assert b.nice == 5


def test_platform_processes_keep_their_argv_nice_pid_files_and_logs(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    projections = next(p for p in PROCESSES if p.name == "projections").child(settings)
    assert projections.command == (sys.executable, "-m", "stack.cli", "projections", "run")
    # The read side keeps the live worker's priority; the reprocess worker yields.
    assert projections.nice == 0
    reprocess = next(p for p in PROCESSES if p.name == "reprocess-worker").child(settings)
    assert reprocess.nice == 15
    assert projections.pid_file == tmp_path / "run/projections.pid"
    assert projections.log_file == tmp_path / "logs/projections.log"
    assert projections.marker == "projections run"


@pytest.fixture
def children(tmp_path: Path) -> list[Child]:
    text = json.dumps([{"name": n, "command": [n]} for n in ("first", "second")])
    return children_from_json(text, tmp_path)


def test_the_loop_restarts_an_exited_child_after_its_backoff(
    tmp_path: Path, children: list[Child]
) -> None:
    launched: list[FakeProcess] = []

    def start(child: Child) -> FakeProcess:
        launched.append(FakeProcess(FAKE_PID + len(launched)))
        child.pid_file.parent.mkdir(parents=True, exist_ok=True)
        child.pid_file.write_text(str(launched[-1].pid))
        return launched[-1]

    supervisor = Supervisor(
        children,
        status_path(tmp_path),
        start=start,  # type: ignore[arg-type]  # a stand-in for Popen
    )
    supervisor.start_all()
    first, second = supervisor.states
    assert [first.pid, second.pid] == [FAKE_PID, FAKE_PID + 1]

    launched[0].returncode = -9  # SIGKILLed after 0.5 s up
    assert supervisor.poll(now=first.started_mono + 0.5)
    assert (first.pid, first.last_exit_signal, first.failures) == (None, "SIGKILL", 1)
    assert not children[0].pid_file.exists()
    # Not before its backoff of 1 s has passed.
    assert not supervisor.poll(now=first.started_mono + 1.0)
    assert supervisor.poll(now=first.started_mono + 1.6)
    assert (first.pid, first.restarts) == (FAKE_PID + 2, 1)

    launched[2].returncode = 2  # exits again at once: the next wait doubles
    restarted_at = first.started_mono
    supervisor.poll(now=restarted_at + 0.1)
    assert (first.last_exit_code, first.failures) == (2, 2)
    assert first.next_start_mono == pytest.approx(restarted_at + 0.1 + 2.0)

    supervisor.write_status()
    status = read_status(tmp_path)
    assert status is not None
    row = status["processes"]["first"]
    assert (row["pid"], row["restarts"], row["last_exit_code"]) == (None, 1, 2)
    assert status["processes"]["second"]["pid"] == FAKE_PID + 1


def test_a_child_that_cannot_start_is_retried_with_backoff(
    tmp_path: Path, children: list[Child]
) -> None:
    def start(child: Child) -> FakeProcess:
        raise FileNotFoundError(child.command[0])

    supervisor = Supervisor(children[:1], status_path(tmp_path), start=start)  # type: ignore[arg-type]
    supervisor.start_all()
    (state,) = supervisor.states
    assert state.pid is None
    assert state.failures == 1
    assert state.next_start_mono is not None
