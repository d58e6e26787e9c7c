"""Live cameras: capture, latest-frame-wins backpressure, publishing and health reports.

One producer process serves a set of cameras. Per camera, a capture thread reads frames as
fast as the source delivers them into a single-slot holder (a newer frame replaces an unsent
one, which counts as dropped), and a publishing thread takes the newest frame at the
camera's target rate, encodes it as JPEG, stores it in the blob store and publishes
FrameCaptured. A failing or ending source is reopened with exponential backoff and jitter;
files are played in a loop at their own frame rate instead, like a camera that never ends.

Identity and layout:
- media_id of a camera stream: UUIDv5 of tenant and camera name (`camera_media_id`), the
  same on every run, so all of one camera's frames share one Kafka key and partition.
- frame_index counts published frames from 0 since the producer started; timestamp_ms is
  the grab time in milliseconds since the producer started.
- frame blobs: ``media-processed/{media_id}/frames/{run_id}/{frame_index:08d}.jpg``; the
  run id (start time and a random suffix) keeps a restarted producer, whose indices begin
  at 0 again, from overwriting frames that earlier events still reference.
- CameraStatusReported goes to the compacted status topic keyed by camera name, every
  `status_interval_s` and whenever a camera's state changes.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import random
import re
import secrets
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2
import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from visionlog.blobstore import PROCESSED, BlobRef, BlobStore
from visionlog.codec import AvroCodec
from visionlog.envelope import Envelope, deterministic_event_id, now_millis
from visionlog.kafka import DeliveryError, EventPublisher
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import Settings
from visionlog.topics import full_topic_name, topic_for_event

log = logging.getLogger(__name__)

PRODUCER = "producers.cameras/0.1.0"
# Namespace of camera stream ids: tenant and camera name give the same id on every run.
CAMERA_NAMESPACE = uuid.UUID("2d8f4c1e-7a3b-5e9d-8c60-41f5a2b7d903")
# Frames larger than this are not JPEG camera frames but a broken stream.
MAX_FRAME_BYTES = 32 * 1024 * 1024
# A publish rate measured over less time than this is noise.
_MIN_RATE_WINDOW_S = 0.5


class CameraState(StrEnum):
    UNKNOWN = "UNKNOWN"
    CONNECTING = "CONNECTING"
    STREAMING = "STREAMING"
    RECONNECTING = "RECONNECTING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


# --- configuration -----------------------------------------------------------------------


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    # rtsp://..., http(s):// MJPEG, device:N, or a video file path (played in a loop).
    url: str = Field(min_length=1)
    target_fps: float = Field(default=5.0, gt=0, le=60)
    jpeg_quality: int = Field(default=85, ge=1, le=100)
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)


class CameraSetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: list[CameraConfig] = Field(min_length=1)
    status_interval_s: float = Field(default=10.0, gt=0)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    # None: keep reconnecting forever; otherwise the camera is FAILED after this many.
    max_reconnect_attempts: int | None = Field(default=None, ge=1)
    # Bounds a silent network source: opening and each read give up after this long.
    source_timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _names_are_unique(self) -> CameraSetConfig:
        names = [camera.name for camera in self.cameras]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique; repeated: {', '.join(duplicates)}")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must not be below reconnect_initial_s")
        return self

    @property
    def enabled(self) -> list[CameraConfig]:
        return [camera for camera in self.cameras if camera.enabled]


def load_camera_set(path: Path) -> CameraSetConfig:
    """Read a camera set from a .toml or .json file (top-level `cameras` list)."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        raw: Any = tomllib.loads(text)
    elif suffix == ".json":
        raw = json.loads(text)
    else:
        raise ValueError(f"{path.name}: camera sets are .toml or .json files, not {suffix!r}")
    return CameraSetConfig.model_validate(raw)


# --- sources -----------------------------------------------------------------------------


class SourceKind(StrEnum):
    RTSP = "rtsp"
    MJPEG = "mjpeg"
    DEVICE = "device"
    FILE = "file"


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    location: str  # URL, device index or absolute file path

    @property
    def loops(self) -> bool:
        return self.kind is SourceKind.FILE


_DEVICE = re.compile(r"^device:(\d+)$")


def parse_source(url: str, base_dir: Path | None = None) -> SourceSpec:
    """What kind of source a camera URL names; relative file paths resolve from base_dir."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        return SourceSpec(SourceKind.RTSP, url)
    if scheme in ("http", "https"):
        return SourceSpec(SourceKind.MJPEG, url)
    if device := _DEVICE.match(url):
        return SourceSpec(SourceKind.DEVICE, device.group(1))
    if scheme == "file":
        path = Path(urlsplit(url).path)
    elif scheme and len(scheme) > 1:
        raise ValueError(f"unsupported camera URL scheme {scheme!r} in {redact_url(url)}")
    else:
        path = Path(url)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return SourceSpec(SourceKind.FILE, str(path))


def redact_url(url: str) -> str:
    """The URL without user name and password, for logs and status events."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def camera_media_id(tenant_id: str, camera_name: str) -> str:
    return str(uuid.uuid5(CAMERA_NAMESPACE, f"{tenant_id}/{camera_name}"))


class SourceError(IOError):
    """The camera cannot be opened or read; the capture loop reconnects."""


@dataclass(frozen=True)
class RawFrame:
    """One frame as the source gave it: decoded pixels or the JPEG bytes of an MJPEG part."""

    image: np.ndarray | None = None
    jpeg: bytes | None = None


class FrameReader(Protocol):
    source_fps: float | None

    def read(self) -> RawFrame | None:
        """The next frame; None when the source ended. Raises SourceError on failure."""
        ...

    def close(self) -> None: ...


class OpenCvReader:
    """RTSP streams, local devices and files through OpenCV; files are paced to their fps."""

    def __init__(self, spec: SourceSpec, timeout_s: float) -> None:
        timeout_ms = int(timeout_s * 1000)
        if spec.kind is SourceKind.DEVICE:
            self._capture = cv2.VideoCapture(int(spec.location))
        else:
            if spec.kind is SourceKind.FILE and not Path(spec.location).is_file():
                raise SourceError(f"no video file at {spec.location}")
            self._capture = cv2.VideoCapture(
                spec.location,
                cv2.CAP_FFMPEG,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    timeout_ms,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    timeout_ms,
                ],
            )
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"cannot open {spec.kind.value} source {redact_url(spec.location)}")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        self.source_fps: float | None = fps if math.isfinite(fps) and 0 < fps <= 240 else None
        # A file would be read as fast as it decodes; play it at its own rate like a camera.
        self._period = 1 / (self.source_fps or 25.0) if spec.kind is SourceKind.FILE else 0.0
        self._next_due = time.monotonic()

    def read(self) -> RawFrame | None:
        if self._period:
            delay = self._next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_due = max(self._next_due + self._period, time.monotonic() - self._period)
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        return RawFrame(image=image)

    def close(self) -> None:
        self._capture.release()


class MultipartJpegParser:
    """Splits a multipart/x-mixed-replace byte stream into its JPEG parts.

    Parts with a Content-Length header are cut by length; others end at the next boundary.
    """

    def __init__(self, boundary: str, max_part_bytes: int = MAX_FRAME_BYTES) -> None:
        if not boundary:
            raise ValueError("multipart boundary is empty")
        self._marker = b"--" + boundary.encode("latin-1")
        self._max = max_part_bytes
        self._buffer = bytearray()

    @staticmethod
    def boundary_of(content_type: str) -> str:
        kind, _, params = content_type.partition(";")
        if kind.strip().lower() not in ("multipart/x-mixed-replace", "multipart/mixed"):
            raise SourceError(f"not an MJPEG stream: content type {content_type!r}")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "boundary" and value:
                boundary = value.strip('"')
                # Some servers repeat the leading dashes in the header; the marker adds them.
                return boundary[2:] if boundary.startswith("--") else boundary
        raise SourceError(f"MJPEG stream without a boundary: {content_type!r}")

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        parts: list[bytes] = []
        while (part := self._next_part()) is not None:
            parts.append(part)
        if len(self._buffer) > self._max + 4096:
            raise SourceError(f"MJPEG part exceeds {self._max} bytes without a boundary")
        return parts

    def _next_part(self) -> bytes | None:
        start = self._buffer.find(self._marker)
        if start < 0:
            return None
        headers_end = self._buffer.find(b"\r\n\r\n", start)
        if headers_end < 0:
            return None
        headers = bytes(self._buffer[start + len(self._marker) : headers_end])
        body_start = headers_end + 4
        length = _content_length(headers)
        if length is not None:
            if length > self._max:
                raise SourceError(f"MJPEG part of {length} bytes exceeds {self._max}")
            if len(self._buffer) < body_start + length:
                return None
            body = bytes(self._buffer[body_start : body_start + length])
            del self._buffer[: body_start + length]
            return body
        end = self._buffer.find(self._marker, body_start)
        if end < 0:
            return None
        body = bytes(self._buffer[body_start:end]).removesuffix(b"\r\n")
        del self._buffer[:end]
        return body


def _content_length(headers: bytes) -> int | None:
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError as exc:
                raise SourceError(f"bad Content-Length in MJPEG part: {value!r}") from exc
    return None


class MjpegReader:
    """Motion JPEG over HTTP (multipart/x-mixed-replace); parts stay JPEG until published."""

    def __init__(self, spec: SourceSpec, timeout_s: float) -> None:
        self.source_fps: float | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True)
        try:
            request = self._client.build_request("GET", spec.location)
            self._response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            self._client.close()
            raise SourceError(f"cannot open {redact_url(spec.location)}: {exc!r}") from exc
        if self._response.status_code != 200:
            self.close()
            raise SourceError(
                f"{redact_url(spec.location)} answered HTTP {self._response.status_code}"
            )
        try:
            boundary = MultipartJpegParser.boundary_of(
                self._response.headers.get("content-type", "")
            )
        except SourceError:
            self.close()
            raise
        self._parts = self._iterate(MultipartJpegParser(boundary))

    def _iterate(self, parser: MultipartJpegParser) -> Iterator[bytes]:
        try:
            # No chunk size: httpx would hold bytes back until a whole chunk filled up.
            for chunk in self._response.iter_raw():
                yield from parser.feed(chunk)
        except httpx.HTTPError as exc:
            raise SourceError(f"MJPEG stream broke: {exc!r}") from exc

    def read(self) -> RawFrame | None:
        part = next(self._parts, None)
        return None if part is None else RawFrame(jpeg=part)

    def close(self) -> None:
        self._response.close()
        self._client.close()


def open_reader(spec: SourceSpec, timeout_s: float) -> FrameReader:
    if spec.kind is SourceKind.MJPEG:
        return MjpegReader(spec, timeout_s)
    return OpenCvReader(spec, timeout_s)


# --- backpressure and backoff ------------------------------------------------------------


@dataclass(frozen=True)
class CapturedFrame:
    sequence: int  # grab counter of the capture thread
    captured_at: datetime  # wall clock, UTC, milliseconds
    monotonic_s: float
    raw: RawFrame
    source_fps: float | None


class LatestFrameSlot:
    """Holds at most one unsent frame: a newer frame replaces it and counts as dropped."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._closed = False
        self.dropped = 0
        self.high_water = 0

    def put(self, frame: CapturedFrame) -> bool:
        """Store the frame; True when it replaced (dropped) an unsent one."""
        with self._condition:
            replaced = self._frame is not None
            if replaced:
                self.dropped += 1
            self._frame = frame
            self.high_water = max(self.high_water, self.occupancy)
            self._condition.notify()
            return replaced

    def take(self, timeout: float) -> CapturedFrame | None:
        """The newest unsent frame, waiting up to timeout; None when none came or closed."""
        with self._condition:
            if self._frame is None and not self._closed:
                self._condition.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    @property
    def occupancy(self) -> int:
        return 0 if self._frame is None else 1

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()


class Backoff:
    """Exponential delays with jitter: each delay is drawn from [(1 - jitter) d, d]."""

    def __init__(
        self,
        initial_s: float,
        maximum_s: float,
        *,
        multiplier: float = 2.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be within 0..1, got {jitter}")
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.multiplier = multiplier
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * self.multiplier**self.attempt)
        self.attempt += 1
        return ceiling * (1 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0


# --- events ------------------------------------------------------------------------------


def _envelope(
    event_type: str, media_id: str, tenant_id: str, event_id: str, occurred_at: datetime
) -> dict[str, Any]:
    return Envelope(
        event_type=event_type,
        schema_version=get_catalog().event(event_type).version,
        producer=PRODUCER,
        correlation_id=media_id,
        tenant_id=tenant_id,
        event_id=event_id,
        occurred_at=occurred_at,
    ).as_record()


def frame_captured_record(
    *,
    camera: CameraConfig,
    media_id: str,
    tenant_id: str,
    run_id: str,
    frame_index: int,
    timestamp_ms: int,
    captured_at: datetime,
    width: int,
    height: int,
    image: BlobRef,
    source_fps: float | None,
) -> dict[str, Any]:
    """A FrameCaptured record; the id is deterministic per camera, run and index."""
    event_id = deterministic_event_id("FrameCaptured", media_id, run_id, frame_index)
    return {
        "envelope": _envelope("FrameCaptured", media_id, tenant_id, event_id, captured_at),
        "media_id": media_id,
        "camera_id": camera.name,
        "frame_index": frame_index,
        "timestamp_ms": timestamp_ms,
        "captured_at": captured_at,
        "width": width,
        "height": height,
        "image": dict(image),
        "source_fps": source_fps,
        "sampling_fps": camera.target_fps,
    }


@dataclass(frozen=True)
class CameraSnapshot:
    """A consistent reading of one camera's state and counters."""

    state: CameraState
    frames_captured: int
    frames_published: int
    frames_dropped: int
    reconnects: int
    errors: int
    last_error: str | None
    slot_high_water: int


def camera_status_record(
    *,
    camera: CameraConfig,
    media_id: str,
    tenant_id: str,
    run_id: str,
    report_number: int,
    snapshot: CameraSnapshot,
    measured_fps: float,
) -> dict[str, Any]:
    event_id = deterministic_event_id("CameraStatusReported", media_id, run_id, report_number)
    return {
        "envelope": _envelope("CameraStatusReported", media_id, tenant_id, event_id, now_millis()),
        "camera_id": camera.name,
        "state": snapshot.state.value,
        "url": redact_url(camera.url),
        "target_fps": camera.target_fps,
        "measured_fps": measured_fps,
        "frames_captured": snapshot.frames_captured,
        "frames_dropped": snapshot.frames_dropped,
        "frames_published": snapshot.frames_published,
        "reconnects": snapshot.reconnects,
        "last_error": snapshot.last_error,
    }


# --- one camera --------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedFrame:
    frame_index: int
    timestamp_ms: int
    captured_at: datetime
    width: int
    height: int
    jpeg: bytes
    source_fps: float | None


# Stores and publishes one frame; raises when either failed.
FrameSink = Callable[[CameraConfig, EncodedFrame], None]


def encode_frame(raw: RawFrame, quality: int) -> tuple[bytes, int, int]:
    """JPEG at the camera's quality, with the frame's width and height."""
    image = raw.image
    if image is None:
        if raw.jpeg is None:
            raise ValueError("empty frame")
        image = cv2.imdecode(np.frombuffer(raw.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"source sent {len(raw.jpeg)} bytes that are not a decodable JPEG")
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} frame as JPEG")
    return bytes(encoded.tobytes()), int(image.shape[1]), int(image.shape[0])


class CameraWorker:
    """Capture and publishing threads of one camera, with its counters and state."""

    def __init__(
        self,
        camera: CameraConfig,
        camera_set: CameraSetConfig,
        sink: FrameSink,
        *,
        epoch_monotonic_s: float,
        base_dir: Path | None = None,
        on_state_change: Callable[[CameraConfig, CameraState], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.camera = camera
        self.source = parse_source(camera.url, base_dir)
        self.slot = LatestFrameSlot()
        self._set = camera_set
        self._sink = sink
        self._epoch = epoch_monotonic_s
        self._on_state_change = on_state_change
        self._backoff = Backoff(camera_set.reconnect_initial_s, camera_set.reconnect_max_s, rng=rng)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state = CameraState.UNKNOWN
        self._captured = self._published = self._reconnects = self._errors = 0
        self._last_error: str | None = None
        self._threads = [
            threading.Thread(target=self._capture_loop, name=f"capture-{camera.name}", daemon=True),
            threading.Thread(target=self._publish_loop, name=f"publish-{camera.name}", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop both threads; the frame in flight is published, the unsent one discarded."""
        self._stop.set()
        self.slot.close()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "camera %s: thread %s did not stop in time", self.camera.name, thread.name
                )
        if self.state is not CameraState.FAILED:
            self._set_state(CameraState.STOPPED)

    @property
    def state(self) -> CameraState:
        with self._lock:
            return self._state

    def snapshot(self) -> CameraSnapshot:
        with self._lock:
            return CameraSnapshot(
                state=self._state,
                frames_captured=self._captured,
                frames_published=self._published,
                frames_dropped=self.slot.dropped,
                reconnects=self._reconnects,
                errors=self._errors,
                last_error=self._last_error,
                slot_high_water=self.slot.high_water,
            )

    def _set_state(self, state: CameraState) -> None:
        with self._lock:
            changed, self._state = self._state is not state, state
        if changed:
            log.info("camera %s: %s", self.camera.name, state.value)
            if self._on_state_change is not None:
                self._on_state_change(self.camera, state)

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = message

    # capture side

    def _capture_loop(self) -> None:
        self._set_state(CameraState.CONNECTING)
        while not self._stop.is_set():
            failure = self._capture_once()
            if self._stop.is_set():
                return
            if failure is None and self.source.loops:
                continue  # a file ended: play it again at once
            if not self._wait_before_reconnect(failure or "source ended"):
                return

    def _capture_once(self) -> str | None:
        """Read until the source ends (None) or fails (the error)."""
        try:
            reader = open_reader(self.source, self._set.source_timeout_s)
        except SourceError as exc:
            return str(exc)
        try:
            self._read_until_end(reader)
        except SourceError as exc:
            return str(exc)
        finally:
            reader.close()
        return None

    def _read_until_end(self, reader: FrameReader) -> None:
        streaming = False
        while not self._stop.is_set():
            raw = reader.read()
            if raw is None:
                return
            if not streaming:
                streaming = True
                self._backoff.reset()
                self._set_state(CameraState.STREAMING)
            with self._lock:
                sequence = self._captured
                self._captured += 1
            self.slot.put(
                CapturedFrame(
                    sequence=sequence,
                    captured_at=now_millis(),
                    monotonic_s=time.monotonic(),
                    raw=raw,
                    source_fps=reader.source_fps,
                )
            )

    def _wait_before_reconnect(self, failure: str) -> bool:
        """Record the failure and sleep the backoff; False when the camera gives up."""
        limit = self._set.max_reconnect_attempts
        with self._lock:
            self._last_error = failure
            exhausted = limit is not None and self._reconnects >= limit
            if not exhausted:
                self._reconnects += 1
        if exhausted:
            log.error(
                "camera %s: giving up after %s reconnects: %s", self.camera.name, limit, failure
            )
            self._set_state(CameraState.FAILED)
            self.slot.close()
            return False
        delay = self._backoff.next_delay()
        log.warning("camera %s: %s; reconnecting in %.2fs", self.camera.name, failure, delay)
        self._set_state(CameraState.RECONNECTING)
        return not self._stop.wait(delay)

    # publishing side

    def _publish_loop(self) -> None:
        period = 1.0 / self.camera.target_fps
        next_due = time.monotonic()
        while not self._stop.is_set():
            if self._stop.wait(max(0.0, next_due - time.monotonic())):
                return
            frame = self.slot.take(timeout=min(period, 0.5))
            if frame is None:
                if self.state is CameraState.FAILED:
                    return
                continue  # nothing new yet: publish as soon as a frame arrives
            self._publish(frame)
            # Ticks stay on the grid; after a stall, restart from now instead of bursting.
            next_due = max(next_due + period, time.monotonic() - period / 2)

    def _publish(self, frame: CapturedFrame) -> None:
        try:
            jpeg, width, height = encode_frame(frame.raw, self.camera.jpeg_quality)
        except ValueError as exc:
            self._record_error(f"frame {frame.sequence}: {exc}")
            log.warning(
                "camera %s: frame %d not published: %s", self.camera.name, frame.sequence, exc
            )
            return
        with self._lock:
            index = self._published
        encoded = EncodedFrame(
            frame_index=index,
            timestamp_ms=round((frame.monotonic_s - self._epoch) * 1000),
            captured_at=frame.captured_at,
            width=width,
            height=height,
            jpeg=jpeg,
            source_fps=frame.source_fps,
        )
        try:
            self._sink(self.camera, encoded)
        except Exception as exc:  # blob store or Kafka: the frame is lost, the camera goes on
            self._record_error(f"frame {index} not published: {type(exc).__name__}: {exc}")
            log.exception("camera %s: frame %d not published", self.camera.name, index)
            return
        with self._lock:
            self._published += 1


# --- the producer process ----------------------------------------------------------------


class BlobAndEventSink:
    """Stores a frame in the blob store, then publishes its FrameCaptured event."""

    def __init__(
        self, blobs: BlobStore, publisher: EventPublisher, tenant_id: str, run_id: str
    ) -> None:
        self._blobs = blobs
        self._publisher = publisher
        self._tenant_id = tenant_id
        self.run_id = run_id

    def __call__(self, camera: CameraConfig, frame: EncodedFrame) -> None:
        media_id = camera_media_id(self._tenant_id, camera.name)
        key = frame_blob_key(media_id, self.run_id, frame.frame_index)
        ref = self._blobs.put_bytes(PROCESSED, key, frame.jpeg, "image/jpeg")
        record = frame_captured_record(
            camera=camera,
            media_id=media_id,
            tenant_id=self._tenant_id,
            run_id=self.run_id,
            frame_index=frame.frame_index,
            timestamp_ms=frame.timestamp_ms,
            captured_at=frame.captured_at,
            width=frame.width,
            height=frame.height,
            image=ref,
            source_fps=frame.source_fps,
        )
        self._publisher.publish("FrameCaptured", record, key=media_id)


def frame_blob_key(media_id: str, run_id: str, frame_index: int) -> str:
    return f"{media_id}/frames/{run_id}/{frame_index:08d}.jpg"


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class CameraSetProducer:
    """Runs every enabled camera of a set and reports their health."""

    def __init__(
        self,
        camera_set: CameraSetConfig,
        *,
        tenant_id: str,
        publisher: EventPublisher,
        blobs: BlobStore,
        base_dir: Path | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.camera_set = camera_set
        self.run_id = new_run_id()
        self._tenant_id = tenant_id
        self._publisher = publisher
        self._flush_interval_s = flush_interval_s
        self._state_changes: queue.Queue[str] = queue.Queue()
        self._reports = 0
        # camera -> (time, frames published, rate) at its last periodic report
        self._rates: dict[str, tuple[float, int, float]] = {}
        self.delivery_failures = 0
        sink = BlobAndEventSink(blobs, publisher, tenant_id, self.run_id)
        epoch = time.monotonic()
        self.workers = {
            camera.name: CameraWorker(
                camera,
                camera_set,
                sink,
                epoch_monotonic_s=epoch,
                base_dir=base_dir,
                on_state_change=lambda cam, _state: self._state_changes.put(cam.name),
            )
            for camera in camera_set.enabled
        }

    @classmethod
    def from_settings(
        cls, camera_set: CameraSetConfig, settings: Settings, base_dir: Path | None = None
    ) -> CameraSetProducer:
        codec = AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())
        return cls(
            camera_set,
            tenant_id=settings.tenant_id,
            publisher=EventPublisher(settings.kafka, codec),
            blobs=BlobStore.from_settings(settings.minio),
            base_dir=base_dir,
        )

    def media_id(self, camera_name: str) -> str:
        return camera_media_id(self._tenant_id, camera_name)

    def start(self) -> None:
        # Register the schemas first: an unreachable registry fails the start, not each frame.
        for event_type in ("FrameCaptured", "CameraStatusReported"):
            topic = full_topic_name(topic_for_event(event_type), self._publisher.settings)
            self._publisher.codec.schema_id(topic, event_type)
        for worker in self.workers.values():
            worker.start()

    def run(self, stop: threading.Event) -> None:
        """Start, serve until `stop` is set, then shut down gracefully."""
        self.start()
        try:
            self.supervise(stop)
        finally:
            self.shutdown()

    def supervise(self, stop: threading.Event) -> None:
        """Report status periodically and on state changes; surface delivery failures."""
        next_status = time.monotonic()
        next_flush = time.monotonic() + self._flush_interval_s
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_status:
                self.report_all()
                next_status = now + self.camera_set.status_interval_s
            self._report_changes()
            if now >= next_flush:
                self._flush(timeout=self._flush_interval_s * 5)
                next_flush = now + self._flush_interval_s
            stop.wait(0.05)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop every camera, publish their final status, and wait for every delivery."""
        for worker in self.workers.values():
            worker.stop()
        self._report_changes()
        self.report_all()
        self._flush(timeout=timeout_s, raise_errors=True)

    def report_all(self) -> None:
        for name in self.workers:
            self._report(name, periodic=True)

    def _report_changes(self) -> None:
        changed: set[str] = set()
        while True:
            try:
                changed.add(self._state_changes.get_nowait())
            except queue.Empty:
                break
        for name in changed:
            self._report(name)

    def _report(self, name: str, *, periodic: bool = False) -> None:
        worker = self.workers[name]
        snapshot = worker.snapshot()
        record = camera_status_record(
            camera=worker.camera,
            media_id=self.media_id(name),
            tenant_id=self._tenant_id,
            run_id=self.run_id,
            report_number=self._next_report_number(),
            snapshot=snapshot,
            measured_fps=self._measured_fps(name, snapshot.frames_published, periodic),
        )
        self._publisher.publish("CameraStatusReported", record, key=name)

    def _next_report_number(self) -> int:
        self._reports += 1
        return self._reports

    def _measured_fps(self, name: str, published: int, periodic: bool) -> float:
        """Publish rate since the previous periodic report (the reporting interval).

        A state change reported moments after a periodic report repeats the last rate
        rather than dividing by a few milliseconds.
        """
        now = time.monotonic()
        since, published_then, last_rate = self._rates.get(name, (now, published, 0.0))
        elapsed = now - since
        rate = (
            (published - published_then) / elapsed if elapsed >= _MIN_RATE_WINDOW_S else last_rate
        )
        if periodic or name not in self._rates:
            self._rates[name] = (now, published, rate)
        return rate

    def _flush(self, timeout: float, raise_errors: bool = False) -> None:
        try:
            self._publisher.flush(timeout)
        except DeliveryError:
            self.delivery_failures += 1
            log.exception("camera events not acknowledged by Kafka")
            if raise_errors:
                raise
