"""How many seconds each read model is behind the log, sampled through the run.

Every second the monitor reads each read model's position on every partition it reads
(`projections.lag`) and the partitions' end offsets. A read model's time lag is the age of
the oldest message it has yet to apply: the time since the first sample at which that
partition's end had passed the read model's position (so the figure's resolution is the
sampling interval). A read model that has applied everything is 0 s behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from confluent_kafka import KafkaException

from projections.generations import FIRST_GENERATION
from projections.lag import Key, ReadModelPositions, read_model_positions
from visionlog.kafka import admin_client
from visionlog.settings import Settings
from visionlog.stores import mongo_client, postgres_connect

log = logging.getLogger(__name__)


class TimeLag:
    """Pure: turns samples of end offsets and positions into seconds behind."""

    def __init__(self) -> None:
        # partition -> [(sample time ms, end offset)], ends only ever grow
        self._ends: dict[Key, list[tuple[int, int]]] = {}

    def add_ends(self, at_ms: int, ends: Mapping[Key, int]) -> None:
        for key, end in ends.items():
            history = self._ends.setdefault(key, [])
            if not history or end > history[-1][1]:
                history.append((at_ms, end))

    def behind_ms(self, at_ms: int, partition: Key, position: int) -> float:
        """Age of the oldest message at or after `position` on the partition."""
        for seen_ms, end in self._ends.get(partition, []):
            if end > position:
                return float(max(0, at_ms - seen_ms))
        return 0.0

    def store_behind_ms(
        self,
        at_ms: int,
        partitions: list[Key],
        positions: Mapping[Key, int],
        starts: Mapping[Key, int],
    ) -> float:
        """The worst partition of a read model; no position means the partition's start."""
        worst = 0.0
        for key in partitions:
            position = positions.get(key, -1)
            if position < 0:  # nothing committed (or stored) yet
                position = starts.get(key, 0)
            worst = max(worst, self.behind_ms(at_ms, key, position))
        return worst


class ReadModelLagMonitor:
    """Samples every read model's time lag on a thread until stopped."""

    def __init__(self, settings: Settings, interval_s: float = 1.0) -> None:
        self._settings = settings
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="read-model-lag", daemon=True)
        self._lag = TimeLag()
        self._lock = threading.Lock()
        # store -> [(sample time ms, seconds behind in ms)]
        self.samples: dict[str, list[tuple[int, float]]] = {}
        self.errors = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def series(self) -> dict[str, list[tuple[int, float]]]:
        with self._lock:
            return {name: list(values) for name, values in self.samples.items()}

    def _run(self) -> None:
        admin = admin_client(self._settings.kafka)
        with (
            postgres_connect(self._settings, autocommit=True) as pg,
            mongo_client(self._settings) as mongo,
        ):
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    # The API process holds embedded Qdrant: its projection's group is read
                    # at the first generation, which a benchmark's fresh stack has.
                    sample = read_model_positions(
                        self._settings,
                        admin,
                        postgres=pg,
                        mongo=mongo,
                        qdrant_generation=FIRST_GENERATION,
                    )
                except Exception as error:  # counted and shown in the report, never fatal
                    if isinstance(error, KafkaException):
                        admin = admin_client(self._settings.kafka)  # a fresh one after a restart
                    self.errors += 1
                    self.last_error = f"{type(error).__name__}: {error}"
                    log.warning("read-model lag sample failed: %s", self.last_error)
                else:
                    self._record(int(time.time() * 1000), sample)
                self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - began)))

    def _record(self, at_ms: int, sample: ReadModelPositions) -> None:
        self._lag.add_ends(at_ms, {key: high for key, (_low, high) in sample.bounds.items()})
        starts = {key: low for key, (low, _high) in sample.bounds.items()}
        with self._lock:
            for name, partitions in sample.partitions.items():
                behind = self._lag.store_behind_ms(
                    at_ms, partitions, sample.positions[name], starts
                )
                self.samples.setdefault(name, []).append((at_ms, behind))
