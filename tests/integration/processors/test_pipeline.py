"""Real faust workers on the real broker: text read from an upload, a corrupt page
dead-lettered while the worker goes on, workers recycled by their supervisor.

(A photo, a document, a video and a reprocess run through every worker until their
completion: test_completion.py.)"""

from __future__ import annotations

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
from tests.integration.processors.workers import Workers
from visionlog.codec import DecodedEvent
from visionlog.envelope import Envelope
from visionlog.schemas import get_catalog

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
    # The worker checks its limits on its heartbeat, drains, exits 0 and is started again.
    deadline = time.monotonic() + 90
    while "worker exited with 0; restarting" not in workers.logs():
        assert time.monotonic() < deadline, workers.logs()[-3000:]
        time.sleep(1.0)
    assert supervisor.poll() is None
