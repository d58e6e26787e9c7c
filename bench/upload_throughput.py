"""Upload throughput: the Ingestor against a raw MinIO put of the same files, side by side.

Run by hand against the local stack (`make stack-up` first):

    .venv/bin/python bench/upload_throughput.py --files 60 --size 320x240

The Ingestor run includes everything an upload costs: type detection, a full decode check,
SHA-256, the dedupe index (lookup and conditional put), the blob put and a checked Kafka
publish. Files are generated fresh (noise, so nothing deduplicates) and half JPEG, half
PNG. Kafka topics live under a throw-away prefix; all blobs written are removed afterwards.
"""

from __future__ import annotations

import argparse
import io
import time
import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image

from producers.ingest import Ingestor
from producers.storage import sha256_index_key
from visionlog.blobstore import ORIGINALS, BlobStore
from visionlog.kafka import admin_client
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import get_settings
from visionlog.topics import apply_catalogue, full_topic_name, topic_by_name


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    content_type: str


def generate(count: int, width: int, height: int) -> list[Sample]:
    rng = np.random.default_rng(7)
    samples = []
    for index in range(count):
        # Smooth gradients plus noise: compresses like a photo, not like pure noise.
        base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        noise = rng.normal(0, 25, (height, width, 3)).astype(np.float32)
        pixels = np.clip(base + noise + index, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        buffer = io.BytesIO()
        if index % 2:
            image.save(buffer, format="PNG")
            samples.append(Sample(f"img{index}.png", buffer.getvalue(), "image/png"))
        else:
            image.save(buffer, format="JPEG", quality=88)
            samples.append(Sample(f"img{index}.jpg", buffer.getvalue(), "image/jpeg"))
    return samples


def report(label: str, seconds: float, samples: list[Sample]) -> float:
    megabytes = sum(len(s.data) for s in samples) / 1e6
    rate = len(samples) / seconds
    print(f"{label:<28} {seconds:7.2f} s  {rate:7.1f} files/s  {megabytes / seconds:7.2f} MB/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of each image")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    settings = get_settings()
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    kafka = settings.kafka.model_copy(update={"topic_prefix": prefix})
    media = topic_by_name("media")
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, (media,))
    blobs = BlobStore.from_settings(settings.minio)
    ingestor = Ingestor.from_settings(settings, kafka)

    samples = generate(args.files, width, height)
    total_mb = sum(len(s.data) for s in samples) / 1e6
    print(f"{len(samples)} files, {total_mb:.2f} MB ({args.size}, half JPEG, half PNG)")
    raw_keys: list[str] = []
    stored: list[tuple[str, str]] = []
    try:
        # Warm both paths (connections, schema registration) outside the timings.
        warm = generate(1, 32, 32)[0]
        result = ingestor.ingest_bytes(warm.data, filename=warm.name)
        stored.append((result.original["key"], result.original["sha256"]))
        blobs.put_bytes(ORIGINALS, f"bench/{prefix}warm", warm.data, warm.content_type)
        raw_keys.append(f"bench/{prefix}warm")

        start = time.perf_counter()
        for sample in samples:
            key = f"bench/{prefix}{sample.name}"
            blobs.put_bytes(ORIGINALS, key, sample.data, sample.content_type)
            raw_keys.append(key)
        raw_rate = report("raw minio put", time.perf_counter() - start, samples)

        start = time.perf_counter()
        for sample in samples:
            result = ingestor.ingest_bytes(sample.data, filename=sample.name)
            stored.append((result.original["key"], result.original["sha256"]))
        ingest_rate = report("Ingestor.ingest_bytes", time.perf_counter() - start, samples)
        print(f"ratio ingest/raw: {ingest_rate / raw_rate:.2f} (files/s)")
    finally:
        ingestor.close()
        for key in raw_keys:
            blobs.delete(ORIGINALS, key)
        for key, digest in stored:
            blobs.delete(ORIGINALS, key)
            blobs.delete(ORIGINALS, sha256_index_key(digest))
        name = full_topic_name(media, kafka)
        admin.delete_topics([name])[name].result(timeout=30)
        registry = HttpSchemaRegistry(settings.registry)
        for subject in registry.subjects():
            if subject.startswith(prefix):
                registry.delete_subject(subject)


if __name__ == "__main__":
    main()
