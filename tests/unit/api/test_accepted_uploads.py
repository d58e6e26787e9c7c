"""Read your own writes without servers: which record answers, the cleaning schedule, the
accepted row and detail, and the log position in the ingest answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.accepted import (
    ACCEPTED_STATUS,
    CleanupSchedule,
    DetailSource,
    accepted_row,
    detail_source,
)
from api.routes.media import accepted_detail
from producers.http import AcceptedUpload, IngestAccepted, LogPosition
from producers.ingest import IngestResult
from producers.media_types import MediaKind
from visionlog.blobstore import BlobRef
from visionlog.kafka import Delivered

ACCEPTED_AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
POSITION = Delivered("visionlog.media", 3, 41)


def result(position: Delivered | None = POSITION, duplicate_of: str | None = None) -> IngestResult:
    return IngestResult(
        media_id="m-1",
        event_id="e-1",
        trace_id="a" * 32,
        media_type="PNG",
        media_kind=MediaKind.IMAGE,
        original=BlobRef(
            bucket="media-originals",
            key="2026/03/01/m-1.png",
            sha256="0" * 64,
            size_bytes=1234,
            content_type="image/png",
        ),
        duplicate_of=duplicate_of,
        width=64,
        height=48,
        position=position,
    )


def upload(ingest: IngestResult) -> AcceptedUpload:
    return AcceptedUpload(
        result=ingest,
        tenant_id="tenant",
        owner_id="u-1",
        filename="scan.png",
        profile="ocr",
        labels={"case": "4711"},
    )


def as_stored(row: dict[str, Any]) -> dict[str, Any]:
    """The row as PostgreSQL gives it back (labels decoded, accepted_at set)."""
    stored = dict(row)
    stored["labels"] = row["labels"].obj
    stored["accepted_at"] = ACCEPTED_AT
    return stored


@pytest.mark.parametrize(
    ("read_model", "accepted", "expected"),
    [
        ({"status": "uploaded"}, {"media_id": "m"}, DetailSource.READ_MODEL),
        ({"status": "processing"}, None, DetailSource.READ_MODEL),
        # Whatever the read model says wins, even a final or deleted status.
        ({"status": "deleted"}, {"media_id": "m"}, DetailSource.READ_MODEL),
        (None, {"media_id": "m"}, DetailSource.ACCEPTED),
        (None, None, DetailSource.MISSING),
    ],
)
def test_the_read_model_answers_once_it_has_the_item(
    read_model: dict[str, Any] | None, accepted: dict[str, Any] | None, expected: DetailSource
) -> None:
    assert detail_source(read_model, accepted) is expected


def test_cleaning_is_due_at_most_once_per_interval() -> None:
    now = [100.0]
    schedule = CleanupSchedule(60.0, clock=lambda: now[0])
    assert schedule.claim()
    assert not schedule.claim()
    now[0] = 159.9
    assert not schedule.claim()
    now[0] = 160.0
    assert schedule.claim()
    assert not schedule.claim()


def test_the_accepted_row_keeps_what_the_upload_told() -> None:
    row = accepted_row(upload(result(duplicate_of="m-0")))
    assert row["media_id"] == "m-1" and row["tenant_id"] == "tenant" and row["owner_id"] == "u-1"
    assert (row["filename"], row["kind"], row["profile"]) == ("scan.png", "IMAGE", "ocr")
    assert (row["content_type"], row["size_bytes"]) == ("image/png", 1234)
    assert row["duplicate_of"] == "m-0" and row["labels"].obj == {"case": "4711"}
    assert (row["log_topic"], row["log_partition"], row["log_offset"]) == ("visionlog.media", 3, 41)
    unpositioned = accepted_row(upload(result(position=None)))
    assert (unpositioned["log_topic"], unpositioned["log_offset"]) == (None, None)


def test_an_accepted_detail_says_accepted_and_what_is_known() -> None:
    detail = accepted_detail(as_stored(accepted_row(upload(result()))))
    assert detail.status == ACCEPTED_STATUS and detail.media_id == "m-1"
    assert (detail.owner_id, detail.tenant_id, detail.filename) == ("u-1", "tenant", "scan.png")
    assert detail.accepted_at == ACCEPTED_AT == detail.status_at
    assert detail.log_position == LogPosition(topic="visionlog.media", partition=3, offset=41)
    assert detail.original is not None and detail.original.size_bytes == 1234
    assert detail.stages == [] and detail.completion is None and detail.percent is None
    assert detail.labels == {"case": "4711"}
    plain = accepted_detail(as_stored(accepted_row(upload(result(position=None)))))
    assert plain.log_position is None


def test_the_ingest_answer_and_its_replay_carry_the_log_position() -> None:
    first = result()
    body = IngestAccepted.from_result(first).model_dump()
    assert body["log_position"] == {"topic": "visionlog.media", "partition": 3, "offset": 41}
    replayed = IngestResult.from_record(first.as_record(), replayed=True)
    assert replayed.position == POSITION
    assert IngestAccepted.from_result(replayed).model_dump() == body
    # An answer recorded before positions were kept replays without one.
    legacy = first.as_record()
    del legacy["position"]
    old = IngestResult.from_record(legacy, replayed=True)
    assert old.position is None
    assert IngestAccepted.from_result(old).model_dump()["log_position"] is None
