"""Pure mapping from an EmbeddingComputed event to the Qdrant point it becomes.

The record comes typed (`visionlog.contracts.EmbeddingComputed`, narrowed once by the
projection); what is checked here is values only: a target without a collection, an empty
vector, a vector with NaN or infinite values.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from visionlog.contracts import BoundingBox, EmbeddingComputed

# Target name (the alias suffix) per embedding target; OTHER has no collection.
TARGETS: dict[str, str] = {
    "IMAGE": "images",
    "OBJECT_CROP": "objects",
    "TEXT_BLOCK": "texts",
}
TARGET_NAMES: tuple[str, ...] = ("images", "objects", "texts")

# Fixed namespace: point ids must be the same in every process and every rebuild.
POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://visionlog/qdrant/points")


class UnmappableEmbeddingError(ValueError):
    """The embedding cannot become a point: unknown target, empty or non-finite vector."""


@dataclass(frozen=True)
class PointSpec:
    target: str
    point_id: str
    vector: list[float]
    payload: dict[str, Any]


def alias_name(prefix: str, target: str) -> str:
    """The live name readers query, e.g. visionlog_images."""
    return f"{prefix}_{target}"


def generation_collection(prefix: str, target: str, generation: str) -> str:
    """The physical collection of one generation, e.g. visionlog_images_g2."""
    return f"{alias_name(prefix, target)}_{generation}"


def point_id(event_id: str, target_index: int | None) -> str:
    """UUIDv5 of the event id and target index: a replay overwrites, never duplicates."""
    index = "-" if target_index is None else str(target_index)
    return str(uuid.uuid5(POINT_NAMESPACE, f"{event_id}/{index}"))


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _box(box: BoundingBox | None) -> dict[str, float] | None:
    if box is None:
        return None
    return {
        "x_min": box["x_min"],
        "y_min": box["y_min"],
        "x_max": box["x_max"],
        "y_max": box["y_max"],
    }


def point_for_embedding(record: EmbeddingComputed) -> PointSpec:
    """The point of one EmbeddingComputed record (as the codec decodes it)."""
    envelope = record["envelope"]
    target_symbol = record["target"]
    target = TARGETS.get(target_symbol)
    if target is None:
        raise UnmappableEmbeddingError(
            f"embedding target {target_symbol!r} has no collection; "
            f"expected one of {sorted(TARGETS)}"
        )
    vector = list(record["vector"])
    if not vector:
        raise UnmappableEmbeddingError("the embedding vector is empty")
    if not all(math.isfinite(value) for value in vector):
        raise UnmappableEmbeddingError("the embedding vector holds NaN or infinite values")
    item = record["item"]
    payload: dict[str, Any] = {
        "media_id": record["media_id"],
        "tenant_id": envelope["tenant_id"],
        "owner_id": envelope["owner_id"],
        "camera_id": item["camera_id"],
        "page_number": item["page_number"],
        "frame_index": item["frame_index"],
        "observed_at_ms": _millis(envelope["occurred_at"]),
        "model_name": record["model"]["name"],
        "model_version": record["model"]["version"],
        "event_id": envelope["event_id"],
        "target_index": record["target_index"],
    }
    if target == "objects":
        payload["class_name"] = record["class_name"]
        payload["box"] = _box(record["box"])
    if target == "texts":
        payload["text"] = record["text"]
        payload["box"] = _box(record["box"])
    return PointSpec(
        target=target,
        point_id=point_id(envelope["event_id"], record["target_index"]),
        vector=vector,
        payload=payload,
    )
