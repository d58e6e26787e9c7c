"""Live frames: the newest frame of a camera wins, every frame is accounted for."""

from __future__ import annotations

import random

from visionlog.stream.admission import LatestWins, stale_reason


def test_the_first_frame_starts_the_lanes_runner() -> None:
    lanes: LatestWins[int] = LatestWins()
    offer = lanes.offer("cam-1", 1)
    assert (offer.start, offer.superseded) == (True, None)
    assert lanes.take("cam-1") == 1


def test_frames_waiting_for_the_stage_replace_each_other() -> None:
    lanes: LatestWins[int] = LatestWins()
    lanes.offer("cam-1", 1)
    assert lanes.take("cam-1") == 1
    # While frame 1 is analysed, 2 arrives and then 3: 2 is superseded.
    assert lanes.offer("cam-1", 2).start is False
    replaced = lanes.offer("cam-1", 3)
    assert (replaced.start, replaced.superseded) == (False, 2)
    assert lanes.waiting() == 1
    # The stage is free again: the newest frame is next.
    assert lanes.take("cam-1") == 3
    # Nothing waits: the runner stops, and the next frame starts a new one.
    assert lanes.take("cam-1") is None
    assert lanes.offer("cam-1", 4).start is True


def test_a_frame_waiting_for_a_free_place_is_still_replaced_by_a_newer_one() -> None:
    lanes: LatestWins[int] = LatestWins()
    assert lanes.offer("cam", 1).start
    # The runner waits for a place before it takes a frame; frames keep coming.
    assert lanes.offer("cam", 2).superseded == 1
    assert lanes.offer("cam", 3).superseded == 2
    assert lanes.take("cam") == 3


def test_cameras_have_lanes_of_their_own() -> None:
    lanes: LatestWins[str] = LatestWins()
    assert lanes.offer("a", "a1").start
    assert lanes.offer("b", "b1").start
    assert lanes.take("a") == "a1"
    assert lanes.offer("a", "a2").superseded is None
    assert lanes.take("b") == "b1"
    assert lanes.take("a") == "a2"


def test_every_offered_frame_is_taken_or_superseded_exactly_once() -> None:
    lanes: LatestWins[int] = LatestWins()
    rng = random.Random(7)
    taken: list[int] = []
    superseded: list[int] = []
    for frame in range(200):
        offer = lanes.offer("cam", frame)
        if offer.superseded is not None:
            superseded.append(offer.superseded)
        if rng.random() < 0.3 and (got := lanes.take("cam")) is not None:
            taken.append(got)
    while (got := lanes.take("cam")) is not None:
        taken.append(got)
    assert sorted(taken + superseded) == list(range(200))
    assert taken == sorted(taken)


def test_a_frame_is_stale_only_beyond_its_bound() -> None:
    assert stale_reason(1999.0, 2000.0) is None
    reason = stale_reason(2412.0, 2000.0)
    assert reason is not None
    assert reason.startswith("stale: 2412 ms old, bound 2000 ms")
