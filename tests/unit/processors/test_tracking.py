"""Tracking: optimal assignment, Kalman prediction, id stability through crossings,
occlusions and missed detections, and a generated video of moving shapes."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from processors.detection.detections import Detections
from processors.tracking.assignment import match_by_cost, solve_assignment
from processors.tracking.kalman import BoxKalman
from processors.tracking.tracker import ByteTracker, TrackerConfig, TrackSnapshot, TrackState

NAMES = ("person", "car")


def dets(items: list[tuple[list[float], float, int]]) -> Detections:
    return Detections(
        boxes=np.array([box for box, _, _ in items], np.float32).reshape(-1, 4),
        scores=np.array([score for _, score, _ in items], np.float32),
        class_ids=np.array([cls for _, _, cls in items], np.int64),
        class_names=NAMES,
    )


def box_at(cx: float, cy: float, w: float = 40, h: float = 80) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def nearest(snapshots: list[TrackSnapshot], box: list[float]) -> TrackSnapshot:
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    return min(
        snapshots,
        key=lambda s: float(
            np.hypot(*(np.array([(s.box[0] + s.box[2]) / 2, (s.box[1] + s.box[3]) / 2]) - centre))
        ),
    )


def test_assignment_is_optimal_on_random_matrices() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        rows, cols = (int(n) for n in rng.integers(1, 6, 2))
        cost = np.round(rng.random((rows, cols)) * 20)  # ties included
        pairs = solve_assignment(cost)
        k = min(rows, cols)
        assert len(pairs) == k
        assert len({r for r, _ in pairs}) == k and len({c for _, c in pairs}) == k
        best = min(
            sum(cost[r, c] for r, c in zip(rs, cs, strict=True))
            for rs in itertools.permutations(range(rows), k)
            for cs in itertools.permutations(range(cols), k)
        )
        assert sum(cost[r, c] for r, c in pairs) == pytest.approx(best)


def test_match_by_cost_leaves_expensive_pairs_unmatched() -> None:
    cost = np.array([[0.1, 0.9], [0.95, 0.97], [0.2, 0.3]])
    pairs, rows, cols = match_by_cost(cost, 0.5)
    assert pairs == [(0, 0), (2, 1)] and rows == [1] and cols == []
    assert match_by_cost(np.zeros((0, 3)), 0.5) == ([], [], [0, 1, 2])
    with pytest.raises(ValueError, match="finite"):
        solve_assignment([[np.inf, 1.0]])


def test_kalman_learns_constant_velocity() -> None:
    tracker = BoxKalman.start(box_at(100, 100))
    for step in range(1, 8):
        tracker.predict()
        tracker.update(box_at(100 + 10 * step, 100 + 5 * step))
    tracker.predict()
    np.testing.assert_allclose(tracker.box, box_at(180, 140), atol=3.0)


def test_crossing_objects_keep_their_ids() -> None:
    tracker = ByteTracker()
    ids_a: set[int] = set()
    ids_b: set[int] = set()
    for frame in range(40):
        a = box_at(50 + 10 * frame, 200)  # moves right
        b = box_at(450 - 10 * frame, 215)  # moves left, crossing a around frame 20
        detected = []
        # While they overlap, the one behind is hidden or only weakly detected.
        overlapping = abs((50 + 10 * frame) - (450 - 10 * frame)) < 40
        detected.append((a, 0.9, 0))
        if not overlapping:
            detected.append((b, 0.85, 0))
        elif frame % 2 == 0:
            detected.append((b, 0.3, 0))
        snapshots = tracker.update(dets(detected), frame)
        if frame >= 2:
            ids_a.add(nearest(snapshots, a).track_id)
            if not overlapping:
                ids_b.add(nearest(snapshots, b).track_id)
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b
    assert sorted(t.track_id for t in tracker.active()) == [1, 2]


def test_missed_detections_make_a_track_lost_then_found_again() -> None:
    tracker = ByteTracker()
    states: list[TrackState] = []
    for frame in range(20):
        box = box_at(100 + 8 * frame, 100)
        hidden = 8 <= frame < 13
        snapshots = tracker.update(dets([] if hidden else [(box, 0.9, 1)]), frame)
        [snapshot] = snapshots
        states.append(snapshot.state)
        assert snapshot.track_id == 1 and snapshot.class_name == "car"
        if hidden:
            assert snapshot.confidence == 0.0
            # The predicted box keeps moving with the object.
            assert abs((snapshot.box[0] + snapshot.box[2]) / 2 - (100 + 8 * frame)) < 12
    assert states[0] is TrackState.NEW
    assert states[1:8] == [TrackState.TRACKED] * 7
    assert states[8:13] == [TrackState.LOST] * 5
    assert states[13:] == [TrackState.TRACKED] * 7
    assert tracker.active()[0].hits == 15


def test_low_score_detections_keep_a_track_but_never_start_one() -> None:
    tracker = ByteTracker()
    tracker.update(dets([(box_at(100, 100), 0.9, 0)]), 0)
    tracker.update(dets([(box_at(104, 100), 0.9, 0)]), 1)
    [kept] = tracker.update(dets([(box_at(108, 100), 0.2, 0)]), 2)
    assert kept.state is TrackState.TRACKED and kept.confidence == pytest.approx(0.2)
    fresh = ByteTracker()
    assert fresh.update(dets([(box_at(100, 100), 0.4, 0)]), 0) == []


def test_class_aware_matching_and_tentative_tracks() -> None:
    tracker = ByteTracker()
    tracker.update(dets([(box_at(100, 100), 0.9, 0)]), 0)
    tracker.update(dets([(box_at(100, 100), 0.9, 0)]), 1)
    # A car where the person was does not continue the person's track.
    snapshots = tracker.update(dets([(box_at(100, 100), 0.9, 1)]), 2)
    by_id = {s.track_id: s for s in snapshots}
    assert by_id[1].state is TrackState.LOST and by_id[2].class_name == "car"
    assert by_id[2].state is TrackState.NEW
    # The car's tentative track is removed when it is not seen again.
    snapshots = tracker.update(dets([]), 3)
    assert {s.track_id: s.state for s in snapshots}[2] is TrackState.REMOVED
    assert [t.track_id for t in tracker.active()] == [1]


def test_long_lost_tracks_are_removed_and_ids_are_not_reused() -> None:
    tracker = ByteTracker(TrackerConfig(max_lost_updates=3))
    for frame in range(2):
        tracker.update(dets([(box_at(100, 100), 0.9, 0)]), frame)
    states = [tracker.update(dets([]), frame)[0].state for frame in range(2, 6)]
    assert states == [TrackState.LOST] * 3 + [TrackState.REMOVED]
    assert tracker.active() == []
    [again] = tracker.update(dets([(box_at(100, 100), 0.9, 0)]), 6)
    assert again.track_id == 2


def test_ids_encode_the_start_frame_and_frames_must_advance() -> None:
    tracker = ByteTracker()
    [first] = tracker.update(dets([(box_at(100, 100), 0.9, 0)]), 500)
    assert first.track_id == 500_000_001 and first.first_frame_index == 500
    with pytest.raises(ValueError, match="not after"):
        tracker.update(dets([]), 500)


# Colours (BGR) of the drawn shapes; detection finds each by colour.
SHAPES = {"red": (0, 0, 255), "blue": (255, 0, 0), "green": (0, 200, 0)}


def shape_positions(frame: int) -> dict[str, tuple[int, int]]:
    return {
        "red": (40 + 6 * frame, 120),  # left to right
        "blue": (360 - 6 * frame, 122),  # right to left, crossing behind red
        "green": (60 + 4 * frame, 40 + 3 * frame),  # diagonal
    }


def write_video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (400, 240))
    assert writer.isOpened()
    for frame in range(frames):
        image = np.full((240, 400, 3), 255, np.uint8)
        positions = shape_positions(frame)
        # Red is drawn last, so it hides blue while they cross.
        x, y = positions["blue"]
        cv2.rectangle(image, (x - 14, y - 14), (x + 14, y + 14), SHAPES["blue"], -1)
        x, y = positions["green"]
        cv2.fillPoly(
            image, [np.array([[x, y - 16], [x - 16, y + 14], [x + 16, y + 14]])], SHAPES["green"]
        )
        cv2.circle(image, positions["red"], 20, SHAPES["red"], -1)
        writer.write(image)
    writer.release()


def detect_shapes(image: np.ndarray) -> tuple[Detections, list[str]]:
    """One box per visible colour blob; the score falls with the visible area."""
    boxes, scores, colours = [], [], []
    for name, colour in SHAPES.items():
        distance = np.abs(image.astype(np.int32) - np.array(colour)).sum(axis=2)
        mask = (distance < 120).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            if area < 60:
                continue
            boxes.append([x, y, x + w, y + h])
            scores.append(min(0.95, 0.3 + area / 1200))
            colours.append(name)
    found = Detections(
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        scores=np.array(scores, np.float32),
        class_ids=np.zeros(len(scores), np.int64),
        class_names=("shape",),
    )
    return found, colours


def test_generated_video_of_moving_shapes(tmp_path: Path) -> None:
    video = tmp_path / "shapes.avi"
    write_video(video, 50)
    capture = cv2.VideoCapture(str(video))
    tracker = ByteTracker()
    ids: dict[str, set[int]] = {name: set() for name in SHAPES}
    frame = 0
    hidden_frames = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        found, colours = detect_shapes(image)
        blue_scores = [float(s) for s, c in zip(found.scores, colours, strict=True) if c == "blue"]
        if not blue_scores or max(blue_scores) < 0.5:
            hidden_frames += 1
        snapshots = {s.track_id: s for s in tracker.update(found, frame)}
        for box, colour in zip(found.boxes, colours, strict=True):
            matches = [s for s in snapshots.values() if s.box == tuple(float(v) for v in box)]
            if frame >= 1 and matches and matches[0].state is not TrackState.NEW:
                ids[colour].add(matches[0].track_id)
        frame += 1
    capture.release()
    assert frame == 50
    assert hidden_frames >= 2  # the crossing really hides most of the blue square
    assert all(len(found_ids) == 1 for found_ids in ids.values()), ids
    assert len(set.union(*ids.values())) == 3
