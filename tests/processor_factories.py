"""Schema-valid result events for the output and embedding tests (no tests here)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro.validation

from tests.factories import sample_event
from visionlog.schemas import get_catalog

Box = tuple[float, float, float, float]

MODEL = {
    "name": "test-model",
    "version": "test==1",
    "source": "tests",
    "licence": None,
    "runtime": None,
}


def assert_valid(event_type: str, record: dict[str, Any]) -> None:
    """Raises when `record` does not match the event's Avro contract."""
    schema = get_catalog().event(event_type).parsed
    fastavro.validation.validate(record, schema, raise_errors=True)


def blob(key: str = "img.jpg", sha256: str = "0" * 64) -> dict[str, Any]:
    return {
        "bucket": "media-originals",
        "key": key,
        "sha256": sha256,
        "size_bytes": 1,
        "content_type": "image/jpeg",
    }


def item(
    media_id: str,
    page: int | None = None,
    frame: int | None = None,
    image: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "media_id": media_id,
        "page_number": page,
        "frame_index": frame,
        "frame_timestamp_ms": None if frame is None else frame * 40,
        "camera_id": None,
        "image": image or blob(),
    }


def polygon(box: Box) -> list[dict[str, float]]:
    x_min, y_min, x_max, y_max = box
    return [
        {"x": x_min, "y": y_min},
        {"x": x_max, "y": y_min},
        {"x": x_max, "y": y_max},
        {"x": x_min, "y": y_max},
    ]


def bounding_box(box: Box) -> dict[str, float]:
    return {"x_min": box[0], "y_min": box[1], "x_max": box[2], "y_max": box[3]}


def _finish(record: dict[str, Any], seconds: int) -> dict[str, Any]:
    # A fixed, distinct occurred_at per event makes "latest wins" testable.
    record["envelope"]["occurred_at"] = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
        seconds=seconds
    )
    assert_valid(record["envelope"]["event_type"], record)
    return record


def text_event(
    media_id: str,
    ref: dict[str, Any],
    blocks: list[list[list[tuple[str, Box]]]],
    size: tuple[int, int] = (800, 600),
    seconds: int = 0,
    orientation: int = 0,
) -> dict[str, Any]:
    """TextRecognized with blocks of lines of (word, box); reading order as given."""
    block_records: list[dict[str, Any]] = []
    for order, lines in enumerate(blocks):
        line_records: list[dict[str, Any]] = []
        for words in lines:
            boxes = [box for _, box in words]
            line_box = (
                min(b[0] for b in boxes),
                min(b[1] for b in boxes),
                max(b[2] for b in boxes),
                max(b[3] for b in boxes),
            )
            line_records.append(
                {
                    "polygon": polygon(line_box),
                    "text": " ".join(word for word, _ in words),
                    "confidence": 0.9,
                    "words": [
                        {"text": word, "polygon": polygon(box), "confidence": 0.9}
                        for word, box in words
                    ],
                }
            )
        all_boxes = [polygon_point for line in line_records for polygon_point in line["polygon"]]
        block_records.append(
            {
                "reading_order": order,
                "polygon": all_boxes,
                "text": "\n".join(line["text"] for line in line_records),
                "confidence": 0.9,
                "language": "en",
                "lines": line_records,
            }
        )
    record = sample_event(
        get_catalog(),
        "TextRecognized",
        media_id=media_id,
        item=ref,
        image_width=size[0],
        image_height=size[1],
        blocks=block_records,
        full_text="\n\n".join(str(block["text"]) for block in block_records),
        languages=["en", "de"],
        orientation_degrees=orientation,
        skew_degrees=0.0,
        preprocessing=[],
        models=[MODEL],
        inference_ms=1.0,
    )
    return _finish(record, seconds)


def detections_event(
    media_id: str,
    ref: dict[str, Any],
    detections: list[tuple[str, float, Box, float | None]],
    size: tuple[int, int] = (800, 600),
    seconds: int = 0,
) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "ObjectsDetected",
        media_id=media_id,
        item=ref,
        image_width=size[0],
        image_height=size[1],
        detections=[
            {
                "class_id": index,
                "class_name": name,
                "confidence": confidence,
                "box": bounding_box(box),
                "track_id": None,
                "distance_m": distance,
            }
            for index, (name, confidence, box, distance) in enumerate(detections)
        ],
        model=MODEL,
        score_threshold=0.3,
        inference_ms=1.0,
    )
    return _finish(record, seconds)


def codes_event(
    media_id: str, ref: dict[str, Any], codes: list[tuple[str, str, Box]], seconds: int = 0
) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "CodesDecoded",
        media_id=media_id,
        item=ref,
        codes=[
            {"symbology": symbology, "text": text, "polygon": polygon(box), "decoder": "zxing/2"}
            for symbology, text, box in codes
        ],
        decoders=["zxing/2"],
    )
    return _finish(record, seconds)


def scene_event(
    media_id: str, ref: dict[str, Any], sentences: dict[str, str], seconds: int = 0
) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "SceneDescribed",
        media_id=media_id,
        item=ref,
        objects=[],
        relations=[],
        sentences=sentences,
        focal_length_px=None,
    )
    return _finish(record, seconds)


def redaction_event(media_id: str, ref: dict[str, Any], seconds: int = 0) -> dict[str, Any]:
    record = sample_event(
        get_catalog(),
        "MediaRedacted",
        media_id=media_id,
        item=ref,
        redacted_image=blob("redacted.jpg"),
        method="BLUR",
        regions=[
            {"kind": "FACE", "box": bounding_box((1, 1, 5, 5)), "confidence": 0.9},
            {"kind": "FACE", "box": bounding_box((7, 7, 9, 9)), "confidence": 0.8},
            {"kind": "LICENCE_PLATE", "box": bounding_box((2, 2, 3, 3)), "confidence": 0.7},
        ],
        redacted_text=None,
        pii_counts={"email": 2},
        models=[MODEL],
    )
    return _finish(record, seconds)


def track_event(
    media_id: str,
    frame: int,
    tracks: list[tuple[int, str, str, int, int]],
    seconds: int = 0,
) -> dict[str, Any]:
    """TrackUpdated for `frame` with (track_id, class, state, first_frame, hits) rows."""
    record = sample_event(
        get_catalog(),
        "TrackUpdated",
        media_id=media_id,
        item=item(media_id, frame=frame),
        tracks=[
            {
                "track_id": track_id,
                "class_name": class_name,
                "box": bounding_box((1, 2, 3, 4)),
                "confidence": 0.8,
                "state": state,
                "first_frame_index": first,
                "hits": hits,
            }
            for track_id, class_name, state, first, hits in tracks
        ],
        tracker="test/1",
    )
    return _finish(record, seconds)


def new_media_id() -> str:
    return str(uuid.uuid4())
