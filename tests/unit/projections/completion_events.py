"""Schema-valid work reports, progress and completions for projection and API tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.factories import sample_event
from tests.processor_factories import MODEL, assert_valid
from visionlog.envelope import deterministic_event_id
from visionlog.schemas import get_catalog

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Outcome = tuple[str, str, str | None]  # stage, status symbol, reason


def _stamp(record: dict[str, Any], seconds: float, owner_id: str, event_id: str | None) -> None:
    record["envelope"]["occurred_at"] = T0 + timedelta(seconds=seconds)
    record["envelope"]["owner_id"] = owner_id
    if event_id is not None:
        record["envelope"]["event_id"] = event_id
    assert_valid(record["envelope"]["event_type"], record)


def tally(
    stage: str, done: int = 0, na: int = 0, skipped: int = 0, failed: int = 0
) -> dict[str, Any]:
    return {
        "stage": stage,
        "done": done,
        "not_applicable": na,
        "skipped": skipped,
        "failed": failed,
    }


def media_progressed(
    media_id: str,
    percent: float,
    *,
    completed: int = 0,
    expected: int | None = None,
    run_id: str | None = None,
    seconds: float = 10,
    owner_id: str = "owner-1",
) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "MediaProgressed",
        media_id=media_id,
        run_id=run_id,
        items_expected=expected,
        items_completed=completed,
        percent=float(percent),
        stages=[tally("detection", done=completed)],
    )
    _stamp(record, seconds, owner_id, None)
    return record


def media_completed(
    media_id: str,
    status: str = "COMPLETED",
    *,
    expected: int = 3,
    completed: int = 3,
    failed: int = 0,
    errors: Sequence[tuple[str, str | None, str]] = (),
    run_id: str | None = None,
    seconds: float = 60,
    owner_id: str = "owner-1",
) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "MediaCompleted",
        media_id=media_id,
        run_id=run_id,
        status=status,
        items_expected=expected,
        items_completed=completed,
        items_failed=failed,
        stages=[tally("detection", done=completed, failed=failed), tally("ocr", na=expected)],
        errors=[
            {"stage": stage, "item_label": label, "message": message}
            for stage, label, message in errors
        ],
        started_at=T0,
        duration_ms=int(seconds * 1000),
        models=[MODEL],
    )
    # Deterministic in the media id and the run, as the completion processor makes it.
    _stamp(
        record,
        seconds,
        owner_id,
        deterministic_event_id("MediaCompleted", media_id, run_id or ""),
    )
    return record


def event_processed(
    media_id: str,
    item_label: str | None,
    outcomes: Sequence[Outcome],
    *,
    worker: str = "vision",
    camera_id: str | None = None,
    run_id: str | None = None,
    seconds: float = 5,
    owner_id: str = "owner-1",
    offset: int = 0,
) -> dict[str, Any]:
    input_event_id = str(uuid.uuid4())
    record = sample_event(
        get_catalog(),
        "EventProcessed",
        media_id=media_id,
        worker=worker,
        run_id=run_id,
        input_event_id=input_event_id,
        input_event_type="FrameCaptured" if camera_id else "PageRendered",
        input_topic="media.frames",
        input_partition=0,
        input_offset=offset,
        item_label=item_label,
        camera_id=camera_id,
        queue_ms=12.5,
        outcomes=[
            {
                "stage": stage,
                "status": status,
                "reason": reason,
                "attempts": 1,
                "duration_ms": 3.0,
                "outputs": [],
                "models": [],
            }
            for stage, status, reason in outcomes
        ],
    )
    _stamp(
        record,
        seconds,
        owner_id,
        deterministic_event_id("EventProcessed", input_event_id, worker, run_id or ""),
    )
    return record
