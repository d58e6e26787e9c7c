"""The scene stage describes detections and, when enabled, stores the spoken sentences."""

from __future__ import annotations

import uuid
from typing import Any

import fastavro
import pytest

from processors.spatial.speech import espeak_version
from processors.spatial.stage import GENERATOR, describe_scene
from processors.stage import StageContext
from tests.factories import sample_event
from tests.unit.processors.test_speech import wav_duration_s
from visionlog.blobstore import ORIGINALS
from visionlog.schemas import get_catalog

FOCAL = 1000.0


def _objects_detected(media_id: str) -> dict[str, Any]:
    item = {
        "media_id": media_id, "page_number": None, "frame_index": 3, "frame_timestamp_ms": 3000,
        "camera_id": "gate-1",
        "image": {"bucket": ORIGINALS, "key": f"{media_id}/f3.jpg", "sha256": "0" * 64,
                  "size_bytes": 1, "content_type": "image/jpeg"},
    }  # fmt: skip

    def detection(
        name: str, box: tuple[float, float, float, float], score: float
    ) -> dict[str, Any]:
        x0, y0, x1, y1 = box
        box_record = {"x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1}
        return {"class_id": 0, "class_name": name, "confidence": score, "track_id": None,
                "distance_m": None, "box": box_record}  # fmt: skip

    return sample_event(
        get_catalog(), "ObjectsDetected", media_id=media_id, item=item,
        image_width=1280, image_height=720,
        detections=[
            detection("person", (60, 367, 180, 650), 0.9),  # 283 px tall: 6 m at FOCAL
            detection("person", (200, 372, 320, 650), 0.88),
            detection("bus", (500, 120, 1250, 660), 0.8),
        ],
    )  # fmt: skip


def _with_speech(ctx: StageContext, enabled: bool) -> StageContext:
    """The session's context with speech on or off and the focal length the boxes assume."""
    processors = ctx.settings.processors.model_copy(
        update={"speech_enabled": enabled, "focal_length_px": FOCAL}
    )
    settings = ctx.settings.model_copy(update={"processors": processors})
    return StageContext(settings=settings, blobs=ctx.blobs)


def test_describe_scene_stage_without_speech(ctx: StageContext) -> None:
    ctx = _with_speech(ctx, enabled=False)
    event = _objects_detected(str(uuid.uuid4()))
    outgoing = describe_scene(event, ctx)
    assert [out.event_type for out in outgoing] == ["SceneDescribed"]
    record = outgoing[0].record
    fastavro.validation.validate(
        record, get_catalog().event("SceneDescribed").parsed, raise_errors=True
    )
    assert record["sentences"]["en"] == "Two people stand left of a bus, about 6 m away."
    assert (
        record["sentences"]["de"] == "Zwei Personen stehen links von einem Bus, etwa 6 m entfernt."
    )
    assert record["focal_length_px"] == FOCAL
    assert record["models"][0] == event["model"]
    assert record["models"][1]["name"] == "spatial-rules"
    assert record["objects"][0]["distance_m"] == pytest.approx(FOCAL * 1.7 / 283)
    assert record["objects"][2]["class_name"] == "bus"
    assert {"subject_index": 0, "predicate": "LEFT_OF", "object_index": 2} in record["relations"]
    assert record["envelope"]["causation_id"] == event["envelope"]["event_id"]
    again = describe_scene(event, ctx)[0].record["envelope"]
    assert again["event_id"] == record["envelope"]["event_id"]


def test_describe_scene_stage_with_speech(ctx: StageContext) -> None:
    ctx = _with_speech(ctx, enabled=True)
    media_id = str(uuid.uuid4())
    event = _objects_detected(media_id)
    outgoing = describe_scene(event, ctx)
    assert [out.event_type for out in outgoing] == [
        "SceneDescribed",
        "OutputGenerated",
        "OutputGenerated",
    ]
    scene_id = outgoing[0].record["envelope"]["event_id"]
    keys = []
    for out in outgoing[1:]:
        record = out.record
        fastavro.validation.validate(
            record, get_catalog().event("OutputGenerated").parsed, raise_errors=True
        )
        assert record["kind"] == "SPEECH_AUDIO"
        assert record["source_event_ids"] == [event["envelope"]["event_id"], scene_id]
        assert record["generator"] == f"{GENERATOR} espeak-ng/{espeak_version()}"
        assert wav_duration_s(ctx.blobs.get_bytes(record["output"])) > 1.0
        keys.append(record["output"]["key"])
    assert keys == [
        f"{media_id}/speech/frame-00000003-de.wav",
        f"{media_id}/speech/frame-00000003-en.wav",
    ]
    ids = {out.record["envelope"]["event_id"] for out in outgoing}
    assert len(ids) == 3
