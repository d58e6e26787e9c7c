"""Reprocess selected media with the models deployed now, keeping earlier results.

A reprocess is itself an event: `ReprocessRequested` on the control topic records who asked
for what (the audit trail), and a reprocess worker executes it. Execution replays the
source-of-truth inputs (uploads, pages, frames) from the start of the log up to the end
seen when the job starts, keeps those that match the selection, and runs the chosen stages
with the currently configured models. Derived event ids include the model version, so the
new results land beside the old ones in every read model; running the same version again
gives the same ids, which the projections deduplicate.

`model_versions` (stage → version) states which version the requester expects: a stage
whose loaded model has another version aborts the job at its first result.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from processors.bindings import WORKER_KINDS, StageBinding
from processors.runtime import InboundMessage, StageRunner
from processors.stage import Stage, StageContext
from visionlog.codec import AvroCodec, MalformedEventError
from visionlog.envelope import Envelope
from visionlog.kafka import EventPublisher, admin_client, consumer_config, partition_bounds
from visionlog.schemas import get_catalog
from visionlog.settings import Settings
from visionlog.topics import full_topic_name, topic_for_event

log = logging.getLogger(__name__)

SOURCE_EVENTS = ("MediaUploaded", "PageRendered", "FrameCaptured")
REPROCESS_PRODUCER = "projections.replay/0.1.0"
# Which derived event carries which stage's model stamp.
STAGE_OF_EVENT = {
    "TextRecognized": "ocr",
    "ObjectsDetected": "detection",
    "CodesDecoded": "codes",
    "MediaRedacted": "anonymise",
    "EmbeddingComputed": "image-embedding",
}


class ReprocessError(RuntimeError):
    """The reprocess request cannot be executed as asked; the message says why."""


def reprocessable_stages() -> dict[str, StageBinding]:
    """Stages fed by source events; later stages follow from their new results."""
    found: dict[str, StageBinding] = {}
    for bindings in WORKER_KINDS.values():
        for binding in bindings:
            if set(binding.consumes) & set(SOURCE_EVENTS):
                found[binding.name] = binding
    return found


@dataclass(frozen=True)
class ReprocessSelection:
    media_ids: list[str] = field(default_factory=list)
    camera_id: str | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    stages: list[str] = field(default_factory=list)
    model_versions: dict[str, str] = field(default_factory=dict)
    # Explicit consent to an empty filter: an empty selection means every media item.
    all_media: bool = False

    def validate(self) -> None:
        if not self.stages:
            raise ReprocessError("choose at least one stage to reprocess")
        known = reprocessable_stages()
        unknown = sorted(set(self.stages) - set(known))
        if unknown:
            raise ReprocessError(
                f"unknown or not reprocessable stages {unknown}; choose from {sorted(known)}"
            )
        stray = sorted(set(self.model_versions) - set(self.stages))
        if stray:
            raise ReprocessError(f"model versions given for stages not selected: {stray}")
        filtered = self.media_ids or self.camera_id or self.from_time or self.to_time
        if not filtered and not self.all_media:
            raise ReprocessError(
                "the selection is empty: give media ids, a camera or a time range, "
                "or ask for all media explicitly"
            )
        if self.from_time and self.to_time and self.from_time > self.to_time:
            raise ReprocessError("from_time is after to_time")


def request_record(
    selection: ReprocessSelection, requested_by: str, tenant_id: str, reprocess_id: str
) -> dict[str, Any]:
    envelope = Envelope(
        event_type="ReprocessRequested",
        schema_version=get_catalog().event("ReprocessRequested").version,
        producer=REPROCESS_PRODUCER,
        correlation_id=reprocess_id,
        tenant_id=tenant_id,
        owner_id=requested_by,
    ).as_record()
    return {
        "envelope": envelope,
        "reprocess_id": reprocess_id,
        "media_ids": list(selection.media_ids),
        "camera_id": selection.camera_id,
        "from_time": selection.from_time,
        "to_time": selection.to_time,
        "stages": list(selection.stages),
        "model_versions": dict(selection.model_versions),
        "requested_by": requested_by,
    }


def selection_from_record(record: Mapping[str, Any]) -> ReprocessSelection:
    filtered = (
        record["media_ids"] or record["camera_id"] or record["from_time"] or record["to_time"]
    )
    return ReprocessSelection(
        media_ids=list(record["media_ids"]),
        camera_id=record["camera_id"],
        from_time=record["from_time"],
        to_time=record["to_time"],
        stages=list(record["stages"]),
        model_versions=dict(record["model_versions"]),
        all_media=not filtered,
    )


def request_reprocess(
    settings: Settings,
    publisher: EventPublisher,
    selection: ReprocessSelection,
    requested_by: str,
) -> str:
    """Validate and publish a ReprocessRequested; returns the reprocess id."""
    selection.validate()
    reprocess_id = str(uuid.uuid4())
    record = request_record(selection, requested_by, settings.tenant_id, reprocess_id)
    publisher.publish("ReprocessRequested", record, key=reprocess_id)
    publisher.flush()
    return reprocess_id


def event_time(record: Mapping[str, Any]) -> datetime:
    captured = record.get("captured_at")
    if isinstance(captured, datetime):
        return captured
    occurred: datetime = record["envelope"]["occurred_at"]
    return occurred


def selected(selection: ReprocessSelection, record: Mapping[str, Any]) -> bool:
    """Whether a source event belongs to the selection (pure)."""
    if selection.media_ids and record.get("media_id") not in selection.media_ids:
        return False
    if selection.camera_id is not None and record.get("camera_id") != selection.camera_id:
        return False
    moment = event_time(record)
    if selection.from_time is not None and moment < selection.from_time:
        return False
    return selection.to_time is None or moment <= selection.to_time


class ModelVersionMismatchError(ReprocessError):
    pass


class _VersionCheckingPublisher(EventPublisher):
    """Refuses results whose model stamp is not the version the requester expects."""

    def __init__(self, inner: EventPublisher, expected: Mapping[str, str]) -> None:
        super().__init__(inner.settings, inner.codec, inner.producer)
        self.expected = dict(expected)

    def publish(self, event_type: str, record: dict[str, Any], key: str | None = None) -> str:
        stage = STAGE_OF_EVENT.get(event_type)
        wanted = self.expected.get(stage or "")
        if wanted is not None:
            models = record.get("models") or [record.get("model") or {}]
            versions = {str(m.get("version")) for m in models if m}
            if wanted not in versions:
                raise ModelVersionMismatchError(
                    f"stage {stage} runs model version(s) {sorted(versions)}, "
                    f"but the request expects {wanted}; deploy that model first"
                )
        return super().publish(event_type, record, key)


@dataclass
class ReprocessReport:
    reprocess_id: str
    scanned: int = 0
    matched: int = 0
    published: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    media_ids: set[str] = field(default_factory=set)


def _stage_pairs(stages: Sequence[str]) -> list[tuple[StageBinding, Stage]]:
    known = reprocessable_stages()
    return [(known[name], known[name].load()) for name in stages]


def execute(
    settings: Settings,
    codec: AvroCodec,
    publisher: EventPublisher,
    context: StageContext,
    request: Mapping[str, Any],
    *,
    progress: Callable[[ReprocessReport], None] | None = None,
) -> ReprocessReport:
    """Run one ReprocessRequested to the end of the source log as it is now."""
    selection = selection_from_record(request)
    selection.validate()
    report = ReprocessReport(str(request["reprocess_id"]))
    started = time.monotonic()
    checked = _VersionCheckingPublisher(publisher, selection.model_versions)
    runner = StageRunner(
        "reprocess", settings, _stage_pairs(selection.stages), codec, checked, context
    )
    topics = {full_topic_name(topic_for_event(name), settings.kafka) for name in SOURCE_EVENTS}
    consumer = Consumer(
        consumer_config(settings.kafka, f"visionlog-reprocess-{report.reprocess_id}")
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions: list[TopicPartition] = []
        targets: dict[tuple[str, int], int] = {}
        keys: list[tuple[str, int]] = []
        for topic in sorted(topics):
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                raise ReprocessError(f"topic {topic} is missing; run `visionlog init`")
            keys.extend((topic, number) for number in sorted(info.partitions))
        for (topic, number), (low, high) in partition_bounds(
            admin_client(settings.kafka), keys
        ).items():
            if high > low:
                partitions.append(TopicPartition(topic, number, OFFSET_BEGINNING))
                targets[(topic, number)] = high
        consumer.assign(partitions)
        positions = {key: -1 for key in targets}
        while any(positions[key] + 1 < high for key, high in targets.items()):
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            key = (message.topic() or "", message.partition() or 0)
            offset = message.offset() or 0
            positions[key] = offset
            if offset >= targets[key]:
                continue
            report.scanned += 1
            try:
                record = codec.decode(message.value()).record
            except MalformedEventError:
                # The live workers already dead-lettered it; nothing to reprocess.
                continue
            if not selected(selection, record):
                continue
            report.matched += 1
            report.media_ids.add(str(record.get("media_id")))
            outcome = runner.handle(
                InboundMessage(key[0], key[1], offset, message.key(), message.value())
            )
            report.published += len(outcome.published)
            report.dead_lettered += len(outcome.dead_lettered)
            if progress is not None:
                progress(report)
    finally:
        consumer.close()
    report.seconds = time.monotonic() - started
    return report
