"""Frame readers: OpenCV for RTSP, local devices and looping files; `open_reader` picks one."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2

from producers.cameras.mjpeg import MjpegReader
from producers.cameras.sources import (
    FrameReader,
    RawFrame,
    SourceError,
    SourceKind,
    SourceSpec,
)
from producers.urls import redact_url


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


def open_reader(spec: SourceSpec, timeout_s: float) -> FrameReader:
    if spec.kind is SourceKind.MJPEG:
        return MjpegReader(spec, timeout_s)
    return OpenCvReader(spec, timeout_s)
