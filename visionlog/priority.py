"""CPU priority of the processes the platform starts, on a Linux host.

`nice` alone does not order processes that run in different sessions. With the kernel's
autogroup scheduling on (``/proc/sys/kernel/sched_autogroup_enabled``, the default of most
distributions), every session is one scheduling group, groups share the CPU evenly, and
a thread's nice value only weighs against the threads of its own session. Measured under
the sustained load: the live worker shared one group with the four batch workers, and
each server (Kafka, MinIO, PostgreSQL) had a group of its own, so a nice-10 worker still
used more CPU than the live one, and a frame's detection waited 0.75-0.9 s.

So every process the platform starts in a session of its own also gets its group's nice
value (``/proc/self/autogroup``), the same as its threads' nice. Lowering a priority needs
no privilege. Where autogroups do not exist (a container's cgroup, a kernel without them)
the write is skipped and the threads' nice does the work; in Kubernetes CPU weights of the
pods stand in for both.

Children of a supervisor in sessions of their own no longer share its process group, so
they are also told to stop when it dies (``PR_SET_PDEATHSIG``): killing the supervisor
still ends its workers.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

# Loaded in the parent: a child between fork and exec should not load libraries.
from visionlog.libc import LIBC

AUTOGROUP = "/proc/self/autogroup"
_PR_SET_PDEATHSIG = 1


def set_group_nice(niceness: int) -> bool:
    """Give this process's autogroup the nice value; False where there is none."""
    try:
        fd = os.open(AUTOGROUP, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, str(niceness).encode())
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def lower_priority(niceness: int) -> None:
    """Lower this process's CPU priority by `niceness`: its threads and its session's group."""
    if niceness > 0:
        os.nice(niceness)
        set_group_nice(os.getpriority(os.PRIO_PROCESS, 0))


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `signum` to this process when its parent exits."""
    if LIBC is not None:
        LIBC.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)


def child_setup(niceness: int, *, die_with_parent_signal: int | None = None) -> Callable[[], None]:
    """A `preexec_fn` for `subprocess.Popen(..., start_new_session=True)`: the child's
    session (and so its scheduling group) gets its nice value, and optionally the child
    stops when the process that started it dies."""

    def setup() -> None:
        if die_with_parent_signal is not None:
            die_with_parent(die_with_parent_signal)
        lower_priority(niceness)

    return setup
