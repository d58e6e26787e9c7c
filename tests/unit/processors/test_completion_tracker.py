"""When an item is done: the completion bookkeeping over work reports (no Kafka)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from processors.bindings import reporting_stages
from processors.completion.tracker import (
    CompletionTracker,
    MediaState,
    RunState,
    completion_record,
    progress_record,
)
from visionlog.contracts import validate_record
from visionlog.envelope import Envelope

KINDS: dict[str, tuple[str, ...]] = {
    "MediaUploaded": ("document", "vision"),
    "PageRendered": ("document", "vision"),
    "TextRecognized": ("outputs",),
    "ObjectsDetected": ("outputs",),
}
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
_offsets = itertools.count()
_ids = itertools.count()


def kinds_of(event_type: str) -> Sequence[str]:
    return KINDS.get(event_type, ())


def upload(kind: str = "IMAGE", trace: str = "a" * 32) -> dict[str, Any]:
    return {
        "envelope": {"occurred_at": T0, "trace_id": trace, "tenant_id": "t", "owner_id": "u"},
        "media_id": "m1",
        "media_kind": kind,
    }


def output(event_type: str, label: str | None = None) -> dict[str, Any]:
    return {"event_id": f"e{next(_ids)}", "event_type": event_type, "item_label": label}


def report(
    worker: str,
    input_type: str,
    label: str | None,
    outcomes: list[tuple[str, str, list[dict[str, Any]]]],
    *,
    seconds: float = 1.0,
    trace: str = "a" * 32,
    run_id: str | None = None,
    offset: int | None = None,
    topic: str = "media",
    camera: str | None = None,
) -> dict[str, Any]:
    return {
        "envelope": {"occurred_at": T0 + timedelta(seconds=seconds), "trace_id": trace},
        "media_id": "m1",
        "worker": worker,
        "run_id": run_id,
        "input_event_id": f"in{next(_ids)}",
        "input_event_type": input_type,
        "input_topic": topic,
        "input_partition": 0,
        "input_offset": next(_offsets) if offset is None else offset,
        "item_label": label,
        "camera_id": camera,
        "queue_ms": 1.0,
        "outcomes": [
            {
                "stage": stage,
                "status": status,
                "reason": "boom" if status == "FAILED" else None,
                "outputs": outputs,
                "models": [],
            }
            for stage, status, outputs in outcomes
        ],
    }


def apply(
    tracker: CompletionTracker, state: MediaState, events: list[dict[str, Any]]
) -> list[RunState]:
    finished: list[RunState] = []
    for event in events:
        if "worker" in event:
            finished += tracker.reported(state, event)
        else:
            finished += tracker.uploaded(state, event)
    return finished


def image_reports() -> list[dict[str, Any]]:
    text = output("TextRecognized", "original")
    objects = output("ObjectsDetected", "original")
    return [
        report("document", "MediaUploaded", "original", [("ocr", "DONE", [text])], topic="media"),
        report(
            "vision", "MediaUploaded", "original", [("detection", "DONE", [objects])], topic="media"
        ),
        report("outputs", "TextRecognized", "original", [("outputs", "DONE", [])], topic="ocr"),
        report("outputs", "ObjectsDetected", "original", [("outputs", "DONE", [])], topic="det"),
    ]


def test_an_image_completes_after_its_last_expected_report_and_only_once() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    *early, last = image_reports()
    assert apply(tracker, state, [upload(), *early]) == []
    [run] = tracker.reported(state, last)
    assert run.status() == "COMPLETED"
    assert (run.items_expected, run.items_completed, run.items_failed) == (1, 1, 0)
    assert run.tallies["ocr"] == [1, 0, 0, 0]
    run.completed = True
    assert tracker.reported(state, report("outputs", "TextRecognized", "original", [])) == []


def test_reports_that_overtake_the_upload_wait_for_it() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    # Every report arrives before the upload itself has been read.
    assert apply(tracker, state, image_reports()) == []
    [run] = tracker.uploaded(state, upload())
    assert run.status() == "COMPLETED"


def test_a_report_delivered_twice_is_counted_once() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    first, second, third, fourth = image_reports()
    apply(tracker, state, [upload(), first, second, third])
    # After a crash the document worker reports the upload again (same input offset).
    assert tracker.reported(state, {**first, "input_event_id": "again"}) == []
    assert state.runs[""].pending == {"original": 1}
    assert len(tracker.reported(state, fourth)) == 1


def test_a_document_with_a_page_that_did_not_render_completes_with_errors() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    pages = [output("PageRendered", f"page-{n:04d}") for n in (1, 2)]
    failed = output("ProcessingFailed", "page-0003")
    events: list[dict[str, Any]] = [
        upload("PDF"),
        report("document", "MediaUploaded", None, [("render", "DONE", [*pages, failed])]),
        report("vision", "MediaUploaded", None, [("codes", "NOT_APPLICABLE", [])]),
    ]
    for n in (1, 2):
        label = f"page-{n:04d}"
        events += [
            report(
                "document",
                "PageRendered",
                label,
                [("ocr", "DONE", [output("TextRecognized", label)])],
                topic="pages",
            ),
            report("vision", "PageRendered", label, [("codes", "DONE", [])], topic="pages"),
            report("outputs", "TextRecognized", label, [("outputs", "DONE", [])], topic="ocr"),
        ]
    finished = apply(tracker, state, events)
    [run] = finished
    assert run.status() == "COMPLETED_WITH_ERRORS"
    assert (run.items_expected, run.items_completed, run.items_failed) == (3, 2, 1)
    assert run.errors[0][:2] == ["render", "page-0003"]


def test_a_document_nothing_of_which_could_be_analysed_failed() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    finished = apply(
        tracker,
        state,
        [
            upload("PDF"),
            report("document", "MediaUploaded", None, [("render", "FAILED", [])]),
            report("vision", "MediaUploaded", None, [("codes", "NOT_APPLICABLE", [])]),
        ],
    )
    [run] = finished
    assert run.status() == "FAILED"
    assert run.items_expected == 0


def test_progress_moves_with_finished_pages() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    pages = [output("PageRendered", f"page-{n:04d}") for n in range(1, 5)]
    apply(
        tracker,
        state,
        [
            upload("PDF"),
            report("document", "MediaUploaded", None, [("render", "DONE", pages)]),
            report("vision", "MediaUploaded", None, [("codes", "NOT_APPLICABLE", [])]),
            report(
                "document", "PageRendered", "page-0001", [("ocr", "NOT_APPLICABLE", [])], topic="p"
            ),
            report("vision", "PageRendered", "page-0001", [("codes", "DONE", [])], topic="p"),
        ],
    )
    run = state.runs[""]
    assert run.percent == 25.0
    assert run.progress_dirty


def test_camera_reports_never_complete_anything() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    camera = report(
        "live", "FrameCaptured", "frame-00000001", [("detection", "SKIPPED", [])], camera="gate"
    )
    assert tracker.reported(state, camera) == []
    assert state.runs == {}


def test_a_reprocess_run_completes_on_its_own_without_touching_the_items_status() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    apply(tracker, state, [upload(), *image_reports()])
    own = state.runs[""]
    own.completed = True
    trace = "b" * 32
    objects = output("ObjectsDetected", "original")
    root = report(
        "reprocess",
        "MediaUploaded",
        "original",
        [("detection", "DONE", [objects])],
        trace=trace,
        run_id="r-1",
        offset=0,
    )
    # The outputs worker does not know the run: only the trace ties its report to it.
    downstream = report(
        "outputs",
        "ObjectsDetected",
        "original",
        [("outputs", "DONE", [])],
        trace=trace,
        topic="det2",
    )
    closing = report(
        "reprocess",
        "ReprocessRequested",
        None,
        [("reprocess", "DONE", [output("MediaUploaded", "original")])],
        trace=trace,
        run_id="r-1",
        topic="control.reprocess",
    )
    assert tracker.reported(state, root) == []
    assert tracker.reported(state, downstream) == []
    [run] = tracker.reported(state, closing)
    assert run.run_id == "r-1"
    assert run.status() == "COMPLETED"
    assert own.items_completed == 1


@pytest.mark.parametrize("kind", ["MediaUploaded", "PageRendered", "FrameCaptured"])
def test_the_real_bindings_expect_one_report_per_batch_stage(kind: str) -> None:
    stages = reporting_stages(kind)
    assert stages
    assert len(set(stages)) == len(stages)
    # The live worker detects uploaded images (someone waits for them); its camera frames
    # never complete, and recorded video frames are the vision worker's.
    live = {stage for stage in stages if stage.startswith("live/")}
    assert live == ({"live/detection"} if kind == "MediaUploaded" else set())


def test_state_survives_a_round_trip_through_json() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    apply(tracker, state, [upload(), *image_reports()[:2]])
    again = MediaState.from_json(state.to_json())
    assert again == state


def _envelope(event_type: str) -> Envelope:
    return Envelope(
        event_type=event_type,
        schema_version=1,
        producer="processors.completion/0.2.0",
        correlation_id="m1",
        tenant_id="t",
    )


def test_completion_and_progress_records_match_their_contracts() -> None:
    tracker = CompletionTracker(kinds_of)
    state = MediaState("m1")
    pages = [output("PageRendered", f"page-{n:04d}") for n in (1, 2)]
    events = [
        upload("PDF"),
        report("document", "MediaUploaded", None, [("render", "DONE", pages)]),
        report("vision", "MediaUploaded", None, [("codes", "NOT_APPLICABLE", [])]),
    ]
    for n in (1, 2):
        label = f"page-{n:04d}"
        ocr = report("document", "PageRendered", label, [("ocr", "FAILED", [])], topic="pages")
        ocr["outcomes"][0]["models"] = [
            {"name": "ocr", "version": "1", "source": "tests", "licence": None, "runtime": None}
        ]
        events += [ocr, report("vision", "PageRendered", label, [("codes", "DONE", [])])]
    *early, last = events
    assert apply(tracker, state, early) == []
    progress = progress_record(state, state.runs[""], _envelope("MediaProgressed").as_record())
    validate_record("MediaProgressed", progress)
    assert progress["items_expected"] == 2 and progress["percent"] == 50.0
    [run] = tracker.reported(state, last)
    record = completion_record(state, run, _envelope("MediaCompleted").as_record())
    validate_record("MediaCompleted", record)
    assert record["status"] == "COMPLETED_WITH_ERRORS"
    assert record["models"] == [
        {"name": "ocr", "version": "1", "source": "tests", "licence": None, "runtime": None}
    ]
    assert [e["item_label"] for e in record["errors"]] == ["page-0001", "page-0002"]
