"""Video files: probing and frame sampling with OpenCV.

Timestamps come from the container (``CAP_PROP_POS_MSEC`` of each grabbed frame) and fall
back to ``index / fps`` when the container gives none. Frames that are not sampled are only
grabbed, never converted to BGR, so sampling a long video costs little more than demuxing.

A video is CORRUPT when OpenCV cannot open it, it has no decodable frame, or it decodes
fewer frames than its container declares (a truncated or damaged file). Ingest probes
(`probe_video`); the render stage samples (`sample_frames`), and a video that breaks off
while sampling raises `FrameDecodeError` naming the frame where it stopped, after the
frames before it were yielded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from visionlog.media.errors import MediaRejectedError, RejectReason

# Frame counts of some containers are estimates from duration x fps: allow this much slack
# before a shortfall of decoded frames counts as truncation.
_COUNT_SLACK_FRAMES = 1
_COUNT_SLACK_RATIO = 0.001
# Rates outside this range are container nonsense (0, NaN, 90000 timebases).
_MAX_PLAUSIBLE_FPS = 1000.0


class FrameDecodeError(MediaRejectedError):
    """Sampling stopped at `frame_index` (0-based): that frame or the rest cannot be decoded."""

    def __init__(self, frame_index: int, message: str) -> None:
        super().__init__(RejectReason.CORRUPT, message)
        self.frame_index = frame_index


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float  # 0.0 when the container declares no usable rate
    frame_count: int
    duration_ms: int
    codec: str  # FourCC as the container names it, e.g. MJPG or FMP4


@dataclass(frozen=True)
class SampledFrame:
    frame_index: int
    timestamp_ms: int
    width: int
    height: int
    jpeg: bytes


def fourcc_name(value: float) -> str:
    code = int(value)
    text = code.to_bytes(4, "little").decode("ascii", errors="replace").strip("\x00 ")
    return text if text.isprintable() and text else f"0x{code:08x}"


def usable_fps(value: float) -> float:
    return value if math.isfinite(value) and 0 < value <= _MAX_PLAUSIBLE_FPS else 0.0


def allowed_shortfall(declared: int) -> int:
    return max(_COUNT_SLACK_FRAMES, math.floor(declared * _COUNT_SLACK_RATIO))


def frame_timestamp_ms(index: int, position_ms: float, fps: float) -> int:
    """The container's timestamp, or index / fps where it reports none past frame 0."""
    if math.isfinite(position_ms) and (position_ms > 0 or index == 0):
        return round(position_ms)
    return round(index * 1000 / fps) if fps > 0 else 0


class FrameSelector:
    """Decides which frames to keep: every Nth, or the first at or after each 1/fps tick.

    Ticks are multiples of the period from the start, so rounding never drifts the rate.
    """

    def __init__(self, *, target_fps: float | None, every_n: int | None) -> None:
        if target_fps is not None and every_n is not None:
            raise ValueError("give target_fps or every_n, not both")
        if target_fps is not None and not (math.isfinite(target_fps) and target_fps > 0):
            raise ValueError(f"target_fps must be positive, got {target_fps}")
        if every_n is not None and every_n < 1:
            raise ValueError(f"every_n must be at least 1, got {every_n}")
        self.target_fps = target_fps
        self.every_n = every_n
        self._next_tick = 0

    def wants(self, index: int, timestamp_ms: float) -> bool:
        if self.every_n is not None:
            return index % self.every_n == 0
        if self.target_fps is None:
            return True
        period_ms = 1000.0 / self.target_fps
        # Half a millisecond of tolerance: container timestamps are rounded to the timebase.
        if timestamp_ms + 0.5 < self._next_tick * period_ms:
            return False
        self._next_tick = math.floor((timestamp_ms + 0.5) / period_ms) + 1
        return True


@contextmanager
def _capture(path: Path) -> Iterator[cv2.VideoCapture]:
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise MediaRejectedError(
                RejectReason.CORRUPT,
                f"{path.name}: not a readable video (no container or stream OpenCV can open)",
            )
        yield capture
    finally:
        capture.release()


def _count_by_grabbing(capture: cv2.VideoCapture) -> tuple[int, float]:
    """Frames and last timestamp, for containers that do not declare a frame count."""
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    count, last_ms = 0, 0.0
    while capture.grab():
        count += 1
        last_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
    return count, last_ms


def probe_video(path: Path) -> VideoInfo:
    """Size, rate, length and codec; checks that the first and the last frame decode."""
    with _capture(path) as capture:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = usable_fps(capture.get(cv2.CAP_PROP_FPS))
        codec = fourcc_name(capture.get(cv2.CAP_PROP_FOURCC))
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = capture.read()
        if not ok or first is None or width <= 0 or height <= 0:
            raise MediaRejectedError(
                RejectReason.CORRUPT, f"{path.name}: no decodable frame ({codec} stream)"
            )
        if declared > 0:
            frame_count = declared
            capture.set(cv2.CAP_PROP_POS_FRAMES, declared - 1)
            if declared > 1 and not capture.grab():
                raise MediaRejectedError(
                    RejectReason.CORRUPT,
                    f"{path.name}: the container declares {declared} frames but frame "
                    f"{declared - 1} cannot be decoded (truncated or damaged)",
                )
            last_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
        else:
            frame_count, last_ms = _count_by_grabbing(capture)
    if fps > 0:
        duration_ms = round(frame_count * 1000 / fps)
    else:
        # No declared rate: derive it from the timestamps of the first and the last frame.
        duration_ms = round(last_ms)
        if frame_count > 1 and last_ms > 0:
            fps = (frame_count - 1) * 1000 / last_ms
            duration_ms = round(frame_count * 1000 / fps)
    return VideoInfo(
        width=width,
        height=height,
        fps=fps,
        frame_count=frame_count,
        duration_ms=duration_ms,
        codec=codec,
    )


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg quality must be within 1..100, got {quality}")
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} frame as JPEG")
    return bytes(encoded.tobytes())


def sample_frames(
    path: Path,
    *,
    target_fps: float | None = None,
    every_n: int | None = None,
    max_frames: int | None = None,
    jpeg_quality: int = 90,
) -> Iterator[SampledFrame]:
    """Sampled frames as JPEG, in order; every frame when neither rate nor step is given.

    The video is probed when this is called (rejections raise here); a video that decodes
    fewer frames than it declares raises CORRUPT when the iteration reaches its end.
    """
    selector = FrameSelector(target_fps=target_fps, every_n=every_n)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg quality must be within 1..100, got {jpeg_quality}")
    info = probe_video(path)
    return _sample(path, info, selector, max_frames, jpeg_quality)


def _sample(
    path: Path,
    info: VideoInfo,
    selector: FrameSelector,
    max_frames: int | None,
    jpeg_quality: int,
) -> Iterator[SampledFrame]:
    with _capture(path) as capture:
        index = emitted = 0
        while max_frames is None or emitted < max_frames:
            if not capture.grab():
                break
            timestamp_ms = frame_timestamp_ms(index, capture.get(cv2.CAP_PROP_POS_MSEC), info.fps)
            if selector.wants(index, timestamp_ms):
                ok, image = capture.retrieve()
                if not ok or image is None:
                    raise FrameDecodeError(index, f"{path.name}: frame {index} cannot be decoded")
                yield SampledFrame(
                    frame_index=index,
                    timestamp_ms=timestamp_ms,
                    width=int(image.shape[1]),
                    height=int(image.shape[0]),
                    jpeg=encode_jpeg(image, jpeg_quality),
                )
                emitted += 1
            index += 1
        else:
            return  # stopped at max_frames: the rest is not read, so not checked
        if info.frame_count - index > allowed_shortfall(info.frame_count):
            raise FrameDecodeError(
                index,
                f"{path.name}: decoding stopped after {index} of {info.frame_count} declared "
                "frames (truncated or damaged)",
            )
