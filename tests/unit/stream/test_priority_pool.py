"""Live stage work is served before queued batch work; errors reach the caller."""

from __future__ import annotations

import threading
import time

import pytest

from visionlog.stream.priority_pool import BATCH_PRIORITY, LIVE_PRIORITY, PriorityThreadPool


def test_live_jobs_overtake_queued_batch_jobs_and_batch_stays_fifo() -> None:
    pool = PriorityThreadPool(1, thread_name_prefix="test")
    started, gate = threading.Event(), threading.Event()
    ran: list[str] = []

    def occupy() -> bool:
        started.set()
        return gate.wait(10)

    blocker = pool.submit(occupy)
    assert started.wait(10)
    jobs = [
        pool.submit(ran.append, "upload-1"),
        pool.submit_at(BATCH_PRIORITY, ran.append, "upload-2"),
        pool.submit_at(LIVE_PRIORITY, ran.append, "frame-1"),
        pool.submit_at(LIVE_PRIORITY, ran.append, "frame-2"),
    ]
    assert pool.pending() == 4
    gate.set()
    assert blocker.result(timeout=10) is True
    for job in jobs:
        job.result(timeout=10)
    assert ran == ["frame-1", "frame-2", "upload-1", "upload-2"]
    pool.shutdown()


def test_a_failing_job_raises_through_its_future_and_the_pool_goes_on() -> None:
    pool = PriorityThreadPool(2)
    failing = pool.submit(int, "not a number")
    with pytest.raises(ValueError, match="invalid literal"):
        failing.result(timeout=10)
    assert pool.submit(sum, [1, 2, 3]).result(timeout=10) == 6
    pool.shutdown()


def test_shutdown_runs_or_cancels_what_is_queued_and_refuses_more() -> None:
    pool = PriorityThreadPool(1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    queued = pool.submit(len, "abc")
    closer = threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True})
    closer.start()
    closer.join(timeout=0.2)
    gate.set()
    closer.join(timeout=10)
    assert not closer.is_alive()
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(len, "x")
    with pytest.raises(ValueError, match="at least 1"):
        PriorityThreadPool(0)


def test_the_longest_running_job_is_known() -> None:
    pool = PriorityThreadPool(2)
    assert pool.longest_running_s() == 0.0
    started, gate = threading.Event(), threading.Event()

    def hang() -> None:
        started.set()
        gate.wait(10)

    job = pool.submit(hang)
    assert started.wait(10)
    time.sleep(0.3)
    assert 0.3 <= pool.longest_running_s() < 10
    gate.set()
    job.result(timeout=10)
    assert pool.longest_running_s() == 0.0
    pool.shutdown()
