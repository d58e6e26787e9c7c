"""The OCR stage: which events it reads, and TextRecognized records that match the contract."""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import cv2
import fastavro
import numpy as np
import pytest

from processors.engines import Engines
from processors.ocr.stage import recognise_text, text_recognized
from processors.ocr.synthetic import render_lines, turn
from processors.stage import PermanentStageError, StageContext, image_key
from tests.factories import sample_event
from visionlog.blobstore import BlobStore
from visionlog.schemas import get_catalog
from visionlog.settings import get_settings

LINES = ["Lieferschein Nr. 4711 für Müller", "Delivery note for the warehouse"]


def _blob(image: np.ndarray) -> dict[str, Any]:
    data = cv2.imencode(".png", image)[1].tobytes()
    return {
        "bucket": "pages",
        "key": "test/page-1.png",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "content_type": "image/png",
    }


@cache
def _engines() -> Engines:
    # One set of engines for the module, as one worker has: the OCR models compile once.
    return Engines(get_settings())


def _context(image: np.ndarray, blob: dict[str, Any]) -> StageContext:
    settings = get_settings()
    ctx = StageContext(
        settings=settings,
        blobs=BlobStore.from_settings(settings.minio),
        engines_factory=_engines,
    )
    # The decoded image is already in the context's cache, as after an earlier stage on the
    # same worker: the stage reads it from there and never needs the blob store.
    ctx.images.put(image_key(blob), image)
    return ctx


@pytest.fixture(scope="module")
def page_image() -> np.ndarray:
    # Lines far apart: two blocks, one per language.
    return turn(render_lines(LINES, width=560, font_size=22, line_gap=2.5).image, 180)


@pytest.fixture(scope="module")
def page_event(page_image: np.ndarray) -> dict[str, Any]:
    return sample_event(get_catalog(), "PageRendered", page_number=3, image=_blob(page_image))


@pytest.fixture(scope="module")
def outgoing(page_event: dict[str, Any], page_image: np.ndarray) -> list[Any]:
    return recognise_text(page_event, _context(page_image, page_event["image"]))


def test_page_yields_one_valid_text_recognized(outgoing: list[Any], page_event: Any) -> None:
    assert len(outgoing) == 1
    event = outgoing[0]
    assert event.event_type == "TextRecognized"
    assert event.key == page_event["media_id"]
    schema = get_catalog().event("TextRecognized").parsed
    assert fastavro.validation.validate(event.record, schema, raise_errors=True)


def test_record_carries_text_item_models_and_lineage(outgoing: list[Any], page_event: Any) -> None:
    record = outgoing[0].record
    assert record["full_text"] == "\n\n".join(LINES)
    assert record["orientation_degrees"] == 180
    assert record["preprocessing"] == ["orientation"]
    assert [block["language"] for block in record["blocks"]] == ["de", "en"]
    assert record["languages"] == ["de", "en"]
    assert record["item"]["page_number"] == 3
    assert record["item"]["image"] == page_event["image"]
    assert [model["name"] for model in record["models"]] == [
        "pp-ocrv6-det",
        "pp-ocrv6-rec",
        "pp-lcnet-textline-ori",
    ]
    envelope = record["envelope"]
    assert envelope["causation_id"] == page_event["envelope"]["event_id"]
    assert envelope["producer"].startswith("processors.ocr/")
    assert record["inference_ms"] > 0
    words = [
        word["text"]
        for block in record["blocks"]
        for line in block["lines"]
        for word in line["words"]
    ]
    assert "Müller" in words and "warehouse" in words


def test_event_id_is_deterministic(
    page_event: Any, page_image: np.ndarray, outgoing: list[Any]
) -> None:
    again = recognise_text(page_event, _context(page_image, page_event["image"]))
    assert again[0].record["envelope"]["event_id"] == outgoing[0].record["envelope"]["event_id"]
    other_page = {**page_event, "page_number": 4}
    other = recognise_text(other_page, _context(page_image, page_event["image"]))
    assert other[0].record["envelope"]["event_id"] != outgoing[0].record["envelope"]["event_id"]


@pytest.mark.parametrize(
    ("kind", "profile", "expected"),
    [
        ("IMAGE", "ocr", 1),
        ("IMAGE", "full", 1),
        ("IMAGE", "vision", 0),
        ("PDF", "full", 0),
        ("VIDEO", "ocr", 0),
    ],
)
def test_uploads_respect_kind_and_profile(
    page_image: np.ndarray, kind: str, profile: str, expected: int
) -> None:
    blob = _blob(page_image)
    event = sample_event(
        get_catalog(), "MediaUploaded", media_kind=kind, profile=profile, original=blob
    )
    outgoing = recognise_text(event, _context(page_image, blob))
    assert len(outgoing) == expected
    if expected:
        assert outgoing[0].record["item"]["page_number"] is None
        assert outgoing[0].record["item"]["image"] == blob


def test_other_events_are_a_permanent_error(page_image: np.ndarray) -> None:
    event = sample_event(get_catalog(), "ObjectsDetected")
    with pytest.raises(PermanentStageError, match="ObjectsDetected"):
        recognise_text(event, _context(page_image, _blob(page_image)))


def test_unreadable_pixels_are_a_permanent_error(page_event: Any) -> None:
    pipeline = _engines().ocr()
    with pytest.raises(PermanentStageError, match="non-empty"):
        text_recognized(page_event, np.zeros((0, 5, 3), np.uint8), pipeline, "page-3")
