"""The real platform supervisor process (`python -m stack.supervisor`, what start_platform
spawns) in a temporary state directory, keeping stand-in children running: the platform's
own four need the whole stack and models. No stack servers are needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stack import supervisor
from stack.platform import CHILDREN_ENV, platform_status, start_platform, stop_platform
from stack.process import pid_alive, read_pid, spawn
from visionlog.settings import Settings

SLEEP = "import time; time.sleep(300)"


def _command(name: str) -> list[str]:
    # The trailing name makes each child's command line (its pid_alive marker) its own.
    return [sys.executable, "-c", SLEEP, name]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    children = tmp_path / "children.json"
    children.write_text(
        json.dumps([{"name": name, "command": _command(name)} for name in ("first", "second")])
    )
    monkeypatch.setenv("VISIONLOG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv(CHILDREN_ENV, str(children))
    settings = Settings(state_dir=tmp_path / "state")
    yield settings
    # Whatever a failed test left running in its state directory.
    stop_platform(settings)


def _wait_for(what: str, check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _status(settings: Settings) -> dict[str, dict[str, object]]:
    status = supervisor.read_status(settings.state_dir) or {}
    processes: dict[str, dict[str, object]] = status.get("processes", {})
    return processes


def test_a_killed_child_is_restarted_and_stop_stops_everything(settings: Settings) -> None:
    rows = start_platform(settings)
    assert [(row.name, row.running, row.started) for row in rows] == [
        ("first", True, True),
        ("second", True, True),
    ]
    pids = {row.name: row.pid for row in rows}
    boss = read_pid(supervisor.pid_path(settings.state_dir))
    assert pid_alive(boss, supervisor.MARKER)

    # Idempotent: a second start starts nothing.
    again = start_platform(settings)
    assert [(row.pid, row.started) for row in again] == [
        (pids["first"], False),
        (pids["second"], False),
    ]
    assert read_pid(supervisor.pid_path(settings.state_dir)) == boss

    killed = pids["first"]
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    _wait_for(
        "the killed child's restart",
        lambda: (
            _status(settings)["first"]["restarts"] == 1
            and _status(settings)["first"]["pid"] not in (None, killed)
        ),
    )
    first = _status(settings)["first"]
    assert first["last_exit_signal"] == "SIGKILL"
    new_pid = read_pid(settings.state_dir / "run" / "first.pid")
    assert new_pid == first["pid"]
    assert pid_alive(new_pid, " ".join(_command("first")))
    row = next(row for row in platform_status(settings) if row.name == "first")
    assert (row.pid, row.running, row.restarts, row.last_exit) == (
        new_pid,
        True,
        1,
        "killed by SIGKILL",
    )
    assert _status(settings)["second"]["restarts"] == 0

    assert stop_platform(settings) == [supervisor.NAME, "second", "first"]
    assert not pid_alive(boss)
    assert not any(pid_alive(pid) for pid in (new_pid, pids["second"]))
    assert not (settings.state_dir / "run" / "first.pid").exists()
    final = supervisor.read_status(settings.state_dir)
    assert final is not None
    assert final["supervisor"]["state"] == "stopped"


def test_sigterm_stops_the_children_in_reverse_order(settings: Settings) -> None:
    log = supervisor.log_path(settings.state_dir)
    log.parent.mkdir(parents=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "stack.supervisor"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(
            "both children",
            lambda: all(_status(settings).get(n, {}).get("pid") for n in ("first", "second")),
        )
        pids = [_status(settings)[name]["pid"] for name in ("first", "second")]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not any(pid_alive(pid) for pid in pids if isinstance(pid, int))
    text = log.read_text()
    assert text.index("stopping second") < text.index("stopping first")
    assert not supervisor.pid_path(settings.state_dir).exists()


def test_a_process_of_the_older_layout_is_adopted_then_stopped(settings: Settings) -> None:
    # Started the old way: detached with a pid file, nobody's child.
    stray = spawn(
        _command("first"),
        pid_file=settings.state_dir / "run" / "first.pid",
        log_file=settings.state_dir / "logs" / "first.log",
    )
    # Until it has exec'd, its command line is still pytest's.
    _wait_for("the stray's exec", lambda: pid_alive(stray, " ".join(_command("first"))))
    rows = start_platform(settings)
    assert [(row.name, row.pid == stray, row.started) for row in rows] == [
        ("first", True, False),
        ("second", False, True),
    ]
    assert _status(settings)["first"]["adopted"] is True
    assert stop_platform(settings) == [supervisor.NAME, "second", "first"]
    _wait_for("the adopted process to end", lambda: not pid_alive(stray))
