"""`visionlog run` waits for each sample's completion in the read model (real PostgreSQL)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from projections.postgres.projection import PostgresProjection
from stack.mainjob import MainJobReport, wait_for_completion
from tests.processor_factories import new_media_id
from tests.projection_factories import projected
from tests.unit.projections.completion_events import media_completed, media_progressed
from tests.unit.projections.test_postgres_rows import media_uploaded
from visionlog.settings import Settings


def _project(settings: Settings, *events: tuple[str, dict[str, object]]) -> None:
    projection = PostgresProjection(settings)
    try:
        projection.apply([projected(kind, record) for kind, record in events], {})
    finally:
        projection.close()


def test_waits_for_every_final_status_and_reports_failures(pg_schema: Settings) -> None:
    photo, scan = new_media_id(), new_media_id()
    _project(
        pg_schema,
        ("MediaUploaded", media_uploaded(photo)),
        ("MediaUploaded", media_uploaded(scan)),
        ("MediaProgressed", media_progressed(photo, 40.0)),
    )
    media = {photo: "photo.jpg", scan: "scan.pdf"}
    said: list[str] = []

    # Nothing completes: it gives up at the timeout and says how far each sample came.
    summaries, complete = wait_for_completion(pg_schema, media, 0.3, said.append, poll_s=0.1)
    assert not complete
    assert [(s.filename, s.progress()) for s in summaries] == [
        ("photo.jpg", "processing 40%"),
        ("scan.pdf", "uploaded"),
    ]
    assert said == ["0/2 samples complete: photo.jpg processing 40%, scan.pdf uploaded"]

    def complete_later() -> None:
        time.sleep(0.3)
        _project(pg_schema, ("MediaCompleted", media_completed(photo)))
        time.sleep(0.3)
        errors = [("render", None, "not a PDF")]
        _project(pg_schema, ("MediaCompleted", media_completed(scan, "FAILED", errors=errors)))

    writer = threading.Thread(target=complete_later)
    writer.start()
    started = time.monotonic()
    summaries, complete = wait_for_completion(pg_schema, media, 60, said.append, poll_s=0.1)
    writer.join()
    assert complete and time.monotonic() - started < 30
    assert [(s.filename, s.status) for s in summaries] == [
        ("photo.jpg", "completed"),
        ("scan.pdf", "failed"),
    ]
    assert summaries[1].failures == ["render: not a PDF"]
    assert said[-1] == "2/2 samples complete: photo.jpg completed, scan.pdf failed"
    report = MainJobReport("http://api", "admin", "pw", Path("pw"), [], summaries, 1.0, complete)
    # `--require-complete` fails on this run: one sample failed.
    assert [m.filename for m in report.failed()] == ["scan.pdf"]
