"""A thread pool whose queue serves live work first.

A worker's stage threads are shared by live camera frames and batch inputs (uploads,
pages, video frames). With a plain FIFO pool a live frame's inference waits behind every
batch job submitted before it, so under a batch backlog a camera's frame is stale before
it starts. Here each job has a priority (lower first, FIFO within a priority); a running
job is never interrupted."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

# Priorities of the platform's work (the same order as the scheduler's slots).
LIVE_PRIORITY = 0
BATCH_PRIORITY = 1


# The pool whose thread runs the current job (unset outside a pool's threads).
_current = threading.local()


def note_progress() -> None:
    """Called by a long job between its steps (a page rendered, a frame sampled): the job is
    alive, and its running time for the stuck-job check (`longest_running_s`) counts from
    now. A 60-page render at low CPU priority on a busy host runs for minutes without
    being stuck; outside a pool's thread this does nothing."""
    pool = getattr(_current, "pool", None)
    if pool is not None:
        pool._restart_clock(threading.get_ident())


class PriorityThreadPool(Executor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "pool") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self._jobs: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        # Per thread: when its current job started (monotonic seconds).
        self._started: dict[int, float] = {}
        self._threads = [
            threading.Thread(target=self._serve, name=f"{thread_name_prefix}_{n}", daemon=True)
            for n in range(max_workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self.submit_at(BATCH_PRIORITY, fn, *args, **kwargs)

    def submit_at(
        self, priority: int, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._jobs.put((priority, next(self._order), (future, fn, args, kwargs)))
        return future

    def longest_running_s(self) -> float:
        """How long the oldest job still running has run since it started or last noted
        progress (0 when all threads are idle)."""
        with self._lock:
            starts = list(self._started.values())
        return time.monotonic() - min(starts) if starts else 0.0

    def pending(self) -> int:
        """Jobs waiting for a thread (not those running)."""
        return self._jobs.qsize()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        _, _, (future, *_rest) = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    future.cancel()
            # After every job queued so far (the largest priority and order sort last).
            for _ in self._threads:
                self._jobs.put((2**31, next(self._order), None))
        if wait:
            for thread in self._threads:
                thread.join()

    def _restart_clock(self, thread: int) -> None:
        with self._lock:
            if thread in self._started:
                self._started[thread] = time.monotonic()

    def _serve(self) -> None:
        _current.pool = self
        while True:
            _, _, job = self._jobs.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            me = threading.get_ident()
            with self._lock:
                self._started[me] = time.monotonic()
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # the caller receives it through the future
                self._finished(me)
                future.set_exception(error)
            else:
                self._finished(me)
                future.set_result(result)

    def _finished(self, thread: int) -> None:
        # Before the caller hears of it, so a caller never sees its own job still running.
        with self._lock:
            del self._started[thread]
