"""A rebuild's dead letters: kept apart, told apart by their deterministic identity."""

from __future__ import annotations

from typing import Any

from projections.replay.deadletters import (
    DeadLetterKey,
    RebuildDeadLetters,
    dead_letter_stage,
    stages_of,
)
from projections.runtime import ProjectionRunner, RunStats
from visionlog.codec import MalformedEventError
from visionlog.contracts import ProcessingFailed
from visionlog.settings import Settings
from visionlog.stream.deadletter import StageFailure, failure_record
from visionlog.stream.messages import InboundMessage


def dead_letter(offset: int, projection: str = "postgres") -> ProcessingFailed:
    """What a projection's runner writes for an undecodable message at `offset`."""
    return failure_record(
        worker=projection,
        failure=StageFailure(
            dead_letter_stage(projection), MalformedEventError("no magic byte"), 1, False
        ),
        message=InboundMessage("p.media", 3, offset, b"media-1", b"junk"),
        source=None,
        event_type=None,
        component="projections",
        version="0.1.0",
    )


def test_dead_letters_are_identified_by_position_and_projection() -> None:
    first, again = dead_letter(7), dead_letter(7)
    assert DeadLetterKey.of(first) == DeadLetterKey.of(again)
    assert DeadLetterKey.of(first) == DeadLetterKey("p.media", 3, 7, "projection-postgres")
    # The same event refused by another projection is another dead letter.
    assert DeadLetterKey.of(dead_letter(7, "mongo")) != DeadLetterKey.of(first)
    assert first["envelope"]["event_id"] == again["envelope"]["event_id"]
    assert stages_of(["postgres", "mongo"]) == {"projection-postgres", "projection-mongo"}


def test_the_sink_counts_each_dead_letter_once_and_names_those_not_on_the_log() -> None:
    known = DeadLetterKey.of(dead_letter(7))
    assert known is not None
    sink = RebuildDeadLetters(frozenset({known}))
    for record in (dead_letter(7), dead_letter(9), dead_letter(9)):
        sink(record)
    assert sink.count == 2 and sink.already_on_log == 1
    (new,) = sink.new
    assert (new.topic, new.partition, new.offset, new.on_log) == ("p.media", 3, 9, False)
    assert new.media_id == "media-1" and new.error_type == "MalformedEventError"
    assert new.error_message == "no magic byte"


class _Publisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []

    def publish(self, event_type: str, record: Any, key: str | None = None) -> None:
        self.published.append((event_type, record))

    def flush(self) -> None:
        pass


class _Projection:
    name = "postgres"
    event_types = ("MediaUploaded",)
    offsets_in_sink = True
    consumer_group = "test"

    def store_identity(self) -> str | None:
        return None


def test_a_runner_with_a_sink_publishes_no_dead_letter() -> None:
    publisher, kept = _Publisher(), RebuildDeadLetters(frozenset())
    message = InboundMessage("p.media", 0, 4, b"media-2", b"junk")
    runners = [
        ProjectionRunner(_Projection(), Settings(), None, publisher, dead_letters=sink)  # type: ignore[arg-type]
        for sink in (kept, None)
    ]
    for runner in runners:
        runner._dead_letter(message, MalformedEventError("junk"), None, None)
        assert runner.stats == RunStats(dead_lettered=1)
    # The rebuild's runner kept it; only the live one published.
    assert [entry.offset for entry in kept.entries] == [4]
    assert [event_type for event_type, _ in publisher.published] == ["ProcessingFailed"]
