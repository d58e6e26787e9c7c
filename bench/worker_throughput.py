"""Detection and OCR through the real workers, next to the engines alone, in one run.

- **detection**: a backlog of video frames (`FrameCaptured`, profile `live`: detection with
  its tracking and the scene sentence; codes, anonymisation and embeddings do not apply,
  object crops are not embedded) over several videos is
  published on the bench's own topics to a real `vision` worker process (Kafka, MinIO, the
  registry, the faust runtime, the work reports); frames per second from the first frame
  published to the last `ObjectsDetected` stored by the brokers. Beside it, on the same
  frames and the same machine: the compiled detector alone in OpenVINO's throughput mode
  (an `AsyncInferQueue` with the optimal number of requests on the frames' prepared input
  tensors), the issue's reference.
- **OCR**: a backlog of rendered text pages (`PageRendered`) to a real `document` worker;
  pages per minute to the last `TextRecognized`. Beside it: the worker's OCR engine alone
  (`Engines.ocr()`) reading the same decoded pages, as many at once as the worker reads.

The direct sides run before and after the worker side, best kept; the worker is idle then.
Check `uptime` first: the figures are only comparable on a quiet machine.

Run: .venv/bin/python bench/worker_throughput.py [--frames 240] [--videos 8] [--pages 24]
     [--only detection|ocr]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openvino
from confluent_kafka import Consumer

from bench.ocr_bench import generate_pages
from processors.detection.frames import decode_for
from processors.detection.stage import source_size_for
from processors.engines import Engines, parallel_pages
from processors.modelstore import load
from processors.openvino_runtime import optimal_requests
from stack import manager
from stack.initialise import initialise
from visionlog.blobstore import PROCESSED, BlobStore
from visionlog.codec import AvroCodec
from visionlog.envelope import Envelope
from visionlog.kafka import EventPublisher, admin_client, consumer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import Settings, get_settings
from visionlog.stream.headers import new_trace_id
from visionlog.topics import CATALOGUE, apply_catalogue, full_topic_name

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def bench_topics(settings: Settings) -> Iterator[Settings]:
    """Settings whose topics are the bench's own, deleted afterwards."""
    kafka = settings.kafka.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}."})
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, CATALOGUE)
    try:
        yield settings.model_copy(update={"kafka": kafka})
    finally:
        for future in admin.delete_topics(
            [full_topic_name(spec, kafka) for spec in CATALOGUE]
        ).values():
            future.result(timeout=30)


@contextmanager
def worker(kind: str, settings: Settings, state: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "VISIONLOG_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "VISIONLOG_STATE_DIR": str(state),
        "VISIONLOG_LOGGING__FORMAT": "text",
        "VISIONLOG_LOGGING__LEVEL": "WARNING",
        # Detection is measured: the crops of what it finds are not embedded on top.
        "VISIONLOG_PROCESSORS__OBJECT_EMBEDDINGS": "false",
    }
    log = (state / f"{kind}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "stack.cli", "processors", "worker", kind],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


class Results:
    """Reads one result type from the bench's topic, from the start."""

    def __init__(self, settings: Settings, codec: AvroCodec, event_type: str, topic: str) -> None:
        self.codec = codec
        self.event_type = event_type
        self.consumer = Consumer(consumer_config(settings.kafka, f"bench-{uuid.uuid4().hex[:8]}"))
        self.consumer.subscribe([full_topic_name(_spec(topic), settings.kafka)])
        self.seen: dict[str, float] = {}

    def until(self, wanted: set[str], timeout_s: float, process: subprocess.Popen[bytes]) -> float:
        """Waits for a result of every wanted input event id; the last one's Kafka time."""
        deadline = time.monotonic() + timeout_s
        while not wanted <= set(self.seen):
            if time.monotonic() > deadline or process.poll() is not None:
                missing = len(wanted - set(self.seen))
                raise RuntimeError(f"{missing} results missing (worker exit {process.poll()})")
            for message in self.consumer.consume(500, 0.5):
                if message.error() is not None:
                    continue
                decoded = self.codec.decode(message.value())
                if decoded.event_type != self.event_type:
                    continue
                cause = str(decoded.record["envelope"]["causation_id"])
                self.seen[cause] = message.timestamp()[1] / 1000.0
        return max(self.seen[event_id] for event_id in wanted)

    def close(self) -> None:
        self.consumer.close()


def _spec(name: str) -> Any:
    return next(spec for spec in CATALOGUE if spec.name == name)


def _envelope(event_type: str, media_id: str) -> dict[str, Any]:
    return dict(
        Envelope(
            event_type=event_type,
            schema_version=get_catalog().event(event_type).version,
            producer="bench/0",
            correlation_id=media_id,
            tenant_id="bench",
            trace_id=new_trace_id(),
        ).as_record()
    )


def sample_frames(per_video: int, videos: int) -> list[list[bytes]]:
    """Per video, full-size frames of a scene panning slowly (a packaged sample photo shifted
    a few pixels a frame), so tracking follows real objects as in a real video."""
    sources = []
    for name in ("bus.jpg", "zidane.jpg"):
        image = cv2.imread(str(load("sample-photos").path(name)))
        assert image is not None
        sources.append(image)
    clips = []
    for video in range(videos):
        image = sources[video % len(sources)]
        height, width = image.shape[:2]
        frames = []
        for index in range(per_video):
            shift = np.array([[1, 0, 2 * index], [0, 1, 0]], np.float32)
            moved = cv2.warpAffine(image, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
            ok, jpeg = cv2.imencode(".jpg", moved, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            frames.append(jpeg.tobytes())
        clips.append(frames)
    return clips


def publish_frames(
    publisher: EventPublisher, blobs: BlobStore, clips: list[list[bytes]]
) -> set[str]:
    """Every clip's frames as a video's FrameCaptured events, interleaved across videos."""
    media = [str(uuid.uuid4()) for _ in clips]
    refs = [
        [blobs.put_bytes(PROCESSED, f"bench/{uuid.uuid4().hex}.jpg", j, "image/jpeg") for j in clip]
        for clip in clips
    ]
    sizes = []
    for clip in clips:
        image = cv2.imdecode(np.frombuffer(clip[0], np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        sizes.append(image.shape)
    ids = set()
    for frame in range(len(clips[0])):
        for video, media_id in enumerate(media):
            height, width = sizes[video][:2]
            record: dict[str, Any] = {
                "envelope": _envelope("FrameCaptured", media_id),
                "media_id": media_id,
                "camera_id": None,
                "frame_index": frame,
                "timestamp_ms": frame * 200,
                "captured_at": datetime.now(UTC),
                "width": width,
                "height": height,
                "image": dict(refs[video][frame]),
                "source_fps": 5.0,
                "sampling_fps": 5.0,
                "profile": "live",
                "max_age_ms": None,
            }
            publisher.publish("FrameCaptured", record, key=media_id)
            ids.add(str(record["envelope"]["event_id"]))
    publisher.flush()
    return ids


def publish_pages(
    publisher: EventPublisher, blobs: BlobStore, pages: list[np.ndarray], count: int
) -> set[str]:
    media_id = str(uuid.uuid4())
    ids = set()
    for number in range(1, count + 1):
        image = pages[(number - 1) % len(pages)]
        ok, png = cv2.imencode(".png", image)
        assert ok
        ref = blobs.put_bytes(
            PROCESSED, f"bench/{media_id}/{number:04d}.png", png.tobytes(), "image/png"
        )
        record: dict[str, Any] = {
            "envelope": _envelope("PageRendered", media_id),
            "media_id": media_id,
            "page_number": number,
            "page_count": count,
            "dpi": 150,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "image": dict(ref),
            "renderer": "bench",
            "repaired": False,
        }
        publisher.publish("PageRendered", record, key=media_id)
        ids.add(str(record["envelope"]["event_id"]))
    publisher.flush()
    return ids


def best(runs: list[float]) -> float:
    return max(runs) if runs else 0.0


def direct_detection(engines: Engines, jpegs: list[bytes], count: int, settings: Settings) -> float:
    engine = engines.detector()
    if engine.mode != "THROUGHPUT":
        raise RuntimeError("the worker's detector is expected in throughput mode")
    tensors = []
    for jpeg in jpegs:
        frame = decode_for(jpeg, source_size_for(engine, settings.processors))
        assert frame is not None
        tensors.append(engine.preprocess(frame.image)[0])
    queue = openvino.AsyncInferQueue(engine.compiled, max(2, optimal_requests(engine.compiled)))
    for tensor in tensors:  # warm-up
        queue.start_async({0: tensor})
    queue.wait_all()
    started = time.perf_counter()
    for index in range(count):
        queue.start_async({0: tensors[index % len(tensors)]})
    queue.wait_all()
    return count / (time.perf_counter() - started)


def direct_ocr(engines: Engines, pages: list[np.ndarray], count: int, threads: int) -> float:
    pipeline = engines.ocr()
    decoded = []
    for page in pages:
        image = cv2.imdecode(cv2.imencode(".png", page)[1], cv2.IMREAD_COLOR)
        assert image is not None
        decoded.append(np.asarray(image))
    pipeline.read(decoded[0])  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(threads, "page") as pool:
        list(pool.map(lambda i: pipeline.read(decoded[i % len(decoded)]), range(count)))
    return 60.0 * count / (time.perf_counter() - started)


def through_worker(
    settings: Settings,
    kind: str,
    result_type: str,
    result_topic: str,
    publish: Callable[[EventPublisher, BlobStore], set[str]],
    warmup: Callable[[EventPublisher, BlobStore], set[str]],
) -> float:
    """Units per second through a real worker process: first publish to last result."""
    with bench_topics(settings) as scoped, tempfile.TemporaryDirectory() as state:
        codec = AvroCodec(HttpSchemaRegistry(scoped.registry))
        publisher = EventPublisher(scoped.kafka, codec)
        blobs = BlobStore.from_settings(scoped.minio)
        results = Results(scoped, codec, result_type, result_topic)
        try:
            with worker(kind, scoped, Path(state)) as process:
                results.until(warmup(publisher, blobs), 600, process)
                started = time.time()
                wanted = publish(publisher, blobs)
                last = results.until(wanted, 1800, process)
                return len(wanted) / (last - started)
        finally:
            results.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--only", choices=("detection", "ocr"), default=None)
    args = parser.parse_args()
    settings = get_settings()
    manager.up(settings)
    initialise(settings)
    engines = Engines(settings)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.only in (None, "detection"):
        clips = sample_frames(max(1, args.frames // args.videos), args.videos)
        jpegs = [frame for clip in clips for frame in clip[:4]]
        direct = [direct_detection(engines, jpegs, args.frames, settings)]
        worker_fps = through_worker(
            settings,
            "vision",
            "ObjectsDetected",
            "vision.detections",
            lambda p, b: publish_frames(p, b, clips),
            lambda p, b: publish_frames(p, b, [clip[:2] for clip in clips]),
        )
        direct.append(direct_detection(engines, jpegs, args.frames, settings))
        print(
            f"detection: {args.frames} frames (810x1080 and 1280x720) over {args.videos} videos"
            f" | vision worker {worker_fps:.1f} f/s | direct OpenVINO throughput mode "
            f"{best(direct):.1f} f/s | worker/direct {worker_fps / best(direct):.2f}"
        )
    if args.only in (None, "ocr"):
        pages = [page.image for page in generate_pages(8)]
        threads = parallel_pages(settings)
        direct_pages = [direct_ocr(engines, pages, args.pages, threads)]
        worker_ppm = 60.0 * through_worker(
            settings,
            "document",
            "TextRecognized",
            "ocr.text",
            lambda p, b: publish_pages(p, b, pages, args.pages),
            lambda p, b: publish_pages(p, b, pages, 2),
        )
        direct_pages.append(direct_ocr(engines, pages, args.pages, threads))
        print(
            f"ocr: {args.pages} pages | document worker {worker_ppm:.1f} pages/min | engine "
            f"alone ({threads} pages at once) {best(direct_pages):.1f} pages/min | "
            f"worker/engine {worker_ppm / best(direct_pages):.2f}"
        )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
