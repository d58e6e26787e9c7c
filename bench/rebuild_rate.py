"""Rebuild rate of each read model, next to the raw consume rate of the same topics.

Publishes a synthetic log under a topic prefix of its own (uploads, detections with
several boxes, OCR text, image embeddings), then in one run measures
- raw consume: a confluent consumer reading every message of the projection's topics,
  without decoding (the ceiling set by the broker and the client),
- decode: the same messages through the Avro codec,
- rebuild: each projection's `catch_up` into a fresh schema, database or collection,
and prints events per second and the ratios rebuild / raw consume.

Run: .venv/bin/python bench/rebuild_rate.py [--media 300] [--boxes 8]
(the local stack must be up: `visionlog stack up`)
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from psycopg import sql

from projections.mongo.projection import MongoProjection
from projections.postgres.projection import PostgresProjection
from projections.qdrant.projection import QdrantProjection
from projections.runtime import Projection, ProjectionRunner, projection_topics
from tests.factories import sample_event
from tests.processor_factories import blob, detections_event, item, text_event
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher, admin_client, consumer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import Settings, get_settings
from visionlog.stores import mongo_client, postgres_connect, qdrant_client
from visionlog.topics import CATALOGUE, apply_catalogue, full_topic_name

HEADER = "read model  events     raw/s  decode/s  rebuild/s  rebuild/raw"


def publish_log(settings: Settings, codec: AvroCodec, media: int, boxes: int) -> int:
    publisher = EventPublisher(settings.kafka, codec)
    rng = np.random.default_rng(7)
    count = 0
    for index in range(media):
        media_id = str(uuid.uuid4())
        uploaded = sample_event(get_catalog(), "MediaUploaded", media_id=media_id)
        uploaded["media_kind"] = "IMAGE"
        publisher.publish("MediaUploaded", uploaded)
        ref = item(media_id, image=blob(f"{media_id}.jpg"))
        found: list[tuple[str, float, tuple[float, float, float, float], float | None]] = [
            ("person", 0.5 + 0.4 * float(rng.random()), (10.0 * b, 20.0, 10.0 * b + 40, 120.0), 4.0)
            for b in range(boxes)
        ]
        publisher.publish("ObjectsDetected", detections_event(media_id, ref, found))
        words = [
            (word, (60.0 * n, 10.0, 60.0 * n + 50, 30.0))
            for n, word in enumerate(f"Rechnung {index} für die Straßenbahn".split())
        ]
        publisher.publish(
            "TextRecognized",
            text_event(media_id, ref, [[words]]),
        )
        embedding = sample_event(get_catalog(), "EmbeddingComputed", media_id=media_id)
        embedding["item"] = ref
        embedding["target"] = "IMAGE"
        embedding["target_index"] = None
        embedding["vector"] = [float(v) for v in rng.standard_normal(128)]
        publisher.publish("EmbeddingComputed", embedding)
        count += 4
    publisher.flush()
    return count


def raw_consume(
    settings: Settings, topics: list[str], decode: Callable[[bytes | None], object] | None
) -> tuple[int, float]:
    consumer = Consumer(consumer_config(settings.kafka, f"bench-raw-{uuid.uuid4().hex[:8]}"))
    metadata = consumer.list_topics(timeout=10)
    partitions = []
    remaining = 0
    for topic in topics:
        for number in metadata.topics[topic].partitions:
            tp = TopicPartition(topic, number, OFFSET_BEGINNING)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            remaining += high - low
            partitions.append(tp)
    total = remaining
    started = time.perf_counter()
    consumer.assign(partitions)
    while remaining > 0:
        for message in consumer.consume(500, 1.0):
            if message.error() is None:
                if decode is not None:
                    decode(message.value())
                remaining -= 1
    seconds = time.perf_counter() - started
    consumer.close()
    return total, seconds


def rebuild_one(projection: Projection, settings: Settings, codec: AvroCodec) -> tuple[int, float]:
    runner = ProjectionRunner(projection, settings, codec, EventPublisher(settings.kafka, codec))
    started = time.perf_counter()
    stats = runner.catch_up(timeout_s=1800)
    return stats.applied + stats.skipped, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", type=int, default=300)
    parser.add_argument("--boxes", type=int, default=8)
    parser.add_argument(
        "--stores", default="postgres,mongo,qdrant", help="comma-separated read models"
    )
    args = parser.parse_args()

    base = get_settings()
    name = f"bench{uuid.uuid4().hex[:8]}"
    kafka = base.kafka.model_copy(update={"topic_prefix": f"{name}."})
    settings = base.model_copy(
        update={
            "kafka": kafka,
            "projections": base.projections.model_copy(
                update={"postgres_schema": name, "qdrant_collection_prefix": name}
            ),
            "mongo": base.mongo.model_copy(update={"database": name}),
        }
    )
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, CATALOGUE)
    codec = AvroCodec(HttpSchemaRegistry(base.registry))
    qdrant_dir = Path(tempfile.mkdtemp(prefix="bench-qdrant-"))
    qdrant = qdrant_client(settings, path=qdrant_dir)
    try:
        events = publish_log(settings, codec, args.media, args.boxes)
        print(f"published {events} events for {args.media} media items ({args.boxes} boxes each)")
        projections: dict[str, Callable[[], Projection]] = {
            "postgres": lambda: PostgresProjection(settings),
            "mongo": lambda: MongoProjection(settings),
            "qdrant": lambda: QdrantProjection(settings, qdrant),
        }
        print(HEADER)
        for label, build in projections.items():
            if label not in args.stores.split(","):
                continue
            projection = build()
            topics = projection_topics(projection, settings)
            raw_events, raw_s = raw_consume(settings, topics, None)
            _, decode_s = raw_consume(settings, topics, codec.decode)
            seen, rebuild_s = rebuild_one(projection, settings, codec)
            projection.close()
            raw_rate, decode_rate, rebuild_rate = (
                raw_events / raw_s,
                raw_events / decode_s,
                seen / rebuild_s,
            )
            print(
                f"{label:10} {raw_events:7d} {raw_rate:9.0f} {decode_rate:9.0f} "
                f"{rebuild_rate:10.0f} {rebuild_rate / raw_rate:12.3f}"
            )
    finally:
        qdrant.close()
        with postgres_connect(settings, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        with mongo_client(settings) as client:
            client.drop_database(name)
        names = [full_topic_name(spec, kafka) for spec in CATALOGUE]
        for future in admin.delete_topics(names).values():
            future.result(timeout=30)


if __name__ == "__main__":
    main()
