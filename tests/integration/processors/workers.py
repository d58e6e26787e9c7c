"""Worker processes of the platform, scoped to one test's topics, and readers of what they
publish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.processors.conftest import TopicsUnderTest
from visionlog.codec import DecodedEvent

REPO = Path(__file__).resolve().parents[3]


class Workers:
    """Platform processes (`visionlog ...`) under one test's topic prefix and state dir."""

    def __init__(self, topics: TopicsUnderTest, tmp_path: Path) -> None:
        self.topics = topics
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs = 0

    def start(self, *args: str, **settings: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "VISIONLOG_KAFKA__TOPIC_PREFIX": self.topics.settings.kafka.topic_prefix,
            "VISIONLOG_STATE_DIR": str(self.tmp_path / "state"),
            "VISIONLOG_LOGGING__FORMAT": "text",
            **{f"VISIONLOG_{key.upper()}": value for key, value in settings.items()},
        }
        # Arguments may be paths: the log's name keeps them readable but flat.
        self._logs += 1
        name = f"{self._logs:02d}-" + "-".join(args).replace("/", "_")
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "stack.cli", *args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no graceful stop, no final commit."""
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=60))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.tmp_path.glob("*.log"))
        )

    def assert_running(self) -> None:
        for process in self.processes:
            code = process.poll()
            if code is not None and code != -signal.SIGKILL:
                raise AssertionError(f"{process.args!r} exited with {code}:\n{self.logs()[-4000:]}")


def wait_for_events(
    topics: TopicsUnderTest,
    event_type: str,
    accept: Callable[[DecodedEvent], bool],
    expected: int,
    timeout: float,
    workers: Workers | None = None,
) -> list[DecodedEvent]:
    """Events of a type that `accept`, read from the start, until `expected` arrived."""
    deadline = time.monotonic() + timeout
    found: list[DecodedEvent] = []
    while time.monotonic() < deadline:
        if workers is not None:
            workers.assert_running()
        events = topics.read_events(event_type, 100_000, timeout=2.0)
        found = [e for e in events if e.event_type == event_type and accept(e)]
        if len(found) >= expected:
            return found
        time.sleep(0.5)
    return found
