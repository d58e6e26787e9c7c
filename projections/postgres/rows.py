"""Pure mapping from one decoded event to the PostgreSQL read-model rows it implies.

No I/O here: `event_rows` turns a `ProjectedEvent` into an `EventRows` value (the media
change, result rows per table, processing-status rows, the audit row) and the projection
writes it. Values stay plain Python (dicts and lists for `jsonb` columns, see
`JSONB_COLUMNS`). Input the read model cannot represent (a missing field, a non-finite
number, an inverted box) raises `RowMappingError` with the field that is wrong.

Read-model rows never copy payload bytes or free text that the read model does not need:
failures keep the error, not the failed message; redactions keep counts and regions, not
what was redacted; the audit log keeps who, what and when, not the payload.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from processors.stage import item_label
from projections.runtime import ProjectedEvent
from projections.stages import PROJECTED_EVENTS, RESULT_STAGES

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
    }
)

MediaChangeKind = Literal["upload", "status", "delete"]

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
class EventRows:
    event_id: str
    event_type: str
    media_id: str | None
    audit: Row
    media: MediaChange | None = None
    # Result rows per table, in insertion order.
    results: dict[str, list[Row]] = field(default_factory=dict)
    processing: list[Row] = field(default_factory=list)
    # MediaDeleted: remove every result row of `media_id` (the audit trail stays).
    erase: bool = False


# ---------------------------------------------------------------- field access


def _get(record: Mapping[str, Any], key: str, path: str) -> Any:
    if not isinstance(record, Mapping):
        raise RowMappingError(f"{path} is {type(record).__name__}, expected a record")
    if key not in record:
        raise RowMappingError(f"{path}.{key} is missing")
    return record[key]


def _text(record: Mapping[str, Any], key: str, path: str) -> str:
    value = _get(record, key, path)
    if not isinstance(value, str):
        raise RowMappingError(f"{path}.{key} is {value!r}, expected a string")
    return value


def _optional_text(record: Mapping[str, Any], key: str, path: str) -> str | None:
    value = _get(record, key, path)
    if value is not None and not isinstance(value, str):
        raise RowMappingError(f"{path}.{key} is {value!r}, expected a string or null")
    return value


def _int(record: Mapping[str, Any], key: str, path: str) -> int:
    value = _get(record, key, path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RowMappingError(f"{path}.{key} is {value!r}, expected an integer")
    return value


def _optional_int(record: Mapping[str, Any], key: str, path: str) -> int | None:
    if _get(record, key, path) is None:
        return None
    return _int(record, key, path)


def _float(record: Mapping[str, Any], key: str, path: str) -> float:
    value = _get(record, key, path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowMappingError(f"{path}.{key} is {value!r}, expected a number")
    if not math.isfinite(value):
        raise RowMappingError(f"{path}.{key} is {value!r}, expected a finite number")
    return float(value)


def _optional_float(record: Mapping[str, Any], key: str, path: str) -> float | None:
    if _get(record, key, path) is None:
        return None
    return _float(record, key, path)


def _time(record: Mapping[str, Any], key: str, path: str) -> datetime:
    value = _get(record, key, path)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise RowMappingError(f"{path}.{key} is {value!r}, expected a timezone-aware datetime")
    return value


def _list(record: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = _get(record, key, path)
    if not isinstance(value, list):
        raise RowMappingError(f"{path}.{key} is {type(value).__name__}, expected an array")
    return value


def _map(record: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    value = _get(record, key, path)
    if not isinstance(value, Mapping):
        raise RowMappingError(f"{path}.{key} is {type(value).__name__}, expected a map")
    return dict(value)


# ---------------------------------------------------------------- shared pieces


def split_tool(tool: str) -> tuple[str, str]:
    """`name/version` (a tracker or generator string) as (name, version); '' when unversioned."""
    name, _, version = tool.partition("/")
    return name, version


def _primary_model(models: Sequence[Any], path: str, fallback: str) -> tuple[str, str]:
    """The first model of a `models` list; `fallback` ("name/version") when there is none."""
    if not models:
        return split_tool(fallback)
    first = models[0]
    return _text(first, "name", f"{path}[0]"), _text(first, "version", f"{path}[0]")


def _box(record: Mapping[str, Any], path: str) -> Row:
    box = {key: _float(record, key, path) for key in ("x_min", "y_min", "x_max", "y_max")}
    if box["x_min"] > box["x_max"] or box["y_min"] > box["y_max"]:
        raise RowMappingError(f"{path} is inverted: {box}")
    return box


def _polygon(points: Sequence[Any], path: str) -> list[Row]:
    return [
        {"x": _float(point, "x", f"{path}[{i}]"), "y": _float(point, "y", f"{path}[{i}]")}
        for i, point in enumerate(points)
    ]


def _polygon_box(polygon: Sequence[Row], path: str) -> Row:
    if not polygon:
        raise RowMappingError(f"{path} has no points")
    xs = [point["x"] for point in polygon]
    ys = [point["y"] for point in polygon]
    return {"x_min": min(xs), "y_min": min(ys), "x_max": max(xs), "y_max": max(ys)}


def _blob(record: Mapping[str, Any], key: str, path: str, prefix: str) -> Row:
    blob = _get(record, key, path)
    where = f"{path}.{key}"
    return {
        f"{prefix}_bucket": _text(blob, "bucket", where),
        f"{prefix}_key": _text(blob, "key", where),
        f"{prefix}_sha256": _text(blob, "sha256", where),
        f"{prefix}_size_bytes": _int(blob, "size_bytes", where),
        f"{prefix}_content_type": _text(blob, "content_type", where),
    }


@dataclass(frozen=True)
class _Envelope:
    event_id: str
    event_type: str
    tenant_id: str
    owner_id: str | None
    occurred_at: datetime


def _envelope(record: Mapping[str, Any]) -> _Envelope:
    envelope = _get(record, "envelope", "event")
    return _Envelope(
        event_id=_text(envelope, "event_id", "envelope"),
        event_type=_text(envelope, "event_type", "envelope"),
        tenant_id=_text(envelope, "tenant_id", "envelope"),
        owner_id=_optional_text(envelope, "owner_id", "envelope"),
        occurred_at=_time(envelope, "occurred_at", "envelope"),
    )


def _audit(event: ProjectedEvent, env: _Envelope, media_id: str | None) -> Row:
    envelope = event.record["envelope"]
    return {
        "event_id": env.event_id,
        "event_type": event.event_type,
        "media_id": media_id,
        "tenant_id": env.tenant_id,
        "owner_id": env.owner_id,
        "producer": _text(envelope, "producer", "envelope"),
        "correlation_id": _text(envelope, "correlation_id", "envelope"),
        "causation_id": _optional_text(envelope, "causation_id", "envelope"),
        "occurred_at": env.occurred_at,
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
    }


def _item(record: Mapping[str, Any]) -> Row:
    """Label, page, frame and camera of the event's item ("original" for whole images)."""
    item = _get(record, "item", "event")
    page = _optional_int(item, "page_number", "item")
    frame = _optional_int(item, "frame_index", "item")
    return {
        "item_label": item_label({"page_number": page, "frame_index": frame}),
        "page_number": page,
        "frame_index": frame,
        "camera_id": _optional_text(item, "camera_id", "item"),
    }


def _owned(env: _Envelope, media_id: str) -> Row:
    return {
        "event_id": env.event_id,
        "tenant_id": env.tenant_id,
        "owner_id": env.owner_id,
        "media_id": media_id,
    }


def _status_change(
    env: _Envelope, media_id: str, status: str, camera_id: str | None = None
) -> MediaChange:
    return MediaChange(
        "status",
        {
            "media_id": media_id,
            "tenant_id": env.tenant_id,
            "owner_id": env.owner_id,
            "status": status,
            "status_at": env.occurred_at,
            "camera_id": camera_id,
        },
    )


def _done(env: _Envelope, media_id: str, stage: str, label: str, model: tuple[str, str]) -> Row:
    return {
        "media_id": media_id,
        "stage": stage,
        "item_label": label,
        "model_version": model[1],
        "tenant_id": env.tenant_id,
        "owner_id": env.owner_id,
        "model_name": model[0],
        "status": "done",
        "error_type": None,
        "error": None,
        "retryable": None,
        "attempts": None,
        "event_id": env.event_id,
        "event_at": env.occurred_at,
    }


def _result(
    event: ProjectedEvent,
    env: _Envelope,
    media_id: str,
    table: str,
    rows: list[Row],
    label: str,
    model: tuple[str, str],
    camera_id: str | None = None,
) -> EventRows:
    """Rows of a result event: its table, its stage done, the media processing."""
    return EventRows(
        event_id=env.event_id,
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=_status_change(env, media_id, "processing", camera_id),
        results={table: rows},
        processing=[_done(env, media_id, RESULT_STAGES[event.event_type], label, model)],
    )


# ---------------------------------------------------------------- per event type


def _media_uploaded(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    labels = _map(record, "labels", "event")
    values: Row = {
        "media_id": media_id,
        "tenant_id": env.tenant_id,
        "owner_id": env.owner_id,
        "event_id": env.event_id,
        "status": "uploaded",
        "status_at": env.occurred_at,
        "kind": _text(record, "media_kind", "event"),
        "filename": _optional_text(record, "original_filename", "event"),
        "source": _text(record, "source", "event"),
        "source_uri": _optional_text(record, "source_uri", "event"),
        "profile": _text(record, "profile", "event"),
        "duplicate_of": _optional_text(record, "duplicate_of", "event"),
        **_blob(record, "original", "event", "original"),
        "width": _optional_int(record, "width", "event"),
        "height": _optional_int(record, "height", "event"),
        "page_count": _optional_int(record, "page_count", "event"),
        "duration_ms": _optional_int(record, "duration_ms", "event"),
        "fps": _optional_float(record, "fps", "event"),
        "labels": labels,
        "camera_id": labels.get("camera_id"),
        "uploaded_at": env.occurred_at,
    }
    return EventRows(
        event_id=env.event_id,
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=MediaChange("upload", values),
    )


def _media_deleted(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    values: Row = {
        "media_id": media_id,
        "tenant_id": env.tenant_id,
        "owner_id": env.owner_id,
        "status": "deleted",
        "status_at": env.occurred_at,
        "deleted_at": env.occurred_at,
        "deleted_reason": _text(record, "reason", "event"),
        "deleted_by": _text(record, "requested_by", "event"),
    }
    return EventRows(
        event_id=env.event_id,
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=MediaChange("delete", values),
        erase=True,
    )


def _page_rendered(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    page = _int(record, "page_number", "event")
    label = item_label({"page_number": page})
    renderer = _text(record, "renderer", "event")
    row: Row = {
        **_owned(env, media_id),
        "page_number": page,
        "item_label": label,
        "page_count": _int(record, "page_count", "event"),
        "dpi": _int(record, "dpi", "event"),
        "width": _int(record, "width", "event"),
        "height": _int(record, "height", "event"),
        **_blob(record, "image", "event", "image"),
        "renderer": renderer,
        "repaired": bool(_get(record, "repaired", "event")),
        "occurred_at": env.occurred_at,
    }
    return _result(event, env, media_id, "pages", [row], label, split_tool(renderer))


def _frame_captured(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    frame = _int(record, "frame_index", "event")
    camera_id = _optional_text(record, "camera_id", "event")
    row: Row = {
        **_owned(env, media_id),
        "frame_index": frame,
        "item_label": item_label({"frame_index": frame}),
        "camera_id": camera_id,
        "timestamp_ms": _int(record, "timestamp_ms", "event"),
        "captured_at": _time(record, "captured_at", "event"),
        "width": _int(record, "width", "event"),
        "height": _int(record, "height", "event"),
        **_blob(record, "image", "event", "image"),
        "source_fps": _optional_float(record, "source_fps", "event"),
        "sampling_fps": _optional_float(record, "sampling_fps", "event"),
        "occurred_at": env.occurred_at,
    }
    # Capturing is ingestion, not a processing stage: no processing_status row.
    return EventRows(
        event_id=env.event_id,
        event_type=event.event_type,
        media_id=media_id,
        audit=_audit(event, env, media_id),
        media=_status_change(env, media_id, "processing", camera_id),
        results={"frames": [row]},
    )


def _text_recognized(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    item = _item(record)
    models = _list(record, "models", "event")
    model = _primary_model(models, "models", "unknown/")
    blocks: list[Row] = []
    confidences: list[float] = []
    for b, block in enumerate(_list(record, "blocks", "event")):
        where = f"blocks[{b}]"
        lines: list[Row] = []
        for n, line in enumerate(_list(block, "lines", where)):
            line_where = f"{where}.lines[{n}]"
            words: list[Row] = []
            for w, word in enumerate(_list(line, "words", line_where)):
                word_where = f"{line_where}.words[{w}]"
                confidence = _float(word, "confidence", word_where)
                confidences.append(confidence)
                words.append(
                    {
                        "text": _text(word, "text", word_where),
                        "confidence": confidence,
                        "polygon": _polygon(_list(word, "polygon", word_where), word_where),
                    }
                )
            lines.append(
                {
                    "text": _text(line, "text", line_where),
                    "confidence": _float(line, "confidence", line_where),
                    "polygon": _polygon(_list(line, "polygon", line_where), line_where),
                    "words": words,
                }
            )
        blocks.append(
            {
                "reading_order": _int(block, "reading_order", where),
                "text": _text(block, "text", where),
                "confidence": _float(block, "confidence", where),
                "language": _optional_text(block, "language", where),
                "polygon": _polygon(_list(block, "polygon", where), where),
                "lines": lines,
            }
        )
    row: Row = {
        **_owned(env, media_id),
        **item,
        "model_name": model[0],
        "model_version": model[1],
        "models": [_model_json(m, f"models[{i}]") for i, m in enumerate(models)],
        "image_width": _int(record, "image_width", "event"),
        "image_height": _int(record, "image_height", "event"),
        "full_text": _text(record, "full_text", "event"),
        "languages": [str(language) for language in _list(record, "languages", "event")],
        "orientation_degrees": _int(record, "orientation_degrees", "event"),
        "skew_degrees": _float(record, "skew_degrees", "event"),
        "preprocessing": [str(step) for step in _list(record, "preprocessing", "event")],
        "block_count": len(blocks),
        "word_count": len(confidences),
        "mean_confidence": sum(confidences) / len(confidences) if confidences else None,
        "blocks": blocks,
        "inference_ms": _float(record, "inference_ms", "event"),
        "occurred_at": env.occurred_at,
    }
    return _result(
        event, env, media_id, "text_results", [row], item["item_label"], model, item["camera_id"]
    )


def _model_json(model: Mapping[str, Any], path: str) -> Row:
    return {
        "name": _text(model, "name", path),
        "version": _text(model, "version", path),
        "source": _text(model, "source", path),
        "licence": _optional_text(model, "licence", path),
        "runtime": _optional_text(model, "runtime", path),
    }


def _objects_detected(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    item = _item(record)
    model_record = _model_json(_get(record, "model", "event"), "model")
    model = (model_record["name"], model_record["version"])
    width = _int(record, "image_width", "event")
    height = _int(record, "image_height", "event")
    threshold = _float(record, "score_threshold", "event")
    rows: list[Row] = []
    for index, detection in enumerate(_list(record, "detections", "event")):
        where = f"detections[{index}]"
        confidence = _float(detection, "confidence", where)
        if not 0.0 <= confidence <= 1.0:
            raise RowMappingError(f"{where}.confidence is {confidence}, expected 0..1")
        rows.append(
            {
                **_owned(env, media_id),
                "box_index": index,
                **item,
                # The projection replaces this by the frame's capture time when it knows it.
                "observed_at": env.occurred_at,
                "class_name": _text(detection, "class_name", where),
                "class_id": _int(detection, "class_id", where),
                "confidence": confidence,
                **_box(_get(detection, "box", where), f"{where}.box"),
                "distance_m": _optional_float(detection, "distance_m", where),
                "track_id": _optional_int(detection, "track_id", where),
                "image_width": width,
                "image_height": height,
                "model_name": model[0],
                "model_version": model[1],
                "score_threshold": threshold,
                "occurred_at": env.occurred_at,
            }
        )
    return _result(
        event, env, media_id, "detections", rows, item["item_label"], model, item["camera_id"]
    )


def _codes_decoded(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    item = _item(record)
    decoders = [str(name) for name in _list(record, "decoders", "event")]
    model = _primary_model(
        _list(record, "models", "event"), "models", decoders[0] if decoders else "unknown/"
    )
    rows: list[Row] = []
    for index, code in enumerate(_list(record, "codes", "event")):
        where = f"codes[{index}]"
        polygon = _polygon(_list(code, "polygon", where), f"{where}.polygon")
        rows.append(
            {
                **_owned(env, media_id),
                "code_index": index,
                **item,
                "symbology": _text(code, "symbology", where),
                "text": _text(code, "text", where),
                "decoder": _text(code, "decoder", where),
                "polygon": polygon,
                **_polygon_box(polygon, f"{where}.polygon"),
                "model_name": model[0],
                "model_version": model[1],
                "occurred_at": env.occurred_at,
            }
        )
    return _result(
        event, env, media_id, "codes", rows, item["item_label"], model, item["camera_id"]
    )


def _track_updated(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    item = _item(record)
    model = split_tool(_text(record, "tracker", "event"))
    rows: list[Row] = []
    seen: set[int] = set()
    for index, track in enumerate(_list(record, "tracks", "event")):
        where = f"tracks[{index}]"
        track_id = _int(track, "track_id", where)
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
                "class_name": _text(track, "class_name", where),
                "state": _text(track, "state", where),
                "confidence": _float(track, "confidence", where),
                **_box(_get(track, "box", where), f"{where}.box"),
                "first_frame_index": _int(track, "first_frame_index", where),
                "hits": _int(track, "hits", where),
                "model_name": model[0],
                "model_version": model[1],
                "occurred_at": env.occurred_at,
            }
        )
    return _result(
        event, env, media_id, "tracks", rows, item["item_label"], model, item["camera_id"]
    )


def _media_redacted(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    item = _item(record)
    models = _list(record, "models", "event")
    model = _primary_model(models, "models", "unknown/")
    redacted = _blob(record, "redacted_image", "event", "redacted")
    text_blob = _get(record, "redacted_text", "event")
    regions: list[Row] = []
    counts: dict[str, int] = {}
    for index, region in enumerate(_list(record, "regions", "event")):
        where = f"regions[{index}]"
        kind = _text(region, "kind", where)
        counts[kind] = counts.get(kind, 0) + 1
        regions.append(
            {
                "kind": kind,
                "box": _box(_get(region, "box", where), f"{where}.box"),
                "confidence": _float(region, "confidence", where),
            }
        )
    pii_counts = _map(record, "pii_counts", "event")
    row: Row = {
        **_owned(env, media_id),
        **item,
        "method": _text(record, "method", "event"),
        "redacted_bucket": redacted["redacted_bucket"],
        "redacted_key": redacted["redacted_key"],
        "redacted_sha256": redacted["redacted_sha256"],
        "redacted_text_bucket": None
        if text_blob is None
        else _text(text_blob, "bucket", "redacted_text"),
        "redacted_text_key": None
        if text_blob is None
        else _text(text_blob, "key", "redacted_text"),
        "regions": regions,
        "region_counts": dict(sorted(counts.items())),
        "pii_counts": {str(k): int(v) for k, v in sorted(pii_counts.items())},
        "model_name": model[0],
        "model_version": model[1],
        "models": [_model_json(m, f"models[{i}]") for i, m in enumerate(models)],
        "occurred_at": env.occurred_at,
    }
    return _result(
        event, env, media_id, "redactions", [row], item["item_label"], model, item["camera_id"]
    )


def _scene_described(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    item = _item(record)
    models = _list(record, "models", "event")
    model = _primary_model(models, "models", "unknown/")
    objects: list[Row] = []
    for index, scene_object in enumerate(_list(record, "objects", "event")):
        where = f"objects[{index}]"
        objects.append(
            {
                "class_name": _text(scene_object, "class_name", where),
                "box": _box(_get(scene_object, "box", where), f"{where}.box"),
                "distance_m": _optional_float(scene_object, "distance_m", where),
                "horizontal_position": _text(scene_object, "horizontal_position", where),
            }
        )
    relations: list[Row] = []
    for index, relation in enumerate(_list(record, "relations", "event")):
        where = f"relations[{index}]"
        subject = _int(relation, "subject_index", where)
        target = _int(relation, "object_index", where)
        for end, value in (("subject_index", subject), ("object_index", target)):
            if not 0 <= value < len(objects):
                raise RowMappingError(
                    f"{where}.{end} is {value}, but the scene has {len(objects)} objects"
                )
        relations.append(
            {
                "subject_index": subject,
                "predicate": _text(relation, "predicate", where),
                "object_index": target,
            }
        )
    sentences = _map(record, "sentences", "event")
    row: Row = {
        **_owned(env, media_id),
        **item,
        "sentences": {str(k): str(v) for k, v in sorted(sentences.items())},
        "objects": objects,
        "relations": relations,
        "object_count": len(objects),
        "focal_length_px": _optional_float(record, "focal_length_px", "event"),
        "model_name": model[0],
        "model_version": model[1],
        "models": [_model_json(m, f"models[{i}]") for i, m in enumerate(models)],
        "occurred_at": env.occurred_at,
    }
    return _result(
        event, env, media_id, "scenes", [row], item["item_label"], model, item["camera_id"]
    )


def _output_generated(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _text(record, "media_id", "event")
    if _get(record, "item", "event") is None:
        item: Row = {
            "item_label": WHOLE_MEDIA_LABEL,
            "page_number": None,
            "frame_index": None,
            "camera_id": None,
        }
    else:
        item = _item(record)
    generator = _text(record, "generator", "event")
    model = split_tool(generator)
    row: Row = {
        **_owned(env, media_id),
        "item_label": item["item_label"],
        "page_number": item["page_number"],
        "frame_index": item["frame_index"],
        "kind": _text(record, "kind", "event"),
        **_blob(record, "output", "event", "output"),
        "source_event_ids": [str(i) for i in _list(record, "source_event_ids", "event")],
        "generator": generator,
        "model_name": model[0],
        "model_version": model[1],
        "occurred_at": env.occurred_at,
    }
    return _result(
        event, env, media_id, "outputs", [row], item["item_label"], model, item["camera_id"]
    )


def failed_item_label(input_blob: Mapping[str, Any] | None) -> str:
    """The item a failure concerns, from its input blob's key (producers/storage.py layout):
    `…/pages/0003.png` is page-0003, `…/frames/[run/]00000042.jpg` frame-00000042, else
    the original."""
    if input_blob is None:
        return "original"
    key = _text(input_blob, "key", "input_blob")
    if page := _PAGE_KEY.search(key):
        return item_label({"page_number": int(page["page"])})
    if frame := _FRAME_KEY.search(key):
        return item_label({"frame_index": int(frame["frame"])})
    return "original"


def _processing_failed(event: ProjectedEvent, env: _Envelope) -> EventRows:
    record = event.record
    media_id = _optional_text(record, "media_id", "event")
    audit = _audit(event, env, media_id)
    stage = _text(record, "stage", "event")
    error_type = _text(record, "error_type", "event")
    error_message = _text(record, "error_message", "event")[:ERROR_MESSAGE_LIMIT]
    retryable = bool(_get(record, "retryable", "event"))
    attempts = _int(record, "attempts", "event")
    label = failed_item_label(_get(record, "input_blob", "event"))
    processor = _text(record, "processor", "event")
    if media_id is None:
        return EventRows(env.event_id, event.event_type, None, audit)
    status: Row = {
        "media_id": media_id,
        "stage": stage,
        "item_label": label,
        "model_version": UNKNOWN_MODEL_VERSION,
        "tenant_id": env.tenant_id,
        "owner_id": env.owner_id,
        "model_name": split_tool(processor)[0],
        "status": "failed",
        "error_type": error_type,
        "error": error_message,
        "retryable": retryable,
        "attempts": attempts,
        "event_id": env.event_id,
        "event_at": env.occurred_at,
    }
    return EventRows(
        event_id=env.event_id,
        event_type=event.event_type,
        media_id=media_id,
        audit=audit,
        media=_status_change(env, media_id, "failed"),
        processing=[status],
    )


_MAPPERS = {
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
}


def event_rows(event: ProjectedEvent) -> EventRows:
    """The read-model rows of one event; `RowMappingError` when it cannot be represented."""
    mapper = _MAPPERS.get(event.event_type)
    if mapper is None:
        raise RowMappingError(
            f"event type {event.event_type!r} is not projected to PostgreSQL; "
            f"expected one of {sorted(_MAPPERS)}"
        )
    env = _envelope(event.record)
    if env.event_type != event.event_type:
        raise RowMappingError(
            f"envelope.event_type is {env.event_type!r} but the event is {event.event_type!r}"
        )
    return mapper(event, env)
