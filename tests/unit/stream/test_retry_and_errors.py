"""One retry policy and one error vocabulary for every consumer."""

from __future__ import annotations

import errno

import pytest
from minio.error import S3Error
from urllib3.exceptions import MaxRetryError

from visionlog.blobstore import BlobNotFoundError
from visionlog.codec import MalformedEventError
from visionlog.errors import Disposition, OutageError, PermanentError, classify, http_status
from visionlog.stream.retry import RetryPolicy, call_with_retries


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _s3(code: str) -> S3Error:
    return S3Error(None, code, "message", "resource", "request", "host")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "disposition", "status"),
    [
        (PermanentError("corrupt"), Disposition.PERMANENT, 422),
        (MalformedEventError("bad bytes"), Disposition.PERMANENT, 422),
        (BlobNotFoundError("gone"), Disposition.PERMANENT, 404),
        (_s3("NoSuchKey"), Disposition.PERMANENT, 404),
        (_s3("ServiceUnavailable"), Disposition.OUTAGE, 503),
        (MaxRetryError(None, "/bucket/key"), Disposition.OUTAGE, 503),  # type: ignore[arg-type]
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), Disposition.OUTAGE, 503),
        (OutageError("down"), Disposition.OUTAGE, 503),
        (KeyError("track_id"), Disposition.TRANSIENT, 500),
    ],
)
def test_every_failure_has_one_disposition_and_status(
    error: BaseException, disposition: Disposition, status: int
) -> None:
    assert classify(error) is disposition
    assert http_status(error) == status


def test_a_permanent_failure_is_not_retried() -> None:
    clock = Clock()
    calls = []

    def corrupt() -> None:
        calls.append(1)
        raise PermanentError("the image is truncated")

    result = call_with_retries(corrupt, RetryPolicy(), sleep=clock.sleep, clock=clock)
    assert (len(calls), result.attempts, clock.slept) == (1, 1, [])
    assert result.disposition is Disposition.PERMANENT


def test_an_outage_is_waited_out_with_capped_backoff() -> None:
    clock = Clock()

    def store_back_after_25_s() -> str:
        if clock.now < 25.0:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")
        return "stored"

    policy = RetryPolicy(max_attempts=3, backoff_s=0.5, max_backoff_s=4.0, outage_deadline_s=60)
    result = call_with_retries(store_back_after_25_s, policy, sleep=clock.sleep, clock=clock)
    assert result.value == "stored"
    assert result.attempts > policy.max_attempts
    assert max(clock.slept) == 4.0


def test_an_outage_longer_than_the_deadline_gives_up_retryable() -> None:
    clock = Clock()

    def down() -> None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")

    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=5.0, outage_deadline_s=20)
    result = call_with_retries(down, policy, sleep=clock.sleep, clock=clock)
    assert result.error is not None
    assert result.disposition is Disposition.OUTAGE
    assert 15.0 <= clock.now <= 20.0


def test_an_unexpected_failure_gets_a_few_quick_attempts() -> None:
    clock = Clock()

    def flaky() -> None:
        raise RuntimeError("race")

    result = call_with_retries(flaky, RetryPolicy(max_attempts=3), sleep=clock.sleep, clock=clock)
    assert result.attempts == 3
    assert len(clock.slept) == 2


def test_a_callers_deadline_ends_retries_early_and_says_so() -> None:
    clock = Clock()

    def down() -> None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")

    result = call_with_retries(
        down, RetryPolicy(backoff_s=0.5), deadline=2.0, sleep=clock.sleep, clock=clock
    )
    assert result.deadline_passed
    assert clock.now <= 2.0
