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
- `Erasure`: MediaDeleted. The media document becomes a tombstone and everything derived is
  deleted; the projection drops later writes for a tombstoned media item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from projections.runtime import ProjectedEvent
from projections.stages import PROJECTED_EVENTS, RESULT_STAGES

MEDIA_ITEMS = "media_items"
ANALYSIS_RESULTS = "analysis_results"
DOCUMENTS = "documents"
COLLECTION_BASES = (MEDIA_ITEMS, ANALYSIS_RESULTS, DOCUMENTS)

# Set on every write at apply time; checksums leave it out so rebuilds compare equal.
PROJECTION_TIME_FIELDS = ("projected_at",)

STATUS_PENDING = "pending"  # results arrived, the upload not (yet)
STATUS_STREAM = "stream"  # a camera stream: frames and results, never an upload
STATUS_UPLOADED = "uploaded"
STATUS_DELETED = "deleted"


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
    def guard_field(self) -> str:
        return f"log_positions.{field_key(self.topic)}:{self.partition}"

    def filter(self) -> dict[str, Any]:
        # `$not: {$gte}` also matches a document that has no position for the partition yet.
        return {"_id": self.document_id, self.guard_field: {"$not": {"$gte": self.offset}}}

    def guarded_update(self) -> dict[str, dict[str, Any]]:
        update = {operator: dict(values) for operator, values in self.update.items()}
        update.setdefault("$set", {})[self.guard_field] = self.offset
        return update


@dataclass(frozen=True)
class Erasure:
    media_id: str
    tombstone: dict[str, Any]


@dataclass
class EventWrites:
    media_id: str | None
    upserts: list[Upsert] = field(default_factory=list)
    guarded: list[GuardedUpdate] = field(default_factory=list)
    erasure: Erasure | None = None


def collection_name(base: str, generation: str) -> str:
    return f"{base}_{generation}"


def field_key(text: str) -> str:
    """`text` made safe as one MongoDB field name: percent-encodes `%`, `.` and `$` (a
    bijection, so two model versions never share a key)."""
    return text.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def item_label(item: dict[str, Any] | None) -> str:
    """Key of an item inside a media document: "page-3", "image", or "frame". Frames share
    one key (latest wins) so a camera stream's document stays bounded."""
    if item is None:
        return "media"
    if item.get("page_number") is not None:
        return f"page-{int(item['page_number'])}"
    if item.get("frame_index") is not None:
        return "frame"
    return "image"


def split_versioned(text: str) -> tuple[str, str | None]:
    """ "processors.outputs/0.1.0" -> ("processors.outputs", "0.1.0")."""
    name, separator, version = text.rpartition("/")
    if not separator or not name:
        return text, None
    return name, version


def writes_for_event(event: ProjectedEvent) -> EventWrites:
    """The writes `event` causes; raises `UnmappableEventError` for an event it cannot map."""
    record = event.record
    mapper = _MAPPERS.get(event.event_type)
    if mapper is None:
        raise UnmappableEventError(f"the MongoDB projection does not map {event.event_type}")
    try:
        return mapper(event, record)
    except (KeyError, TypeError, AttributeError) as error:
        raise UnmappableEventError(
            f"{event.event_type} {event.event_id} lacks or mistypes a field: {error!r}"
        ) from error


# ---------------------------------------------------------------- helpers


def _envelope(record: dict[str, Any]) -> dict[str, Any]:
    envelope: dict[str, Any] = record["envelope"]
    return envelope


def _occurred_at(record: dict[str, Any]) -> datetime:
    occurred = _envelope(record)["occurred_at"]
    if not isinstance(occurred, datetime):
        raise UnmappableEventError(f"envelope.occurred_at is {occurred!r}, not a datetime")
    return occurred


def _camera_id(record: dict[str, Any]) -> str | None:
    item = record.get("item")
    camera = record.get("camera_id") or (item.get("camera_id") if item else None)
    return None if camera is None else str(camera)


def _media_defaults(media_id: str, record: dict[str, Any]) -> dict[str, Any]:
    envelope = _envelope(record)
    return {
        "media_id": media_id,
        "status": STATUS_PENDING if _camera_id(record) is None else STATUS_STREAM,
        "tenant_id": envelope["tenant_id"],
        "owner_id": envelope["owner_id"],
    }


def _model_ref(model: dict[str, Any]) -> dict[str, Any]:
    return {"name": model["name"], "version": model["version"]}


def _compact_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {
        "page_number": item["page_number"],
        "frame_index": item["frame_index"],
        "frame_timestamp_ms": item["frame_timestamp_ms"],
        "camera_id": item["camera_id"],
        "image": item["image"],
    }


def _result_models(event_type: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    if event_type in ("ObjectsDetected", "EmbeddingComputed"):
        return [_model_ref(record["model"])]
    if event_type == "CodesDecoded":
        models = [_model_ref(m) for m in record["models"]]
        if models:
            return models
        # Version 1 events name their decoders only as strings.
        decoders = [split_versioned(d) for d in record["decoders"]]
        return [{"name": name, "version": version} for name, version in decoders]
    if event_type == "TrackUpdated":
        name, version = split_versioned(record["tracker"])
        return [{"name": name, "version": version}]
    if event_type == "OutputGenerated":
        name, version = split_versioned(record["generator"])
        return [{"name": name, "version": version}]
    return [_model_ref(m) for m in record.get("models", [])]


def _box(box: dict[str, Any]) -> dict[str, float]:
    return {key: float(box[key]) for key in ("x_min", "y_min", "x_max", "y_max")}


def _compact_result(event_type: str, record: dict[str, Any]) -> dict[str, Any]:
    """The part of a result the API lists and searches; geometry below blocks is left to
    PostgreSQL and the event log."""
    if event_type == "TextRecognized":
        return {
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
    if event_type == "ObjectsDetected":
        return {
            "detections": [
                {
                    "class_id": d["class_id"],
                    "class_name": d["class_name"],
                    "confidence": d["confidence"],
                    "box": _box(d["box"]),
                    "track_id": d["track_id"],
                    "distance_m": d["distance_m"],
                }
                for d in record["detections"]
            ],
            "class_names": sorted({d["class_name"] for d in record["detections"]}),
            "image_width": record["image_width"],
            "image_height": record["image_height"],
            "score_threshold": record["score_threshold"],
        }
    if event_type == "CodesDecoded":
        return {
            "codes": [
                {"symbology": c["symbology"], "text": c["text"], "decoder": c["decoder"]}
                for c in record["codes"]
            ],
            "decoders": list(record["decoders"]),
        }
    if event_type == "TrackUpdated":
        return {
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
    if event_type == "MediaRedacted":
        region_counts: dict[str, int] = {}
        for region in record["regions"]:
            region_counts[region["kind"]] = region_counts.get(region["kind"], 0) + 1
        return {
            "redacted_image": record["redacted_image"],
            "redacted_text": record["redacted_text"],
            "method": record["method"],
            "region_counts": region_counts,
            "pii_counts": dict(record["pii_counts"]),
        }
    if event_type == "SceneDescribed":
        return {
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
    if event_type == "OutputGenerated":
        return {
            "kind": record["kind"],
            "output": record["output"],
            "source_event_ids": list(record["source_event_ids"]),
            "generator": record["generator"],
        }
    if event_type == "ProcessingFailed":
        return {
            "processor": record["processor"],
            "processor_version": record["processor_version"],
            "failed_stage": record["stage"],
            "error_type": record["error_type"],
            "error_message": record["error_message"],
            "retryable": record["retryable"],
            "attempts": record["attempts"],
            "failed_event_type": record["failed_event_type"],
        }
    raise UnmappableEventError(f"{event_type} is not an analysis result")


def _analysis_result(
    event: ProjectedEvent, record: dict[str, Any], media_id: str, stage: str
) -> Upsert:
    envelope = _envelope(record)
    if event.event_type == "ProcessingFailed":
        models = [{"name": record["processor"], "version": record["processor_version"]}]
    else:
        models = _result_models(event.event_type, record)
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
        "item": _compact_item(record.get("item")),
        "result": _compact_result(event.event_type, record),
        "causation_id": envelope["causation_id"],
        "producer": envelope["producer"],
        "occurred_at": _occurred_at(record),
    }
    return Upsert(ANALYSIS_RESULTS, event.event_id, {"$set": document})


def _touch_media(media_id: str, record: dict[str, Any], stage: str | None) -> dict[str, Any]:
    """The order-independent part every event of a media item writes to its document."""
    update: dict[str, Any] = {
        "$setOnInsert": _media_defaults(media_id, record),
        "$max": {"last_event_at": _occurred_at(record)},
    }
    if stage is not None:
        update["$max"][f"progress.{field_key(stage)}.last_at"] = _occurred_at(record)
    return update


def _guarded(event: ProjectedEvent, media_id: str, update: dict[str, Any]) -> GuardedUpdate:
    return GuardedUpdate(MEDIA_ITEMS, media_id, event.topic, event.partition, event.offset, update)


def _done(event: ProjectedEvent, media_id: str, stage: str) -> GuardedUpdate:
    return _guarded(event, media_id, {"$inc": {f"progress.{field_key(stage)}.done": 1}})


# ---------------------------------------------------------------- one mapper per event


def _media_uploaded(event: ProjectedEvent, record: dict[str, Any]) -> EventWrites:
    media_id = record["media_id"]
    envelope = _envelope(record)
    uploaded_at = _occurred_at(record)
    document = {
        "media_id": media_id,
        "status": STATUS_UPLOADED,
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
    update = {"$set": document, "$max": {"last_event_at": uploaded_at}}
    return EventWrites(media_id, upserts=[Upsert(MEDIA_ITEMS, media_id, update)])


def _media_deleted(event: ProjectedEvent, record: dict[str, Any]) -> EventWrites:
    media_id = record["media_id"]
    envelope = _envelope(record)
    tombstone = {
        "_id": media_id,
        "media_id": media_id,
        "status": STATUS_DELETED,
        "tenant_id": envelope["tenant_id"],
        "owner_id": envelope["owner_id"],
        "deleted_at": _occurred_at(record),
        "deletion_reason": record["reason"],
        "requested_by": record["requested_by"],
        "deletion_event_id": event.event_id,
    }
    return EventWrites(media_id, erasure=Erasure(media_id, tombstone))


def _page_rendered(event: ProjectedEvent, record: dict[str, Any]) -> EventWrites:
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
    update = _touch_media(media_id, record, stage)
    update["$set"] = {
        f"pages.{int(record['page_number'])}": page,
        "rendered_page_count": record["page_count"],
    }
    return EventWrites(
        media_id,
        upserts=[Upsert(MEDIA_ITEMS, media_id, update)],
        guarded=[_done(event, media_id, stage)],
    )


def _frame_captured(event: ProjectedEvent, record: dict[str, Any]) -> EventWrites:
    media_id = record["media_id"]
    latest = {
        "frame_index": record["frame_index"],
        "timestamp_ms": record["timestamp_ms"],
        "captured_at": record["captured_at"],
        "camera_id": record["camera_id"],
        "width": record["width"],
        "height": record["height"],
        "image": record["image"],
        "event_id": event.event_id,
    }
    update = _touch_media(media_id, record, None)
    update["$max"]["frames.last_captured_at"] = record["captured_at"]
    if record["camera_id"] is not None:
        update["$set"] = {"camera_id": record["camera_id"]}
    # Counting and "latest" follow the log order of the frames partition.
    counted = _guarded(
        event, media_id, {"$inc": {"frames.count": 1}, "$set": {"frames.latest": latest}}
    )
    return EventWrites(media_id, upserts=[Upsert(MEDIA_ITEMS, media_id, update)], guarded=[counted])


def _result(event: ProjectedEvent, record: dict[str, Any]) -> EventWrites:
    media_id = record["media_id"]
    stage = RESULT_STAGES[event.event_type]
    media_update = _touch_media(media_id, record, stage)
    writes = EventWrites(media_id, guarded=[_done(event, media_id, stage)])
    label = item_label(record.get("item"))
    if event.event_type == "MediaRedacted":
        media_update["$set"] = {
            f"redactions.{label}": {
                "redacted_image": record["redacted_image"],
                "redacted_text": record["redacted_text"],
                "method": record["method"],
                "event_id": event.event_id,
            }
        }
    elif event.event_type == "OutputGenerated":
        media_update["$set"] = {
            f"outputs.{field_key(str(record['kind']).lower())}:{label}": {
                "kind": record["kind"],
                "output": record["output"],
                "generator": record["generator"],
                "event_id": event.event_id,
            }
        }
    elif event.event_type == "TextRecognized":
        writes.upserts.append(_document_page(event, record, media_id, label))
    writes.upserts.append(Upsert(MEDIA_ITEMS, media_id, media_update))
    if event.event_type != "EmbeddingComputed":
        writes.upserts.append(_analysis_result(event, record, media_id, stage))
    return writes


def _document_page(
    event: ProjectedEvent, record: dict[str, Any], media_id: str, label: str
) -> Upsert:
    models = _result_models(event.event_type, record)
    primary = models[0] if models else {"name": "unknown", "version": "unknown"}
    version_key = field_key(f"{primary['name']}@{primary['version']}")
    envelope = _envelope(record)
    text = {
        "text": record["full_text"],
        "languages": list(record["languages"]),
        "model_name": primary["name"],
        "model_version": primary["version"],
        "block_count": len(record["blocks"]),
        "event_id": event.event_id,
        "occurred_at": _occurred_at(record),
    }
    page_number = record["item"]["page_number"]
    update: dict[str, dict[str, Any]] = {
        "$setOnInsert": {
            "media_id": media_id,
            "tenant_id": envelope["tenant_id"],
            "owner_id": envelope["owner_id"],
        },
        "$set": {
            f"pages.{label}.versions.{version_key}": text,
            f"pages.{label}.page_number": page_number,
        },
        "$max": {"last_text_at": _occurred_at(record)},
        "$addToSet": {"model_versions": f"{primary['name']}@{primary['version']}"},
    }
    return Upsert(DOCUMENTS, media_id, update)


def _processing_failed(event: ProjectedEvent, record: dict[str, Any]) -> EventWrites:
    media_id = record["media_id"]
    if media_id is None:
        # A rejected input that never became a media item: only the audit log keeps it.
        return EventWrites(None)
    stage = str(record["stage"])
    last_error = {
        "error_type": record["error_type"],
        "error_message": record["error_message"],
        "retryable": record["retryable"],
        "processor": record["processor"],
        "event_id": event.event_id,
        "occurred_at": _occurred_at(record),
    }
    stage_path = f"progress.{field_key(stage)}"
    failed = _guarded(
        event,
        media_id,
        {"$inc": {f"{stage_path}.failed": 1}, "$set": {f"{stage_path}.last_error": last_error}},
    )
    return EventWrites(
        media_id,
        upserts=[
            Upsert(MEDIA_ITEMS, media_id, _touch_media(media_id, record, stage)),
            _analysis_result(event, record, media_id, stage),
        ],
        guarded=[failed],
    )


_Mapper = Callable[[ProjectedEvent, dict[str, Any]], EventWrites]
_MAPPERS: dict[str, _Mapper] = {
    "MediaUploaded": _media_uploaded,
    "MediaDeleted": _media_deleted,
    "PageRendered": _page_rendered,
    "FrameCaptured": _frame_captured,
    "ProcessingFailed": _processing_failed,
    **{event_type: _result for event_type in RESULT_STAGES if event_type != "PageRendered"},
}
