"""Reads the run's events back from Kafka: from the offsets at the run's start to the end.

One confluent-kafka consumer, assigned (no group, nothing committed) to the topics the
table needs; batches of messages are decoded with the platform's `AvroCodec`. Messages
whose key cannot be one of the run's cameras are not decoded at all where only cameras
matter (frames, work reports, camera status), which keeps the benchmark's CPU low.

Events of contracts that do not exist yet in the platform simply never arrive: their
figures stay empty and the table says "no data".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from bench.load.model import (
    Completion,
    FrameOutcome,
    LiveCounters,
    Observations,
    SourceCounters,
)
from visionlog.codec import AvroCodec, MalformedEventError
from visionlog.kafka import consumer_config
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import Settings
from visionlog.topics import full_topic_name, topic_by_name

log = logging.getLogger(__name__)

# Topics read, and whether only the run's camera keys matter on them.
TOPICS: dict[str, bool] = {
    "media.frames": True,
    "cameras.status": True,
    "processing": True,
    "vision.detections": False,
    "ocr.text": False,
    "media": False,
}
SKIP_REASONS = ("stale", "superseded")


def epoch_ms(value: datetime | int) -> int:
    """fastavro gives timestamp-millis as aware datetimes; older writers may give ints."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    return int(value)


class _BrokerTrouble(logging.Handler):
    """Counts the consumer's connection failures instead of printing each of them: another
    user restarting the broker mid-run shows as one note in the table."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.first = self.first or record.created
        self.last = record.created

    def note(self) -> str | None:
        if not self.count or self.first is None or self.last is None:
            return None
        span = f"{time.strftime('%H:%M:%S', time.localtime(self.first))}-"
        span += time.strftime("%H:%M:%S", time.localtime(self.last))
        return f"the broker connection failed {self.count} times ({span}): figures may be short"


@dataclass
class _Frame:
    camera: str
    captured_ms: int
    event_id: str
    published_ms: int


@dataclass
class _State:
    """Everything seen so far; joined into an `Observations` on demand, because the
    topics are read side by side and a result may arrive before its frame."""

    frames: dict[str, _Frame] = field(default_factory=dict)  # image key -> frame
    detected: dict[str, int] = field(default_factory=dict)  # image key -> first create time
    inference: dict[str, float] = field(default_factory=dict)  # image key -> inference ms
    skipped: dict[str, str] = field(default_factory=dict)  # input event id -> reason kind
    # input event id -> from the live worker's report: wait before detection, its time
    queue_ms: dict[str, float] = field(default_factory=dict)
    stage_ms: dict[str, float] = field(default_factory=dict)
    sources: dict[str, tuple[int, SourceCounters]] = field(default_factory=dict)
    live: dict[tuple[str, str, str], LiveCounters] = field(default_factory=dict)
    completions: dict[str, Completion] = field(default_factory=dict)
    page_counts: dict[str, int] = field(default_factory=dict)
    pages: dict[str, dict[int, int]] = field(default_factory=dict)
    detections: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0
    events: int = 0


class EventCollector:
    """Collects the run's events on a thread; `observations()` joins them at any time."""

    def __init__(self, settings: Settings, cameras: dict[str, str]) -> None:
        """`cameras`: camera media id -> camera name."""
        self._settings = settings
        self._cameras = cameras
        self._camera_keys = {media_id.encode() for media_id in cameras}
        self._camera_names = {name.encode() for name in cameras.values()}
        self._codec = AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())
        self.broker_trouble = _BrokerTrouble()
        kafka_log = logging.getLogger(f"{__name__}.librdkafka.{uuid.uuid4().hex[:8]}")
        kafka_log.propagate = False
        kafka_log.addHandler(self.broker_trouble)
        self._consumer = Consumer(
            consumer_config(
                settings.kafka,
                f"bench-sustained-load-{uuid.uuid4().hex[:8]}",
                **{"enable.partition.eof": False, "fetch.wait.max.ms": 200},
            ),
            logger=kafka_log,
        )
        self._names = {
            full_topic_name(topic_by_name(name), settings.kafka): name for name in TOPICS
        }
        self._state = _State()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self.missing_topics: list[str] = []
        # When the last event of the run arrived (monotonic), for the drain's idle limit.
        self.last_event_at = time.monotonic()
        self.error: BaseException | None = None

    def start(self) -> None:
        """Take the end of every topic now as the run's start, and begin reading."""
        metadata = self._consumer.list_topics(timeout=30)
        assignment: list[TopicPartition] = []
        for topic, name in self._names.items():
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                self.missing_topics.append(name)
                continue
            for partition in described.partitions:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30
                )
                assignment.append(TopicPartition(topic, partition, high))
        self._consumer.assign(assignment)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()

    def _run(self) -> None:
        handlers: dict[str, Callable[[_State, Message, dict[str, Any], str], None]] = {
            "FrameCaptured": self._frame,
            "ObjectsDetected": self._detected,
            "EventProcessed": self._processed,
            "CameraStatusReported": self._status,
            "CameraAnalysisReported": self._analysis,
            "MediaCompleted": self._completed,
            "MediaUploaded": self._uploaded,
            "TextRecognized": self._text,
        }
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(num_messages=500, timeout=0.5)
                if not messages:
                    continue
                decoded: list[tuple[Message, dict[str, Any], str]] = []
                for message in messages:
                    event = self._decode(message)
                    if event is not None:
                        decoded.append(event)
                if not decoded:
                    continue
                with self._lock:
                    for message, record, event_type in decoded:
                        handler = handlers.get(event_type)
                        if handler is not None:
                            handler(self._state, message, record, event_type)
                    self._state.events += len(decoded)
                self.last_event_at = time.monotonic()
        except BaseException as exc:  # surfaced by the benchmark, which then stops
            self.error = exc
            log.exception("the event collector stopped")

    def _decode(self, message: Message) -> tuple[Message, dict[str, Any], str] | None:
        if message.error() is not None or message.value() is None:
            return None
        name = self._names.get(message.topic() or "")
        if name is None:
            return None
        if TOPICS[name]:
            wanted = self._camera_names if name == "cameras.status" else self._camera_keys
            if message.key() not in wanted:
                return None
        try:
            event = self._codec.decode(message.value())
        except MalformedEventError:
            with self._lock:
                self._state.undecodable += 1
            return None
        return message, event.record, event.event_type

    # handlers: each runs under the lock, on the collector thread

    def _frame(self, state: _State, message: Message, record: dict[str, Any], _t: str) -> None:
        state.frames[record["image"]["key"]] = _Frame(
            record.get("camera_id") or self._cameras.get(record["media_id"], "?"),
            epoch_ms(record["captured_at"]),
            record["envelope"]["event_id"],
            _create_time(message),
        )

    def _detected(self, state: _State, message: Message, record: dict[str, Any], _t: str) -> None:
        at = _create_time(message)
        item = record["item"]
        if item.get("camera_id") or record["media_id"] in self._cameras:
            key = item["image"]["key"]
            state.detected[key] = min(at, state.detected.get(key, at))
            state.inference.setdefault(key, float(record["inference_ms"]))
        else:
            media_id = record["media_id"]
            state.detections[media_id] = min(at, state.detections.get(media_id, at))

    def _processed(self, state: _State, _m: Message, record: dict[str, Any], _t: str) -> None:
        if record.get("worker") != "live":
            return
        for outcome in record.get("outcomes") or []:
            reason = (outcome.get("reason") or "").strip().lower()
            if outcome.get("stage") != "detection":
                continue
            if outcome.get("status") == "SKIPPED":
                kind = next((k for k in SKIP_REASONS if reason.startswith(k)), None)
                if kind is not None:
                    state.skipped[record["input_event_id"]] = kind
            elif outcome.get("status") == "DONE":
                state.queue_ms[record["input_event_id"]] = float(record["queue_ms"])
                state.stage_ms[record["input_event_id"]] = float(outcome["duration_ms"])

    def _status(self, state: _State, _m: Message, record: dict[str, Any], _t: str) -> None:
        camera = record["camera_id"]
        at = epoch_ms(record["envelope"]["occurred_at"])
        previous = state.sources.get(camera)
        if previous is None or at >= previous[0]:
            state.sources[camera] = (
                at,
                SourceCounters(
                    captured=int(record["frames_captured"]),
                    dropped=int(record["frames_dropped"]),
                    published=int(record["frames_published"]),
                    state=str(record["state"]),
                ),
            )

    def _analysis(self, state: _State, _m: Message, record: dict[str, Any], _t: str) -> None:
        key = (record["camera_id"], record["worker"], record["stage"])
        state.live[key] = LiveCounters(
            camera=record["camera_id"],
            worker=record["worker"],
            stage=record["stage"],
            received=int(record["frames_received"]),
            analysed=int(record["frames_analysed"]),
            skipped_stale=int(record["frames_skipped_stale"]),
            skipped_superseded=int(record["frames_skipped_superseded"]),
            max_age_ms=int(record["max_age_ms"]),
        )

    def _completed(self, state: _State, _m: Message, record: dict[str, Any], _t: str) -> None:
        if record.get("run_id") is None and record["media_id"] not in state.completions:
            state.completions[record["media_id"]] = Completion(
                epoch_ms(record["envelope"]["occurred_at"]), str(record["status"])
            )

    def _uploaded(self, state: _State, _m: Message, record: dict[str, Any], _t: str) -> None:
        if record.get("page_count") is not None:
            state.page_counts[record["media_id"]] = int(record["page_count"])

    def _text(self, state: _State, message: Message, record: dict[str, Any], _t: str) -> None:
        page = record["item"].get("page_number")
        if page is None:
            return
        pages = state.pages.setdefault(record["media_id"], {})
        at = _create_time(message)
        pages[int(page)] = min(at, pages.get(int(page), at))

    # reading the state

    def observations(self) -> Observations:
        """The run so far, joined: every frame of the run with its result or skip."""
        with self._lock:
            state = self._state
            frames = [
                FrameOutcome(
                    camera=frame.camera,
                    captured_ms=frame.captured_ms,
                    detected_ms=state.detected.get(key),
                    skipped=state.skipped.get(frame.event_id),
                    published_ms=frame.published_ms,
                    queue_ms=state.queue_ms.get(frame.event_id),
                    stage_ms=state.stage_ms.get(frame.event_id),
                    inference_ms=state.inference.get(key),
                )
                for key, frame in state.frames.items()
            ]
            return Observations(
                frames=sorted(frames, key=lambda f: (f.camera, f.captured_ms)),
                sources={camera: counters for camera, (_, counters) in state.sources.items()},
                live=sorted(state.live.values(), key=lambda c: (c.camera, c.worker, c.stage)),
                completions=dict(state.completions),
                page_counts=dict(state.page_counts),
                pages={media_id: dict(pages) for media_id, pages in state.pages.items()},
                detections=dict(state.detections),
                missing_topics=list(self.missing_topics),
                undecodable=state.undecodable,
                notes=[note] if (note := self.broker_trouble.note()) else [],
            )

    def analysed_cameras(self) -> set[str]:
        """Cameras with at least one analysed frame of this run (the live path is warm)."""
        with self._lock:
            state = self._state
            return {frame.camera for key, frame in state.frames.items() if key in state.detected}

    def outstanding(self, media_ids: set[str]) -> tuple[int, int, int]:
        """(uploaded items without completion, frames without result or skip, cameras
        without a final status): what the drain waits for."""
        with self._lock:
            state = self._state
            items = sum(1 for media_id in media_ids if media_id not in state.completions)
            frames = sum(
                1
                for key, frame in state.frames.items()
                if key not in state.detected and frame.event_id not in state.skipped
            )
            final = {"STOPPED", "FAILED"}
            cameras = sum(
                1
                for name in self._cameras.values()
                if name not in state.sources or state.sources[name][1].state not in final
            )
            return items, frames, cameras

    @property
    def events(self) -> int:
        with self._lock:
            return self._state.events


def _create_time(message: Message) -> int:
    """The message's timestamp: the producer's create time on the platform's topics."""
    _kind, at = message.timestamp()
    return int(at)
