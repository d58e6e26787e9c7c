"""Camera producers against the real stack: a looping file camera and an MJPEG-over-HTTP
camera whose server is stopped and restarted. Frames are checked in Kafka and MinIO."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from confluent_kafka import Consumer

from producers.cameras import (
    CameraConfig,
    CameraSetConfig,
    CameraSetProducer,
    camera_media_id,
)
from stack.initialise import InitReport
from tests.numbered_frames import NumberedFrames
from visionlog.blobstore import PROCESSED, BlobStore
from visionlog.codec import AvroCodec
from visionlog.kafka import EventPublisher, admin_client, consumer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import KafkaSettings, Settings
from visionlog.topics import apply_catalogue, full_topic_name, topic_by_name

WIDTH, HEIGHT = 192, 96
FRAMES = NumberedFrames(WIDTH, HEIGHT, bits=12)
numbered_frame = FRAMES.frame
number_in = FRAMES.number_in


class MjpegServer:
    """multipart/x-mixed-replace at a fixed rate; frame numbers continue across restarts."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.port = 0
        self.next_number = 0
        self._lock = threading.Lock()
        self._serving = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                period = 1 / server.fps
                try:
                    while server._serving.is_set():
                        with server._lock:
                            number = server.next_number
                            server.next_number += 1
                        jpeg = cv2.imencode(".jpg", numbered_frame(number))[1].tobytes()
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                        time.sleep(period)
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._serving.set()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self._server is not None
        self._serving.clear()  # open streams end: the camera sees its source go away
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


@dataclass
class Received:
    frames: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    frame_keys: set[str] = field(default_factory=set)
    status_keys: set[str] = field(default_factory=set)


@pytest.fixture
def camera_topics(
    initialised: InitReport, isolated_kafka: KafkaSettings
) -> Iterator[KafkaSettings]:
    specs = (topic_by_name("media.frames"), topic_by_name("cameras.status"))
    # One partition each is enough here and keeps topic creation fast.
    kafka = isolated_kafka.model_copy(update={"partition_scale": 0.01})
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, specs)
    yield kafka
    names = [full_topic_name(spec, kafka) for spec in specs]
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)


@pytest.fixture
def blobs(settings: Settings) -> BlobStore:
    return BlobStore.from_settings(settings.minio)


MakeProducer = Callable[[CameraSetConfig], CameraSetProducer]


@pytest.fixture
def make_producer(
    settings: Settings, camera_topics: KafkaSettings, blobs: BlobStore
) -> Iterator[MakeProducer]:
    """Builds producers on the test's topics; their frame blobs are removed afterwards."""
    made: list[CameraSetProducer] = []

    def make(camera_set: CameraSetConfig) -> CameraSetProducer:
        codec = AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())
        producer = CameraSetProducer(
            camera_set,
            tenant_id="tests",
            publisher=EventPublisher(camera_topics, codec),
            blobs=blobs,
            flush_interval_s=0.5,
        )
        made.append(producer)
        return producer

    yield make
    for producer in made:
        for name in producer.workers:
            prefix = f"{producer.media_id(name)}/frames/{producer.run_id}/"
            for stored in blobs.client.list_objects(PROCESSED, prefix=prefix, recursive=True):
                blobs.delete(PROCESSED, stored.object_name)


def consume(settings: Settings, kafka: KafkaSettings, frames: int, timeout: float = 20) -> Received:
    """Read until `frames` frames and the final (STOPPED) status report arrived."""
    frames_topic = full_topic_name(topic_by_name("media.frames"), kafka)
    status_topic = full_topic_name(topic_by_name("cameras.status"), kafka)
    consumer = Consumer(
        consumer_config(kafka, f"test-{uuid.uuid4().hex[:8]}", **{"session.timeout.ms": 6000})
    )
    consumer.subscribe([frames_topic, status_topic])
    codec = AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())
    received = Received()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and (
            len(received.frames) < frames
            or not received.statuses
            or received.statuses[-1]["state"] != "STOPPED"
        ):
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            record = codec.decode(message.value()).record
            key = (message.key() or b"").decode()
            if message.topic() == frames_topic:
                received.frames.append(record)
                received.frame_keys.add(key)
            else:
                received.statuses.append(record)
                received.status_keys.add(key)
    finally:
        consumer.close()
    return received


def run_for(producer: CameraSetProducer, seconds: float) -> None:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    producer.run(stop)


def check_frames_in_order(received: Received, media_id: str, blobs: BlobStore) -> list[int]:
    """Frames form one ordered stream; returns the source numbers drawn in their images."""
    assert received.frame_keys == {media_id}
    assert [f["frame_index"] for f in received.frames] == list(range(len(received.frames)))
    stamps = [f["timestamp_ms"] for f in received.frames]
    assert stamps == sorted(stamps)
    assert len({f["envelope"]["event_id"] for f in received.frames}) == len(received.frames)
    return [number_in(blobs.get_bytes(f["image"])) for f in received.frames]


def test_looping_file_camera_publishes_ordered_frames_at_its_rate(
    settings: Settings,
    camera_topics: KafkaSettings,
    blobs: BlobStore,
    make_producer: MakeProducer,
    tmp_path: Path,
) -> None:
    clip = tmp_path / "loop.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 20.0, (WIDTH, HEIGHT))
    for number in range(12):  # 0.6 s: the camera loops it several times
        writer.write(numbered_frame(number))
    writer.release()
    camera = CameraConfig(
        name="door",
        url=str(clip),
        target_fps=5,
        jpeg_quality=90,
        profile="live-anonymised",
        max_age_s=1.25,
    )
    camera_set = CameraSetConfig(cameras=[camera], status_interval_s=1.0)
    producer = make_producer(camera_set)
    started = time.monotonic()
    run_for(producer, 3.0)
    elapsed = time.monotonic() - started
    snapshot = producer.workers["door"].snapshot()

    # 5 fps for about 3 s.
    assert 0.6 * 5 * elapsed <= snapshot.frames_published <= 5 * elapsed + 2
    received = consume(settings, camera_topics, snapshot.frames_published)
    assert len(received.frames) == snapshot.frames_published
    media_id = camera_media_id("tests", "door")
    numbers = check_frames_in_order(received, media_id, blobs)
    assert set(numbers) <= set(range(12))
    # The file loops: a frame number is lower than the one before it at least once.
    assert any(later < earlier for earlier, later in itertools.pairwise(numbers))
    gaps = np.diff([f["timestamp_ms"] for f in received.frames])
    assert 150 <= float(np.median(gaps)) <= 300
    first = received.frames[0]
    assert first["camera_id"] == "door"
    assert first["sampling_fps"] == 5.0
    assert first["source_fps"] == pytest.approx(20.0)
    assert (first["width"], first["height"]) == (WIDTH, HEIGHT)
    assert first["image"]["key"].startswith(f"{media_id}/frames/{producer.run_id}/")
    assert first["envelope"]["correlation_id"] == media_id
    # FrameCaptured v2: the camera's profile and staleness bound travel with every frame.
    assert {(f["profile"], f["max_age_ms"]) for f in received.frames} == {("live-anonymised", 1250)}
    assert all(len(f["envelope"]["trace_id"] or "") == 32 for f in received.frames)

    # 20 fps source, 5 fps publishing: most frames are dropped, none queued.
    assert snapshot.frames_captured >= 2 * snapshot.frames_published
    unsent = snapshot.frames_captured - snapshot.frames_published - snapshot.frames_dropped
    assert unsent in (0, 1)
    assert snapshot.slot_high_water == 1
    assert received.status_keys == {"door"}
    states = [s["state"] for s in received.statuses]
    # Every change is reported, in order: the first report is the camera connecting.
    assert [state for state, _ in itertools.groupby(states)][:2] == ["CONNECTING", "STREAMING"]
    assert states[-1] == "STOPPED"
    final = received.statuses[-1]
    assert final["frames_published"] == snapshot.frames_published
    assert final["frames_dropped"] == snapshot.frames_dropped
    assert final["reconnects"] == 0
    periodic_rates = [s["measured_fps"] for s in received.statuses if s["measured_fps"] > 0]
    assert periodic_rates and all(1.5 <= rate <= 8.0 for rate in periodic_rates)


def test_mjpeg_camera_reconnects_after_its_server_restarts(
    settings: Settings,
    camera_topics: KafkaSettings,
    blobs: BlobStore,
    make_producer: MakeProducer,
) -> None:
    server = MjpegServer(fps=25)
    server.start()
    camera = CameraConfig(name="yard", url=server.url, target_fps=5)
    camera_set = CameraSetConfig(
        cameras=[camera],
        status_interval_s=5.0,
        reconnect_initial_s=0.2,
        reconnect_max_s=0.4,
        source_timeout_s=2.0,
    )
    producer = make_producer(camera_set)
    stop = threading.Event()
    runner = threading.Thread(target=producer.run, args=(stop,))
    runner.start()
    try:
        time.sleep(1.5)
        before_restart = producer.workers["yard"].snapshot()
        server.stop()
        time.sleep(1.0)
        assert producer.workers["yard"].snapshot().reconnects >= 1
        numbers_before_restart = server.next_number
        server.start()
        time.sleep(2.0)
    finally:
        stop.set()
        runner.join(30)
        server.stop()
    snapshot = producer.workers["yard"].snapshot()
    assert before_restart.frames_published >= 4
    assert snapshot.reconnects >= 1
    assert snapshot.frames_published > before_restart.frames_published + 4
    # 25 fps source, 5 fps publishing: most frames are dropped by the single slot.
    assert snapshot.frames_dropped >= 2 * snapshot.frames_published
    assert snapshot.frames_captured - snapshot.frames_published - snapshot.frames_dropped in (0, 1)
    assert snapshot.slot_high_water == 1

    received = consume(settings, camera_topics, snapshot.frames_published)
    assert len(received.frames) == snapshot.frames_published
    numbers = check_frames_in_order(received, camera_media_id("tests", "yard"), blobs)
    # Frames arrive in capture order across the restart, and frames from after it came in.
    assert numbers == sorted(set(numbers))
    assert numbers[-1] >= numbers_before_restart
    assert received.frames[0]["source_fps"] is None
    states = [s["state"] for s in received.statuses]
    reconnecting = states.index("RECONNECTING")
    assert "STREAMING" in states[:reconnecting]
    assert "STREAMING" in states[reconnecting:]
    assert states[-1] == "STOPPED"
    assert received.statuses[-1]["reconnects"] == snapshot.reconnects
    assert received.statuses[-1]["last_error"]
