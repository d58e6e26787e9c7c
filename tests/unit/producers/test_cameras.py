"""Camera producer logic without servers: configuration, sources, backpressure, backoff,
MJPEG parsing, event records and one worker playing a local file."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastavro.validation import validate
from pydantic import ValidationError

from producers.cameras import (
    Backoff,
    CameraConfig,
    CameraSetConfig,
    CameraSnapshot,
    CameraState,
    CameraWorker,
    CapturedFrame,
    EncodedFrame,
    LatestFrameSlot,
    MultipartJpegParser,
    RawFrame,
    SourceError,
    SourceKind,
    camera_media_id,
    camera_status_record,
    encode_frame,
    frame_blob_key,
    frame_captured_record,
    load_camera_set,
    parse_source,
    redact_url,
)
from visionlog.blobstore import BlobRef
from visionlog.schemas import get_catalog


def jpeg_of(value: int) -> bytes:
    image = np.full((24, 32, 3), value, np.uint8)
    return bytes(cv2.imencode(".jpg", image)[1].tobytes())


def captured(sequence: int) -> CapturedFrame:
    return CapturedFrame(
        sequence=sequence,
        captured_at=datetime.now(UTC),
        monotonic_s=time.monotonic(),
        raw=RawFrame(jpeg=b"x"),
        source_fps=None,
    )


# configuration


def test_camera_set_loads_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "cams.toml"
    toml.write_text(
        "status_interval_s = 2.0\n"
        '[[cameras]]\nname = "gate"\nurl = "rtsp://user:pw@10.0.0.5/stream"\ntarget_fps = 2\n'
        'labels = { site = "north" }\nprofile = "live-anonymised"\nmax_age_s = 1.5\n'
        '[[cameras]]\nname = "lobby"\nurl = "device:0"\nenabled = false\n'
    )
    from_toml = load_camera_set(toml)
    assert [c.name for c in from_toml.cameras] == ["gate", "lobby"]
    assert [c.name for c in from_toml.enabled] == ["gate"]
    assert from_toml.cameras[0].labels == {"site": "north"}
    gate, lobby = from_toml.cameras
    assert (gate.profile, gate.max_age_s, gate.max_age_ms) == ("live-anonymised", 1.5, 1500)
    # Defaults: the live profile, and the processors' own staleness bound.
    assert (lobby.profile, lobby.max_age_s, lobby.max_age_ms) == ("live", None, None)
    assert from_toml.cameras[0].target_fps == 2.0
    assert from_toml.cameras[1].jpeg_quality == 85
    assert from_toml.status_interval_s == 2.0
    as_json = tmp_path / "cams.json"
    as_json.write_text(json.dumps(from_toml.model_dump()))
    assert load_camera_set(as_json) == from_toml


def test_camera_set_rejects_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="repeated: a"):
        CameraSetConfig.model_validate(
            {"cameras": [{"name": "a", "url": "x.avi"}, {"name": "a", "url": "y.avi"}]}
        )
    with pytest.raises(ValidationError, match="target_fps"):
        CameraConfig(name="a", url="x.avi", target_fps=0)
    with pytest.raises(ValidationError, match="name"):
        CameraConfig(name="bad name/with slash", url="x.avi")
    with pytest.raises(
        ValidationError,
        match=r"unknown camera profile 'full'; choose one of live, live-anonymised, live-full",
    ):
        CameraConfig(name="a", url="x.avi", profile="full")
    with pytest.raises(ValidationError, match="max_age_s"):
        CameraConfig(name="a", url="x.avi", max_age_s=0)
    with pytest.raises(ValidationError, match=r"Extra inputs are not permitted"):
        CameraSetConfig.model_validate({"cameras": [{"name": "a", "url": "x", "fps": 3}]})
    other = tmp_path / "cams.yaml"
    other.write_text("cameras: []")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        load_camera_set(other)


def test_sources_are_told_apart(tmp_path: Path) -> None:
    assert parse_source("rtsp://cam/1").kind is SourceKind.RTSP
    assert parse_source("https://cam/video.mjpg").kind is SourceKind.MJPEG
    device = parse_source("device:2")
    assert (device.kind, device.location) == (SourceKind.DEVICE, "2")
    relative = parse_source("clips/loop.avi", base_dir=tmp_path)
    assert (relative.kind, relative.location) == (SourceKind.FILE, str(tmp_path / "clips/loop.avi"))
    assert relative.loops
    assert parse_source("file:///data/a.mp4").location == "/data/a.mp4"
    with pytest.raises(ValueError, match="unsupported camera URL scheme 'ftp'"):
        parse_source("ftp://cam/x")


def test_credentials_are_removed_from_urls() -> None:
    assert (
        redact_url("rtsp://admin:hunter2@10.0.0.5:554/live?ch=1") == "rtsp://10.0.0.5:554/live?ch=1"
    )
    assert redact_url("http://cam.local/video") == "http://cam.local/video"
    # MJPEG cameras often take their credentials in the query; IPv6 hosts keep brackets.
    assert (
        redact_url("http://[fd00::7]:8080/mjpg?user=a&pwd=b&res=hd")
        == "http://[fd00::7]:8080/mjpg?user=a&res=hd"
    )
    assert redact_url("device:0") == "device:0"
    assert redact_url("/srv/clips/loop.avi") == "/srv/clips/loop.avi"


def test_camera_media_id_is_stable_per_tenant_and_name() -> None:
    assert camera_media_id("t1", "gate") == camera_media_id("t1", "gate")
    assert camera_media_id("t1", "gate") != camera_media_id("t2", "gate")
    assert camera_media_id("t1", "gate") != camera_media_id("t1", "lobby")


# backpressure and backoff


def test_slot_keeps_only_the_newest_unsent_frame() -> None:
    slot = LatestFrameSlot()
    assert slot.put(captured(0)) is False
    assert slot.put(captured(1)) is True
    assert slot.put(captured(2)) is True
    assert slot.dropped == 2
    taken = slot.take(timeout=0)
    assert taken is not None and taken.sequence == 2
    assert slot.take(timeout=0.01) is None
    assert slot.occupancy == 0


def test_slot_never_grows_under_a_fast_producer() -> None:
    slot = LatestFrameSlot()
    total = 20_000
    taken: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() or slot.occupancy:
            frame = slot.take(timeout=0.01)
            if frame is not None:
                taken.append(frame.sequence)
            time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for sequence in range(total):
        slot.put(captured(sequence))
        assert slot.occupancy <= 1
    done.set()
    consumer.join(10)
    assert slot.high_water == 1
    assert taken == sorted(taken)
    assert taken[-1] == total - 1
    assert slot.dropped + len(taken) == total
    assert slot.dropped > total // 2


def test_slot_close_wakes_a_waiting_taker() -> None:
    slot = LatestFrameSlot()
    threading.Timer(0.1, slot.close).start()
    started = time.monotonic()
    assert slot.take(timeout=5) is None
    assert time.monotonic() - started < 2


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    backoff = Backoff(0.5, 8.0, jitter=0.5, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(7)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling * 0.5 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered, not fixed
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_backoff_stays_at_its_maximum_however_long_the_source_is_down() -> None:
    backoff = Backoff(0.5, 30.0, jitter=0.0)
    # 2.0 ** 1100 overflows a float: thousands of reconnects must not crash the capture loop.
    delays = [backoff.next_delay() for _ in range(5000)]
    assert delays[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(delays[6:]) == {30.0}


# MJPEG parsing


def _multipart(parts: list[bytes], boundary: str, with_length: bool) -> bytes:
    out = b""
    for part in parts:
        headers = b"Content-Type: image/jpeg\r\n"
        if with_length:
            headers += f"Content-Length: {len(part)}\r\n".encode()
        out += f"--{boundary}\r\n".encode() + headers + b"\r\n" + part + b"\r\n"
    return out


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "boundary-only"])
@pytest.mark.parametrize("chunk", [1, 7, 100, 100_000])
def test_multipart_parts_are_split_whatever_the_chunking(with_length: bool, chunk: int) -> None:
    parts = [jpeg_of(v) for v in (10, 120, 250)]
    stream = _multipart(parts, "frame", with_length) + b"--frame\r\n"
    parser = MultipartJpegParser("frame")
    found: list[bytes] = []
    for start in range(0, len(stream), chunk):
        found += parser.feed(stream[start : start + chunk])
    assert found == parts


def test_multipart_boundary_comes_from_the_content_type() -> None:
    assert MultipartJpegParser.boundary_of('multipart/x-mixed-replace; boundary="--abc"') == "abc"
    assert MultipartJpegParser.boundary_of("multipart/x-mixed-replace;boundary=xyz") == "xyz"
    with pytest.raises(SourceError, match="not an MJPEG stream"):
        MultipartJpegParser.boundary_of("text/html")
    with pytest.raises(SourceError, match="without a boundary"):
        MultipartJpegParser.boundary_of("multipart/x-mixed-replace")


def test_multipart_part_without_end_is_bounded() -> None:
    parser = MultipartJpegParser("b", max_part_bytes=1000)
    with pytest.raises(SourceError, match="exceeds 1000 bytes"):
        parser.feed(b"--b\r\n\r\n" + b"\xff" * 6000)


# frames and events


def test_frames_are_reencoded_at_the_camera_quality() -> None:
    image = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    low, width, height = encode_frame(RawFrame(image=image), 20)
    high, _, _ = encode_frame(RawFrame(image=image), 95)
    assert (width, height) == (64, 48)
    assert len(low) < len(high)
    from_jpeg, width, height = encode_frame(RawFrame(jpeg=jpeg_of(50)), 80)
    assert (width, height) == (32, 24) and from_jpeg.startswith(b"\xff\xd8")
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        encode_frame(RawFrame(jpeg=b"\xff\xd8garbage"), 80)


def test_event_records_match_their_contracts() -> None:
    catalog = get_catalog()
    camera = CameraConfig(
        name="gate", url="rtsp://u:p@cam/1", target_fps=4, profile="live-full", max_age_s=0.8
    )
    media_id = camera_media_id("t", "gate")
    ref = BlobRef(
        bucket="media-processed",
        key=frame_blob_key(media_id, "run-1", 3),
        sha256="0" * 64,
        size_bytes=10,
        content_type="image/jpeg",
    )
    frame = frame_captured_record(
        camera=camera,
        media_id=media_id,
        tenant_id="t",
        run_id="run-1",
        frame_index=3,
        timestamp_ms=750,
        captured_at=datetime.now(UTC),
        width=64,
        height=48,
        image=ref,
        source_fps=None,
    )
    assert validate(frame, catalog.event("FrameCaptured").parsed, raise_errors=True)
    assert catalog.event("FrameCaptured").version == 2
    assert (frame["profile"], frame["max_age_ms"]) == ("live-full", 800)
    assert ref["key"] == f"{media_id}/frames/run-1/00000003.jpg"
    again = _frame_record(camera, media_id, ref, frame_index=3)
    assert again["envelope"]["event_id"] == frame["envelope"]["event_id"]
    # Every frame starts its own W3C trace.
    assert re.fullmatch(r"[0-9a-f]{32}", frame["envelope"]["trace_id"])
    assert again["envelope"]["trace_id"] != frame["envelope"]["trace_id"]
    default = CameraConfig(name="plain", url="device:0")
    plain = _frame_record(default, media_id, ref, frame_index=0)
    assert (plain["profile"], plain["max_age_ms"]) == ("live", None)
    other = _frame_record(camera, media_id, ref, frame_index=4)
    assert other["envelope"]["event_id"] != frame["envelope"]["event_id"]
    snapshot = CameraSnapshot(CameraState.RECONNECTING, 10, 4, 5, 2, 0, "refused", 1)
    status = camera_status_record(
        camera=camera,
        media_id=media_id,
        tenant_id="t",
        run_id="run-1",
        report_number=1,
        snapshot=snapshot,
        measured_fps=3.5,
    )
    assert validate(status, catalog.event("CameraStatusReported").parsed, raise_errors=True)
    assert status["url"] == "rtsp://cam/1"
    assert status["state"] == "RECONNECTING"
    assert (status["frames_dropped"], status["reconnects"]) == (5, 2)


def _frame_record(
    camera: CameraConfig, media_id: str, ref: BlobRef, frame_index: int
) -> dict[str, Any]:
    return frame_captured_record(
        camera=camera,
        media_id=media_id,
        tenant_id="t",
        run_id="run-1",
        frame_index=frame_index,
        timestamp_ms=0,
        captured_at=datetime.now(UTC),
        width=64,
        height=48,
        image=ref,
        source_fps=25.0,
    )


# one worker on a looping file


def _write_clip(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (64, 48))
    for number in range(frames):
        writer.write(np.full((48, 64, 3), number * 20 % 256, np.uint8))
    writer.release()
    return path


def test_worker_loops_a_file_and_drops_frames_a_slow_sink_cannot_take(tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "clip.avi", frames=10, fps=40.0)
    published: list[EncodedFrame] = []
    states: list[CameraState] = []

    def slow_sink(_camera: CameraConfig, frame: EncodedFrame) -> None:
        time.sleep(0.1)  # publishing takes longer than the 25 ms between source frames
        published.append(frame)

    camera = CameraConfig(name="loop", url=str(clip), target_fps=20)
    worker = CameraWorker(
        camera,
        CameraSetConfig(cameras=[camera]),
        slow_sink,
        epoch_monotonic_s=time.monotonic(),
        on_state_change=lambda _c, snapshot: states.append(snapshot.state),
    )
    worker.start()
    time.sleep(1.5)
    worker.stop()
    snapshot = worker.snapshot()
    # 40 fps file for 1.5 s: about 60 frames read, looping past its 10 frames.
    assert 35 <= snapshot.frames_captured <= 70
    # The sink limits publishing to < 10 fps although 20 fps were asked for.
    assert 8 <= snapshot.frames_published <= 15
    assert snapshot.frames_published == len(published)
    assert snapshot.frames_dropped >= snapshot.frames_captured - snapshot.frames_published - 1
    assert snapshot.slot_high_water == 1
    assert snapshot.reconnects == 0
    assert [f.frame_index for f in published] == list(range(len(published)))
    stamps = [f.timestamp_ms for f in published]
    assert stamps == sorted(stamps)
    assert states == [CameraState.CONNECTING, CameraState.STREAMING, CameraState.STOPPED]


def test_worker_reconnects_with_backoff_when_the_source_is_missing(tmp_path: Path) -> None:
    camera = CameraConfig(name="gone", url=str(tmp_path / "absent.avi"))
    camera_set = CameraSetConfig(
        cameras=[camera], reconnect_initial_s=0.05, reconnect_max_s=0.1, max_reconnect_attempts=3
    )
    states: list[CameraState] = []
    worker = CameraWorker(
        camera,
        camera_set,
        lambda _c, _f: None,
        epoch_monotonic_s=time.monotonic(),
        on_state_change=lambda _c, snapshot: states.append(snapshot.state),
    )
    worker.start()
    deadline = time.monotonic() + 5
    while worker.state is not CameraState.FAILED and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    snapshot = worker.snapshot()
    assert snapshot.state is CameraState.FAILED
    assert snapshot.reconnects == 3
    assert snapshot.last_error == f"no video file at {tmp_path / 'absent.avi'}"
    assert states == [CameraState.CONNECTING, CameraState.RECONNECTING, CameraState.FAILED]


def test_a_frame_left_unsent_at_shutdown_counts_as_dropped() -> None:
    from datetime import UTC, datetime

    from producers.cameras.slot import CapturedFrame, LatestFrameSlot

    slot = LatestFrameSlot()
    frame = CapturedFrame(1, datetime.now(UTC), 0.0, raw=None, source_fps=None)  # type: ignore[arg-type]
    slot.put(frame)
    slot.close()
    assert slot.dropped == 1
    assert slot.put(frame) is True
    assert slot.dropped == 2
    assert slot.take(timeout=0.0) is None
