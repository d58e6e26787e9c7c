"""A partition's offsets that a consumer skipped are found and read again, once."""

from __future__ import annotations

from visionlog.stream.delivery_gaps import DeliveryGaps

P = ("media", 3)


def test_consecutive_offsets_from_the_committed_position_are_processed() -> None:
    gaps = DeliveryGaps(lambda _position: 12)
    assert [gaps.check(P, offset).process for offset in (12, 13, 14)] == [True, True, True]


def test_a_first_message_past_the_committed_position_seeks_back_to_it() -> None:
    # What faust delivered after a restart: offset 14 first, 12 and 13 never.
    gaps = DeliveryGaps(lambda _position: 12)
    first = gaps.check(P, 14)
    assert (first.process, first.seek_to) == (False, 12)
    # Messages already fetched after the jump are passed over; they come again.
    assert not gaps.check(P, 15).process
    assert [gaps.check(P, offset).process for offset in (12, 13, 14, 15)] == [True] * 4


def test_a_jump_inside_a_partition_seeks_back_too() -> None:
    gaps = DeliveryGaps(lambda _position: None)
    assert gaps.check(P, 5).process  # nothing committed yet: the first one sets the pace
    assert gaps.check(P, 6).process
    jump = gaps.check(P, 9)
    assert jump.seek_to == 7
    assert gaps.check(P, 7).process


def test_a_target_the_log_no_longer_holds_is_tried_once() -> None:
    # Retention removed offsets 12-19: after the seek the log is read again from 20.
    gaps = DeliveryGaps(lambda _position: 12)
    assert gaps.check(P, 20).seek_to == 12
    assert not gaps.check(P, 21).process  # fetched before the seek took effect
    assert [gaps.check(P, offset).process for offset in (20, 21, 22)] == [True, True, True]
    # The same hole is not sought again.
    gaps.forget([P])
    again = gaps.check(P, 20)
    assert (again.process, again.seek_to) == (True, None)


def test_reading_again_from_an_earlier_offset_is_not_a_gap() -> None:
    gaps = DeliveryGaps(lambda _position: 0)
    for offset in (0, 1, 2, 3):
        assert gaps.check(P, offset).process
    assert gaps.check(P, 1).process  # a rebalance or a seek moved the consumer back
    assert gaps.check(P, 2).process
