"""The completion processor: follows uploads and work reports, says when each item is done.

A faust worker of its own (`visionlog processors worker completion`): two agents read the
`media` topic (uploads, erasures) and the `processing` topic (work reports); per media item
its state (`processors.completion.tracker.MediaState`) lives in a faust table whose
changelog (`state.completion.items`) is recovered on start. Both topics have the same
partitions and every producer partitions by the media id, so an item's upload, reports and
state meet in one partition.

It publishes `MediaCompleted` once per item and run (deterministic id; it is acknowledged by
the brokers before the state that records it is written, so a crash can repeat it under the
same id but never lose it) and `MediaProgressed` when an item's progress moves, at most
every `processors.progress_interval_s` per item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

import orjson

from processors.completion.tracker import (
    CompletionTracker,
    MediaState,
    RunState,
    completion_record,
    erasure_report,
    progress_record,
)
from processors.faust_gaps import SkippedMessages
from processors.keyed_state import keyed_table
from processors.stage import PROCESSORS_VERSION, Outgoing
from processors.worker import faust_app, inbound
from visionlog import contracts
from visionlog.codec import AvroCodec
from visionlog.envelope import Envelope, deterministic_event_id
from visionlog.errors import PermanentError
from visionlog.registry import HttpSchemaRegistry
from visionlog.schemas import get_catalog
from visionlog.settings import Settings
from visionlog.stream.headers import EVENT_TYPE, event_headers
from visionlog.topics import full_topic_name, topic_by_name, topic_for_event

log = logging.getLogger(__name__)

KIND = "completion"
PRODUCER = f"processors.completion/{PROCESSORS_VERSION}"
_WANTED = frozenset({"MediaUploaded", "MediaDeleted", "EventProcessed"})


class CompletionWorker:
    def __init__(self, settings: Settings, codec: AvroCodec | None = None) -> None:
        self.settings = settings
        self.codec = codec or AvroCodec(HttpSchemaRegistry(settings.registry))
        self.tracker = CompletionTracker()
        self.app = faust_app(KIND, settings)
        self.table = keyed_table(self.app, "items", "state.completion.items", settings)
        self.skipped = SkippedMessages(self.app)
        # Items whose progress moved but was not published yet (throttled).
        self.dirty: dict[str, float] = {}
        self.last_progress: dict[str, float] = {}
        self.completed = 0
        for name in ("media", "processing"):
            topic = self.app.topic(
                full_topic_name(topic_by_name(name), settings.kafka),
                key_type=bytes,
                value_type=bytes,
            )
            self.app.agent(topic, name=f"{KIND}.{name}")(self._agent)
        self.app.timer(interval=settings.processors.progress_interval_s)(self._flush_progress)

    # ------------------------------------------------------------------ state

    def _load(self, media_id: str) -> MediaState:
        raw = self.table.get(media_id.encode())
        if raw is None:
            return MediaState(media_id=media_id)
        return MediaState.from_json(orjson.loads(raw))

    def _save(self, state: MediaState) -> None:
        self.table[state.media_id.encode()] = orjson.dumps(state.to_json())

    # ------------------------------------------------------------------ events

    async def _agent(self, stream: Any) -> None:
        # Acknowledged by hand: a message the consumer skipped is read again after a seek,
        # and the messages passed over meanwhile must not be acknowledged unprocessed.
        manual = stream.noack()
        async for event in manual.events():
            if not await self.skipped.take(event.message):
                continue
            await self._take(event)
            # Only once its state is in the changelog (`apply` waits for it), so a crash
            # never commits an event its state lacks.
            await manual.ack(event)

    async def _take(self, event: Any) -> None:
        message = inbound(event)
        hinted = message.header(EVENT_TYPE)
        if hinted is not None and hinted not in _WANTED:
            return
        try:
            decoded = self.codec.decode(message.value)
        except PermanentError as error:
            # The worker that consumes this topic for work dead-letters it; here it is
            # only skipped.
            log.warning(
                "completion: skipping undecodable %s@%d/%d: %s",
                message.topic,
                message.partition,
                message.offset,
                error,
            )
            return
        if decoded.event_type in _WANTED:
            await self.apply(decoded.event_type, decoded.record)

    async def apply(self, event_type: str, record: dict[str, Any]) -> None:
        media_id = str(record["media_id"])
        if event_type == "MediaDeleted":
            self.table.pop(media_id.encode(), None)
            await self.table.written()
            return
        if event_type == "EventProcessed" and erasure_report(record):
            # Loading would create the erased item's state again.
            return
        state = self._load(media_id)
        if event_type == "MediaUploaded":
            finished = self.tracker.uploaded(state, record)
        else:
            finished = self.tracker.reported(state, record)
        for run in finished:
            await self._publish(self._completed(state, run), wait=True)
            run.completed = True
            self.completed += 1
            log.info(
                "media %s run %r completed: %s (%d/%d images, %d failed)",
                media_id,
                run.run_id,
                run.status(),
                run.items_completed,
                run.items_expected,
                run.items_failed,
            )
        if any(run.progress_dirty and not run.completed for run in state.runs.values()):
            self.dirty[media_id] = time.monotonic()
        self._save(state)
        await self.table.written()
        await self._maybe_progress(media_id)

    # ------------------------------------------------------------------ publishing

    def _envelope(
        self, state: MediaState, event_type: str, *identity: object
    ) -> contracts.Envelope:
        return Envelope(
            event_type=event_type,
            schema_version=get_catalog().event(event_type).version,
            producer=PRODUCER,
            correlation_id=state.media_id,
            tenant_id=state.tenant_id or self.settings.tenant_id,
            owner_id=state.owner_id,
            trace_id=state.trace_id,
            event_id=deterministic_event_id(event_type, state.media_id, *identity),
        ).as_record()

    def _completed(self, state: MediaState, run: RunState) -> Outgoing:
        envelope = self._envelope(state, "MediaCompleted", run.run_id)
        record = completion_record(state, run, envelope)
        return Outgoing("MediaCompleted", dict(record), state.media_id)

    async def _publish(self, outgoing: Outgoing, *, wait: bool) -> None:
        spec = topic_for_event(outgoing.event_type)
        topic = full_topic_name(spec, self.settings.kafka)
        value = self.codec.encode(topic, outgoing.event_type, outgoing.record)
        future: Awaitable[Any] = await self.app.producer.send(
            topic,
            outgoing.key.encode(),
            value,
            partition=None,
            timestamp=None,
            headers=list(
                event_headers(outgoing.event_type, outgoing.record["envelope"].get("trace_id"))
            ),
        )
        if wait:
            await future

    async def _maybe_progress(self, media_id: str) -> None:
        interval = self.settings.processors.progress_interval_s
        if media_id not in self.dirty:
            return
        if time.monotonic() - self.last_progress.get(media_id, 0.0) < interval:
            return
        await self._progress(media_id)

    async def _progress(self, media_id: str) -> None:
        self.dirty.pop(media_id, None)
        self.last_progress[media_id] = time.monotonic()
        state = self._load(media_id)
        changed = False
        for run in state.runs.values():
            if run.completed or not run.progress_dirty:
                continue
            run.progress_dirty = False
            if run.percent == run.progress_percent:
                continue
            run.progress_percent = run.percent
            envelope = self._envelope(
                state,
                "MediaProgressed",
                run.run_id,
                run.items_completed + run.items_failed,
                run.items_expected,
            )
            await self._publish(
                Outgoing("MediaProgressed", dict(progress_record(state, run, envelope)), media_id),
                wait=False,
            )
            changed = True
        if changed:
            self._save(state)
        if len(self.last_progress) > 10_000:
            self.last_progress.clear()

    async def _flush_progress(self) -> None:
        for media_id in list(self.dirty):
            await self._progress(media_id)
