"""A stalled worker exits with every thread's stack in its log; a beating one lives on."""

from __future__ import annotations

import subprocess
import sys
import time

_STALLS = """
import time
from processors.watchdog import StallWatchdog

def waits_forever_for_a_lock():
    time.sleep(30)

StallWatchdog(startup_timeout_s=0.5, stall_timeout_s=60).arm_for_startup()
waits_forever_for_a_lock()
"""

_BEATS = """
import time
from processors.watchdog import StallWatchdog

watchdog = StallWatchdog(startup_timeout_s=0.5, stall_timeout_s=0.5)
watchdog.arm_for_startup()
for _ in range(8):
    time.sleep(0.2)
    watchdog.beat()
watchdog.disarm()
time.sleep(0.8)
print("finished")
"""

_GIVES_UP = """
import threading
from processors.watchdog import exit_with_stacks

running = threading.Event()

def stuck_stage_job():
    running.set()
    threading.Event().wait(30)

threading.Thread(target=stuck_stage_job, daemon=True).start()
running.wait(10)
exit_with_stacks()
"""


def _run(code: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    return child, time.monotonic() - started


def test_a_stalled_worker_exits_with_the_stacks_of_its_threads() -> None:
    child, seconds = _run(_STALLS)
    assert child.returncode == 1
    assert seconds < 20, "the watchdog must not wait for the sleep to end"
    assert "Timeout (0:00:00.500000)!" in child.stderr
    assert "waits_forever_for_a_lock" in child.stderr


def test_a_beating_worker_and_a_disarmed_one_live_on() -> None:
    child, _ = _run(_BEATS)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "finished"


def test_a_worker_giving_up_on_a_stuck_stage_exits_at_once_with_every_stack() -> None:
    child, seconds = _run(_GIVES_UP)
    assert child.returncode == 70
    assert seconds < 20, "it must not wait for the stuck thread"
    assert "stuck_stage_job" in child.stderr
