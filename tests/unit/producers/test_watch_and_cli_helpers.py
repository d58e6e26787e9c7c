"""Hot-folder settling, target naming and CLI argument helpers (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from producers.cli import expand_paths, parse_labels
from producers.watch import StabilityTracker, free_target


def test_file_is_ready_only_after_staying_unchanged_for_the_settle_time() -> None:
    tracker = StabilityTracker(settle_s=1.0)
    path = Path("/in/a.jpg")
    assert not tracker.observe(path, 100, 1.0, now=0.0)
    assert not tracker.observe(path, 100, 1.0, now=0.5)
    assert not tracker.observe(path, 200, 2.0, now=0.9)  # still growing: clock restarts
    assert not tracker.observe(path, 200, 2.0, now=1.8)
    assert tracker.observe(path, 200, 2.0, now=2.0)


def test_forgotten_and_pruned_files_start_over() -> None:
    tracker = StabilityTracker(settle_s=0.0)
    path = Path("/in/b.png")
    tracker.observe(path, 1, 1.0, now=0.0)
    tracker.prune(set())
    assert not tracker.observe(path, 1, 1.0, now=5.0)
    assert tracker.observe(path, 1, 1.0, now=5.0)


def test_free_target_never_overwrites(tmp_path: Path) -> None:
    assert free_target(tmp_path, "scan.pdf") == tmp_path / "scan.pdf"
    (tmp_path / "scan.pdf").touch()
    (tmp_path / "scan.1.pdf").touch()
    assert free_target(tmp_path, "scan.pdf") == tmp_path / "scan.2.pdf"


def test_labels_are_key_value_pairs() -> None:
    assert parse_labels(["case=A-1", "site=Köln", "note=a=b"]) == {
        "case": "A-1",
        "site": "Köln",
        "note": "a=b",
    }
    assert parse_labels(None) == {}
    with pytest.raises(typer.BadParameter, match="not key=value"):
        parse_labels(["oops"])


def test_folders_expand_one_level_or_recursively(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "sub/b.png", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert expand_paths([tmp_path], recursive=False) == [tmp_path / "a.jpg"]
    assert expand_paths([tmp_path], recursive=True) == [tmp_path / "a.jpg", tmp_path / "sub/b.png"]
    with pytest.raises(typer.BadParameter, match="does not exist"):
        expand_paths([tmp_path / "missing.jpg"], recursive=False)
