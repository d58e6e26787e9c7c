"""A failed stage's last error sits on the MongoDB media item, as PostgreSQL has it."""

from __future__ import annotations

from psycopg import sql

from projections.mongo import MongoProjection
from projections.mongo.documents import MEDIA_ITEMS
from projections.postgres.projection import PostgresProjection
from projections.runtime import ProjectedEvent
from tests.factories import sample_event
from tests.processor_factories import blob, new_media_id
from tests.projection_factories import projected
from tests.unit.projections.completion_events import event_processed, media_completed
from visionlog.schemas import get_catalog
from visionlog.settings import Settings
from visionlog.stores import mongo_client, postgres_connect
from visionlog.stream.deadletter import StageFailure, failure_record
from visionlog.stream.messages import InboundMessage


def stage_failure_log(media_id: str) -> list[ProjectedEvent]:
    """Page 3 fails OCR: the stage's dead letter, its work report (without the reason, as a
    report may come), the completion naming the error, and a reason-bearing report of
    another stage that has no dead letter."""
    upload = sample_event(
        get_catalog(), "MediaUploaded", media_id=media_id, media_kind="PDF", page_count=3
    )
    page = sample_event(
        get_catalog(),
        "PageRendered",
        media_id=media_id,
        page_number=3,
        image=blob(f"{media_id}/pages/0003.png"),
    )
    failed = failure_record(
        worker="ocr",
        failure=StageFailure("ocr", RuntimeError("corrupt page"), attempts=3, retryable=False),
        message=InboundMessage("media.pages", 0, 7, media_id.encode(), b""),
        source=page,
        event_type="PageRendered",
    )
    completed = media_completed(
        media_id,
        "COMPLETED_WITH_ERRORS",
        completed=2,
        failed=1,
        errors=[("ocr", "page-0003", "page-0003: corrupt page")],
        seconds=30,
    )
    return [
        projected("MediaUploaded", upload, topic="media", offset=0),
        projected("PageRendered", page, topic="media.pages", offset=7),
        projected(
            "EventProcessed",
            event_processed(media_id, "page-0003", [("ocr", "FAILED", None)]),
            topic="processing",
            offset=0,
        ),
        projected(
            "EventProcessed",
            event_processed(media_id, "page-0002", [("detection", "FAILED", "no model")]),
            topic="processing",
            offset=1,
        ),
        projected("MediaCompleted", completed, topic="media", offset=1),
        projected("ProcessingFailed", dict(failed), topic="processing.failed", offset=0),
    ]


def test_the_media_item_carries_the_last_error_of_a_failed_stage(
    pg_schema: Settings, mongo_database: Settings
) -> None:
    settings = pg_schema.model_copy(update={"mongo": mongo_database.mongo})
    media_id = new_media_id()
    events = stage_failure_log(media_id)
    ends = {event.position: event.offset + 1 for event in events}
    postgres = PostgresProjection(settings)
    try:
        postgres.apply(events, ends)
    finally:
        postgres.close()
    with postgres_connect(settings) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT * FROM {} WHERE media_id = %s AND stage = 'ocr' AND status = 'failed'"
            ).format(sql.Identifier(settings.projections.postgres_schema, "processing_status")),
            (media_id,),
        ).fetchone()
    assert row is not None

    with mongo_client(settings) as client:
        # In log order, and the other way round (the dead letter first): the same errors.
        for generation, ordered in (("g1", events), ("g2", list(reversed(events)))):
            mongo = MongoProjection(settings, generation=generation, client=client)
            mongo.apply(ordered, {})
            media = client[settings.mongo.database][f"{MEDIA_ITEMS}_{generation}"].find_one(
                {"_id": media_id}
            )
            assert media is not None
            error = media["progress"]["ocr"]["last_error"]
            assert error["error_message"] == row["error"] == "corrupt page"
            assert error["item_label"] == row["item_label"] == "page-0003"
            assert error["event_id"] == row["event_id"]
            assert error["occurred_at"] == row["event_at"]
            assert media["progress"]["ocr"]["failed"] == 1
            # A stage without a dead letter shows its work report's reason.
            other = media["progress"]["detection"]["last_error"]
            assert (other["error_message"], other["item_label"]) == ("no model", "page-0002")
