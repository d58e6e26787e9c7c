"""The pure EmbeddingComputed -> Qdrant point mapping."""

from __future__ import annotations

import uuid

import pytest

from projections.qdrant.points import (
    UnmappableEmbeddingError,
    alias_name,
    generation_collection,
    point_for_embedding,
    point_id,
)
from tests.factories import sample_event
from tests.processor_factories import MODEL, bounding_box, item, new_media_id
from visionlog.contracts import EmbeddingComputed, typed_record
from visionlog.schemas import get_catalog


def embedding(
    media_id: str,
    target: str,
    *,
    target_index: int | None = None,
    vector: list[float] | None = None,
    class_name: str | None = None,
    text: str | None = None,
    frame: int | None = None,
) -> EmbeddingComputed:
    ref = item(media_id, frame=frame)
    ref["camera_id"] = "gate" if frame is not None else None
    record = sample_event(
        get_catalog(),
        "EmbeddingComputed",
        media_id=media_id,
        item=ref,
        target=target,
        target_index=target_index,
        box=None if target == "IMAGE" else bounding_box((1, 2, 30, 40)),
        class_name=class_name,
        text=text,
        vector=vector if vector is not None else [0.1, 0.2, 0.3],
        normalized=False,
        model=MODEL,
    )
    return typed_record(EmbeddingComputed, "EmbeddingComputed", record, check=True)


def test_names_of_aliases_and_generation_collections() -> None:
    assert alias_name("visionlog", "images") == "visionlog_images"
    assert generation_collection("visionlog", "texts", "g2") == "visionlog_texts_g2"


def test_point_ids_are_deterministic_uuids_per_event_and_index() -> None:
    event_id = str(uuid.uuid4())
    assert point_id(event_id, 0) == point_id(event_id, 0)
    assert point_id(event_id, 0) != point_id(event_id, 1)
    assert point_id(event_id, None) != point_id(event_id, 0)
    assert point_id(event_id, 0) != point_id(str(uuid.uuid4()), 0)
    assert uuid.UUID(point_id(event_id, 3)).version == 5


def test_object_crop_point_carries_class_and_box() -> None:
    media_id = new_media_id()
    record = embedding(media_id, "OBJECT_CROP", target_index=2, class_name="person", frame=5)
    point = point_for_embedding(record)
    assert point.target == "objects"
    assert point.point_id == point_id(record["envelope"]["event_id"], 2)
    assert point.vector == pytest.approx([0.1, 0.2, 0.3])
    payload = point.payload
    assert payload["media_id"] == media_id
    assert payload["tenant_id"] == "tests"
    assert payload["camera_id"] == "gate"
    assert payload["frame_index"] == 5
    assert payload["page_number"] is None
    assert payload["class_name"] == "person"
    assert payload["box"] == {"x_min": 1.0, "y_min": 2.0, "x_max": 30.0, "y_max": 40.0}
    assert payload["model_name"] == MODEL["name"]
    assert payload["model_version"] == MODEL["version"]
    assert payload["event_id"] == record["envelope"]["event_id"]
    occurred = record["envelope"]["occurred_at"]
    assert payload["observed_at_ms"] == int(occurred.timestamp() * 1000)
    assert "text" not in payload


def test_text_and_image_targets() -> None:
    media_id = new_media_id()
    text = point_for_embedding(embedding(media_id, "TEXT_BLOCK", target_index=0, text="Invoice"))
    assert text.target == "texts"
    assert text.payload["text"] == "Invoice"
    assert "class_name" not in text.payload
    image = point_for_embedding(embedding(media_id, "IMAGE"))
    assert image.target == "images"
    assert "box" not in image.payload and "text" not in image.payload


@pytest.mark.parametrize(
    ("target", "vector", "message"),
    [
        ("OTHER", [0.1], "target 'OTHER' has no collection"),
        ("IMAGE", [], "vector is empty"),
        ("IMAGE", [0.1, float("nan")], "NaN or infinite"),
    ],
)
def test_unstorable_embeddings_are_rejected(target: str, vector: list[float], message: str) -> None:
    record = embedding(new_media_id(), target, vector=vector)
    with pytest.raises(UnmappableEmbeddingError, match=message):
        point_for_embedding(record)


def test_new_collections_get_the_configured_hnsw_graph() -> None:
    from projections.qdrant.projection import hnsw_config
    from visionlog.settings import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (hnsw_config(settings).m, hnsw_config(settings).ef_construct) == (16, 100)
    tuned = settings.model_copy(
        update={
            "qdrant": settings.qdrant.model_copy(update={"hnsw_m": 24, "hnsw_ef_construct": 64})
        }
    )
    assert (hnsw_config(tuned).m, hnsw_config(tuned).ef_construct) == (24, 64)
