"""A worker that stops making progress is restarted, with every thread's stack in its log.

faulthandler's watchdog is a C thread: it fires even when the interpreter is deadlocked
(a thread holding the GIL waits on a lock held by a native thread), which is exactly when
Python code could not report anything. It writes the tracebacks to stderr, the worker's
log, and exits; `visionlog processors run` then starts a fresh worker."""

from __future__ import annotations

import faulthandler
import os
import sys

# How often a running worker's event loop re-arms the watchdog.
WATCHDOG_BEAT_S = 5.0
# The exit status of a worker that gave up on a stuck stage (sysexits EX_SOFTWARE).
STUCK_EXIT_CODE = 70


class StallWatchdog:
    def __init__(self, startup_timeout_s: float, stall_timeout_s: float) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.stall_timeout_s = stall_timeout_s

    def arm_for_startup(self) -> None:
        """Until the first beat: engines compile and the consumer joins its group."""
        self._arm(self.startup_timeout_s)

    def beat(self) -> None:
        """The event loop is turning: the worker has stall_timeout_s until the next beat."""
        self._arm(self.stall_timeout_s)

    def disarm(self) -> None:
        faulthandler.cancel_dump_traceback_later()

    @staticmethod
    def _arm(timeout_s: float) -> None:
        if timeout_s > 0:
            # Re-arming replaces the previous deadline.
            faulthandler.dump_traceback_later(timeout_s, repeat=False, file=sys.stderr, exit=True)


def exit_with_stacks() -> None:
    """Write every thread's stack to the log and exit at once: a graceful stop would wait
    for the stuck thread."""
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    os._exit(STUCK_EXIT_CODE)
