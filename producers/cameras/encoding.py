"""Publishing side of a camera: re-encoding a frame as JPEG and the sink it is handed to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from producers.cameras.config import CameraConfig
from producers.cameras.sources import RawFrame
from visionlog.media.video import encode_jpeg


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
    return encode_jpeg(image, quality), int(image.shape[1]), int(image.shape[0])
