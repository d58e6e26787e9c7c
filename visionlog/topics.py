"""The topic catalogue: every topic, what it carries, how it is keyed and how long it is kept.

Every event is keyed by the media item (or camera stream) it belongs to, so all events of
one item or one camera land on one partition and stay in order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from visionlog.settings import KafkaSettings

DAY_MS = 24 * 60 * 60 * 1000


class Retention(Enum):
    # Facts that cannot be recomputed: kept forever, replayed to reprocess and rebuild.
    SOURCE_OF_TRUTH = "source_of_truth"
    # Results recomputable from the sources: kept long enough to rebuild read models.
    DERIVED = "derived"
    # High-volume intermediate results: kept for a short time.
    TRANSIENT = "transient"
    # Latest value per key only.
    COMPACTED = "compacted"


_RETENTION_CONFIG: dict[Retention, dict[str, str]] = {
    Retention.SOURCE_OF_TRUTH: {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "retention.bytes": "-1",
    },
    Retention.DERIVED: {
        "cleanup.policy": "delete",
        "retention.ms": str(365 * DAY_MS),
        "retention.bytes": "-1",
    },
    Retention.TRANSIENT: {
        "cleanup.policy": "delete",
        "retention.ms": str(30 * DAY_MS),
        "retention.bytes": "-1",
    },
    Retention.COMPACTED: {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": "60000",
        "delete.retention.ms": str(DAY_MS),
    },
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    events: tuple[str, ...]
    partitions: int
    retention: Retention
    key_field: str
    doc: str
    extra_config: Mapping[str, str] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, str]:
        return {**_RETENTION_CONFIG[self.retention], **self.extra_config}


CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(
        "media",
        ("MediaUploaded", "MediaDeleted", "MediaCompleted"),
        6,
        Retention.SOURCE_OF_TRUTH,
        "media_id",
        "Uploads, completions and erasures: the life of every media item.",
    ),
    TopicSpec(
        "media.frames",
        ("FrameCaptured",),
        12,
        Retention.SOURCE_OF_TRUTH,
        "media_id",
        "Frames of videos and cameras; the only record of live camera input.",
    ),
    TopicSpec(
        "media.pages",
        ("PageRendered",),
        6,
        Retention.TRANSIENT,
        "media_id",
        "Rendered document pages; re-renderable from the original.",
    ),
    TopicSpec(
        "ocr.text",
        ("TextRecognized",),
        6,
        Retention.DERIVED,
        "media_id",
        "OCR results per image, page or frame.",
    ),
    TopicSpec(
        "vision.detections",
        ("ObjectsDetected",),
        12,
        Retention.DERIVED,
        "media_id",
        "Object detections per image, page or frame.",
    ),
    TopicSpec(
        "vision.tracks",
        ("TrackUpdated",),
        12,
        Retention.TRANSIENT,
        "media_id",
        "Track states per frame of a video or camera.",
    ),
    TopicSpec(
        "vision.codes",
        ("CodesDecoded",),
        6,
        Retention.DERIVED,
        "media_id",
        "Decoded QR codes and barcodes.",
    ),
    TopicSpec(
        "vision.redactions",
        ("MediaRedacted",),
        6,
        Retention.DERIVED,
        "media_id",
        "Anonymised copies of images and texts.",
    ),
    TopicSpec(
        "vision.scenes",
        ("SceneDescribed",),
        6,
        Retention.DERIVED,
        "media_id",
        "Scene descriptions with distances and spatial relations.",
    ),
    TopicSpec(
        "vision.embeddings",
        ("EmbeddingComputed",),
        6,
        Retention.DERIVED,
        "media_id",
        "Image, object-crop and text embeddings.",
    ),
    TopicSpec(
        "outputs",
        ("OutputGenerated",),
        6,
        Retention.DERIVED,
        "media_id",
        "Generated reports, exports and annotated images.",
    ),
    TopicSpec(
        "control.reprocess",
        ("ReprocessRequested",),
        1,
        Retention.SOURCE_OF_TRUTH,
        "reprocess_id",
        "Reprocess commands, kept as the audit trail of every rerun.",
    ),
    TopicSpec(
        "cameras.status",
        ("CameraStatusReported",),
        3,
        Retention.COMPACTED,
        "camera_id",
        "Latest health report per camera.",
    ),
    TopicSpec(
        "processing",
        ("EventProcessed", "MediaProgressed", "CameraAnalysisReported"),
        # As many partitions as `media`: the completion processor's state is keyed by media
        # id and fed by both topics, so one item's events must share a partition number.
        6,
        Retention.DERIVED,
        "media_id",
        "Work reports of the processors, progress of media items and live analysis health.",
    ),
    TopicSpec(
        "deadletter",
        ("ProcessingFailed",),
        3,
        Retention.SOURCE_OF_TRUTH,
        "media_id",
        "Failed events and rejected inputs with the reason; nothing is lost.",
    ),
    # Changelogs of the processors' per-key state (faust tables): the latest state per key,
    # read back when a worker starts. Each has the partitions of the topic feeding it.
    TopicSpec(
        "state.live.tracks",
        (),
        12,
        Retention.COMPACTED,
        "media_id",
        "Tracker state per camera stream of the live worker.",
    ),
    TopicSpec(
        "state.vision.tracks",
        (),
        12,
        Retention.COMPACTED,
        "media_id",
        "Tracker state per video of the vision worker.",
    ),
    TopicSpec(
        "state.completion.items",
        (),
        6,
        Retention.COMPACTED,
        "media_id",
        "Expected and finished work per media item, of the completion processor.",
    ),
)


class CatalogueError(LookupError):
    pass


def topic_for_event(event_type: str) -> TopicSpec:
    for spec in CATALOGUE:
        if event_type in spec.events:
            return spec
    raise CatalogueError(f"no topic carries event type {event_type!r}")


def topic_by_name(name: str) -> TopicSpec:
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise CatalogueError(f"no topic named {name!r} in the catalogue")


def full_topic_name(spec: TopicSpec, settings: KafkaSettings) -> str:
    return f"{settings.topic_prefix}{spec.name}"


def partitions_for(spec: TopicSpec, settings: KafkaSettings) -> int:
    return max(1, math.ceil(spec.partitions * settings.partition_scale))


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    reconfigured: list[str] = field(default_factory=list)
    repartitioned: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _result(futures: Mapping[Any, Any], timeout: float) -> None:
    for future in futures.values():
        future.result(timeout=timeout)


def apply_catalogue(
    admin: AdminClient,
    settings: KafkaSettings,
    specs: tuple[TopicSpec, ...] = CATALOGUE,
    timeout: float = 30.0,
) -> ApplyReport:
    """Create missing topics, align configs and partition counts; safe to run repeatedly.

    Partitions are only ever added: shrinking a topic would move keys between partitions
    and break per-item ordering, so a larger existing count is reported and kept.
    Each kind of change goes to the brokers as one batched request.
    """
    report = ApplyReport()
    existing = admin.list_topics(timeout=timeout).topics
    wanted = {full_topic_name(spec, settings): spec for spec in specs}
    present = [name for name in wanted if name in existing]

    described = (
        admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in present])
        if present
        else {}
    )
    alterations, growth = [], []
    for resource, future in described.items():
        name = resource.name
        spec = wanted[name]
        current = future.result(timeout=timeout)
        drift = {
            key: value
            for key, value in spec.config.items()
            if key not in current or current[key].value != value
        }
        if drift:
            entries = [
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in drift.items()
            ]
            alterations.append(
                ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
            )
        current_partitions = len(existing[name].partitions)
        wanted_partitions = partitions_for(spec, settings)
        if current_partitions < wanted_partitions:
            growth.append(NewPartitions(name, wanted_partitions))
        elif current_partitions > wanted_partitions:
            report.warnings.append(
                f"{name} has {current_partitions} partitions, catalogue says "
                f"{wanted_partitions}; kept (partitions are never removed)"
            )

    if growth:
        _result(admin.create_partitions(growth), timeout)
        report.repartitioned.extend(p.topic for p in growth)
    if alterations:
        _result(admin.incremental_alter_configs(alterations), timeout)
        report.reconfigured.extend(r.name for r in alterations)
    changed = set(report.repartitioned) | set(report.reconfigured)
    report.unchanged.extend(name for name in present if name not in changed)

    to_create = [
        NewTopic(
            name,
            num_partitions=partitions_for(spec, settings),
            replication_factor=settings.replication_factor,
            config=spec.config,
        )
        for name, spec in wanted.items()
        if name not in existing
    ]
    if to_create:
        _result(admin.create_topics(to_create, operation_timeout=timeout), timeout)
        report.created.extend(t.topic for t in to_create)
    return report
