"""Pure mapping from one decoded event to the PostgreSQL read-model rows it implies.

No I/O here: `event_rows` turns a `ProjectedEvent` into an `EventRows` value (the media
change, result rows per table, processing-status rows, a run's progress or completion, a
page's or frame's stage outcomes, the audit row) and the projection writes it. Values stay
plain Python (dicts and lists for `jsonb` columns, see `JSONB_COLUMNS`).

Each mapper narrows its event once to the contract's record (`visionlog.contracts`), whose
shape the codec guarantees for every decoded event, and reads its fields directly; mypy
checks every field read here. What is left to check is values the contracts cannot rule
out: non-finite numbers, inverted boxes, a confidence outside 0..1, a relation index
without its object, a track id twice in one update, negative counts, a percent outside
0..100. Such an event raises `RowMappingError` with the field that is wrong (it is
dead-lettered); an event type outside the catalogue raises `RecordContractError`.

Read-model rows never copy payload bytes or free text that the read model does not need:
failures keep the error, not the failed message; redactions keep counts and regions, not
what was redacted; the audit log keeps who, what and when, not the payload.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from processors.stage import item_label
from projections.runtime import ProjectedEvent
from projections.stages import COMPLETION_STATUS, PROJECTED_EVENTS, RESULT_STAGES
from visionlog.contracts import (
    BlobRef,
    BoundingBox,
    CodesDecoded,
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
    Point,
    ProcessingFailed,
    SceneDescribed,
    StageTally,
    TextRecognized,
    TrackUpdated,
    typed_record,
)

Row = dict[str, Any]

# Item label of outputs about a whole media item (an OutputGenerated without an item).
WHOLE_MEDIA_LABEL = "media"
# Model version recorded for failures: ProcessingFailed does not name the model.
UNKNOWN_MODEL_VERSION = ""
# Longest error message kept; tracebacks and failed payloads are never kept.
ERROR_MESSAGE_LIMIT = 2000


# Vectors live in Qdrant; embeddings only count as progress in MongoDB.
CONSUMED_EVENT_TYPES: tuple[str, ...] = tuple(
    name for name in PROJECTED_EVENTS if name != "EmbeddingComputed"
)

# Tables whose rows belong to one media item and go when it is erased.
MEDIA_RESULT_TABLES: tuple[str, ...] = (
    "pages",
    "frames",
    "text_results",
    "detections",
    "codes",
    "tracks",
    "redactions",
    "scenes",
    "outputs",
    "processing_status",
    "processing_runs",
)

JSONB_COLUMNS: frozenset[str] = frozenset(
    {
        "labels",
        "models",
        "blocks",
        "polygon",
        "regions",
        "region_counts",
        "pii_counts",
        "sentences",
        "objects",
        "relations",
        "stages",
        "errors",
    }
)

MediaChangeKind = Literal["upload", "status", "delete"]
RunChangeKind = Literal["progress", "completion"]

# Run id of an item's own processing after upload (the key cannot be NULL).
OWN_RUN = ""
# StageOutcome statuses that say something about a page or frame, and how telling each is:
# a failure outranks a skip, a skip outranks done. NOT_APPLICABLE (and UNKNOWN, a symbol
# this reader does not know) is left out: it is the normal state of most stages.
OUTCOME_RANK: dict[str, int] = {"done": 1, "skipped": 2, "failed": 3}

_PAGE_KEY = re.compile(r"/pages/(?P<page>\d+)\.[a-z0-9]+$")
_FRAME_KEY = re.compile(r"/frames/(?:[^/]+/)?(?P<frame>\d+)\.[a-z0-9]+$")


class RowMappingError(ValueError):
    """The event cannot be represented in the read model; the message names the field."""


@dataclass(frozen=True)
class MediaChange:
    """A change to the `media` row: a full upload, a status change, or a deletion."""

    kind: MediaChangeKind
    values: Row


@dataclass(frozen=True)
class RunChange:
    """Progress or completion of one processing run (`processing_runs`)."""

    kind: RunChangeKind
    values: Row


@dataclass(frozen=True)
class ItemOutcome:
    """What the stages of one work report did with a page or frame: merged into its row."""

    table: Literal["pages", "frames"]
    values: Row


@dataclass(frozen=True)
class EventRows:
    event_id: str
    event_type: str
    media_id: str | None
    # None for processing reports (projections.stages.REPORT_EVENTS): not audited.
    audit: Row | None
    media: MediaChange | None = None
    # Result rows per table, in insertion order.
    results: dict[str, list[Row]] = field(default_factory=dict)
    processing: list[Row] = field(default_factory=list)
    # MediaDeleted: remove every result row of `media_id` (the audit trail stays).
    erase: bool = False
    run: RunChange | None = None
    outcome: ItemOutcome | None = None


# ---------------------------------------------------------------- value checks


def _finite(value: float, path: str) -> float:
    """`value` unless it is NaN or infinite, which no read-model column can hold."""
    if not math.isfinite(value):
        raise RowMappingError(f"{path} is {value!r}, expected a finite number")
    return value


def _optional_finite(value: float | None, path: str) -> float | None:
    return None if value is None else _finite(value, path)


def _unit_interval(value: float, path: str) -> float:
    """A finite `value` between 0 and 1 (a detector's confidence)."""
    if not 0.0 <= _finite(value, path) <= 1.0:
        raise RowMappingError(f"{path} is {value}, expected 0..1")
    return value


def _count(value: int, path: str) -> int:
    if value < 0:
        raise RowMappingError(f"{path} is {value}, expected a count")
    return value


# ---------------------------------------------------------------- shared pieces


def split_tool(tool: str) -> tuple[str, str]:
    """`name/version` (a tracker or generator string) as (name, version); '' when unversioned."""
    name, _, version = tool.partition("/")
    return name, version


def _primary_model(models: Sequence[ModelRef], fallback: str) -> tuple[str, str]:
    """The first model of a `models` list; `fallback` ("name/version") when there is none."""
    if not models:
        return split_tool(fallback)
    return models[0]["name"], models[0]["version"]


def _model_json(model: ModelRef) -> Row:
    return {
        "name": model["name"],
        "version": model["version"],
        "source": model["source"],
        "licence": model["licence"],
        "runtime": model["runtime"],
    }


def _box(box: BoundingBox, path: str) -> Row:
    values = {
        "x_min": _finite(box["x_min"], f"{path}.x_min"),
        "y_min": _finite(box["y_min"], f"{path}.y_min"),
        "x_max": _finite(box["x_max"], f"{path}.x_max"),
        "y_max": _finite(box["y_max"], f"{path}.y_max"),
    }
    if values["x_min"] > values["x_max"] or values["y_min"] > values["y_max"]:
        raise RowMappingError(f"{path} is inverted: {values}")
    return values


def _polygon(points: Sequence[Point], path: str) -> list[Row]:
    return [
        {"x": _finite(point["x"], f"{path}[{i}].x"), "y": _finite(point["y"], f"{path}[{i}].y")}
        for i, point in enumerate(points)
    ]


def _polygon_box(polygon: Sequence[Row], path: str) -> Row:
    if not polygon:
        raise RowMappingError(f"{path} has no points")
    xs = [point["x"] for point in polygon]
    ys = [point["y"] for point in polygon]
    return {"x_min": min(xs), "y_min": min(ys), "x_max": max(xs), "y_max": max(ys)}


def _blob(blob: BlobRef, prefix: str) -> Row:
    return {
        f"{prefix}_bucket": blob["bucket"],
        f"{prefix}_key": blob["key"],
        f"{prefix}_sha256": blob["sha256"],
        f"{prefix}_size_bytes": blob["size_bytes"],
        f"{prefix}_content_type": blob["content_type"],
    }


def _envelope(event: ProjectedEvent, envelope: Envelope) -> Envelope:
    """The event's envelope, once it is known to name the event's own type."""
    if envelope["event_type"] != event.event_type:
        raise RowMappingError(
            f"envelope.event_type is {envelope['event_type']!r} but the event is "
            f"{event.event_type!r}"
        )
    return envelope


def _audit(event: ProjectedEvent, env: Envelope, media_id: str | None) -> Row:
    return {
        "event_id": env["event_id"],
        "event_type": event.event_type,
        "media_id": media_id,
        "tenant_id": env["tenant_id"],
        "owner_id": env["owner_id"],
        "producer": env["producer"],
        "correlation_id": env["correlation_id"],
        "causation_id": env["causation_id"],
        "occurred_at": env["occurred_at"],
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
    }


def _item(item: ItemRef) -> Row:
    """Label, page, frame and camera of the event's item ("original" for whole images)."""
    return {
        "item_label": item_label(item),
        "page_number": item["page_number"],
        "frame_index": item["frame_index"],
        "camera_id": item["camera_id"],
    }


def _owned(env: Envelope, media_id: str) -> Row:
    return {
        "event_id": env["event_id"],
        "tenant_id": env["tenant_id"],
        "owner_id": env["owner_id"],
        "media_id": media_id,
    }


def _status_change(
    env: Envelope, media_id: str, status: str, camera_id: str | None = None
) -> MediaChange:
    return MediaChange(
        "status",
        {
            "media_id": media_id,
            "tenant_id": env["tenant_id"],
            "owner_id": env["owner_id"],
            "status": status,
            "status_at": env["occurred_at"],
            "camera_id": camera_id,
        },
    )


def _done(env: Envelope, media_id: str, stage: str, label: str, model: tuple[str, str]) -> Row:
    return {
        "media_id": media_id,
        "stage": stage,
        "item_label": label,
        "model_version": model[1],
        "tenant_id": env["tenant_id"],
        "owner_id": env["owner_id"],
        "model_name": model[0],
        "status": "done",
        "error_type": None,
        "error": None,
        "retryable": None,
        "attempts": None,
        "event_id": env["event_id"],
        "event_at": env["occurred_at"],
    }


def _result(
    event: ProjectedEvent,
    env: Envelope,
    media_id: str,
    table: str,
    rows: list[Row],
    label: str,
    model: tuple[str, str],
    camera_id: str | None = None,
) -> EventRows:
    """Rows of a result event: its table, its stage done, the media processing."""
    return EventRows(
        event_id=env["event_id"],
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=_status_change(env, media_id, "processing", camera_id),
        results={table: rows},
        processing=[_done(env, media_id, RESULT_STAGES[event.event_type], label, model)],
    )


# ---------------------------------------------------------------- per event type


def _media_uploaded(event: ProjectedEvent) -> EventRows:
    record = typed_record(MediaUploaded, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    labels = dict(record["labels"])
    values: Row = {
        "media_id": media_id,
        "tenant_id": env["tenant_id"],
        "owner_id": env["owner_id"],
        "event_id": env["event_id"],
        "status": "uploaded",
        "status_at": env["occurred_at"],
        "kind": record["media_kind"],
        "filename": record["original_filename"],
        "source": record["source"],
        "source_uri": record["source_uri"],
        "profile": record["profile"],
        "duplicate_of": record["duplicate_of"],
        **_blob(record["original"], "original"),
        "width": record["width"],
        "height": record["height"],
        "page_count": record["page_count"],
        "duration_ms": record["duration_ms"],
        "fps": _optional_finite(record["fps"], "event.fps"),
        "labels": labels,
        "camera_id": labels.get("camera_id"),
        "uploaded_at": env["occurred_at"],
    }
    return EventRows(
        event_id=env["event_id"],
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=MediaChange("upload", values),
    )


def _media_deleted(event: ProjectedEvent) -> EventRows:
    record = typed_record(MediaDeleted, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    values: Row = {
        "media_id": media_id,
        "tenant_id": env["tenant_id"],
        "owner_id": env["owner_id"],
        "status": "deleted",
        "status_at": env["occurred_at"],
        "deleted_at": env["occurred_at"],
        "deleted_reason": record["reason"],
        "deleted_by": record["requested_by"],
    }
    return EventRows(
        event_id=env["event_id"],
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=MediaChange("delete", values),
        erase=True,
    )


def _page_rendered(event: ProjectedEvent) -> EventRows:
    record = typed_record(PageRendered, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    page = record["page_number"]
    label = item_label({"page_number": page})
    renderer = record["renderer"]
    row: Row = {
        **_owned(env, media_id),
        "page_number": page,
        "item_label": label,
        "page_count": record["page_count"],
        "dpi": record["dpi"],
        "width": record["width"],
        "height": record["height"],
        **_blob(record["image"], "image"),
        "renderer": renderer,
        "repaired": record["repaired"],
        "occurred_at": env["occurred_at"],
    }
    return _result(event, env, media_id, "pages", [row], label, split_tool(renderer))


def _frame_captured(event: ProjectedEvent) -> EventRows:
    record = typed_record(FrameCaptured, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    frame = record["frame_index"]
    camera_id = record["camera_id"]
    row: Row = {
        **_owned(env, media_id),
        "frame_index": frame,
        "item_label": item_label({"frame_index": frame}),
        "camera_id": camera_id,
        "timestamp_ms": record["timestamp_ms"],
        "captured_at": record["captured_at"],
        "width": record["width"],
        "height": record["height"],
        **_blob(record["image"], "image"),
        "source_fps": _optional_finite(record["source_fps"], "event.source_fps"),
        "sampling_fps": _optional_finite(record["sampling_fps"], "event.sampling_fps"),
        "occurred_at": env["occurred_at"],
    }
    # Capturing is ingestion, not a processing stage: no processing_status row.
    return EventRows(
        event_id=env["event_id"],
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=_status_change(env, media_id, "processing", camera_id),
        results={"frames": [row]},
    )


def _text_recognized(event: ProjectedEvent) -> EventRows:
    record = typed_record(TextRecognized, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    item = _item(record["item"])
    models = record["models"]
    model = _primary_model(models, "unknown/")
    blocks: list[Row] = []
    confidences: list[float] = []
    for b, block in enumerate(record["blocks"]):
        where = f"blocks[{b}]"
        lines: list[Row] = []
        for n, line in enumerate(block["lines"]):
            line_where = f"{where}.lines[{n}]"
            words: list[Row] = []
            for w, word in enumerate(line["words"]):
                word_where = f"{line_where}.words[{w}]"
                confidence = _finite(word["confidence"], f"{word_where}.confidence")
                confidences.append(confidence)
                words.append(
                    {
                        "text": word["text"],
                        "confidence": confidence,
                        "polygon": _polygon(word["polygon"], f"{word_where}.polygon"),
                    }
                )
            lines.append(
                {
                    "text": line["text"],
                    "confidence": _finite(line["confidence"], f"{line_where}.confidence"),
                    "polygon": _polygon(line["polygon"], f"{line_where}.polygon"),
                    "words": words,
                }
            )
        blocks.append(
            {
                "reading_order": block["reading_order"],
                "text": block["text"],
                "confidence": _finite(block["confidence"], f"{where}.confidence"),
                "language": block["language"],
                "polygon": _polygon(block["polygon"], f"{where}.polygon"),
                "lines": lines,
            }
        )
    row: Row = {
        **_owned(env, media_id),
        **item,
        "model_name": model[0],
        "model_version": model[1],
        "models": [_model_json(m) for m in models],
        "image_width": record["image_width"],
        "image_height": record["image_height"],
        "full_text": record["full_text"],
        "languages": list(record["languages"]),
        "orientation_degrees": record["orientation_degrees"],
        "skew_degrees": _finite(record["skew_degrees"], "event.skew_degrees"),
        "preprocessing": list(record["preprocessing"]),
        "block_count": len(blocks),
        "word_count": len(confidences),
        "mean_confidence": sum(confidences) / len(confidences) if confidences else None,
        "blocks": blocks,
        "inference_ms": _finite(record["inference_ms"], "event.inference_ms"),
        "occurred_at": env["occurred_at"],
    }
    return _result(
        event, env, media_id, "text_results", [row], item["item_label"], model, item["camera_id"]
    )


def _objects_detected(event: ProjectedEvent) -> EventRows:
    record = typed_record(ObjectsDetected, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    item = _item(record["item"])
    model = (record["model"]["name"], record["model"]["version"])
    width = record["image_width"]
    height = record["image_height"]
    threshold = _finite(record["score_threshold"], "event.score_threshold")
    rows: list[Row] = []
    for index, detection in enumerate(record["detections"]):
        where = f"detections[{index}]"
        rows.append(
            {
                **_owned(env, media_id),
                "box_index": index,
                **item,
                # The projection replaces this by the frame's capture time when it knows it.
                "observed_at": env["occurred_at"],
                "class_name": detection["class_name"],
                "class_id": detection["class_id"],
                "confidence": _unit_interval(detection["confidence"], f"{where}.confidence"),
                **_box(detection["box"], f"{where}.box"),
                "distance_m": _optional_finite(detection["distance_m"], f"{where}.distance_m"),
                "track_id": detection["track_id"],
                "image_width": width,
                "image_height": height,
                "model_name": model[0],
                "model_version": model[1],
                "score_threshold": threshold,
                "occurred_at": env["occurred_at"],
            }
        )
    return _result(
        event, env, media_id, "detections", rows, item["item_label"], model, item["camera_id"]
    )


def _codes_decoded(event: ProjectedEvent) -> EventRows:
    record = typed_record(CodesDecoded, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    item = _item(record["item"])
    decoders = record["decoders"]
    model = _primary_model(record["models"], decoders[0] if decoders else "unknown/")
    rows: list[Row] = []
    for index, code in enumerate(record["codes"]):
        where = f"codes[{index}]"
        polygon = _polygon(code["polygon"], f"{where}.polygon")
        rows.append(
            {
                **_owned(env, media_id),
                "code_index": index,
                **item,
                "symbology": code["symbology"],
                "text": code["text"],
                "decoder": code["decoder"],
                "polygon": polygon,
                **_polygon_box(polygon, f"{where}.polygon"),
                "model_name": model[0],
                "model_version": model[1],
                "occurred_at": env["occurred_at"],
            }
        )
    return _result(
        event, env, media_id, "codes", rows, item["item_label"], model, item["camera_id"]
    )


def _track_updated(event: ProjectedEvent) -> EventRows:
    record = typed_record(TrackUpdated, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    item = _item(record["item"])
    model = split_tool(record["tracker"])
    rows: list[Row] = []
    seen: set[int] = set()
    for index, track in enumerate(record["tracks"]):
        where = f"tracks[{index}]"
        track_id = track["track_id"]
        if track_id in seen:
            raise RowMappingError(f"{where}.track_id {track_id} appears twice in one update")
        seen.add(track_id)
        rows.append(
            {
                **_owned(env, media_id),
                "track_id": track_id,
                "item_label": item["item_label"],
                "frame_index": item["frame_index"],
                "camera_id": item["camera_id"],
                "class_name": track["class_name"],
                "state": track["state"],
                "confidence": _finite(track["confidence"], f"{where}.confidence"),
                **_box(track["box"], f"{where}.box"),
                "first_frame_index": track["first_frame_index"],
                "hits": track["hits"],
                "model_name": model[0],
                "model_version": model[1],
                "occurred_at": env["occurred_at"],
            }
        )
    return _result(
        event, env, media_id, "tracks", rows, item["item_label"], model, item["camera_id"]
    )


def _media_redacted(event: ProjectedEvent) -> EventRows:
    record = typed_record(MediaRedacted, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    item = _item(record["item"])
    models = record["models"]
    model = _primary_model(models, "unknown/")
    redacted = record["redacted_image"]
    text_blob = record["redacted_text"]
    regions: list[Row] = []
    counts: dict[str, int] = {}
    for index, region in enumerate(record["regions"]):
        where = f"regions[{index}]"
        kind = region["kind"]
        counts[kind] = counts.get(kind, 0) + 1
        regions.append(
            {
                "kind": kind,
                "box": _box(region["box"], f"{where}.box"),
                "confidence": _finite(region["confidence"], f"{where}.confidence"),
            }
        )
    row: Row = {
        **_owned(env, media_id),
        **item,
        "method": record["method"],
        "redacted_bucket": redacted["bucket"],
        "redacted_key": redacted["key"],
        "redacted_sha256": redacted["sha256"],
        "redacted_text_bucket": None if text_blob is None else text_blob["bucket"],
        "redacted_text_key": None if text_blob is None else text_blob["key"],
        "regions": regions,
        "region_counts": dict(sorted(counts.items())),
        "pii_counts": dict(sorted(record["pii_counts"].items())),
        "model_name": model[0],
        "model_version": model[1],
        "models": [_model_json(m) for m in models],
        "occurred_at": env["occurred_at"],
    }
    return _result(
        event, env, media_id, "redactions", [row], item["item_label"], model, item["camera_id"]
    )


def _scene_described(event: ProjectedEvent) -> EventRows:
    record = typed_record(SceneDescribed, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    item = _item(record["item"])
    models = record["models"]
    model = _primary_model(models, "unknown/")
    objects: list[Row] = []
    for index, scene_object in enumerate(record["objects"]):
        where = f"objects[{index}]"
        objects.append(
            {
                "class_name": scene_object["class_name"],
                "box": _box(scene_object["box"], f"{where}.box"),
                "distance_m": _optional_finite(scene_object["distance_m"], f"{where}.distance_m"),
                "horizontal_position": scene_object["horizontal_position"],
            }
        )
    relations: list[Row] = []
    for index, relation in enumerate(record["relations"]):
        where = f"relations[{index}]"
        subject = relation["subject_index"]
        target = relation["object_index"]
        for end, value in (("subject_index", subject), ("object_index", target)):
            if not 0 <= value < len(objects):
                raise RowMappingError(
                    f"{where}.{end} is {value}, but the scene has {len(objects)} objects"
                )
        relations.append(
            {"subject_index": subject, "predicate": relation["predicate"], "object_index": target}
        )
    row: Row = {
        **_owned(env, media_id),
        **item,
        "sentences": dict(sorted(record["sentences"].items())),
        "objects": objects,
        "relations": relations,
        "object_count": len(objects),
        "focal_length_px": _optional_finite(record["focal_length_px"], "event.focal_length_px"),
        "model_name": model[0],
        "model_version": model[1],
        "models": [_model_json(m) for m in models],
        "occurred_at": env["occurred_at"],
    }
    return _result(
        event, env, media_id, "scenes", [row], item["item_label"], model, item["camera_id"]
    )


def _output_generated(event: ProjectedEvent) -> EventRows:
    record = typed_record(OutputGenerated, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    ref = record["item"]
    if ref is None:
        item: Row = {
            "item_label": WHOLE_MEDIA_LABEL,
            "page_number": None,
            "frame_index": None,
            "camera_id": None,
        }
    else:
        item = _item(ref)
    generator = record["generator"]
    model = split_tool(generator)
    row: Row = {
        **_owned(env, media_id),
        "item_label": item["item_label"],
        "page_number": item["page_number"],
        "frame_index": item["frame_index"],
        "kind": record["kind"],
        **_blob(record["output"], "output"),
        "source_event_ids": list(record["source_event_ids"]),
        "generator": generator,
        "model_name": model[0],
        "model_version": model[1],
        "occurred_at": env["occurred_at"],
    }
    return _result(
        event, env, media_id, "outputs", [row], item["item_label"], model, item["camera_id"]
    )


def failed_item_label(input_blob: BlobRef | None) -> str:
    """The item a failure concerns, from its input blob's key (producers/storage.py layout):
    `…/pages/0003.png` is page-0003, `…/frames/[run/]00000042.jpg` frame-00000042, else
    the original."""
    if input_blob is None:
        return "original"
    key = input_blob["key"]
    if page := _PAGE_KEY.search(key):
        return item_label({"page_number": int(page["page"])})
    if frame := _FRAME_KEY.search(key):
        return item_label({"frame_index": int(frame["frame"])})
    return "original"


def _processing_failed(event: ProjectedEvent) -> EventRows:
    record = typed_record(ProcessingFailed, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    audit = _audit(event, env, media_id)
    if media_id is None:
        return EventRows(env["event_id"], event.event_type, None, audit)
    status: Row = {
        "media_id": media_id,
        "stage": record["stage"],
        "item_label": failed_item_label(record["input_blob"]),
        "model_version": UNKNOWN_MODEL_VERSION,
        "tenant_id": env["tenant_id"],
        "owner_id": env["owner_id"],
        "model_name": split_tool(record["processor"])[0],
        "status": "failed",
        "error_type": record["error_type"],
        "error": record["error_message"][:ERROR_MESSAGE_LIMIT],
        "retryable": record["retryable"],
        "attempts": record["attempts"],
        "event_id": env["event_id"],
        "event_at": env["occurred_at"],
    }
    # One failed stage does not end the item: MediaCompleted says how it ended.
    return EventRows(
        event_id=env["event_id"],
        event_type=event.event_type,
        media_id=media_id,
        audit=audit,
        media=_status_change(env, media_id, "processing"),
        processing=[status],
    )


# ---------------------------------------------------------------- completion


_LABEL = re.compile(r"^(?P<kind>page|frame)-(?P<number>\d+)$")


def _tally(tally: StageTally, path: str) -> Row:
    return {
        "stage": tally["stage"],
        "done": _count(tally["done"], f"{path}.done"),
        "not_applicable": _count(tally["not_applicable"], f"{path}.not_applicable"),
        "skipped": _count(tally["skipped"], f"{path}.skipped"),
        "failed": _count(tally["failed"], f"{path}.failed"),
    }


def _tallies(tallies: Sequence[StageTally]) -> list[Row]:
    return [_tally(t, f"stages[{i}]") for i, t in enumerate(tallies)]


def _run_key(env: Envelope, media_id: str, run_id: str | None) -> Row:
    return {
        "media_id": media_id,
        "run_id": OWN_RUN if run_id is None else run_id,
        "tenant_id": env["tenant_id"],
        "owner_id": env["owner_id"],
    }


def _media_progressed(event: ProjectedEvent) -> EventRows:
    record = typed_record(MediaProgressed, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    run_id = record["run_id"]
    percent = _finite(record["percent"], "event.percent")
    if not 0.0 <= percent <= 100.0:
        raise RowMappingError(f"event.percent is {percent}, expected 0..100")
    values: Row = {
        **_run_key(env, media_id, run_id),
        "status": "processing",
        "percent": percent,
        "items_expected": record["items_expected"],
        "items_completed": record["items_completed"],
        "stages": _tallies(record["stages"]),
        "progress_event_id": env["event_id"],
        "progress_at": env["occurred_at"],
    }
    return EventRows(
        event_id=env["event_id"],
        event_type=event.event_type,
        media_id=media_id,
        audit=None,
        # A reprocess run leaves the item's own status alone.
        media=_status_change(env, media_id, "processing") if run_id is None else None,
        run=RunChange("progress", values),
    )


def _media_completed(event: ProjectedEvent) -> EventRows:
    record = typed_record(MediaCompleted, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    run_id = record["run_id"]
    symbol = record["status"]
    status = COMPLETION_STATUS.get(symbol)
    if status is None:
        raise RowMappingError(
            f"event.status is {symbol!r}, expected one of {sorted(COMPLETION_STATUS)}"
        )
    errors = [
        {
            "stage": error["stage"],
            "item_label": error["item_label"],
            "message": error["message"][:ERROR_MESSAGE_LIMIT],
        }
        for error in record["errors"]
    ]
    values: Row = {
        **_run_key(env, media_id, run_id),
        "status": status,
        "percent": 100.0,
        "items_expected": record["items_expected"],
        "items_completed": record["items_completed"],
        "items_failed": record["items_failed"],
        "stages": _tallies(record["stages"]),
        "errors": errors,
        "models": [_model_json(m) for m in record["models"]],
        "started_at": record["started_at"],
        "completed_at": env["occurred_at"],
        "duration_ms": record["duration_ms"],
        "completion_event_id": env["event_id"],
    }
    return EventRows(
        event_id=env["event_id"],
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=_status_change(env, media_id, status) if run_id is None else None,
        run=RunChange("completion", values),
    )


def _event_processed(event: ProjectedEvent) -> EventRows:
    record = typed_record(EventProcessed, event.event_type, event.record)
    env = _envelope(event, record["envelope"])
    media_id = record["media_id"]
    rows = EventRows(env["event_id"], event.event_type, media_id, audit=None)
    stages: dict[str, Row] = {}
    telling: tuple[int, str | None, str | None] = (0, None, None)
    for outcome in record["outcomes"]:
        status = outcome["status"].lower()
        if status not in OUTCOME_RANK:
            continue
        reason = outcome["reason"]
        entry: Row = {"status": status}
        if reason is not None:
            entry["reason"] = reason = reason[:ERROR_MESSAGE_LIMIT]
        stages[outcome["stage"]] = entry
        if OUTCOME_RANK[status] > telling[0]:
            telling = (OUTCOME_RANK[status], status, reason)
    label = record["item_label"]
    match = _LABEL.match(label or "")
    # Reprocess runs are summed up per run; the page and frame rows keep the item's own
    # processing. Whole-item reports (a document upload) have no row of their own.
    if not stages or match is None or record["run_id"] is not None:
        return rows
    values: Row = {
        "media_id": media_id,
        "tenant_id": env["tenant_id"],
        "owner_id": env["owner_id"],
        "item_label": label,
        "stages": stages,
        "outcome": telling[1],
        "outcome_reason": telling[2],
    }
    if match["kind"] == "page":
        values["page_number"] = int(match["number"])
        changed = ItemOutcome("pages", values)
    else:
        values["frame_index"] = int(match["number"])
        values["camera_id"] = record["camera_id"]
        changed = ItemOutcome("frames", values)
    return EventRows(env["event_id"], event.event_type, media_id, audit=None, outcome=changed)


_MAPPERS: dict[str, Callable[[ProjectedEvent], EventRows]] = {
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
    "ProcessingFailed": _processing_failed,
    "EventProcessed": _event_processed,
    "MediaProgressed": _media_progressed,
    "MediaCompleted": _media_completed,
}


def event_rows(event: ProjectedEvent) -> EventRows:
    """The read-model rows of one event; `RowMappingError` when it cannot be represented."""
    mapper = _MAPPERS.get(event.event_type)
    if mapper is None:
        raise RowMappingError(
            f"event type {event.event_type!r} is not projected to PostgreSQL; "
            f"expected one of {sorted(_MAPPERS)}"
        )
    return mapper(event)
