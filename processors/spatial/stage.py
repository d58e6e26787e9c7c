"""Stage: describe the scene of an ObjectsDetected result, optionally as speech."""

from __future__ import annotations

from typing import Any

from processors.spatial.geometry import PlacedObject
from processors.spatial.scene import Scene, describe
from processors.spatial.speech import espeak_version, speak_sentences
from processors.stage import (
    PROCESSORS_VERSION,
    Outgoing,
    StageContext,
    derived_envelope,
    item_label,
)
from visionlog.blobstore import EXPORTS

STAGE_NAME = "spatial"
GENERATOR = f"processors.{STAGE_NAME}/{PROCESSORS_VERSION}"
# The class heights and relation rules are versioned with the processors.
SPATIAL_RULES = {
    "name": "spatial-rules",
    "version": PROCESSORS_VERSION,
    "source": "visionlog:processors.spatial",
    "licence": "Apache-2.0",
    "runtime": None,
}


def speech_key(item: dict[str, Any], language: str) -> str:
    """Key in the exports bucket: {media_id}/speech/{item}-{lang}.wav."""
    return f"{item['media_id']}/speech/{item_label(item)}-{language}.wav"


def _placed(detection: dict[str, Any]) -> PlacedObject:
    box = detection["box"]
    return PlacedObject(
        class_name=str(detection["class_name"]),
        x_min=float(box["x_min"]),
        y_min=float(box["y_min"]),
        x_max=float(box["x_max"]),
        y_max=float(box["y_max"]),
        confidence=float(detection["confidence"]),
        distance_m=detection.get("distance_m"),
    )


def _scene_record(event: dict[str, Any], scene: Scene, focal: float | None) -> dict[str, Any]:
    return {
        "envelope": derived_envelope(event, "SceneDescribed", STAGE_NAME, focal),
        "media_id": event["media_id"],
        "item": event["item"],
        "objects": [
            {
                "class_name": item.class_name,
                "box": {
                    "x_min": item.x_min,
                    "y_min": item.y_min,
                    "x_max": item.x_max,
                    "y_max": item.y_max,
                },
                "distance_m": item.distance_m,
                "horizontal_position": position,
            }
            for item, position in zip(scene.objects, scene.positions, strict=True)
        ],
        "relations": [
            {
                "subject_index": relation.subject,
                "predicate": relation.predicate,
                "object_index": relation.object,
            }
            for relation in scene.relations
        ],
        "sentences": dict(scene.sentences),
        "focal_length_px": focal,
        "models": [event["model"], SPATIAL_RULES],
    }


def describe_scene(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """ObjectsDetected -> SceneDescribed, plus one SPEECH_AUDIO output per language when
    `processors.speech_enabled` is set (stored at exports/{media_id}/speech/{item}-{lang}.wav).
    """
    if event["envelope"]["event_type"] != "ObjectsDetected":
        return []
    focal = ctx.settings.processors.focal_length_px or None
    scene = describe(
        [_placed(detection) for detection in event["detections"]],
        float(event["image_width"]),
        float(event["image_height"]),
        focal,
    )
    record = _scene_record(event, scene, focal)
    media_id = str(event["media_id"])
    outgoing = [Outgoing("SceneDescribed", record, media_id)]
    enabled = ctx.settings.processors.speech_enabled
    for language, audio in speak_sentences(scene.sentences, enabled).items():
        stored = ctx.blobs.put_bytes(
            EXPORTS, speech_key(event["item"], language), audio, "audio/wav"
        )
        output = {
            "envelope": derived_envelope(
                event, "OutputGenerated", STAGE_NAME, "SPEECH_AUDIO", language, focal
            ),
            "media_id": media_id,
            "item": event["item"],
            "kind": "SPEECH_AUDIO",
            "output": dict(stored),
            "source_event_ids": [
                event["envelope"]["event_id"],
                record["envelope"]["event_id"],
            ],
            "generator": f"{GENERATOR} espeak-ng/{espeak_version()}",
        }
        outgoing.append(Outgoing("OutputGenerated", output, media_id))
    return outgoing
