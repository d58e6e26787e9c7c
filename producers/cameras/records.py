"""Event records of the camera producer: FrameCaptured and CameraStatusReported."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from producers.cameras.config import CameraConfig
from producers.cameras.state import CameraSnapshot
from producers.urls import redact_url
from visionlog.blobstore import BlobRef
from visionlog.contracts import Envelope as EnvelopeRecord
from visionlog.envelope import Envelope, deterministic_event_id, now_millis
from visionlog.schemas import get_catalog
from visionlog.stream.headers import new_trace_id

PRODUCER = "producers.cameras/0.1.0"


def _envelope(
    event_type: str,
    media_id: str,
    tenant_id: str,
    event_id: str,
    occurred_at: datetime,
    trace_id: str | None = None,
) -> EnvelopeRecord:
    return Envelope(
        event_type=event_type,
        schema_version=get_catalog().event(event_type).version,
        producer=PRODUCER,
        correlation_id=media_id,
        tenant_id=tenant_id,
        event_id=event_id,
        occurred_at=occurred_at,
        trace_id=trace_id,
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
    """A FrameCaptured (v2) record; the id is deterministic per camera, run and index.

    Each frame starts its own trace (a camera stream never ends, one trace per frame shows
    that frame's path through the workers); it carries the camera's profile and staleness
    bound to the processors."""
    event_id = deterministic_event_id("FrameCaptured", media_id, run_id, frame_index)
    return {
        "envelope": _envelope(
            "FrameCaptured", media_id, tenant_id, event_id, captured_at, new_trace_id()
        ),
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
        "profile": camera.profile,
        "max_age_ms": camera.max_age_ms,
    }


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
