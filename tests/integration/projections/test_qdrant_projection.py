"""The Qdrant projection on an embedded store of the test's own, behind real aliases."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import fastavro
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from qdrant_client import QdrantClient, models

from projections.qdrant import (
    QdrantProjection,
    live_qdrant_generation,
    promote_qdrant,
    qdrant_checksum,
)
from projections.qdrant.points import point_id
from projections.runtime import PoisonEventError, ProjectedEvent, ProjectionRunner
from stack.initialise import InitReport
from tests.factories import sample_event
from tests.processor_factories import MODEL, bounding_box, item, new_media_id
from tests.projection_factories import projected
from visionlog.codec import AvroCodec, frame, write_body
from visionlog.kafka import EventPublisher, admin_client, consumer_config
from visionlog.registry import HttpSchemaRegistry, subject_for
from visionlog.schemas import get_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.topics import (
    CATALOGUE,
    apply_catalogue,
    full_topic_name,
    topic_by_name,
    topic_for_event,
)


def embedding(
    media_id: str,
    target: str,
    vector: list[float],
    *,
    target_index: int | None = None,
    class_name: str | None = None,
    text: str | None = None,
) -> ProjectedEvent:
    record = sample_event(
        get_catalog(),
        "EmbeddingComputed",
        media_id=media_id,
        item=item(media_id, page=1),
        target=target,
        target_index=target_index,
        box=None if target == "IMAGE" else bounding_box((1, 2, 3, 4)),
        class_name=class_name,
        text=text,
        vector=vector,
        normalized=False,
        model=MODEL,
    )
    return projected("EmbeddingComputed", record, topic="vision.embeddings")


def media_embeddings(media_id: str, shift: float) -> list[ProjectedEvent]:
    return [
        embedding(media_id, "IMAGE", [1.0, shift, 0.0, 0.0]),
        embedding(
            media_id, "OBJECT_CROP", [0.0, 1.0, shift, 0.0], target_index=0, class_name="person"
        ),
        embedding(
            media_id, "OBJECT_CROP", [0.0, shift, 1.0, 0.0], target_index=1, class_name="car"
        ),
        embedding(media_id, "TEXT_BLOCK", [shift, 0.0, 0.0, 1.0], target_index=0, text="Invoice"),
    ]


def deletion(media_id: str) -> ProjectedEvent:
    record = sample_event(get_catalog(), "MediaDeleted", media_id=media_id, reason="user_request")
    return projected("MediaDeleted", record, topic="media")


@pytest.fixture
def prefixed(pg_schema: Settings, qdrant: QdrantClient) -> Iterator[Settings]:
    """Settings with this test's own collection prefix; its collections dropped afterwards."""
    yield pg_schema
    prefix = pg_schema.projections.qdrant_collection_prefix
    qdrant.update_collection_aliases(
        change_aliases_operations=[
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            for alias in _aliases(qdrant, prefix)
        ]
    )
    for collection in qdrant.get_collections().collections:
        if collection.name.startswith(prefix):
            qdrant.delete_collection(collection.name)


def _count(client: QdrantClient, name: str) -> int:
    return client.count(name, exact=True).count


def _aliases(client: QdrantClient, prefix: str) -> dict[str, str]:
    return {
        a.alias_name: a.collection_name
        for a in client.get_aliases().aliases
        if a.alias_name.startswith(prefix)
    }


def test_first_vectors_create_collections_and_aliases_and_replays_change_nothing(
    prefixed: Settings, qdrant: QdrantClient
) -> None:
    prefix = prefixed.projections.qdrant_collection_prefix
    projection = QdrantProjection(prefixed, qdrant)
    assert projection.generation == "g1"
    group = f"{prefixed.kafka.topic_prefix}visionlog-projection-qdrant-g1"
    assert projection.consumer_group == group
    events = media_embeddings(new_media_id(), 0.1) + media_embeddings(new_media_id(), 0.2)
    projection.apply(events, {})
    assert _aliases(qdrant, prefix) == {
        f"{prefix}_images": f"{prefix}_images_g1",
        f"{prefix}_objects": f"{prefix}_objects_g1",
        f"{prefix}_texts": f"{prefix}_texts_g1",
    }
    params = qdrant.get_collection(f"{prefix}_objects_g1").config.params.vectors
    assert isinstance(params, models.VectorParams)
    assert params.size == 4 and params.distance == models.Distance.COSINE
    first = qdrant_checksum(prefixed, qdrant, "g1")
    projection.apply(events, {})
    assert qdrant_checksum(prefixed, qdrant, "g1") == first
    assert _count(qdrant, f"{prefix}_images") == 2
    assert _count(qdrant, f"{prefix}_objects") == 4
    assert _count(qdrant, f"{prefix}_texts") == 2
    text_event = events[3]
    (stored,) = qdrant.retrieve(f"{prefix}_texts", ids=[point_id(text_event.event_id, 0)])
    assert stored.payload is not None
    assert stored.payload["text"] == "Invoice"
    assert stored.payload["event_id"] == text_event.event_id
    assert stored.payload["page_number"] == 1


def test_filtered_search_through_the_alias(prefixed: Settings, qdrant: QdrantClient) -> None:
    prefix = prefixed.projections.qdrant_collection_prefix
    wanted, other = new_media_id(), new_media_id()
    events = media_embeddings(wanted, 0.1) + media_embeddings(other, 0.1)
    QdrantProjection(prefixed, qdrant).apply(events, {})

    def search(**conditions: str) -> list[Any]:
        return qdrant.query_points(
            f"{prefix}_objects",
            query=[0.0, 1.0, 0.0, 0.0],
            query_filter=models.Filter(
                must=[
                    models.FieldCondition(key=key, match=models.MatchValue(value=value))
                    for key, value in conditions.items()
                ]
            ),
            limit=10,
            with_payload=True,
        ).points

    found = search(media_id=wanted)
    assert {p.payload["class_name"] for p in found} == {"person", "car"}
    assert {p.payload["media_id"] for p in found} == {wanted}
    # The person crop points along the query; it ranks first.
    assert found[0].payload["class_name"] == "person"
    (person,) = search(media_id=wanted, class_name="person")
    assert person.id == point_id(events[1].event_id, 0)
    assert search(media_id=wanted, class_name="bicycle") == []


def test_a_vector_of_another_dimension_is_poison(prefixed: Settings, qdrant: QdrantClient) -> None:
    prefix = prefixed.projections.qdrant_collection_prefix
    projection = QdrantProjection(prefixed, qdrant)
    media_id = new_media_id()
    projection.apply(media_embeddings(media_id, 0.3), {})
    wrong = embedding(media_id, "IMAGE", [0.5, 0.5])
    good = embedding(media_id, "IMAGE", [0.5, 0.5, 0.5, 0.5])
    with pytest.raises(PoisonEventError, match="2 dimensions does not fit") as raised:
        projection.apply([good, wrong], {})
    assert raised.value.event is wrong
    # Nothing of the batch was written; the runner retries it without the poison event.
    assert _count(qdrant, f"{prefix}_images") == 1
    projection.apply([good], {})
    assert _count(qdrant, f"{prefix}_images") == 2
    other = embedding(media_id, "OTHER", [0.5, 0.5, 0.5, 0.5])
    with pytest.raises(PoisonEventError, match="OTHER"):
        projection.apply([other], {})


def test_media_deleted_removes_its_points_for_good(
    prefixed: Settings, qdrant: QdrantClient
) -> None:
    prefix = prefixed.projections.qdrant_collection_prefix
    erased, kept = new_media_id(), new_media_id()
    erased_events = media_embeddings(erased, 0.1)
    projection = QdrantProjection(prefixed, qdrant)
    projection.apply(erased_events + media_embeddings(kept, 0.2), {})
    projection.apply([deletion(erased)], {})
    for target, expected in (("images", 1), ("objects", 2), ("texts", 1)):
        assert _count(qdrant, f"{prefix}_{target}") == expected
        remaining = qdrant.count(
            f"{prefix}_{target}",
            count_filter=models.Filter(
                must=[models.FieldCondition(key="media_id", match=models.MatchValue(value=erased))]
            ),
            exact=True,
        ).count
        assert remaining == 0
    # A redelivered or late embedding of the erased item stays out.
    projection.apply(erased_events, {})
    assert _count(qdrant, f"{prefix}_objects") == 2


def test_rebuild_into_g2_and_promote_moves_every_alias(
    prefixed: Settings, qdrant: QdrantClient
) -> None:
    prefix = prefixed.projections.qdrant_collection_prefix
    events = media_embeddings(new_media_id(), 0.4) + media_embeddings(new_media_id(), 0.7)
    live = QdrantProjection(prefixed, qdrant)
    live.apply(events, {})
    rebuild = QdrantProjection(prefixed, qdrant, generation="g2")
    group = f"{prefixed.kafka.topic_prefix}visionlog-projection-qdrant-g2"
    assert rebuild.consumer_group == group
    rebuild.apply(list(reversed(events)), {})
    # The rebuild writes beside the live collections and leaves the aliases alone.
    assert live_qdrant_generation(prefixed, qdrant) == "g1"
    assert qdrant_checksum(prefixed, qdrant, "g2") == qdrant_checksum(prefixed, qdrant, "g1")
    assert rebuild.generation_changed() is False

    with pytest.raises(ValueError, match="g3"):
        promote_qdrant(prefixed, qdrant, "g3")
    assert promote_qdrant(prefixed, qdrant, "g2") == "g1"
    assert _aliases(qdrant, prefix) == {
        f"{prefix}_{t}": f"{prefix}_{t}_g2" for t in ("images", "objects", "texts")
    }
    assert live.generation_changed() is True
    group = f"{prefixed.kafka.topic_prefix}visionlog-projection-qdrant-g2"
    assert live.consumer_group == group
    assert QdrantProjection(prefixed, qdrant).generation == "g2"
    assert _count(qdrant, f"{prefix}_objects") == 4


# ---------------------------------------------------------------- through Kafka


class _CrashBeforeCommitError(Exception):
    """Stands in for a process dying between the Qdrant write and the Kafka commit."""


@pytest.fixture
def embedding_topics(
    initialised: InitReport, isolated_kafka: KafkaSettings, prefixed: Settings
) -> Iterator[Settings]:
    # One partition per topic keeps the catch-ups quick on a small test machine.
    kafka = isolated_kafka.model_copy(update={"partition_scale": 0.01})
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, CATALOGUE)
    yield prefixed.model_copy(
        update={
            "kafka": kafka,
            "projections": prefixed.projections.model_copy(
                update={"batch_size": 3, "commit_every_messages": 3}
            ),
        }
    )
    names = [full_topic_name(spec, kafka) for spec in CATALOGUE]
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)


def test_runner_redelivers_after_a_crash_and_dead_letters_poison(
    embedding_topics: Settings, qdrant: QdrantClient
) -> None:
    settings = embedding_topics
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    publisher = EventPublisher(settings.kafka, codec)
    media_id = new_media_id()
    events = media_embeddings(media_id, 0.1) + media_embeddings(new_media_id(), 0.2)
    poison = embedding(media_id, "IMAGE", [0.5, 0.5])
    for event in [*events, poison]:
        publisher.publish(event.event_type, event.record)
    publisher.flush()
    # Generations unique to this test keep its consumer groups apart from any other run.
    crashed, clean = (f"g{random.randrange(10**6, 10**7)}" for _ in range(2))

    def crash() -> None:
        raise _CrashBeforeCommitError

    first = QdrantProjection(settings, qdrant, generation=crashed)
    with pytest.raises(_CrashBeforeCommitError):
        ProjectionRunner(first, settings, codec, publisher, before_commit=crash).catch_up(30)
    prefix = settings.projections.qdrant_collection_prefix
    written = sum(
        _count(qdrant, f"{prefix}_{t}_{crashed}")
        for t in ("images", "objects", "texts")
        if qdrant.collection_exists(f"{prefix}_{t}_{crashed}")
    )
    assert 0 < written < len(events)

    stats = {}
    for generation in (crashed, clean):
        projection = QdrantProjection(settings, qdrant, generation=generation)
        runner = ProjectionRunner(projection, settings, codec, publisher)
        stats[generation] = runner.catch_up(timeout_s=30)
    assert stats[clean].dead_lettered == 1
    assert _count(qdrant, f"{prefix}_images_{crashed}") == 2
    assert _count(qdrant, f"{prefix}_objects_{crashed}") == 4
    assert qdrant_checksum(settings, qdrant, crashed) == qdrant_checksum(settings, qdrant, clean)
    dead_letters = [
        codec.decode(message.value()).record
        for message in _read_all(settings, topic_for_event("ProcessingFailed").name)
    ]
    about_poison = [d for d in dead_letters if d["envelope"]["causation_id"] == poison.event_id]
    assert about_poison, dead_letters
    assert all("2 dimensions does not fit" in d["error_message"] for d in about_poison)
    assert {d["failed_event_type"] for d in about_poison} == {"EmbeddingComputed"}


def test_an_event_written_with_a_foreign_schema_of_a_contract_name_is_dead_lettered(
    embedding_topics: Settings, qdrant: QdrantClient
) -> None:
    """Same record name, another namespace: the codec reads it without the contract, so the
    runner dead-letters it instead of handing the projection a record of another shape."""
    settings = embedding_topics
    registry = HttpSchemaRegistry(settings.registry)
    codec = AvroCodec(registry)
    publisher = EventPublisher(settings.kafka, codec)
    topic = full_topic_name(topic_for_event("EmbeddingComputed"), settings.kafka)
    foreign = {
        "type": "record",
        "name": "EmbeddingComputed",
        "namespace": "acme.events",
        "fields": [
            {"name": "media_id", "type": "string"},
            {"name": "vector", "type": {"type": "array", "items": "float"}},
        ],
    }
    schema_id = registry.register(
        subject_for(topic, "acme.events.EmbeddingComputed"), json.dumps(foreign)
    )
    media_id = new_media_id()
    body = write_body(fastavro.parse_schema(foreign), {"media_id": media_id, "vector": [0.5]})
    publisher.publish_bytes(topic, media_id.encode(), frame(schema_id, body))
    good = embedding(media_id, "IMAGE", [0.3, 0.4])
    publisher.publish(good.event_type, good.record)
    publisher.flush()

    generation = f"g{random.randrange(10**6, 10**7)}"
    projection = QdrantProjection(settings, qdrant, generation=generation)
    stats = ProjectionRunner(projection, settings, codec, publisher).catch_up(timeout_s=30)
    assert stats.dead_lettered == 1
    prefix = settings.projections.qdrant_collection_prefix
    assert _count(qdrant, f"{prefix}_images_{generation}") == 1
    dead_letters = [
        codec.decode(message.value()).record
        for message in _read_all(settings, topic_for_event("ProcessingFailed").name)
    ]
    [foreign_letter] = [d for d in dead_letters if d["failed_offset"] == 0]
    assert foreign_letter["error_type"] == "ContractError"
    assert foreign_letter["error_message"] == (
        "acme.events.EmbeddingComputed is not the contract "
        "visionlog.events.EmbeddingComputed of EmbeddingComputed"
    )
    assert foreign_letter["failed_event_type"] == "EmbeddingComputed"


def _read_all(settings: Settings, topic_name: str) -> list[Message]:
    """Every message of the (one-partition) topic, from the start to the end."""
    topic = full_topic_name(topic_by_name(topic_name), settings.kafka)
    consumer = Consumer(consumer_config(settings.kafka, f"reader-{uuid.uuid4().hex[:8]}"))
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        messages: list[Message] = []
        while len(messages) < high:
            message = consumer.poll(5.0)
            assert message is not None, f"{topic} ended after {len(messages)} of {high}"
            assert message.error() is None, message.error()
            messages.append(message)
        return messages
    finally:
        consumer.close()
