"""Per-key state of the workers: faust tables whose changelog topics survive restarts.

A table's entry for a key must live in the changelog partition that matches the partition
the key's events arrive on, so that the worker assigned that partition recovers it. Every
producer of the platform partitions keys with Java-compatible murmur2 (faust's aiokafka
producers by default, the confluent-kafka producers by configuration), so the table
computes a key's partition the same way and writes its changelog there directly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import faust
from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]

from visionlog.settings import Settings
from visionlog.topics import full_topic_name, partitions_for, topic_by_name


def key_partition(key: bytes, partitions: int) -> int:
    """The partition every producer of the platform sends `key` to."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


class KeyPartitionedTable(faust.Table):  # type: ignore[type-arg]
    """A faust table that writes each key's changelog to the key's own partition, and can
    wait until its changelog writes are acknowledged by the brokers.

    faust commits an input's offset after flushing its producer, but that flush gives up
    after 0.1 s without progress (`faust.transport.producer.ProducerBuffer.flush_atmost`),
    so an offset could be committed before the state its event wrote reached the
    changelog; a crash then recovered a state that never saw the event, and the event was
    not read again. A worker awaits `written()` before it acknowledges an input."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unconfirmed: set[asyncio.Future[Any]] = set()

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        future = super().send_changelog(*args, **kwargs)
        self.unconfirmed.add(future)
        future.add_done_callback(self.unconfirmed.discard)
        return future

    async def written(self) -> None:
        """Wait until every changelog write made so far is acknowledged by the brokers;
        raises the first failure."""
        if self.unconfirmed:
            await asyncio.gather(*list(self.unconfirmed))

    def partition_for_key(self, key: Any) -> int | None:
        partitions = self.partitions or self.changelog_topic.partitions
        assert partitions is not None, "a keyed table knows its partition count"
        return key_partition(bytes(key), int(partitions))


def keyed_table(app: faust.App, name: str, state_topic: str, settings: Settings) -> Any:
    """A bytes-to-bytes table of `app` with the catalogue topic `state_topic` as changelog."""
    spec = topic_by_name(state_topic)
    partitions = partitions_for(spec, settings.kafka)
    changelog = app.topic(
        full_topic_name(spec, settings.kafka),
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        compacting=True,
        deleting=False,
    )
    table = KeyPartitionedTable(
        app,
        name=name,
        default=None,
        beacon=app.tables.beacon,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        changelog_topic=changelog,
    )
    _quiet_idle_changelog_reports(changelog.get_topic_name())
    return app.tables.add(table)


class _IdleChangelogFilter(logging.Filter):
    """Drops faust's "stream has not started processing" errors about table changelogs.

    faust lists a table's changelog partitions among the worker's active partitions, so
    its livelock check expects a stream to read them; a changelog is written by the table
    and read only while recovering, so the check reports it idle every few seconds once
    the table has written (faust-streaming PR #325, unmerged). Every other topic's report
    stays."""

    def __init__(self) -> None:
        super().__init__()
        self.topics: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if "Stream has not" not in str(record.msg) or not isinstance(record.args, tuple):
            return True
        return not any(getattr(arg, "topic", None) in self.topics for arg in record.args)


_IDLE_CHANGELOG_FILTER = _IdleChangelogFilter()


def _quiet_idle_changelog_reports(topic: str) -> None:
    _IDLE_CHANGELOG_FILTER.topics.add(topic)
    driver_log = logging.getLogger("faust.transport.drivers.aiokafka")
    if _IDLE_CHANGELOG_FILTER not in driver_log.filters:
        driver_log.addFilter(_IDLE_CHANGELOG_FILTER)


class TableState:
    """`processors.stage.KeyedState` on a bytes table, usable from the stage threads.

    A faust table is written on the worker's event loop (the write also goes to its
    changelog). A write from a stage thread is handed to the loop, and kept here until the
    loop applied it, so that the next read of the key (the key's next input, which the
    scheduler runs only after this one) sees it at once."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._pending: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that owns the table (the worker's, once it runs)."""
        self._loop = loop

    def get(self, key: str) -> bytes | None:
        raw = key.encode()
        with self._lock:
            pending = self._pending.get(raw)
        if pending is not None:
            return pending
        value = self.table.get(raw)
        return bytes(value) if value is not None else None

    def put(self, key: str, value: bytes) -> None:
        raw = key.encode()
        loop = self._loop
        if loop is None or _on_loop(loop):
            self.table[raw] = value
            return
        with self._lock:
            self._pending[raw] = value
        loop.call_soon_threadsafe(self._apply, raw, value)

    async def written(self) -> None:
        """Wait until every write so far is in the changelog (see `KeyPartitionedTable`).
        Writes handed over from a stage thread are applied before the handing thread's
        result reaches the loop, so they are among them."""
        await self.table.written()

    def _apply(self, raw: bytes, value: bytes) -> None:
        self.table[raw] = value
        with self._lock:
            if self._pending.get(raw) is value:
                del self._pending[raw]


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
