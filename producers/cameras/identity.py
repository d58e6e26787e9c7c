"""Identity and blob layout of camera streams: media ids, run ids and frame blob keys."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

# Namespace of camera stream ids: tenant and camera name give the same id on every run.
CAMERA_NAMESPACE = uuid.UUID("2d8f4c1e-7a3b-5e9d-8c60-41f5a2b7d903")


def camera_media_id(tenant_id: str, camera_name: str) -> str:
    return str(uuid.uuid5(CAMERA_NAMESPACE, f"{tenant_id}/{camera_name}"))


def frame_blob_key(media_id: str, run_id: str, frame_index: int) -> str:
    return f"{media_id}/frames/{run_id}/{frame_index:08d}.jpg"


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
