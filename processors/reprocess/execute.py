"""Executes one ReprocessRequested through the same worker core as the live workers.

Execution replays the source-of-truth inputs (uploads, pages, frames) from the start of the
log up to the end seen when the job starts, keeps those that match the selection, and runs
the chosen stages (detection with its tracking, in frame order) with the models deployed
now. Each source gets a work report (`EventProcessed`, worker `reprocess`, `run_id` = the
reprocess id) before its results; the results of a run carry a trace of their own, so the
reports of the workers that take them from there count toward the same run. When the scan
is done, one closing report per media item lists the sources the run covered, and the
completion processor publishes a `MediaCompleted` for the run once everything downstream
has reported.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from processors.bindings import TRACKING, WorkerKind
from processors.reprocess.request import (
    SOURCE_EVENTS,
    ReprocessError,
    ReprocessSelection,
    reprocessable_stages,
    selected,
    selection_from_record,
)
from processors.runner import Encoded, Handled, Routed, WorkerCore, input_item_label
from processors.stage import PROCESSORS_VERSION, MemoryState, Outgoing, StageContext
from visionlog.codec import AvroCodec
from visionlog.envelope import Envelope, deterministic_event_id
from visionlog.kafka import EventPublisher, admin_client, consumer_config, partition_bounds
from visionlog.schemas import get_catalog
from visionlog.settings import Settings
from visionlog.stream.messages import InboundMessage
from visionlog.topics import full_topic_name, topic_for_event

log = logging.getLogger(__name__)

WORKER = "reprocess"
# Which derived event carries which stage's model stamp.
STAGE_OF_EVENT = {
    "TextRecognized": "ocr",
    "ObjectsDetected": "detection",
    "CodesDecoded": "codes",
    "MediaRedacted": "anonymise",
    "EmbeddingComputed": "image-embedding",
}
_TRACE_NAMESPACE = uuid.UUID("0f4c2b7e-8a51-5d3c-9e26-7b1d4a0c6e95")


class ModelVersionMismatchError(ReprocessError):
    pass


@dataclass
class ReprocessReport:
    reprocess_id: str
    scanned: int = 0
    matched: int = 0
    published: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    media_ids: set[str] = field(default_factory=set)


def run_trace_id(reprocess_id: str, media_id: str) -> str:
    """The trace of one media item's reprocess run: its events are told apart by it."""
    return uuid.uuid5(_TRACE_NAMESPACE, f"{reprocess_id}/{media_id}").hex


def reprocess_kind(stages: list[str]) -> WorkerKind:
    known = reprocessable_stages()
    return WorkerKind(
        WORKER,
        tuple(known[name] for name in stages),
        transforms=(TRACKING,),
        doc="Stages rerun by a reprocess request.",
    )


def check_versions(handled: list[Handled], expected: Mapping[str, str]) -> None:
    """Refuse results whose model stamp is not the version the requester expects."""
    for run in (run for each in handled for run in each.runs):
        for outgoing in run.outputs:
            stage = STAGE_OF_EVENT.get(outgoing.event_type)
            wanted = expected.get(stage or "")
            if wanted is None:
                continue
            models = outgoing.record.get("models") or [outgoing.record.get("model") or {}]
            versions = {str(m.get("version")) for m in models if m}
            if wanted not in versions:
                raise ModelVersionMismatchError(
                    f"stage {stage} runs model version(s) {sorted(versions)}, "
                    f"but the request expects {wanted}; deploy that model first"
                )


def _retrace(routed: Routed, trace_id: str) -> Routed:
    """The source as this run sees it: every event derived from it carries the run's trace."""
    record = {**routed.record, "envelope": {**routed.record["envelope"], "trace_id": trace_id}}
    return Routed(routed.message, routed.event_type, record, routed.live, routed.bindings)


def closing_report(
    core: WorkerCore,
    request: Mapping[str, Any],
    message: InboundMessage,
    media_id: str,
    sources: list[dict[str, Any]],
    stages: list[str],
) -> Encoded:
    """The report that closes a media item's run: per stage, the sources it ran on (each
    gave one report of its own)."""
    reprocess_id = str(request["reprocess_id"])
    trace = run_trace_id(reprocess_id, media_id)
    envelope = Envelope(
        event_type="EventProcessed",
        schema_version=get_catalog().event("EventProcessed").version,
        producer=f"processors.{WORKER}/{PROCESSORS_VERSION}",
        correlation_id=media_id,
        tenant_id=str(request["envelope"]["tenant_id"]),
        owner_id=request["envelope"].get("owner_id"),
        trace_id=trace,
        causation_id=str(request["envelope"]["event_id"]),
        event_id=deterministic_event_id("EventProcessed", reprocess_id, media_id, "closed"),
    ).as_record()
    record = {
        "envelope": envelope,
        "media_id": media_id,
        "worker": WORKER,
        "run_id": reprocess_id,
        "input_event_id": str(request["envelope"]["event_id"]),
        "input_event_type": "ReprocessRequested",
        "input_topic": message.topic,
        "input_partition": message.partition,
        "input_offset": message.offset,
        "item_label": None,
        "camera_id": None,
        "queue_ms": 0.0,
        "outcomes": [
            {
                "stage": stage,
                "status": "DONE",
                "reason": None,
                "attempts": 1,
                "duration_ms": 0.0,
                "outputs": sources,
                "models": [],
            }
            for stage in stages
        ],
    }
    return core.encode(Outgoing("EventProcessed", record, media_id), trace)


def _publish(publisher: EventPublisher, items: list[Encoded]) -> None:
    for item in items:
        publisher.publish_bytes(item.topic, item.key, item.value, item.headers)


def execute(
    settings: Settings,
    codec: AvroCodec,
    publisher: EventPublisher,
    context: StageContext,
    request: Mapping[str, Any],
    *,
    message: InboundMessage | None = None,
    progress: Callable[[ReprocessReport], None] | None = None,
) -> ReprocessReport:
    """Run one ReprocessRequested to the end of the source log as it is now."""
    selection: ReprocessSelection = selection_from_record(request)
    selection.validate()
    reprocess_id = str(request["reprocess_id"])
    report = ReprocessReport(reprocess_id)
    started = time.monotonic()
    # Fresh tracker state per run: a replay tracks each video from its first frame.
    run_context = StageContext(
        settings=context.settings,
        blobs=context.blobs,
        engines_factory=lambda: context.engines,
        state=MemoryState(),
        images=context.images,
    )
    core = WorkerCore(reprocess_kind(selection.stages), settings, codec, run_context)
    control = message or InboundMessage(
        full_topic_name(topic_for_event("ReprocessRequested"), settings.kafka), 0, 0, None, None
    )
    topics = {full_topic_name(topic_for_event(name), settings.kafka) for name in SOURCE_EVENTS}
    consumer = Consumer(consumer_config(settings.kafka, f"visionlog-reprocess-{reprocess_id}"))
    covered: dict[str, list[dict[str, Any]]] = {}
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
            polled = consumer.poll(1.0)
            if polled is None or polled.error() is not None:
                continue
            inbound = InboundMessage.from_kafka(polled)
            positions[inbound.position] = inbound.offset
            if inbound.offset >= targets[inbound.position]:
                continue
            report.scanned += 1
            routed = core.route(inbound)
            if not isinstance(routed, Routed):
                # Not a source of these stages, or undecodable (the live workers already
                # dead-lettered what does not decode).
                continue
            if not selected(selection, routed.record):
                continue
            report.matched += 1
            media_id = routed.media_id
            report.media_ids.add(media_id)
            routed = _retrace(routed, run_trace_id(reprocess_id, media_id))
            handled = core.handle(routed, run_id=reprocess_id)
            check_versions(handled, selection.model_versions)
            for stage in handled:
                # Each stage's report first, acknowledged, then the results it names.
                if stage.report is not None:
                    _publish(publisher, [stage.report])
                    publisher.flush()
                _publish(publisher, stage.outputs)
                report.published += sum(len(run.outputs) for run in stage.runs)
                report.dead_lettered += sum(1 for run in stage.runs if run.failure is not None)
            covered.setdefault(media_id, []).append(
                {
                    "event_id": routed.event_id,
                    "event_type": routed.event_type,
                    "item_label": input_item_label(routed.record, routed.event_type),
                }
            )
            if progress is not None:
                progress(report)
        publisher.flush()
        stages = [binding.name for binding in core.kind.stages]
        for media_id, sources in covered.items():
            closing = closing_report(core, request, control, media_id, sources, stages)
            _publish(publisher, [closing])
        publisher.flush()
    finally:
        consumer.close()
    report.seconds = time.monotonic() - started
    return report
