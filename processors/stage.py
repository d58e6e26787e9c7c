"""The contract between pure processing stages and the stream runtime.

A stage is a plain function ``(event, context) -> list[Outgoing]``: it receives one decoded
input event (a dict as the Avro schema describes it), may read and write blobs through the
context, and returns the events it derives. It never touches Kafka; the runtime
(`processors.worker`) decodes, schedules stages off the poll loop, publishes, retries and
dead-letters. Stages raise `PermanentStageError` for input that can never succeed (a
corrupt image) and any other exception for failures worth retrying (see `visionlog.errors`).

Engines (models) and per-key state come from the context, never from module globals, so a
worker owns exactly one of each and tests can give a stage its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from visionlog import contracts
from visionlog.blobstore import BlobRef, BlobStore
from visionlog.envelope import envelope_caused_by
from visionlog.errors import PermanentError
from visionlog.settings import Settings

if TYPE_CHECKING:
    from processors.engines import Engines

PROCESSORS_VERSION = "0.2.0"
# The input events that point at one image (an upload, a rendered page, a captured frame).
_IMAGE_EVENTS = frozenset({"MediaUploaded", "PageRendered", "FrameCaptured"})


class PermanentStageError(PermanentError, ValueError):
    """The input can never be processed (corrupt, unsupported); dead-letter it, no retry."""


@dataclass(frozen=True)
class Outgoing:
    """One derived event; the runtime picks the topic from the event type."""

    event_type: str
    record: dict[str, Any]
    key: str
    # The image inside the media item this event is about, where the record does not say
    # (a dead letter for one page of a document): lets completion attribute it.
    item_label: str | None = None


class KeyedState(Protocol):
    """Durable state per key (a camera stream, a video) for stateful stages.

    Workers back it with a faust table whose changelog survives restarts; the reprocess
    worker and tests with a dict. Values are bytes the stage encodes itself."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...


class MemoryState:
    """KeyedState in a dict: for one-off runs (reprocess) and tests."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.values[key] = value


ImageKey = tuple[str, str, str]


class ImageCache:
    """The last few decoded images, keyed by where the blob lives and its digest.

    Several stages of one worker analyse the same frame; it is fetched and decoded once. The
    key includes bucket and key, so an event pointing at a missing blob is never answered
    from memory because another blob had the same content."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._images: OrderedDict[ImageKey, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: ImageKey) -> np.ndarray | None:
        with self._lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
            return image

    def put(self, key: ImageKey, image: np.ndarray) -> None:
        with self._lock:
            self._images[key] = image
            self._images.move_to_end(key)
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)


def image_key(ref: BlobRef | Mapping[str, Any]) -> ImageKey:
    return (str(ref["bucket"]), str(ref["key"]), str(ref["sha256"]))


@dataclass
class StageContext:
    """What a stage may use besides its input: settings, blobs, engines and keyed state."""

    settings: Settings
    blobs: BlobStore
    # Created on first use by the stages that need models; a worker builds one set.
    engines_factory: Callable[[], Engines] | None = None
    state: KeyedState = field(default_factory=MemoryState)
    images: ImageCache = field(default_factory=ImageCache)
    _engines: Engines | None = field(default=None, repr=False)
    _engines_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def engines(self) -> Engines:
        """The worker's engines (one OpenVINO runtime, one compiled model per engine)."""
        with self._engines_lock:
            if self._engines is None:
                if self.engines_factory is None:
                    from processors.engines import Engines

                    self._engines = Engines(self.settings)
                else:
                    self._engines = self.engines_factory()
            return self._engines

    def load_image(self, ref: BlobRef | Mapping[str, Any]) -> np.ndarray:
        """The referenced image as a BGR array; corrupt bytes are a permanent error."""
        key = image_key(ref)
        cached = self.images.get(key)
        if cached is not None:
            return cached
        data = self.blobs.get_bytes(dict(ref))
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise PermanentStageError(
                f"blob {ref['bucket']}/{ref['key']} ({ref['content_type']}) "
                "is not a decodable image"
            )
        self.images.put(key, image)
        return image


Stage = Callable[[dict[str, Any], StageContext], list[Outgoing]]


def derived_envelope(
    source: Mapping[str, Any], event_type: str, stage: str, *identity: object
) -> contracts.Envelope:
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


def image_item(event: Mapping[str, Any]) -> contracts.ItemRef | None:
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


def item_ref(event: Mapping[str, Any]) -> contracts.ItemRef:
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
