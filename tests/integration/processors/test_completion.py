"""Items say when they are done: real uploads through real worker processes (document,
vision, outputs and the completion processor) until their MediaCompleted.

One set of workers serves the whole module, on topics of its own: starting them (and
compiling their models) is the slow part.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from processors.modelstore import load
from processors.reprocess.request import ReprocessSelection, request_reprocess
from processors.reprocess.worker import run_reprocess_worker
from producers.ingest import Ingestor
from stack.initialise import InitReport
from tests.integration.processors.conftest import TopicsUnderTest
from tests.integration.processors.test_render_stage import with_corrupt_page
from tests.integration.processors.workers import Workers, wait_for_events
from tests.integration.producers import samples
from visionlog.codec import AvroCodec, DecodedEvent
from visionlog.kafka import EventPublisher, admin_client
from visionlog.registry import HttpSchemaRegistry
from visionlog.settings import Settings
from visionlog.topics import CATALOGUE, apply_catalogue, full_topic_name

WORKERS = ("live", "document", "vision", "outputs", "completion")


@pytest.fixture(scope="module")
def topics(initialised: InitReport, settings: Settings) -> Iterator[TopicsUnderTest]:
    kafka = settings.kafka.model_copy(update={"topic_prefix": f"test-{uuid.uuid4().hex[:10]}."})
    admin = admin_client(kafka)
    apply_catalogue(admin, kafka, CATALOGUE)
    scoped = settings.model_copy(
        update={
            "kafka": kafka,
            # Small sampled videos: a few frames each.
            "ingest": settings.ingest.model_copy(update={"video_sample_fps": 5.0}),
        }
    )
    codec = AvroCodec(HttpSchemaRegistry(settings.registry))
    yield TopicsUnderTest(scoped, codec, EventPublisher(kafka, codec))
    registry = HttpSchemaRegistry(settings.registry)
    for subject in registry.subjects():
        if subject.startswith(kafka.topic_prefix):
            registry.delete_subject(subject)
    for future in admin.delete_topics([full_topic_name(s, kafka) for s in CATALOGUE]).values():
        future.result(timeout=30)


@pytest.fixture(scope="module")
def platform(
    topics: TopicsUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    workers = Workers(topics, tmp_path_factory.mktemp("workers"))
    for kind in WORKERS:
        workers.start(
            "processors",
            "worker",
            kind,
            INGEST__VIDEO_SAMPLE_FPS="5",
            PROCESSORS__PROGRESS_INTERVAL_S="0.5",
        )
    yield workers
    codes = workers.stop()
    assert all(code in (0, -9) for code in codes), workers.logs()[-4000:]


@pytest.fixture(scope="module")
def ingestor(topics: TopicsUnderTest) -> Iterator[Ingestor]:
    ingest = Ingestor.from_settings(topics.settings)
    yield ingest
    ingest.close()


def completed(
    topics: TopicsUnderTest, workers: Workers, media_id: str, run_id: str | None = None
) -> dict[str, object]:
    def mine(event: DecodedEvent) -> bool:
        return bool(event.record["media_id"] == media_id and event.record["run_id"] == run_id)

    found = wait_for_events(topics, "MediaCompleted", mine, 1, 240, workers)
    assert found, f"no MediaCompleted for {media_id}:\n{workers.logs()[-5000:]}"
    assert len({e.record["envelope"]["event_id"] for e in found}) == 1
    return found[0].record


def tallies(record: dict[str, object]) -> dict[str, dict[str, int]]:
    stages = record["stages"]
    assert isinstance(stages, list)
    return {tally["stage"]: tally for tally in stages}


@pytest.mark.timeout(400)
def test_an_image_completes_once_every_stage_has_reported(
    topics: TopicsUnderTest, platform: Workers, ingestor: Ingestor
) -> None:
    photo = load("sample-photos").path("bus.jpg")
    result = ingestor.ingest_bytes(photo, profile="full")
    record = completed(topics, platform, result.media_id)
    assert record["status"] == "COMPLETED"
    assert (record["items_expected"], record["items_completed"], record["items_failed"]) == (
        1,
        1,
        0,
    )
    stages = tallies(record)
    for stage in ("ocr", "detection", "tracking", "codes", "anonymise", "scene", "outputs"):
        assert stage in stages, stages
        assert stages[stage]["failed"] == 0
    assert stages["detection"]["done"] == 1
    models = record["models"]
    assert isinstance(models, list)
    assert {m["name"] for m in models} >= {"nanodet-coco", "pp-ocrv6-rec"}
    # Results of the item arrived before it was declared done.
    detected = wait_for_events(
        topics, "ObjectsDetected", lambda e: e.record["media_id"] == result.media_id, 1, 10
    )
    assert detected
    # The report is rendered once, on completion.
    reports = wait_for_events(
        topics,
        "OutputGenerated",
        lambda e: e.record["media_id"] == result.media_id and e.record["kind"] == "COMBINED_REPORT",
        1,
        120,
        platform,
    )
    assert len(reports) == 1


@pytest.mark.timeout(400)
def test_a_document_with_a_corrupt_page_completes_with_errors(
    topics: TopicsUnderTest, platform: Workers, ingestor: Ingestor
) -> None:
    document = with_corrupt_page(samples.pdf([(300, 300), (300, 300), (300, 300)]), 1)
    result = ingestor.ingest_bytes(document, filename="three-pages.pdf", profile="ocr")
    record = completed(topics, platform, result.media_id)
    assert record["status"] == "COMPLETED_WITH_ERRORS"
    assert (record["items_expected"], record["items_completed"], record["items_failed"]) == (
        3,
        2,
        1,
    )
    errors = record["errors"]
    assert isinstance(errors, list)
    assert errors[0]["stage"] == "render"
    assert errors[0]["item_label"] == "page-0002"
    assert tallies(record)["ocr"]["done"] == 2
    progress = wait_for_events(
        topics, "MediaProgressed", lambda e: e.record["media_id"] == result.media_id, 1, 10
    )
    assert all(0.0 <= p.record["percent"] <= 100.0 for p in progress)


@pytest.mark.timeout(400)
def test_a_video_completes_after_all_its_sampled_frames_and_its_report_renders_once(
    topics: TopicsUnderTest, platform: Workers, ingestor: Ingestor, tmp_path: Path
) -> None:
    # 20 s at 10 fps, sampled at 5 fps: 100 frames, each with its results and outputs.
    clip = samples.video(tmp_path / "clip.avi", frames=200, fps=10.0, size=(160, 120))
    result = ingestor.ingest_bytes(clip, profile="vision")
    record = completed(topics, platform, result.media_id)
    assert record["status"] == "COMPLETED"
    frames = wait_for_events(
        topics, "FrameCaptured", lambda e: e.record["media_id"] == result.media_id, 1, 10
    )
    assert record["items_expected"] == len(frames) >= 100
    assert tallies(record)["detection"]["done"] == len(frames)
    reports = wait_for_events(
        topics,
        "OutputGenerated",
        lambda e: e.record["media_id"] == result.media_id and e.record["kind"] == "COMBINED_REPORT",
        1,
        120,
        platform,
    )
    # One report for the item, however many results its frames gave.
    assert len(reports) == 1


@pytest.mark.timeout(400)
def test_a_reprocess_run_completes_on_its_own(
    topics: TopicsUnderTest, platform: Workers, ingestor: Ingestor
) -> None:
    photo = load("sample-photos").path("zidane.jpg")
    result = ingestor.ingest_bytes(photo, profile="vision")
    completed(topics, platform, result.media_id)
    selection = ReprocessSelection(media_ids=[result.media_id], stages=["detection"])
    reprocess_id = request_reprocess(
        topics.settings, topics.publisher, selection, requested_by="tests"
    )
    [report] = run_reprocess_worker(topics.settings, threading.Event(), max_requests=1)
    assert report.reprocess_id == reprocess_id and report.matched == 1
    record = completed(topics, platform, result.media_id, run_id=reprocess_id)
    assert record["status"] == "COMPLETED"
    assert record["items_expected"] == 1
    stages = tallies(record)
    assert stages["detection"]["done"] == 1
    # What follows from the new detections (scenes, outputs) counts toward the run.
    assert "scene" in stages and "outputs" in stages
