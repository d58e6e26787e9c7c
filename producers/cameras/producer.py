"""The producer process: every enabled camera of a set, their status reports and flushing."""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from producers.cameras.config import CameraSetConfig
from producers.cameras.identity import camera_media_id, new_run_id
from producers.cameras.records import camera_status_record
from producers.cameras.sink import BlobAndEventSink
from producers.cameras.state import CameraSnapshot
from producers.cameras.worker import CameraWorker
from visionlog.blobstore import BlobStore
from visionlog.codec import AvroCodec
from visionlog.health import Heartbeat, Readiness
from visionlog.kafka import DeliveryError, EventPublisher
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import Settings
from visionlog.topics import full_topic_name, topic_for_event

# The package's logger, so log lines keep the name they had before the module was split.
log = logging.getLogger(__package__)

# A publish rate measured over less time than this is noise.
_MIN_RATE_WINDOW_S = 0.5


class CameraSetProducer:
    """Runs every enabled camera of a set and reports their health."""

    def __init__(
        self,
        camera_set: CameraSetConfig,
        *,
        tenant_id: str,
        publisher: EventPublisher,
        blobs: BlobStore,
        base_dir: Path | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.camera_set = camera_set
        self.run_id = new_run_id()
        self._tenant_id = tenant_id
        self._publisher = publisher
        self._flush_interval_s = flush_interval_s
        # Every state change with the camera's counters at that moment, in order.
        self._state_changes: queue.Queue[tuple[str, CameraSnapshot]] = queue.Queue()
        self._reports = 0
        # camera -> (time, frames published, rate) at its last periodic report
        self._rates: dict[str, tuple[float, int, float]] = {}
        self.delivery_failures = 0
        sink = BlobAndEventSink(blobs, publisher, tenant_id, self.run_id)
        epoch = time.monotonic()
        self.workers = {
            camera.name: CameraWorker(
                camera,
                camera_set,
                sink,
                epoch_monotonic_s=epoch,
                base_dir=base_dir,
                on_state_change=lambda cam, snapshot: self._state_changes.put((cam.name, snapshot)),
            )
            for camera in camera_set.enabled
        }

    @classmethod
    def from_settings(
        cls, camera_set: CameraSetConfig, settings: Settings, base_dir: Path | None = None
    ) -> CameraSetProducer:
        codec = AvroCodec(HttpSchemaRegistry(settings.registry), get_catalog())
        return cls(
            camera_set,
            tenant_id=settings.tenant_id,
            publisher=EventPublisher(settings.kafka, codec),
            blobs=BlobStore.from_settings(settings.minio),
            base_dir=base_dir,
        )

    def media_id(self, camera_name: str) -> str:
        return camera_media_id(self._tenant_id, camera_name)

    def start(self) -> None:
        # Register the schemas first: an unreachable registry fails the start, not each frame.
        for event_type in ("FrameCaptured", "CameraStatusReported"):
            topic = full_topic_name(topic_for_event(event_type), self._publisher.settings)
            self._publisher.codec.schema_id(topic, event_type)
        for worker in self.workers.values():
            worker.start()

    def run(
        self,
        stop: threading.Event,
        *,
        heartbeat: Heartbeat | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        """Start, serve until `stop` is set, then shut down gracefully.

        Ready once every camera worker started; the supervising loop beats `heartbeat`.
        """
        self.start()
        if readiness is not None:
            readiness.mark_ready()
        try:
            self.supervise(stop, heartbeat)
        finally:
            if readiness is not None:
                readiness.mark_not_ready("the cameras are stopping")
            self.shutdown()

    def supervise(self, stop: threading.Event, heartbeat: Heartbeat | None = None) -> None:
        """Report status periodically and on state changes; surface delivery failures."""
        next_status = time.monotonic()
        next_flush = time.monotonic() + self._flush_interval_s
        while not stop.is_set():
            if heartbeat is not None:
                heartbeat.beat()
            now = time.monotonic()
            # Changes first: a periodic report must not overtake the changes before it.
            self._report_changes()
            if now >= next_status:
                self.report_all()
                next_status = now + self.camera_set.status_interval_s
            if now >= next_flush:
                self._flush(timeout=self._flush_interval_s * 5)
                next_flush = now + self._flush_interval_s
            stop.wait(0.05)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop every camera, publish their final status, and wait for every delivery."""
        for worker in self.workers.values():
            worker.stop()
        self._report_changes()
        self.report_all()
        self._flush(timeout=timeout_s, raise_errors=True)

    def report_all(self) -> None:
        for name in self.workers:
            self._report(name, periodic=True)

    def _report_changes(self) -> None:
        while True:
            try:
                name, snapshot = self._state_changes.get_nowait()
            except queue.Empty:
                return
            self._report(name, snapshot)

    def _report(
        self, name: str, snapshot: CameraSnapshot | None = None, *, periodic: bool = False
    ) -> None:
        """Publish a status report: of `snapshot` (a state change) or of the camera now."""
        worker = self.workers[name]
        if snapshot is None:
            snapshot = worker.snapshot()
        record = camera_status_record(
            camera=worker.camera,
            media_id=self.media_id(name),
            tenant_id=self._tenant_id,
            run_id=self.run_id,
            report_number=self._next_report_number(),
            snapshot=snapshot,
            measured_fps=self._measured_fps(name, snapshot.frames_published, periodic),
        )
        self._publisher.publish("CameraStatusReported", record, key=name)

    def _next_report_number(self) -> int:
        self._reports += 1
        return self._reports

    def _measured_fps(self, name: str, published: int, periodic: bool) -> float:
        """Publish rate since the previous periodic report (the reporting interval).

        A state change reported moments after a periodic report repeats the last rate
        rather than dividing by a few milliseconds.
        """
        now = time.monotonic()
        since, published_then, last_rate = self._rates.get(name, (now, published, 0.0))
        elapsed = now - since
        rate = (
            (published - published_then) / elapsed if elapsed >= _MIN_RATE_WINDOW_S else last_rate
        )
        if periodic or name not in self._rates:
            self._rates[name] = (now, published, rate)
        return rate

    def _flush(self, timeout: float, raise_errors: bool = False) -> None:
        try:
            self._publisher.flush(timeout)
        except DeliveryError:
            self.delivery_failures += 1
            log.exception("camera events not acknowledged by Kafka")
            if raise_errors:
                raise
