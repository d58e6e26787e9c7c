"""Offsets are committable only up to the first unfinished message of a partition."""

from __future__ import annotations

from visionlog.stream.checkpoint import CommitPolicy, OffsetTracker

TP = ("media", 0)


def test_out_of_order_completion_commits_only_the_contiguous_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.started(TP, offset)
    tracker.finished(TP, 12)
    tracker.finished(TP, 13)
    assert tracker.committable() == {}
    tracker.finished(TP, 10)
    assert tracker.committable() == {TP: 11}
    tracker.finished(TP, 11)
    assert tracker.committable() == {TP: 14}
    assert tracker.in_flight() == 0


def test_a_commit_is_not_repeated_and_partitions_are_apart() -> None:
    tracker = OffsetTracker()
    other = ("media", 1)
    tracker.started(TP, 0)
    tracker.started(other, 5)
    tracker.finished(other, 5)
    assert tracker.committable() == {other: 6}
    tracker.committed({other: 6})
    assert tracker.committable() == {}
    tracker.finished(TP, 0)
    assert tracker.committable() == {TP: 1}


def test_the_policy_says_when_to_commit() -> None:
    now = [0.0]
    tracker = OffsetTracker(CommitPolicy(every_messages=3, every_s=1.0), clock=lambda: now[0])
    assert not tracker.due()
    for offset in range(2):
        tracker.started(TP, offset)
        tracker.finished(TP, offset)
    assert not tracker.due()
    now[0] = 1.5
    assert tracker.due()
    tracker.committed(tracker.committable())
    assert not tracker.due()
    for offset in range(2, 5):
        tracker.started(TP, offset)
        tracker.finished(TP, offset)
    assert tracker.due()
