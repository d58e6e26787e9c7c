"""Which stages run in which worker kind, and which events feed them.

Workers are grouped by what they need: the document worker holds the OCR models, the
vision worker the detectors, the outputs worker only renderers. Each kind is one Kafka
consumer group, so kinds scale independently and a slow OCR never holds back detection.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from processors.stage import Stage


@dataclass(frozen=True)
class StageBinding:
    name: str
    # "module:function" of a Stage; imported when a worker of this kind starts.
    target: str
    consumes: tuple[str, ...]

    def load(self) -> Stage:
        module_name, _, function_name = self.target.partition(":")
        stage: Stage = getattr(importlib.import_module(module_name), function_name)
        return stage


WORKER_KINDS: dict[str, tuple[StageBinding, ...]] = {
    "document": (
        StageBinding(
            "ocr", "processors.ocr.stage:recognise_text", ("MediaUploaded", "PageRendered")
        ),
        StageBinding("pii", "processors.anonymise.stage:mask_text", ("TextRecognized",)),
        StageBinding("text-embedding", "processors.embeddings.stage:embed", ("TextRecognized",)),
    ),
    "vision": (
        StageBinding(
            "detection",
            "processors.detection.stage:detect_objects",
            ("MediaUploaded", "FrameCaptured"),
        ),
        StageBinding(
            "codes",
            "processors.codes.stage:decode_codes",
            ("MediaUploaded", "PageRendered", "FrameCaptured"),
        ),
        StageBinding(
            "anonymise",
            "processors.anonymise.stage:redact_media",
            ("MediaUploaded", "FrameCaptured"),
        ),
        StageBinding(
            "image-embedding",
            "processors.embeddings.stage:embed",
            ("MediaUploaded", "FrameCaptured", "ObjectsDetected"),
        ),
        StageBinding("tracking", "processors.tracking.stage:update_tracks", ("ObjectsDetected",)),
        StageBinding("scene", "processors.spatial.stage:describe_scene", ("ObjectsDetected",)),
    ),
    "outputs": (
        StageBinding(
            "outputs",
            "processors.outputs.stage:render_outputs",
            ("TextRecognized", "ObjectsDetected", "CodesDecoded"),
        ),
        StageBinding(
            "combined-report",
            "processors.combined:update_combined_report",
            (
                "TextRecognized",
                "ObjectsDetected",
                "CodesDecoded",
                "SceneDescribed",
                "MediaRedacted",
                "TrackUpdated",
            ),
        ),
    ),
}


def bindings_for(kind: str) -> tuple[StageBinding, ...]:
    if kind == "all":
        return tuple(binding for bindings in WORKER_KINDS.values() for binding in bindings)
    if kind not in WORKER_KINDS:
        raise ValueError(f"unknown worker kind {kind!r}; choose one of {sorted(WORKER_KINDS)}")
    return WORKER_KINDS[kind]


@cache
def consumed_event_types(kind: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for binding in bindings_for(kind):
        for event_type in binding.consumes:
            seen[event_type] = None
    return tuple(seen)
