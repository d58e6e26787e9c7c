"""The contract between pure processing stages and the stream runtime.

A stage is a plain function ``(event, context) -> list[Outgoing]``: it receives one decoded
input event (a dict as the Avro schema describes it), may read and write blobs through the
context, and returns the events it derives. It never touches Kafka; the runtime
(`processors.runtime`) decodes, calls stages off the poll loop, publishes, retries and
dead-letters. Stages raise `PermanentStageError` for input that can never succeed (a
corrupt image) and any other exception for failures worth retrying.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from visionlog.blobstore import BlobRef, BlobStore
from visionlog.envelope import envelope_caused_by
from visionlog.settings import Settings

PROCESSORS_VERSION = "0.1.0"
# The input events that point at one image (an upload, a rendered page, a captured frame).
_IMAGE_EVENTS = frozenset({"MediaUploaded", "PageRendered", "FrameCaptured"})


class PermanentStageError(ValueError):
    """The input can never be processed (corrupt, unsupported); dead-letter it, no retry."""


@dataclass(frozen=True)
class Outgoing:
    """One derived event; the runtime picks the topic from the event type."""

    event_type: str
    record: dict[str, Any]
    key: str


@dataclass
class StageContext:
    """What a stage may use besides its input: settings and the blob store."""

    settings: Settings
    blobs: BlobStore
    # Decoded images by blob sha256, so several stages on one worker decode a frame once.
    _image_cache: dict[str, np.ndarray] = field(default_factory=dict)

    def load_image(self, ref: BlobRef | Mapping[str, Any]) -> np.ndarray:
        """The referenced image as a BGR array; corrupt bytes are a permanent error."""
        digest = str(ref["sha256"])
        cached = self._image_cache.get(digest)
        if cached is not None:
            return cached
        data = self.blobs.get_bytes(dict(ref))
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise PermanentStageError(
                f"blob {ref['bucket']}/{ref['key']} ({ref['content_type']}) "
                "is not a decodable image"
            )
        if len(self._image_cache) >= 8:
            self._image_cache.pop(next(iter(self._image_cache)))
        self._image_cache[digest] = image
        return image


Stage = Callable[[dict[str, Any], StageContext], list[Outgoing]]


def derived_envelope(
    source: Mapping[str, Any], event_type: str, stage: str, *identity: object
) -> dict[str, Any]:
    """Envelope for an event a stage derived from `source`, with a deterministic id.

    The identity parts (e.g. model version, page number) make the id unique per output
    while the same input and model always give the same id, so replays deduplicate.
    """
    producer = f"processors.{stage}/{PROCESSORS_VERSION}"
    return envelope_caused_by(source, event_type, producer, *identity)


def item_label(item: Mapping[str, Any]) -> str:
    """The name of an item in blob keys: `original`, `page-0003` or `frame-00000042`.

    One spelling for every key derived from an item (exports, anonymised copies, masked
    text, speech), so access rules and listings can rely on it. `original` is a whole
    uploaded image; pages are 1-based, frames 0-based, both zero-padded so that keys list
    in document order.
    """
    if item.get("page_number") is not None:
        return f"page-{int(item['page_number']):04d}"
    if item.get("frame_index") is not None:
        return f"frame-{int(item['frame_index']):08d}"
    return "original"


def image_item(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ItemRef of the image an event asks to analyse, or None when there is none.

    Uploads of PDFs and videos carry no image of their own: they arrive again page by page
    (PageRendered) and frame by frame (FrameCaptured), and are analysed then.
    """
    event_type = event["envelope"]["event_type"]
    if event_type not in _IMAGE_EVENTS:
        return None
    if event_type == "MediaUploaded" and event["media_kind"] != "IMAGE":
        return None
    return item_ref(event)


def item_ref(event: Mapping[str, Any]) -> dict[str, Any]:
    """The ItemRef of the image an input event points at (upload, page or frame)."""
    event_type = event["envelope"]["event_type"]
    if event_type == "MediaUploaded":
        return {
            "media_id": event["media_id"],
            "page_number": None,
            "frame_index": None,
            "frame_timestamp_ms": None,
            "camera_id": None,
            "image": event["original"],
        }
    if event_type == "PageRendered":
        return {
            "media_id": event["media_id"],
            "page_number": event["page_number"],
            "frame_index": None,
            "frame_timestamp_ms": None,
            "camera_id": None,
            "image": event["image"],
        }
    if event_type == "FrameCaptured":
        return {
            "media_id": event["media_id"],
            "page_number": None,
            "frame_index": event["frame_index"],
            "frame_timestamp_ms": event["timestamp_ms"],
            "camera_id": event["camera_id"],
            "image": event["image"],
        }
    raise PermanentStageError(f"{event_type} does not point at an image")
