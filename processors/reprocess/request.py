"""Reprocess requests: what to rerun, validated, published as `ReprocessRequested`.

A reprocess is itself an event: `ReprocessRequested` on the control topic records who asked
for what (the audit trail), and the reprocess worker executes it (`processors.reprocess.
execute`). Derived event ids include the model version, so new results land beside the old
ones in every read model; running the same version again gives the same ids, which the
projections deduplicate.

`model_versions` (stage → version) states which version the requester expects: a stage
whose loaded model has another version aborts the job at its first result.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from processors.bindings import WORKER_KINDS, Items, StageBinding
from visionlog.envelope import Envelope
from visionlog.errors import PermanentError
from visionlog.kafka import EventPublisher
from visionlog.schemas import get_catalog
from visionlog.settings import Settings

SOURCE_EVENTS = ("MediaUploaded", "PageRendered", "FrameCaptured")
REPROCESS_PRODUCER = "processors.reprocess/0.2.0"
# Which derived event carries which stage's model stamp.
STAGE_OF_EVENT = {
    "TextRecognized": "ocr",
    "ObjectsDetected": "detection",
    "CodesDecoded": "codes",
    "MediaRedacted": "anonymise",
    "EmbeddingComputed": "image-embedding",
}


class ReprocessError(PermanentError):
    """The reprocess request cannot be executed as asked; the message says why."""


def reprocessable_stages() -> dict[str, StageBinding]:
    """Stages fed by source events, taking every input of their types (camera frames too);
    later stages follow from their new results in the normal workers. Rendering is not
    rerun: pages and frames are sources already."""
    found: dict[str, StageBinding] = {}
    for kind in WORKER_KINDS.values():
        for binding in kind.stages:
            sources = tuple(e for e in binding.consumes if e in SOURCE_EVENTS)
            if binding.name == "render" or not sources:
                continue
            # A stage bound in several kinds (detection: live and vision) takes, when
            # reprocessed, every source any of them takes.
            known = found.get(binding.name)
            merged = sources if known is None else (*known.consumes, *sources)
            found[binding.name] = replace(
                binding, consumes=tuple(dict.fromkeys(merged)), items=Items.ALL
            )
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
