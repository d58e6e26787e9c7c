"""Camera set configuration: the cameras of one producer process and how to reconnect them."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from visionlog.profiles import CAMERA_PROFILES, DEFAULT_CAMERA_PROFILE


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    # rtsp://..., http(s):// MJPEG, device:N, or a video file path (played in a loop).
    url: str = Field(min_length=1)
    target_fps: float = Field(default=5.0, gt=0, le=60)
    jpeg_quality: int = Field(default=85, ge=1, le=100)
    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    # What the processors do with this camera's frames (visionlog.profiles).
    profile: str = DEFAULT_CAMERA_PROFILE
    # Staleness bound: a latency-critical stage skips a frame older than this instead of
    # analysing it late. None leaves it to the processors' default.
    max_age_s: float | None = Field(default=None, gt=0, le=3600)

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in CAMERA_PROFILES:
            raise ValueError(
                f"unknown camera profile {value!r}; choose one of {', '.join(CAMERA_PROFILES)}"
            )
        return value

    @property
    def max_age_ms(self) -> int | None:
        return None if self.max_age_s is None else round(self.max_age_s * 1000)


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
