"""Acknowledgements leave in each partition's log order, whatever order work finishes in."""

from __future__ import annotations

from visionlog.stream.ordered_acks import OrderedAcks

P0 = ("frames", 0)
P1 = ("frames", 1)


def test_a_later_message_waits_for_an_earlier_unfinished_one() -> None:
    acks: OrderedAcks[str] = OrderedAcks()
    first = acks.admit(P0, 10, "m10")
    second = acks.admit(P0, 11, "m11")
    third = acks.admit(P0, 12, "m12")
    assert acks.finish(second) == []
    assert acks.finish(third) == []
    assert acks.waiting() == 3
    assert acks.finish(first) == ["m10", "m11", "m12"]
    assert acks.waiting() == 0


def test_the_first_message_of_a_fresh_partition_is_not_skipped() -> None:
    # The case faust's consumer commits past: nothing committed yet, offset 0 running.
    acks: OrderedAcks[int] = OrderedAcks()
    tickets = [acks.admit(P0, offset, offset) for offset in range(3)]
    assert acks.finish(tickets[1]) == []
    assert acks.finish(tickets[0]) == [0, 1]
    assert acks.finish(tickets[2]) == [2]


def test_partitions_are_independent() -> None:
    acks: OrderedAcks[str] = OrderedAcks()
    slow = acks.admit(P0, 5, "p0-5")
    fast = acks.admit(P1, 7, "p1-7")
    assert acks.finish(fast) == ["p1-7"]
    assert acks.finish(slow) == ["p0-5"]


def test_a_revoked_partition_releases_nothing_of_its_old_assignment() -> None:
    acks: OrderedAcks[str] = OrderedAcks()
    old = acks.admit(P0, 20, "old-20")
    acks.revoke([P0])
    assert acks.finish(old) == []
    # Reassigned later from a position another consumer committed: a fresh lane.
    new = acks.admit(P0, 40, "new-40")
    assert acks.finish(new) == ["new-40"]


def test_reading_a_partition_again_from_an_earlier_offset_starts_a_new_lane() -> None:
    acks: OrderedAcks[str] = OrderedAcks()
    stuck = acks.admit(P0, 30, "first-30")
    acks.admit(P0, 31, "first-31")
    again = acks.admit(P0, 30, "again-30")  # the group rebalanced, the partition came back
    assert acks.finish(again) == ["again-30"]
    assert acks.finish(stuck) == []
