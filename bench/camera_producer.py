"""Camera producer benchmark: N looping-file cameras at a target rate against the local stack.

Prints, per camera, the sustained publish rate against the target, frames captured and
dropped, and the process CPU use (process time over wall time) of the whole run. Topics
get a unique prefix; they, their schema subjects and the run's frame blobs are deleted
afterwards.

    .venv/bin/python bench/camera_producer.py --cameras 4 --fps 5 --seconds 30
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from producers.cameras import CameraConfig, CameraSetConfig, CameraSetProducer
from visionlog.blobstore import PROCESSED, BlobStore
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher, admin_client
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.topics import apply_catalogue, full_topic_name, topic_by_name


def write_clip(path: Path, seed: int, frames: int, fps: float, size: tuple[int, int]) -> Path:
    """A moving, noisy scene so JPEG sizes resemble a real camera's."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    background = cv2.GaussianBlur(noise, (0, 0), 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    for number in range(frames):
        image = background.copy()
        x = int(number / frames * (size[0] - 80))
        cv2.rectangle(image, (x, 100), (x + 80, 220), (0, 0, 255), -1)
        cv2.putText(image, f"cam {seed} #{number}", (20, 60), 0, 1.5, (255, 255, 255), 3)
        writer.write(image)
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--source-fps", type=float, default=25.0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    settings = Settings()
    kafka = settings.kafka.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}."})
    specs = (topic_by_name("media.frames"), topic_by_name("cameras.status"))
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, specs)
    producer: CameraSetProducer | None = None
    try:
        producer, wall, cpu = _run(settings, kafka, args)
        _print_report(producer, args, wall, cpu)
    finally:
        # Runs even when the producer failed: the bench leaves no topics, subjects or blobs.
        names = [full_topic_name(spec, kafka) for spec in specs]
        for future in admin.delete_topics(names).values():
            future.result(timeout=30)
        registry = HttpSchemaRegistry(settings.registry)
        for subject in registry.subjects():
            if subject.startswith(kafka.topic_prefix):
                registry.delete_subject(subject)
        if producer is not None:
            blobs = BlobStore.from_settings(settings.minio)
            for name in producer.workers:
                prefix = f"{producer.media_id(name)}/frames/{producer.run_id}/"
                for stored in blobs.client.list_objects(PROCESSED, prefix=prefix, recursive=True):
                    blobs.delete(PROCESSED, stored.object_name)


def _run(
    settings: Settings, kafka: KafkaSettings, args: argparse.Namespace
) -> tuple[CameraSetProducer, float, float]:
    """Run the cameras for `args.seconds`; returns the producer, wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        cameras = [
            CameraConfig(
                name=f"bench-{index}",
                url=str(
                    write_clip(
                        Path(tmp) / f"cam{index}.avi",
                        index,
                        frames=50,
                        fps=args.source_fps,
                        size=(args.width, args.height),
                    )
                ),
                target_fps=args.fps,
            )
            for index in range(args.cameras)
        ]
        camera_set = CameraSetConfig(cameras=cameras, status_interval_s=5.0)
        codec = AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())
        producer = CameraSetProducer(
            camera_set,
            tenant_id="bench",
            publisher=EventPublisher(kafka, codec),
            blobs=BlobStore.from_settings(settings.minio),
        )
        stop = threading.Event()
        timer = threading.Timer(args.seconds, stop.set)
        timer.start()
        wall_start, cpu_start = time.monotonic(), time.process_time()
        try:
            producer.run(stop)
        finally:
            timer.cancel()
        return producer, time.monotonic() - wall_start, time.process_time() - cpu_start


def _print_report(
    producer: CameraSetProducer, args: argparse.Namespace, wall: float, cpu: float
) -> None:
    print(
        f"{args.cameras} cameras, {args.width}x{args.height} source at {args.source_fps} fps, "
        f"target {args.fps} fps, {wall:.1f} s"
    )
    print(
        f"{'camera':<10}{'published':>10}{'fps':>8}{'/target':>9}{'captured':>10}"
        f"{'dropped':>9}{'errors':>8}"
    )
    for name, worker in producer.workers.items():
        snap = worker.snapshot()
        rate = snap.frames_published / wall
        print(
            f"{name:<10}{snap.frames_published:>10}{rate:>8.2f}{rate / args.fps:>9.2f}"
            f"{snap.frames_captured:>10}{snap.frames_dropped:>9}{snap.errors:>8}"
        )
    print(f"process CPU {cpu:.1f} s over {wall:.1f} s wall: {cpu / wall:.2f} cores")


if __name__ == "__main__":
    main()
