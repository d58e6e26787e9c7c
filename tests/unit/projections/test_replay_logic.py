"""Pure parts of replay: reprocess selections and the model-version diff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.reprocess.request import (
    ReprocessError,
    ReprocessSelection,
    reprocessable_stages,
    request_record,
    selected,
    selection_from_record,
)
from projections.replay.diff import Box, compare, match_boxes
from tests.processor_factories import assert_valid

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def source(media_id: str, *, camera: str | None = None, at: datetime = NOW) -> dict[str, Any]:
    return {
        "envelope": {"occurred_at": at},
        "media_id": media_id,
        "camera_id": camera,
    }


def test_reprocessable_stages_are_those_fed_by_source_events() -> None:
    stages = reprocessable_stages()
    assert {"ocr", "detection", "codes", "anonymise", "image-embedding"} <= set(stages)
    # Stages fed by derived events rerun by themselves when the new results arrive.
    assert "tracking" not in stages and "outputs" not in stages and "pii" not in stages


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (ReprocessSelection(media_ids=["m"]), "at least one stage"),
        (ReprocessSelection(media_ids=["m"], stages=["tracking"]), "not reprocessable"),
        (ReprocessSelection(stages=["ocr"]), "selection is empty"),
        (
            ReprocessSelection(media_ids=["m"], stages=["ocr"], model_versions={"detection": "2"}),
            "stages not selected",
        ),
        (
            ReprocessSelection(stages=["ocr"], from_time=NOW, to_time=NOW - timedelta(seconds=1)),
            "after to_time",
        ),
    ],
)
def test_invalid_selections_are_refused_with_the_reason(
    selection: ReprocessSelection, message: str
) -> None:
    with pytest.raises(ReprocessError, match=message):
        selection.validate()


def test_selection_filters_by_media_camera_and_time() -> None:
    by_media = ReprocessSelection(media_ids=["a"], stages=["ocr"])
    assert selected(by_media, source("a")) and not selected(by_media, source("b"))
    by_camera = ReprocessSelection(camera_id="gate", stages=["detection"])
    assert selected(by_camera, source("x", camera="gate"))
    assert not selected(by_camera, source("x", camera="yard"))
    window = ReprocessSelection(
        from_time=NOW - timedelta(hours=1), to_time=NOW, stages=["detection"]
    )
    assert selected(window, source("x", at=NOW - timedelta(minutes=5)))
    assert not selected(window, source("x", at=NOW + timedelta(minutes=5)))
    assert not selected(window, source("x", at=NOW - timedelta(hours=2)))
    frame = source("x", at=NOW + timedelta(days=1)) | {"captured_at": NOW}
    assert selected(window, frame), "frames are selected by their capture time"


def test_request_record_is_a_valid_contract_and_round_trips() -> None:
    selection = ReprocessSelection(
        media_ids=["m1", "m2"], stages=["detection"], model_versions={"detection": "v2"}
    )
    record = request_record(selection, "admin", "default", "11111111-1111-1111-1111-111111111111")
    assert_valid("ReprocessRequested", record)
    assert selection_from_record(record) == selection
    everything = ReprocessSelection(stages=["ocr"], all_media=True)
    back = selection_from_record(request_record(everything, "admin", "default", "r"))
    assert back.all_media and back.media_ids == []


def box(name: str, x: float, y: float, size: float = 10.0, score: float = 0.9) -> Box:
    return Box(name, score, x, y, x + size, y + size)


def test_boxes_match_by_class_and_overlap() -> None:
    old = [box("person", 0, 0), box("car", 100, 100), box("dog", 50, 50)]
    new = [box("person", 1, 1), box("car", 200, 200), box("cat", 50, 50)]
    pairs, added, removed = match_boxes(old, new)
    assert [(a.class_name, b.class_name) for a, b in pairs] == [("person", "person")]
    assert sorted(b.class_name for b in added) == ["car", "cat"]
    assert sorted(b.class_name for b in removed) == ["car", "dog"]


def test_each_box_matches_at_most_once() -> None:
    old = [box("person", 0, 0)]
    new = [box("person", 0, 0), box("person", 1, 0)]
    pairs, added, removed = match_boxes(old, new)
    assert len(pairs) == 1 and len(added) == 1 and not removed


def detection_row(media: str, label: str, name: str, x: float) -> dict[str, Any]:
    return {
        "media_id": media,
        "item_label": label,
        "class_name": name,
        "confidence": 0.8,
        "x_min": x,
        "y_min": 0.0,
        "x_max": x + 10,
        "y_max": 10.0,
    }


def test_detection_diff_counts_changes_per_item() -> None:
    old = [detection_row("m", "original", "person", 0), detection_row("m", "frame-1", "car", 0)]
    new = [
        detection_row("m", "original", "person", 0.5),
        detection_row("m", "original", "dog", 40),
        detection_row("n", "original", "bus", 0),
    ]
    diff = compare("detection", "v1", "v2", old, new)
    assert (diff.old_results, diff.new_results) == (2, 3)
    assert diff.only_old == ["m/frame-1"] and diff.only_new == ["n/original"]
    assert diff.compared_items == 1
    [change] = diff.changed
    assert [b["class_name"] for b in change.added] == ["dog"] and change.removed == []
    assert diff.new_count_by_class == {"person": 1, "dog": 1, "bus": 1}
    assert diff.to_dict()["changed"][0]["item_label"] == "original"


def test_text_diff_reports_changed_texts_only() -> None:
    def row(label: str, text: str) -> dict[str, Any]:
        return {"media_id": "m", "item_label": label, "value": text, "class_name": None}

    old = [row("page-0001", "Invoice 2026"), row("page-0002", "Lieferschein")]
    new = [row("page-0001", "Invoice 2026"), row("page-0002", "Lieferschein Straße")]
    diff = compare("ocr", "v1", "v2", old, new)
    assert diff.compared_items == 2
    [change] = diff.changed
    assert (change.item_label, change.old_text, change.new_text) == (
        "page-0002",
        "Lieferschein",
        "Lieferschein Straße",
    )
