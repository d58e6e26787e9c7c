"""MongoDB progress counters under at-least-once delivery: a redelivered event (the same
batch again, after a restart of the projection, from an older commit, partitions
interleaved otherwise) is counted once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from projections.mongo import MongoProjection, mongo_checksum
from projections.mongo.documents import MEDIA_ITEMS
from projections.runtime import ProjectedEvent
from tests.integration.projections.test_mongo_projection import media_log
from tests.processor_factories import new_media_id
from tests.projection_factories import projected
from visionlog.settings import Settings
from visionlog.stores import MongoClient, mongo_client
from visionlog.topics import topic_for_event


@pytest.fixture
def client(mongo_database: Settings) -> Iterator[MongoClient]:
    with mongo_client(mongo_database) as own:
        yield own


def two_partition_log(records: list[tuple[str, dict[str, Any]]]) -> list[ProjectedEvent]:
    """The events spread over two partitions per topic, offsets counting per partition."""
    offsets: dict[tuple[str, int], int] = {}
    events = []
    for index, (event_type, record) in enumerate(records):
        topic = topic_for_event(event_type).name
        partition = index % 2
        offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
        events.append(
            projected(event_type, record, topic=topic, partition=partition, offset=offset)
        )
    return events


def counters(settings: Settings, client: MongoClient, generation: str, media_id: str) -> Any:
    media = client[settings.mongo.database][f"{MEDIA_ITEMS}_{generation}"].find_one(
        {"_id": media_id}
    )
    assert media is not None
    return {
        "frames": media["frames"],
        "progress": {
            stage: (entry.get("done", 0), entry.get("failed", 0))
            for stage, entry in media["progress"].items()
        },
        "log_positions": media["log_positions"],
    }


def counted_log(media_id: str) -> list[ProjectedEvent]:
    """A media item's log plus another failure and more frames (other events), so that
    counters count past one, over two partitions."""
    records = media_log(media_id)
    more = ("FrameCaptured", "ProcessingFailed")
    records += [r for r in media_log(media_id) if r[0] in more]
    return two_partition_log(records)


def test_redelivered_events_are_counted_once_across_restarts(
    mongo_database: Settings, client: MongoClient
) -> None:
    settings = mongo_database
    media_id = new_media_id()
    events = counted_log(media_id)

    MongoProjection(settings, generation="g1", client=client).apply(events, {})
    once = counters(settings, client, "g1", media_id)
    assert once["frames"]["count"] == 6
    assert once["progress"]["detection"] == (1, 2)
    assert once["progress"]["ocr"] == (2, 0)

    half = len(events) // 2
    first = MongoProjection(settings, generation="g2", client=client)
    first.apply(events[:half], {})
    first.apply(events[:half], {})  # the same batch, redelivered
    first.close()
    # A restart reads again from an older commit: a batch overlapping what was applied.
    restarted = MongoProjection(settings, generation="g2", client=client)
    restarted.apply(events[half // 2 :], {})
    restarted.apply(events, {})
    restarted.close()
    # And once more, the partitions read the other way round (each still in offset order).
    again = MongoProjection(settings, generation="g2", client=client)
    again.apply(sorted(events, key=lambda e: (-e.partition, e.topic, e.offset)), {})
    again.close()

    assert counters(settings, client, "g2", media_id) == once
    assert mongo_checksum(settings, "g2", client) == mongo_checksum(settings, "g1", client)


def test_a_batch_folded_per_document_equals_its_events_applied_one_by_one(
    mongo_database: Settings, client: MongoClient
) -> None:
    settings = mongo_database
    media_id = new_media_id()
    events = counted_log(media_id)

    one_by_one = MongoProjection(settings, generation="g1", client=client)
    for event in events:
        one_by_one.apply([event], {})
    MongoProjection(settings, generation="g2", client=client).apply(events, {})

    assert counters(settings, client, "g2", media_id) == counters(settings, client, "g1", media_id)
    assert mongo_checksum(settings, "g2", client) == mongo_checksum(settings, "g1", client)


class _PositionsReadTooEarly(MongoProjection):
    """Reads the documents' positions as they were before another consumer of the same
    partitions (one that lost them in a rebalance and has not noticed) wrote."""

    def _media_states(self, media_ids: Any) -> dict[str, Any]:
        return {}


def test_positions_moved_by_another_consumer_count_each_event_once(
    mongo_database: Settings, client: MongoClient
) -> None:
    settings = mongo_database
    media_id = new_media_id()
    events = two_partition_log(media_log(media_id))
    MongoProjection(settings, generation="g1", client=client).apply(events, {})

    half = len(events) // 2
    MongoProjection(settings, generation="g2", client=client).apply(events[:half], {})
    _PositionsReadTooEarly(settings, generation="g2", client=client).apply(events, {})

    assert counters(settings, client, "g2", media_id) == counters(settings, client, "g1", media_id)
