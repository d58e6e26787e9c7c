"""One camera: its capture and publishing threads, with their counters and state."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from producers.cameras.backoff import Backoff
from producers.cameras.config import CameraConfig, CameraSetConfig
from producers.cameras.encoding import EncodedFrame, FrameSink, encode_frame
from producers.cameras.readers import open_reader
from producers.cameras.slot import CapturedFrame, LatestFrameSlot
from producers.cameras.sources import FrameReader, SourceError, parse_source
from producers.cameras.state import CameraSnapshot, CameraState
from visionlog.envelope import now_millis

# The package's logger, so log lines keep the name they had before the module was split.
log = logging.getLogger(__package__)


class CameraWorker:
    """Capture and publishing threads of one camera, with its counters and state."""

    def __init__(
        self,
        camera: CameraConfig,
        camera_set: CameraSetConfig,
        sink: FrameSink,
        *,
        epoch_monotonic_s: float,
        base_dir: Path | None = None,
        on_state_change: Callable[[CameraConfig, CameraSnapshot], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.camera = camera
        self.source = parse_source(camera.url, base_dir)
        self.slot = LatestFrameSlot()
        self._set = camera_set
        self._sink = sink
        self._epoch = epoch_monotonic_s
        self._on_state_change = on_state_change
        self._backoff = Backoff(camera_set.reconnect_initial_s, camera_set.reconnect_max_s, rng=rng)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state = CameraState.UNKNOWN
        self._captured = self._published = self._reconnects = self._errors = 0
        self._last_error: str | None = None
        self._threads = [
            threading.Thread(target=self._capture_loop, name=f"capture-{camera.name}", daemon=True),
            threading.Thread(target=self._publish_loop, name=f"publish-{camera.name}", daemon=True),
        ]

    def start(self) -> None:
        # CONNECTING is set here, not in the capture thread, so it is always the first
        # state change observers see, before any frame can move the camera on.
        self._set_state(CameraState.CONNECTING)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop both threads; the frame in flight is published, the unsent one discarded."""
        self._stop.set()
        self.slot.close()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "camera %s: thread %s did not stop in time", self.camera.name, thread.name
                )
        if self.state is not CameraState.FAILED:
            self._set_state(CameraState.STOPPED)

    @property
    def state(self) -> CameraState:
        with self._lock:
            return self._state

    def snapshot(self) -> CameraSnapshot:
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> CameraSnapshot:
        return CameraSnapshot(
            state=self._state,
            frames_captured=self._captured,
            frames_published=self._published,
            frames_dropped=self.slot.dropped,
            reconnects=self._reconnects,
            errors=self._errors,
            last_error=self._last_error,
            slot_high_water=self.slot.high_water,
        )

    def _set_state(self, state: CameraState) -> None:
        with self._lock:
            changed, self._state = self._state is not state, state
            # Taken with the change, so a report of it shows this state even when the
            # camera has moved on by the time the report is published.
            snapshot = self._snapshot_locked()
        if changed:
            log.info("camera %s: %s", self.camera.name, state.value)
            if self._on_state_change is not None:
                self._on_state_change(self.camera, snapshot)

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = message

    # capture side

    def _capture_loop(self) -> None:
        while not self._stop.is_set():
            failure = self._capture_once()
            if self._stop.is_set():
                return
            if failure is None and self.source.loops:
                continue  # a file ended: play it again at once
            if not self._wait_before_reconnect(failure or "source ended"):
                return

    def _capture_once(self) -> str | None:
        """Read until the source ends (None) or fails (the error)."""
        try:
            reader = open_reader(self.source, self._set.source_timeout_s)
        except SourceError as exc:
            return str(exc)
        try:
            self._read_until_end(reader)
        except SourceError as exc:
            return str(exc)
        finally:
            reader.close()
        return None

    def _read_until_end(self, reader: FrameReader) -> None:
        streaming = False
        while not self._stop.is_set():
            raw = reader.read()
            if raw is None:
                return
            if not streaming:
                streaming = True
                self._backoff.reset()
                self._set_state(CameraState.STREAMING)
            with self._lock:
                sequence = self._captured
                self._captured += 1
            self.slot.put(
                CapturedFrame(
                    sequence=sequence,
                    captured_at=now_millis(),
                    monotonic_s=time.monotonic(),
                    raw=raw,
                    source_fps=reader.source_fps,
                )
            )

    def _wait_before_reconnect(self, failure: str) -> bool:
        """Record the failure and sleep the backoff; False when the camera gives up."""
        limit = self._set.max_reconnect_attempts
        with self._lock:
            self._last_error = failure
            exhausted = limit is not None and self._reconnects >= limit
            if not exhausted:
                self._reconnects += 1
        if exhausted:
            log.error(
                "camera %s: giving up after %s reconnects: %s", self.camera.name, limit, failure
            )
            self._set_state(CameraState.FAILED)
            self.slot.close()
            return False
        delay = self._backoff.next_delay()
        log.warning("camera %s: %s; reconnecting in %.2fs", self.camera.name, failure, delay)
        self._set_state(CameraState.RECONNECTING)
        return not self._stop.wait(delay)

    # publishing side

    def _publish_loop(self) -> None:
        period = 1.0 / self.camera.target_fps
        next_due = time.monotonic()
        while not self._stop.is_set():
            if self._stop.wait(max(0.0, next_due - time.monotonic())):
                return
            frame = self.slot.take(timeout=min(period, 0.5))
            if frame is None:
                if self.state is CameraState.FAILED:
                    return
                continue  # nothing new yet: publish as soon as a frame arrives
            self._publish(frame)
            # Ticks stay on the grid; after a stall, restart from now instead of bursting.
            next_due = max(next_due + period, time.monotonic() - period / 2)

    def _publish(self, frame: CapturedFrame) -> None:
        try:
            jpeg, width, height = encode_frame(frame.raw, self.camera.jpeg_quality)
        except ValueError as exc:
            self.slot.drop()
            self._record_error(f"frame {frame.sequence}: {exc}")
            log.warning(
                "camera %s: frame %d not published: %s", self.camera.name, frame.sequence, exc
            )
            return
        with self._lock:
            index = self._published
        encoded = EncodedFrame(
            frame_index=index,
            timestamp_ms=round((frame.monotonic_s - self._epoch) * 1000),
            captured_at=frame.captured_at,
            width=width,
            height=height,
            jpeg=jpeg,
            source_fps=frame.source_fps,
        )
        try:
            self._sink(self.camera, encoded)
        except Exception as exc:  # blob store or Kafka: the frame is lost, the camera goes on
            self.slot.drop()
            self._record_error(f"frame {index} not published: {type(exc).__name__}: {exc}")
            log.exception("camera %s: frame %d not published", self.camera.name, index)
            return
        with self._lock:
            self._published += 1
