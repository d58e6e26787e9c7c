"""Events for seeding the read models through the real projections (no tests here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from qdrant_client import QdrantClient

from projections.mongo.projection import MongoProjection
from projections.postgres.projection import PostgresProjection
from projections.qdrant.projection import QdrantProjection
from projections.runtime import ProjectedEvent
from tests.factories import sample_event
from tests.processor_factories import MODEL, assert_valid, bounding_box, item
from tests.projection_factories import projected
from visionlog.blobstore import BlobRef
from visionlog.schemas import get_catalog
from visionlog.settings import Settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TENANT = "tests"


def stamp(record: dict[str, Any], owner_id: str, seconds: int) -> dict[str, Any]:
    record["envelope"]["owner_id"] = owner_id
    record["envelope"]["tenant_id"] = TENANT
    record["envelope"]["occurred_at"] = T0 + timedelta(seconds=seconds)
    assert_valid(record["envelope"]["event_type"], record)
    return record


def media_uploaded(
    media_id: str,
    owner_id: str,
    original: BlobRef | dict[str, Any],
    *,
    seconds: int = 0,
    kind: str = "IMAGE",
    filename: str = "scan.png",
) -> ProjectedEvent:
    record = sample_event(
        get_catalog(),
        "MediaUploaded",
        media_id=media_id,
        media_kind=kind,
        original=dict(original),
        original_filename=filename,
        source="HTTP",
        source_uri=None,
        profile="full",
        duplicate_of=None,
        width=64,
        height=48,
        page_count=None,
        duration_ms=None,
        fps=None,
        labels={"case": "api"},
    )
    return projected("MediaUploaded", stamp(record, owner_id, seconds))


def with_model(record: dict[str, Any], version: str) -> dict[str, Any]:
    model = {**MODEL, "version": version}
    if "models" in record:
        record["models"] = [model]
    if "model" in record:
        record["model"] = model
    return record


def item_ref(
    media_id: str,
    *,
    page: int | None = None,
    frame: int | None = None,
    camera_id: str | None = None,
) -> dict[str, Any]:
    """The ItemRef of the whole image, a page or a (camera's) frame."""
    ref = item(media_id, page=page, frame=frame)
    ref["camera_id"] = camera_id
    return ref


def text_recognized(
    media_id: str,
    owner_id: str,
    text: str,
    *,
    version: str = "ocr==1",
    seconds: int = 10,
    ref: dict[str, Any] | None = None,
) -> ProjectedEvent:
    words = text.split()
    block = {
        "reading_order": 0,
        "polygon": [{"x": 0.0, "y": 0.0}, {"x": 10.0, "y": 10.0}],
        "text": text,
        "confidence": 0.9,
        "language": "en",
        "lines": [
            {
                "polygon": [{"x": 0.0, "y": 0.0}, {"x": 10.0, "y": 10.0}],
                "text": text,
                "confidence": 0.9,
                "words": [
                    {
                        "text": word,
                        "polygon": [{"x": float(index), "y": 0.0}, {"x": index + 1.0, "y": 5.0}],
                        "confidence": 0.9,
                    }
                    for index, word in enumerate(words)
                ],
            }
        ],
    }
    record = sample_event(
        get_catalog(),
        "TextRecognized",
        media_id=media_id,
        item=ref or item(media_id),
        image_width=64,
        image_height=48,
        blocks=[block],
        full_text=text,
        languages=["en", "de"],
        orientation_degrees=0,
        skew_degrees=0.0,
        preprocessing=[],
        models=[MODEL],
        inference_ms=1.0,
    )
    return projected("TextRecognized", stamp(with_model(record, version), owner_id, seconds))


def objects_detected(
    media_id: str,
    owner_id: str,
    detections: Sequence[tuple[str, float]],
    *,
    camera_id: str | None = None,
    version: str = "det==1",
    seconds: int = 20,
    ref: dict[str, Any] | None = None,
) -> ProjectedEvent:
    if ref is None:
        ref = item_ref(media_id, camera_id=camera_id)
    record = sample_event(
        get_catalog(),
        "ObjectsDetected",
        media_id=media_id,
        item=ref,
        image_width=64,
        image_height=48,
        detections=[
            {
                "class_id": index,
                "class_name": name,
                "confidence": confidence,
                "box": bounding_box((1.0, 2.0, 30.0, 40.0)),
                "track_id": None,
                "distance_m": None,
            }
            for index, (name, confidence) in enumerate(detections)
        ],
        model=MODEL,
        score_threshold=0.3,
        inference_ms=1.0,
    )
    return projected("ObjectsDetected", stamp(with_model(record, version), owner_id, seconds))


def output_generated(
    media_id: str,
    owner_id: str,
    output: BlobRef | dict[str, Any],
    *,
    seconds: int = 30,
    kind: str = "JSON",
    ref: dict[str, Any] | None = None,
) -> ProjectedEvent:
    record = sample_event(
        get_catalog(),
        "OutputGenerated",
        media_id=media_id,
        item=ref,
        kind=kind,
        output=dict(output),
        source_event_ids=["e1"],
        generator="visionlog.outputs/0.1.0",
    )
    return projected("OutputGenerated", stamp(record, owner_id, seconds))


def media_redacted(
    media_id: str,
    owner_id: str,
    redacted: BlobRef | dict[str, Any],
    *,
    ref: dict[str, Any] | None = None,
    seconds: int = 35,
) -> ProjectedEvent:
    """MediaRedacted: the anonymised copy of an image, page or frame."""
    record = sample_event(
        get_catalog(),
        "MediaRedacted",
        media_id=media_id,
        item=ref or item(media_id),
        redacted_image=dict(redacted),
        method="BLUR",
        regions=[{"kind": "FACE", "box": bounding_box((1, 1, 5, 5)), "confidence": 0.9}],
        redacted_text=None,
        pii_counts={"email": 1},
        models=[MODEL],
    )
    return projected("MediaRedacted", stamp(record, owner_id, seconds))


def embedding(
    media_id: str,
    owner_id: str,
    target: str,
    vector: Sequence[float],
    *,
    text: str | None = None,
    seconds: int = 40,
) -> ProjectedEvent:
    record = sample_event(
        get_catalog(),
        "EmbeddingComputed",
        media_id=media_id,
        item=item(media_id),
        target=target,
        target_index=0 if target == "TEXT_BLOCK" else None,
        box=None if target == "IMAGE" else bounding_box((1, 2, 30, 40)),
        class_name=None,
        text=text,
        vector=[float(value) for value in vector],
        normalized=True,
        model=MODEL,
    )
    return projected("EmbeddingComputed", stamp(record, owner_id, seconds))


def project(settings: Settings, qdrant: QdrantClient, events: Sequence[ProjectedEvent]) -> None:
    """Applies `events` with every real projection that consumes them."""
    postgres = PostgresProjection(settings)
    try:
        postgres.apply([e for e in events if e.event_type in postgres.event_types], {})
    finally:
        postgres.close()
    mongo = MongoProjection(settings)
    try:
        mongo.apply([e for e in events if e.event_type in mongo.event_types], {})
    finally:
        mongo.close()
    vectors = QdrantProjection(settings, qdrant)
    vectors.apply([e for e in events if e.event_type in vectors.event_types], {})
