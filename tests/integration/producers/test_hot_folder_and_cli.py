"""The hot folder and the CLI against the real stack."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from producers.cli import app
from producers.ingest import Ingestor, IngestResult, UploadSource
from producers.watch import HotFolder, Outcome
from tests.integration.producers import samples
from tests.integration.producers.conftest import EventLog
from visionlog.settings import KafkaSettings, get_settings


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_hot_folder_takes_files_once_written_and_sorts_outcomes(
    ingestor: Ingestor, event_log: EventLog, tmp_path: Path
) -> None:
    clock = ManualClock()

    def ingest(path: Path) -> IngestResult:
        return ingestor.ingest_bytes(path, source=UploadSource.HOT_FOLDER)

    folder = HotFolder(tmp_path, ingest, settle_s=1.0, clock=clock)
    photo = samples.png()
    growing = tmp_path / "incoming.png"
    growing.write_bytes(photo[:1000])  # a writer is still busy with this one
    (tmp_path / "notes.txt").write_text("not media")
    assert folder.process_ready() == []
    clock.now = 1.5
    growing.write_bytes(photo)  # the rest arrives: size changes, the clock restarts
    outcomes = folder.process_ready()
    assert [o.source.name for o in outcomes] == ["notes.txt"]
    assert outcomes[0].moved_to == tmp_path / ".failed" / "notes.txt"
    error = (tmp_path / ".failed" / "notes.txt.error.txt").read_text()
    assert error.startswith("unsupported_type: ")
    assert folder.process_ready() == []  # unchanged, but not settled for 1 s yet
    clock.now = 2.6
    (done,) = folder.process_ready()
    assert done.error is None and done.result is not None
    assert done.moved_to == tmp_path / ".done" / "incoming.png"
    assert done.moved_to.read_bytes() == photo
    assert not growing.exists()
    (event,) = event_log.events_for(done.result.media_id, 1)
    assert event.record["source"] == "HOT_FOLDER"
    assert event.record["width"] == 160
    clock.now = 10.0
    assert folder.process_ready() == []  # each file is taken once


def test_hot_folder_wakes_on_new_files(ingestor: Ingestor, tmp_path: Path) -> None:
    seen: list[Outcome] = []
    arrived = threading.Event()

    def record(outcome: Outcome) -> None:
        seen.append(outcome)
        arrived.set()

    folder = HotFolder(tmp_path, lambda p: ingestor.ingest_bytes(p), settle_s=0.2, scan_s=0.2)
    stop = threading.Event()
    runner = threading.Thread(target=folder.run, args=(stop, record))
    runner.start()
    try:
        time.sleep(0.3)
        (tmp_path / "late.jpg").write_bytes(samples.jpeg())
        assert arrived.wait(15), "the hot folder did not pick up the new file"
    finally:
        stop.set()
        runner.join(10)
    assert [o.moved_to for o in seen] == [tmp_path / ".done" / "late.jpg"]


@pytest.fixture
def cli_settings(ingest_kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI reads settings from the environment: point it at this module's topics."""
    monkeypatch.setenv("VISIONLOG_KAFKA__TOPIC_PREFIX", ingest_kafka.topic_prefix)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_settings")
def test_cli_upload_reports_each_file_and_fails_when_one_is_refused(
    event_log: EventLog, tmp_path: Path
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.pdf").write_bytes(samples.pdf([(300, 300)]))
    (tmp_path / "photo.jpg").write_bytes(samples.jpeg())
    (tmp_path / "fake.png").write_bytes(samples.pdf([(300, 300)]))
    result = CliRunner().invoke(
        app,
        ["upload", str(tmp_path), "--recursive", "--profile", "ocr", "--label", "batch=7"],
    )
    assert result.exit_code == 1, result.output
    output = result.output
    assert "fake.png: extension_mismatch" in output
    assert "page.pdf: " in output and "1 pages" in output
    media_id = output.split("photo.jpg: ")[1].split()[0]
    (event,) = event_log.events_for(media_id, 1)
    assert event.record["source"] == "CLI"
    assert event.record["labels"] == {"batch": "7"} and event.record["profile"] == "ocr"


@pytest.mark.usefixtures("cli_settings")
def test_cli_ignore_extension_accepts_by_content(tmp_path: Path) -> None:
    (tmp_path / "fake.png").write_bytes(samples.pdf([(300, 300)]))
    result = CliRunner().invoke(app, ["upload", str(tmp_path / "fake.png"), "--ignore-extension"])
    assert result.exit_code == 0, result.output
    assert " pdf, 1 pages" in result.output


@pytest.mark.usefixtures("cli_settings")
def test_cli_upload_with_an_idempotency_key_makes_one_item(
    event_log: EventLog, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(samples.jpeg())
    command = ["upload", str(photo), "--idempotency-key", f"cli-{uuid.uuid4()}"]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    media_id = first.output.split("photo.jpg: ")[1].split()[0]
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert again.output.split("photo.jpg: ")[1].split()[0] == media_id
    assert "already uploaded with this idempotency key" in again.output
    assert [e.event_type for e in event_log.decoded_for(media_id)] == ["MediaUploaded"]
    # One key names one upload: several files with one key are a usage error.
    (tmp_path / "other.jpg").write_bytes(samples.jpeg())
    several = CliRunner().invoke(app, ["upload", str(tmp_path), "--idempotency-key", "k"])
    assert several.exit_code == 2
    assert "names one upload" in several.output
