"""Uploads flow through real faust workers and the real broker to every derived event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from processors.modelstore import load
from processors.ocr.synthetic import font_path
from producers.ingest import Ingestor
from tests.factories import sample_event
from tests.integration.processors.conftest import TopicsUnderTest
from visionlog.codec import DecodedEvent
from visionlog.envelope import Envelope
from visionlog.schemas import get_catalog

REPO = Path(__file__).resolve().parents[3]


class Workers:
    """Worker processes of the platform, scoped to one test's topics."""

    def __init__(self, topics: TopicsUnderTest, tmp_path: Path) -> None:
        self.topics = topics
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **settings: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "VISIONLOG_KAFKA__TOPIC_PREFIX": self.topics.settings.kafka.topic_prefix,
            "VISIONLOG_STATE_DIR": str(self.tmp_path / "state"),
            **{f"VISIONLOG_{key.upper()}": value for key, value in settings.items()},
        }
        # Arguments may be paths: the log's name keeps them readable but flat.
        name = "-".join(args).replace("/", "_")
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "stack.cli", *args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def stop(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=60))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.tmp_path.glob("*.log"))

    def assert_running(self) -> None:
        for process in self.processes:
            code = process.poll()
            assert code is None, f"{process.args!r} exited with {code}:\n{self.logs()[-4000:]}"


ACTIVE: list[Workers] = []


@pytest.fixture
def workers(topics_under_test: TopicsUnderTest, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(topics_under_test, tmp_path)
    ACTIVE.append(running)
    yield running
    ACTIVE.remove(running)
    running.stop()


@pytest.fixture
def ingestor(topics_under_test: TopicsUnderTest) -> Iterator[Ingestor]:
    ingest = Ingestor.from_settings(topics_under_test.settings)
    yield ingest
    ingest.close()


def _events_for(
    topics: TopicsUnderTest, event_type: str, media_id: str, expected: int, timeout: float
) -> list[DecodedEvent]:
    deadline = time.monotonic() + timeout
    found: list[DecodedEvent] = []
    while time.monotonic() < deadline:
        for running in ACTIVE:
            running.assert_running()
        events = topics.read_events(event_type, 10_000, timeout=3.0)
        found = [e for e in events if e.record["media_id"] == media_id]
        if len(found) >= expected:
            return found
    return found


def _document_png() -> bytes:
    image = Image.new("RGB", (900, 300), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(font_path()), 40)
    draw.text((40, 60), "Invoice 2041 for Jürgen", fill="black", font=font)
    draw.text((40, 160), "Straße 12, Köln", fill="black", font=font)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR))
    assert ok
    return encoded.tobytes()


@pytest.mark.timeout(300)
def test_photo_flows_through_vision_and_outputs_workers(
    topics_under_test: TopicsUnderTest, workers: Workers, ingestor: Ingestor
) -> None:
    workers.start("processors", "worker", "vision")
    workers.start("processors", "worker", "outputs")
    photo = load("sample-photos").path("bus.jpg")
    result = ingestor.ingest_bytes(photo, profile="full")
    media_id = result.media_id

    [detected] = _events_for(topics_under_test, "ObjectsDetected", media_id, 1, 180)
    classes = {d["class_name"] for d in detected.record["detections"]}
    assert {"person", "bus"} <= classes, workers.logs()[-3000:]
    assert detected.record["model"]["name"] == "nanodet-coco"
    assert detected.record["envelope"]["causation_id"] == result.event_id

    [scene] = _events_for(topics_under_test, "SceneDescribed", media_id, 1, 120)
    assert "bus" in str(scene.record).lower()
    [redacted] = _events_for(topics_under_test, "MediaRedacted", media_id, 1, 120)
    assert redacted.record["redacted_image"]["bucket"] == "media-processed"
    [codes] = _events_for(topics_under_test, "CodesDecoded", media_id, 1, 120)
    assert codes.record["codes"] == []
    embeddings = _events_for(topics_under_test, "EmbeddingComputed", media_id, 2, 120)
    targets = {e.record["target"] for e in embeddings}
    assert "IMAGE" in targets

    outputs = _events_for(topics_under_test, "OutputGenerated", media_id, 3, 180)
    kinds = {o.record["kind"] for o in outputs}
    assert {"ANNOTATED_IMAGE", "CSV"} <= kinds, kinds
    # The combined report arrives after every result that triggers it; wait for it.
    deadline = time.monotonic() + 120
    while "COMBINED_REPORT" not in kinds and time.monotonic() < deadline:
        outputs = _events_for(topics_under_test, "OutputGenerated", media_id, len(outputs) + 1, 10)
        kinds = {o.record["kind"] for o in outputs}
    assert "COMBINED_REPORT" in kinds
    assert topics_under_test.read("ProcessingFailed", 1, timeout=2.0) == []
    assert workers.stop() == [0, 0]


@pytest.mark.timeout(300)
def test_document_worker_reads_text_and_dead_letters_corrupt_pages(
    topics_under_test: TopicsUnderTest, workers: Workers, ingestor: Ingestor
) -> None:
    workers.start("processors", "worker", "document")
    result = ingestor.ingest_bytes(_document_png(), filename="letter.png", profile="ocr")
    [text] = _events_for(topics_under_test, "TextRecognized", result.media_id, 1, 180)
    full_text = text.record["full_text"]
    assert "Jürgen" in full_text, full_text
    assert "Straße" in full_text, full_text
    assert {model["name"] for model in text.record["models"]} >= {"pp-ocrv6-det", "pp-ocrv6-rec"}

    # A page whose blob is not an image: dead-lettered, and the worker goes on.
    ref = ingestor.blobs.put_bytes(
        "media-processed", f"{result.media_id}/pages/0001.png", b"not a png", "image/png"
    )
    envelope = Envelope(
        event_type="PageRendered",
        schema_version=get_catalog().event("PageRendered").version,
        producer="tests/0",
        correlation_id=result.media_id,
        tenant_id="tests",
    )
    topics_under_test.publish(
        "PageRendered",
        {
            "envelope": envelope.as_record(), "media_id": result.media_id, "page_number": 1,
            "page_count": 1, "dpi": 150, "width": 10, "height": 10, "image": dict(ref),
            "renderer": "tests", "repaired": False,
        },
    )  # fmt: skip
    dead = _events_for(topics_under_test, "ProcessingFailed", result.media_id, 1, 120)
    assert dead and dead[0].record["stage"] == "ocr"
    assert dead[0].record["retryable"] is False
    assert "not a decodable image" in dead[0].record["error_message"]

    second = ingestor.ingest_bytes(_document_png(), filename="again.png", profile="ocr")
    assert _events_for(topics_under_test, "TextRecognized", second.media_id, 1, 120)
    assert workers.stop() == [0]


@pytest.mark.timeout(300)
def test_supervisor_recycles_workers_and_processing_goes_on(
    topics_under_test: TopicsUnderTest, workers: Workers, ingestor: Ingestor, tmp_path: Path
) -> None:
    supervisor = workers.start(
        "processors", "run", "outputs", "--restart-delay-s", "0.5",
        PROCESSORS__RECYCLE_AFTER_ITEMS="1",
    )  # fmt: skip
    media_ids = []
    for _ in range(2):
        record = sample_event(get_catalog(), "CodesDecoded")
        record["codes"] = []
        record["item"]["page_number"] = None
        record["item"]["frame_index"] = None
        record["item"]["camera_id"] = None
        photo = load("sample-photos").path("zidane.jpg")
        stored = ingestor.blobs.put_file(
            "media-originals", f"tests/{record['media_id']}.jpg", photo, "image/jpeg"
        )
        record["item"]["image"] = dict(stored)
        record["item"]["media_id"] = record["media_id"]
        topics_under_test.publish("CodesDecoded", record)
        media_ids.append(record["media_id"])
    for media_id in media_ids:
        assert _events_for(topics_under_test, "OutputGenerated", media_id, 1, 180), workers.logs()
    assert supervisor.poll() is None
    assert workers.logs().count("worker exited with 0; restarting") >= 1
