"""Camera sources: what a camera URL names, and the contract every frame reader keeps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np

from producers.urls import redact_url


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
