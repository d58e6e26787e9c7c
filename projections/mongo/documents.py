"""Pure mapping from one event to the MongoDB writes it causes, per collection.

Every write is idempotent and, where the log gives no order (events of one media item travel
on different topics), order-independent:

- `Upsert`: `$set` of values fixed by the event, `$setOnInsert` of defaults that a later
  event may overwrite, `$max` of times. Applying one twice, or in another order, ends in the
  same document.
- `GuardedUpdate`: counters and "latest" values, which only the log order can make
  idempotent. Each carries the event's topic, partition and offset; it applies only when the
  media document has not seen that offset of that partition yet (`log_positions`), so an
  at-least-once redelivery after a crash changes nothing. Guarded updates of one partition
  must be applied in offset order.
- `ConditionalUpdate`: a value that may only move one way (a status up its ladder, a
  completion replaced by a later one, an error kept once). It applies while the document
  still matches its condition; each such move is monotone, so applying them in any order,
  or twice, ends in the same document.
- `Erasure`: MediaDeleted. The media document becomes a tombstone and everything derived is
  deleted; the projection drops later writes for a tombstoned media item.

Each mapper narrows its event once to the contract's record (`visionlog.contracts`); the codec
guarantees that shape for every decoded event, so fields are read directly and mypy checks
them. Only values are checked here (a percent outside 0..100, a completion status this reader
does not know), raising `UnmappableEventError`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.postgres.rows import failed_item_label
from projections.runtime import ProjectedEvent
from projections.stages import COMPLETION_STATUS, PROJECTED_EVENTS, RESULT_STAGES
from visionlog.contracts import (
    BoundingBox,
    CodesDecoded,
    EmbeddingComputed,
    Envelope,
    EventProcessed,
    FrameCaptured,
    ItemRef,
    MediaCompleted,
    MediaDeleted,
    MediaProgressed,
    MediaRedacted,
    MediaUploaded,
    ModelRef,
    ObjectsDetected,
    OutputGenerated,
    PageRendered,
    ProcessingFailed,
    SceneDescribed,
    StageTally,
    TextRecognized,
    TrackUpdated,
    typed_record,
)

MEDIA_ITEMS = "media_items"
ANALYSIS_RESULTS = "analysis_results"
DOCUMENTS = "documents"
COLLECTION_BASES = (MEDIA_ITEMS, ANALYSIS_RESULTS, DOCUMENTS)

# Set on every write at apply time; checksums leave it out so rebuilds compare equal.
PROJECTION_TIME_FIELDS = ("projected_at",)

STATUS_PENDING = "pending"  # results arrived, the upload not (yet)
STATUS_STREAM = "stream"  # a camera stream: frames and results, never an upload
STATUS_UPLOADED = "uploaded"
STATUS_PROCESSING = "processing"  # progress was reported, no completion yet
STATUS_DELETED = "deleted"
# The ladder: pending -> uploaded -> processing -> how it ended (COMPLETION_STATUS).
# Longest failure reason kept in a `last_error`.
ERROR_MESSAGE_LIMIT = 2000


EVENT_TYPES: tuple[str, ...] = PROJECTED_EVENTS


class UnmappableEventError(ValueError):
    """The event cannot be turned into read-model documents."""


@dataclass(frozen=True)
class Upsert:
    collection: str
    document_id: str
    update: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class GuardedUpdate:
    collection: str
    document_id: str
    topic: str
    partition: int
    offset: int
    update: dict[str, dict[str, Any]]

    @property
    def position_key(self) -> str:
        """The key of this update's partition inside the document's `log_positions`."""
        return f"{field_key(self.topic)}:{self.partition}"

    @property
    def guard_field(self) -> str:
        return f"log_positions.{self.position_key}"

    def filter(self) -> dict[str, Any]:
        # `$not: {$gte}` also matches a document that has no position for the partition yet.
        return {"_id": self.document_id, self.guard_field: {"$not": {"$gte": self.offset}}}

    def guarded_update(self) -> dict[str, dict[str, Any]]:
        update = {operator: dict(values) for operator, values in self.update.items()}
        update.setdefault("$set", {})[self.guard_field] = self.offset
        return update


@dataclass(frozen=True)
class ConditionalUpdate:
    """An update of an existing document that applies only while it matches `condition`."""

    collection: str
    document_id: str
    condition: dict[str, Any]
    update: dict[str, dict[str, Any]]

    def filter(self) -> dict[str, Any]:
        return {"_id": self.document_id, **self.condition}


@dataclass(frozen=True)
class Erasure:
    media_id: str
    tombstone: dict[str, Any]


@dataclass
class EventWrites:
    media_id: str | None
    upserts: list[Upsert] = field(default_factory=list)
    guarded: list[GuardedUpdate] = field(default_factory=list)
    conditional: list[ConditionalUpdate] = field(default_factory=list)
    erasure: Erasure | None = None


def collection_name(base: str, generation: str) -> str:
    return f"{base}_{generation}"


def field_key(text: str) -> str:
    """`text` made safe as one MongoDB field name: percent-encodes `%`, `.` and `$` (a
    bijection, so two model versions never share a key)."""
    return text.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def item_label(item: ItemRef | None) -> str:
    """Key of an item inside a media document: "page-3", "image", or "frame". Frames share
    one key (latest wins) so a camera stream's document stays bounded."""
    if item is None:
        return "media"
    if item["page_number"] is not None:
        return f"page-{item['page_number']}"
    if item["frame_index"] is not None:
        return "frame"
    return "image"


def split_versioned(text: str) -> tuple[str, str | None]:
    """ "processors.outputs/0.1.0" -> ("processors.outputs", "0.1.0")."""
    name, separator, version = text.rpartition("/")
    if not separator or not name:
        return text, None
    return name, version


def writes_for_event(event: ProjectedEvent) -> EventWrites:
    """The writes `event` causes; raises `UnmappableEventError` for an event it cannot map
    (and `RecordContractError` for a type outside the catalogue)."""
    mapper = _MAPPERS.get(event.event_type)
    if mapper is None:
        raise UnmappableEventError(f"the MongoDB projection does not map {event.event_type}")
    return mapper(event)


# ---------------------------------------------------------------- helpers


def _media_defaults(media_id: str, envelope: Envelope, camera_id: str | None) -> dict[str, Any]:
    return {
        "media_id": media_id,
        "status": STATUS_PENDING if camera_id is None else STATUS_STREAM,
        "tenant_id": envelope["tenant_id"],
        "owner_id": envelope["owner_id"],
    }


def _item_camera(item: ItemRef | None) -> str | None:
    return None if item is None else item["camera_id"]


def _model_ref(model: ModelRef) -> dict[str, Any]:
    return {"name": model["name"], "version": model["version"]}


def _versioned_ref(text: str) -> dict[str, Any]:
    """A "name/version" string (tracker, generator, decoder) as a model reference."""
    name, version = split_versioned(text)
    return {"name": name, "version": version}


def _compact_item(item: ItemRef | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {
        "page_number": item["page_number"],
        "frame_index": item["frame_index"],
        "frame_timestamp_ms": item["frame_timestamp_ms"],
        "camera_id": item["camera_id"],
        "image": item["image"],
    }


def _box(box: BoundingBox) -> dict[str, float]:
    return {
        "x_min": box["x_min"],
        "y_min": box["y_min"],
        "x_max": box["x_max"],
        "y_max": box["y_max"],
    }


@dataclass(frozen=True)
class _Analysis:
    """What an analysis result stores besides its envelope: the models that produced it and
    the part of the result the API lists and searches (geometry below blocks is left to
    PostgreSQL and the event log)."""

    models: list[dict[str, Any]]
    result: dict[str, Any]


def _analysis_result(
    event: ProjectedEvent,
    envelope: Envelope,
    media_id: str,
    stage: str,
    item: ItemRef | None,
    analysis: _Analysis,
) -> Upsert:
    models = analysis.models
    primary = models[0] if models else {"name": None, "version": None}
    document = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "media_id": media_id,
        "tenant_id": envelope["tenant_id"],
        "owner_id": envelope["owner_id"],
        "stage": stage,
        "model_name": primary["name"],
        "model_version": primary["version"],
        "models": models,
        "item": _compact_item(item),
        "result": analysis.result,
        "causation_id": envelope["causation_id"],
        "producer": envelope["producer"],
        "occurred_at": envelope["occurred_at"],
    }
    return Upsert(ANALYSIS_RESULTS, event.event_id, {"$set": document})


def _touch_media(
    media_id: str, envelope: Envelope, stage: str | None, camera_id: str | None = None
) -> dict[str, Any]:
    """The order-independent part every event of a media item writes to its document."""
    occurred_at = envelope["occurred_at"]
    update: dict[str, Any] = {
        "$setOnInsert": _media_defaults(media_id, envelope, camera_id),
        "$max": {"last_event_at": occurred_at},
    }
    if stage is not None:
        update["$max"][f"progress.{field_key(stage)}.last_at"] = occurred_at
    return update


def _guarded(event: ProjectedEvent, media_id: str, update: dict[str, Any]) -> GuardedUpdate:
    return GuardedUpdate(MEDIA_ITEMS, media_id, event.topic, event.partition, event.offset, update)


def _done(event: ProjectedEvent, media_id: str, stage: str) -> GuardedUpdate:
    return _guarded(event, media_id, {"$inc": {f"progress.{field_key(stage)}.done": 1}})


def _result(
    event: ProjectedEvent,
    envelope: Envelope,
    media_id: str,
    item: ItemRef | None,
    analysis: _Analysis | None,
    *,
    media_set: dict[str, Any] | None = None,
    document: Upsert | None = None,
) -> EventWrites:
    """The writes of a result event: its stage counted done on the media document (plus
    `media_set`), its analysis result (none for embeddings) and its `document` page."""
    stage = RESULT_STAGES[event.event_type]
    media_update = _touch_media(media_id, envelope, stage, _item_camera(item))
    if media_set is not None:
        media_update["$set"] = media_set
    writes = EventWrites(media_id, guarded=[_done(event, media_id, stage)])
    if document is not None:
        writes.upserts.append(document)
    writes.upserts.append(Upsert(MEDIA_ITEMS, media_id, media_update))
    if analysis is not None:
        writes.upserts.append(_analysis_result(event, envelope, media_id, stage, item, analysis))
    return writes


# ---------------------------------------------------------------- one mapper per event


def _media_uploaded(event: ProjectedEvent) -> EventWrites:
    record = typed_record(MediaUploaded, event.event_type, event.record)
    media_id = record["media_id"]
    envelope = record["envelope"]
    uploaded_at = envelope["occurred_at"]
    document: dict[str, Any] = {
        "media_id": media_id,
        "tenant_id": envelope["tenant_id"],
        "owner_id": envelope["owner_id"],
        "media_kind": record["media_kind"],
        "original": record["original"],
        "original_filename": record["original_filename"],
        "source": {"channel": record["source"], "uri": record["source_uri"]},
        "profile": record["profile"],
        "duplicate_of": record["duplicate_of"],
        "labels": dict(record["labels"]),
        "dimensions": {
            "width": record["width"],
            "height": record["height"],
            "page_count": record["page_count"],
            "duration_ms": record["duration_ms"],
            "fps": record["fps"],
        },
        "uploaded_at": uploaded_at,
        "upload_event_id": event.event_id,
    }
    update: dict[str, dict[str, Any]] = {
        "$set": document,
        "$setOnInsert": {"status": STATUS_UPLOADED},
        "$max": {"last_event_at": uploaded_at},
    }
    # The status only moves up: progress or a completion read before the upload stays.
    return EventWrites(
        media_id,
        upserts=[Upsert(MEDIA_ITEMS, media_id, update)],
        conditional=[_status_up(media_id, STATUS_UPLOADED, (STATUS_PENDING,))],
    )


def _media_deleted(event: ProjectedEvent) -> EventWrites:
    record = typed_record(MediaDeleted, event.event_type, event.record)
    media_id = record["media_id"]
    envelope = record["envelope"]
    tombstone = {
        "_id": media_id,
        "media_id": media_id,
        "status": STATUS_DELETED,
        "tenant_id": envelope["tenant_id"],
        "owner_id": envelope["owner_id"],
        "deleted_at": envelope["occurred_at"],
        "deletion_reason": record["reason"],
        "requested_by": record["requested_by"],
        "deletion_event_id": event.event_id,
    }
    return EventWrites(media_id, erasure=Erasure(media_id, tombstone))


def _page_rendered(event: ProjectedEvent) -> EventWrites:
    record = typed_record(PageRendered, event.event_type, event.record)
    media_id = record["media_id"]
    stage = RESULT_STAGES[event.event_type]
    page = {
        "page_number": record["page_number"],
        "width": record["width"],
        "height": record["height"],
        "dpi": record["dpi"],
        "image": record["image"],
        "renderer": record["renderer"],
        "repaired": record["repaired"],
        "event_id": event.event_id,
    }
    update = _touch_media(media_id, record["envelope"], stage)
    update["$set"] = {
        f"pages.{record['page_number']}": page,
        "rendered_page_count": record["page_count"],
    }
    return EventWrites(
        media_id,
        upserts=[Upsert(MEDIA_ITEMS, media_id, update)],
        guarded=[_done(event, media_id, stage)],
    )


def _frame_captured(event: ProjectedEvent) -> EventWrites:
    record = typed_record(FrameCaptured, event.event_type, event.record)
    media_id = record["media_id"]
    camera_id = record["camera_id"]
    latest = {
        "frame_index": record["frame_index"],
        "timestamp_ms": record["timestamp_ms"],
        "captured_at": record["captured_at"],
        "camera_id": camera_id,
        "width": record["width"],
        "height": record["height"],
        "image": record["image"],
        "event_id": event.event_id,
    }
    update = _touch_media(media_id, record["envelope"], None, camera_id or None)
    update["$max"]["frames.last_captured_at"] = record["captured_at"]
    if camera_id is not None:
        update["$set"] = {"camera_id": camera_id}
    # Counting and "latest" follow the log order of the frames partition.
    counted = _guarded(
        event, media_id, {"$inc": {"frames.count": 1}, "$set": {"frames.latest": latest}}
    )
    return EventWrites(media_id, upserts=[Upsert(MEDIA_ITEMS, media_id, update)], guarded=[counted])


def _text_recognized(event: ProjectedEvent) -> EventWrites:
    record = typed_record(TextRecognized, event.event_type, event.record)
    models = [_model_ref(m) for m in record["models"]]
    result = {
        "full_text": record["full_text"],
        "languages": list(record["languages"]),
        "blocks": [
            {
                "reading_order": block["reading_order"],
                "text": block["text"],
                "confidence": block["confidence"],
                "language": block["language"],
            }
            for block in record["blocks"]
        ],
        "image_width": record["image_width"],
        "image_height": record["image_height"],
        "orientation_degrees": record["orientation_degrees"],
    }
    return _result(
        event,
        record["envelope"],
        record["media_id"],
        record["item"],
        _Analysis(models, result),
        document=_document_page(event, record, models),
    )


def _document_page(
    event: ProjectedEvent, record: TextRecognized, models: Sequence[dict[str, Any]]
) -> Upsert:
    media_id = record["media_id"]
    label = item_label(record["item"])
    primary = models[0] if models else {"name": "unknown", "version": "unknown"}
    version_key = field_key(f"{primary['name']}@{primary['version']}")
    envelope = record["envelope"]
    text = {
        "text": record["full_text"],
        "languages": list(record["languages"]),
        "model_name": primary["name"],
        "model_version": primary["version"],
        "block_count": len(record["blocks"]),
        "event_id": event.event_id,
        "occurred_at": envelope["occurred_at"],
    }
    update: dict[str, dict[str, Any]] = {
        "$setOnInsert": {
            "media_id": media_id,
            "tenant_id": envelope["tenant_id"],
            "owner_id": envelope["owner_id"],
        },
        "$set": {
            f"pages.{label}.versions.{version_key}": text,
            f"pages.{label}.page_number": record["item"]["page_number"],
        },
        "$max": {"last_text_at": envelope["occurred_at"]},
        "$addToSet": {"model_versions": f"{primary['name']}@{primary['version']}"},
    }
    return Upsert(DOCUMENTS, media_id, update)


def _objects_detected(event: ProjectedEvent) -> EventWrites:
    record = typed_record(ObjectsDetected, event.event_type, event.record)
    detections = record["detections"]
    result = {
        "detections": [
            {
                "class_id": d["class_id"],
                "class_name": d["class_name"],
                "confidence": d["confidence"],
                "box": _box(d["box"]),
                "track_id": d["track_id"],
                "distance_m": d["distance_m"],
            }
            for d in detections
        ],
        "class_names": sorted({d["class_name"] for d in detections}),
        "image_width": record["image_width"],
        "image_height": record["image_height"],
        "score_threshold": record["score_threshold"],
    }
    analysis = _Analysis([_model_ref(record["model"])], result)
    return _result(event, record["envelope"], record["media_id"], record["item"], analysis)


def _codes_decoded(event: ProjectedEvent) -> EventWrites:
    record = typed_record(CodesDecoded, event.event_type, event.record)
    # Version 1 events name their decoders only as strings.
    models = [_model_ref(m) for m in record["models"]] or [
        _versioned_ref(decoder) for decoder in record["decoders"]
    ]
    result = {
        "codes": [
            {"symbology": c["symbology"], "text": c["text"], "decoder": c["decoder"]}
            for c in record["codes"]
        ],
        "decoders": list(record["decoders"]),
    }
    analysis = _Analysis(models, result)
    return _result(event, record["envelope"], record["media_id"], record["item"], analysis)


def _track_updated(event: ProjectedEvent) -> EventWrites:
    record = typed_record(TrackUpdated, event.event_type, event.record)
    result = {
        "tracks": [
            {
                "track_id": t["track_id"],
                "class_name": t["class_name"],
                "state": t["state"],
                "box": _box(t["box"]),
                "confidence": t["confidence"],
                "first_frame_index": t["first_frame_index"],
                "hits": t["hits"],
            }
            for t in record["tracks"]
        ],
        "tracker": record["tracker"],
    }
    analysis = _Analysis([_versioned_ref(record["tracker"])], result)
    return _result(event, record["envelope"], record["media_id"], record["item"], analysis)


def _media_redacted(event: ProjectedEvent) -> EventWrites:
    record = typed_record(MediaRedacted, event.event_type, event.record)
    region_counts: dict[str, int] = {}
    for region in record["regions"]:
        region_counts[region["kind"]] = region_counts.get(region["kind"], 0) + 1
    result = {
        "redacted_image": record["redacted_image"],
        "redacted_text": record["redacted_text"],
        "method": record["method"],
        "region_counts": region_counts,
        "pii_counts": dict(record["pii_counts"]),
    }
    media_set = {
        f"redactions.{item_label(record['item'])}": {
            "redacted_image": record["redacted_image"],
            "redacted_text": record["redacted_text"],
            "method": record["method"],
            "event_id": event.event_id,
        }
    }
    return _result(
        event,
        record["envelope"],
        record["media_id"],
        record["item"],
        _Analysis([_model_ref(m) for m in record["models"]], result),
        media_set=media_set,
    )


def _scene_described(event: ProjectedEvent) -> EventWrites:
    record = typed_record(SceneDescribed, event.event_type, event.record)
    result = {
        "sentences": dict(record["sentences"]),
        "objects": [
            {
                "class_name": o["class_name"],
                "distance_m": o["distance_m"],
                "horizontal_position": o["horizontal_position"],
            }
            for o in record["objects"]
        ],
        "relation_count": len(record["relations"]),
    }
    analysis = _Analysis([_model_ref(m) for m in record["models"]], result)
    return _result(event, record["envelope"], record["media_id"], record["item"], analysis)


def _output_generated(event: ProjectedEvent) -> EventWrites:
    record = typed_record(OutputGenerated, event.event_type, event.record)
    result = {
        "kind": record["kind"],
        "output": record["output"],
        "source_event_ids": list(record["source_event_ids"]),
        "generator": record["generator"],
    }
    label = item_label(record["item"])
    media_set = {
        f"outputs.{field_key(record['kind'].lower())}:{label}": {
            "kind": record["kind"],
            "output": record["output"],
            "generator": record["generator"],
            "event_id": event.event_id,
        }
    }
    return _result(
        event,
        record["envelope"],
        record["media_id"],
        record["item"],
        _Analysis([_versioned_ref(record["generator"])], result),
        media_set=media_set,
    )


def _embedding_computed(event: ProjectedEvent) -> EventWrites:
    """Vectors live in Qdrant: here an embedding only counts as progress."""
    record = typed_record(EmbeddingComputed, event.event_type, event.record)
    return _result(event, record["envelope"], record["media_id"], record["item"], None)


def _processing_failed(event: ProjectedEvent) -> EventWrites:
    record = typed_record(ProcessingFailed, event.event_type, event.record)
    media_id = record["media_id"]
    if media_id is None:
        # A rejected input that never became a media item: only the audit log keeps it.
        return EventWrites(None)
    envelope = record["envelope"]
    stage = record["stage"]
    # What PostgreSQL's `processing_status` row of the failure holds (error, item, time,
    # event), so the item shows the same reason whichever read model it is read from.
    last_error = {
        "error_type": record["error_type"],
        "error_message": record["error_message"][:ERROR_MESSAGE_LIMIT],
        "item_label": failed_item_label(record["input_blob"]),
        "retryable": record["retryable"],
        "attempts": record["attempts"],
        "processor": record["processor"],
        "event_id": event.event_id,
        "occurred_at": envelope["occurred_at"],
    }
    stage_path = f"progress.{field_key(stage)}"
    failed = _guarded(
        event,
        media_id,
        {"$inc": {f"{stage_path}.failed": 1}, "$set": {f"{stage_path}.last_error": last_error}},
    )
    result = {
        "processor": record["processor"],
        "processor_version": record["processor_version"],
        "failed_stage": stage,
        "error_type": record["error_type"],
        "error_message": record["error_message"],
        "retryable": record["retryable"],
        "attempts": record["attempts"],
        "failed_event_type": record["failed_event_type"],
    }
    models = [{"name": record["processor"], "version": record["processor_version"]}]
    return EventWrites(
        media_id,
        upserts=[
            Upsert(MEDIA_ITEMS, media_id, _touch_media(media_id, envelope, stage)),
            _analysis_result(event, envelope, media_id, stage, None, _Analysis(models, result)),
        ],
        guarded=[failed],
    )


# ---------------------------------------------------------------- completion


def _status_up(media_id: str, status: str, below: tuple[str, ...]) -> ConditionalUpdate:
    """Moves the media status to `status` when it is one of the lower rungs `below`."""
    return ConditionalUpdate(
        MEDIA_ITEMS, media_id, {"status": {"$in": list(below)}}, {"$set": {"status": status}}
    )


def _error_once(media_id: str, stage: str, error: dict[str, Any]) -> ConditionalUpdate:
    """`progress.{stage}.last_error` from a report's reason, unless a failure set it (the
    dead letter's, which says more, overwrites it)."""
    path = f"progress.{field_key(stage)}.last_error"
    return ConditionalUpdate(MEDIA_ITEMS, media_id, {path: None}, {"$set": {path: error}})


def _run_prefix(run_id: str | None) -> str:
    """Where a run's progress lives: top level for the item's own processing, `runs.{id}`
    for a reprocess run (whose progress leaves the item's own status alone)."""
    return "" if run_id is None else f"runs.{field_key(run_id)}."


def _tallies(tallies: Sequence[StageTally]) -> list[dict[str, Any]]:
    return [
        {
            "stage": tally["stage"],
            "done": tally["done"],
            "not_applicable": tally["not_applicable"],
            "skipped": tally["skipped"],
            "failed": tally["failed"],
        }
        for tally in tallies
    ]


def _media_progressed(event: ProjectedEvent) -> EventWrites:
    record = typed_record(MediaProgressed, event.event_type, event.record)
    media_id = record["media_id"]
    run_id = record["run_id"]
    prefix = _run_prefix(run_id)
    percent = record["percent"]
    if not 0.0 <= percent <= 100.0:
        raise UnmappableEventError(f"percent is {percent}, expected 0..100")
    update = _touch_media(media_id, record["envelope"], None)
    # Counts and percent only grow, whatever the order: a report read after a later one, or
    # after the completion, lowers nothing.
    update["$max"][f"{prefix}percent"] = percent
    update["$max"][f"{prefix}items_completed"] = record["items_completed"]
    if record["items_expected"] is not None:
        update["$max"][f"{prefix}items_expected"] = record["items_expected"]
    update["$set"] = {f"{prefix}stage_tallies": _tallies(record["stages"])}
    if prefix:
        status = ConditionalUpdate(
            MEDIA_ITEMS,
            media_id,
            {f"{prefix}status": None},
            {"$set": {f"{prefix}status": STATUS_PROCESSING, f"{prefix}run_id": run_id}},
        )
    else:
        status = _status_up(media_id, STATUS_PROCESSING, (STATUS_PENDING, STATUS_UPLOADED))
    return EventWrites(
        media_id, upserts=[Upsert(MEDIA_ITEMS, media_id, update)], conditional=[status]
    )


def _media_completed(event: ProjectedEvent) -> EventWrites:
    record = typed_record(MediaCompleted, event.event_type, event.record)
    media_id = record["media_id"]
    run_id = record["run_id"]
    prefix = _run_prefix(run_id)
    status = COMPLETION_STATUS.get(record["status"])
    if status is None:
        raise UnmappableEventError(
            f"status is {record['status']!r}, expected one of {sorted(COMPLETION_STATUS)}"
        )
    completed_at = record["envelope"]["occurred_at"]
    errors: list[dict[str, Any]] = [
        {
            "stage": error["stage"],
            "item_label": error["item_label"],
            "message": error["message"][:ERROR_MESSAGE_LIMIT],
        }
        for error in record["errors"]
    ]
    completion = {
        "status": status,
        "run_id": run_id,
        "items_expected": record["items_expected"],
        "items_completed": record["items_completed"],
        "items_failed": record["items_failed"],
        "stages": _tallies(record["stages"]),
        "errors": errors,
        "models": [_model_ref(model) for model in record["models"]],
        "started_at": record["started_at"],
        "completed_at": completed_at,
        "duration_ms": record["duration_ms"],
        "event_id": event.event_id,
    }
    update = _touch_media(media_id, record["envelope"], None)
    update["$max"][f"{prefix}percent"] = 100.0
    key = f"{prefix}completion"
    # Final: only a later completion of the same run (by time, then id) replaces it.
    later = {
        "$or": [
            {f"{key}.event_id": {"$exists": False}},
            {f"{key}.completed_at": {"$lt": completed_at}},
            {f"{key}.completed_at": completed_at, f"{key}.event_id": {"$lt": event.event_id}},
        ]
    }
    values: dict[str, Any] = {f"{prefix}status": status, key: completion}
    if prefix:
        values[f"{prefix}run_id"] = run_id
    conditional = [ConditionalUpdate(MEDIA_ITEMS, media_id, later, {"$set": values})]
    # A failed stage's last error says why, even before (or without) its dead letter.
    first_per_stage: dict[str, dict[str, Any]] = {}
    for error in errors:
        first_per_stage.setdefault(error["stage"], error)
    for stage, error in first_per_stage.items():
        reason = {
            "error_type": None,
            "error_message": error["message"],
            "item_label": error["item_label"],
            "event_id": event.event_id,
            "occurred_at": completed_at,
        }
        conditional.append(_error_once(media_id, stage, reason))
    return EventWrites(
        media_id, upserts=[Upsert(MEDIA_ITEMS, media_id, update)], conditional=conditional
    )


def _event_processed(event: ProjectedEvent) -> EventWrites:
    """Work reports arrive for every input, camera frames included: only a failure's reason
    is written here (per page and frame outcomes live in PostgreSQL)."""
    record = typed_record(EventProcessed, event.event_type, event.record)
    media_id = record["media_id"]
    envelope = record["envelope"]
    conditional: list[ConditionalUpdate] = []
    for outcome in record["outcomes"]:
        reason = outcome["reason"]
        if outcome["status"] != "FAILED" or not reason:
            continue
        error = {
            "error_type": None,
            "error_message": reason[:ERROR_MESSAGE_LIMIT],
            "item_label": record["item_label"],
            "event_id": event.event_id,
            "occurred_at": envelope["occurred_at"],
        }
        conditional.append(_error_once(media_id, outcome["stage"], error))
    if not conditional:
        return EventWrites(None)
    touched = _touch_media(media_id, envelope, None, record["camera_id"] or None)
    return EventWrites(
        media_id, upserts=[Upsert(MEDIA_ITEMS, media_id, touched)], conditional=conditional
    )


_MAPPERS: dict[str, Callable[[ProjectedEvent], EventWrites]] = {
    "MediaUploaded": _media_uploaded,
    "MediaDeleted": _media_deleted,
    "PageRendered": _page_rendered,
    "FrameCaptured": _frame_captured,
    "TextRecognized": _text_recognized,
    "ObjectsDetected": _objects_detected,
    "CodesDecoded": _codes_decoded,
    "TrackUpdated": _track_updated,
    "MediaRedacted": _media_redacted,
    "SceneDescribed": _scene_described,
    "OutputGenerated": _output_generated,
    "EmbeddingComputed": _embedding_computed,
    "ProcessingFailed": _processing_failed,
    "MediaProgressed": _media_progressed,
    "MediaCompleted": _media_completed,
    "EventProcessed": _event_processed,
}
