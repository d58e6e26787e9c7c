"""Which stages run in which worker kind, which events feed them, and at what priority.

Workers are grouped by latency class and by what they hold:

- `live` analyses camera frames against a deadline (detection, then tracking), and detects
  objects in uploaded images (someone is waiting for those). It never waits behind
  documents or heavy stages: it runs in its own process at normal priority, and per camera
  it takes the newest frame whenever it is free, skipping (and counting) frames that were
  superseded or became stale; camera frames go ahead of uploads.
- `vision` analyses uploads and recorded video frames (detection and tracking of video
  frames, codes, anonymisation, embeddings, scenes), plus the heavy stages a camera's
  profile asks for (anonymisation), which take a camera's newest frame whenever they are
  free.
- `document` renders documents and videos into pages and frames, reads text, masks
  personal data and embeds text.
- `outputs` renders exports, keeps each result for the item's report, and renders the
  report once the item is complete.
- `completion` follows the work reports and says when each item is done.

Batch kinds run at a lower CPU priority (`nice`), so on a busy machine live frames are
served first and documents queue in Kafka, not in memory.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

from processors.stage import Stage


class Items(StrEnum):
    """Which inputs of its event types a binding takes, by where they come from."""

    ALL = "all"
    # Frames of live cameras (and results derived from them).
    LIVE = "live"
    # Everything else: uploads, pages, video frames and their results.
    RECORDED = "recorded"
    # What someone waits for: live camera frames, and uploads (a person at the other end);
    # not the frames of a recorded video, which queue as batch work.
    INTERACTIVE = "interactive"


@dataclass(frozen=True)
class StageBinding:
    name: str
    # "module:function" of a Stage; imported when a worker of this kind starts.
    target: str
    consumes: tuple[str, ...]
    items: Items = Items.ALL
    # Stateful stages of the same worker that rework this stage's outputs in key order
    # before they are published (detection -> tracking fills the track ids).
    then: tuple[str, ...] = ()

    def load(self) -> Stage:
        module_name, _, function_name = self.target.partition(":")
        stage: Stage = getattr(importlib.import_module(module_name), function_name)
        return stage

    def takes(self, event_type: str, live: bool) -> bool:
        if event_type not in self.consumes:
            return False
        if self.items is Items.LIVE:
            return live
        if self.items is Items.RECORDED:
            return not live
        if self.items is Items.INTERACTIVE:
            return live or event_type != "FrameCaptured"
        return True


@dataclass(frozen=True)
class WorkerKind:
    name: str
    stages: tuple[StageBinding, ...]
    # Stateful transforms named by the stages' `then`, with the changelog topic of their state.
    transforms: tuple[StageBinding, ...] = ()
    state_topic: str | None = None
    # CPU priority of the worker process: 0 for latency-critical kinds, higher for batch.
    nice: int = 10
    doc: str = ""
    extra_inputs: tuple[str, ...] = field(default=())

    def takes(self, event_type: str, live: bool) -> bool:
        return any(binding.takes(event_type, live) for binding in self.stages)

    def transform(self, name: str) -> StageBinding:
        for binding in self.transforms:
            if binding.name == name:
                return binding
        raise KeyError(f"worker {self.name} has no transform {name!r}")


TRACKING = StageBinding("tracking", "processors.tracking.stage:update_tracks", ("ObjectsDetected",))
_RESULTS = (
    "TextRecognized",
    "ObjectsDetected",
    "CodesDecoded",
    "SceneDescribed",
    "MediaRedacted",
    "TrackUpdated",
)

WORKER_KINDS: dict[str, WorkerKind] = {
    kind.name: kind
    for kind in (
        WorkerKind(
            "live",
            (
                StageBinding(
                    "detection",
                    "processors.detection.stage:detect_objects",
                    ("MediaUploaded", "FrameCaptured"),
                    Items.INTERACTIVE,
                    then=("tracking",),
                ),
            ),
            transforms=(TRACKING,),
            state_topic="state.live.tracks",
            nice=0,
            doc="Camera frames against a deadline (detection and tracking), and the detection "
            "of uploaded images, which someone is waiting for.",
        ),
        WorkerKind(
            "vision",
            (
                StageBinding(
                    "detection",
                    "processors.detection.stage:detect_objects",
                    ("FrameCaptured",),
                    Items.RECORDED,
                    then=("tracking",),
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
                    ("MediaUploaded", "FrameCaptured"),
                ),
                StageBinding(
                    "object-embedding",
                    "processors.embeddings.stage:embed",
                    ("ObjectsDetected",),
                    Items.RECORDED,
                ),
                StageBinding(
                    "scene", "processors.spatial.stage:describe_scene", ("ObjectsDetected",)
                ),
            ),
            transforms=(TRACKING,),
            state_topic="state.vision.tracks",
            nice=10,
            doc="Uploads, video frames and heavy camera stages.",
        ),
        WorkerKind(
            "document",
            (
                StageBinding("render", "processors.render.stage:render_media", ("MediaUploaded",)),
                StageBinding(
                    "ocr",
                    "processors.ocr.stage:recognise_text",
                    ("MediaUploaded", "PageRendered"),
                ),
                StageBinding("pii", "processors.anonymise.stage:mask_text", ("TextRecognized",)),
                StageBinding(
                    "text-embedding", "processors.embeddings.stage:embed", ("TextRecognized",)
                ),
            ),
            nice=15,
            doc="Rendering of documents and videos, OCR, masking and text embeddings.",
        ),
        WorkerKind(
            "outputs",
            (
                StageBinding(
                    "outputs",
                    "processors.outputs.stage:render_outputs",
                    ("TextRecognized", "ObjectsDetected", "CodesDecoded"),
                    Items.RECORDED,
                ),
                StageBinding(
                    "results",
                    "processors.combined:keep_result",
                    _RESULTS,
                    Items.RECORDED,
                ),
                StageBinding("report", "processors.combined:render_report", ("MediaCompleted",)),
                StageBinding("erasure", "processors.erasure.stage:erase_blobs", ("MediaDeleted",)),
            ),
            nice=15,
            doc="Exports, the results behind the report, the report once complete, and the "
            "erasure of an item's blobs.",
        ),
    )
}
# Stateful steps that follow a stage in the same report (`StageBinding.then`).
FOLLOWING_STAGES = frozenset(
    name for kind in WORKER_KINDS.values() for binding in kind.transforms for name in [binding.name]
)
# The completion processor is a worker kind of its own with no stages: it only follows
# the work reports (`processors.completion`).
COMPLETION_KIND = "completion"
ALL_KINDS = (*WORKER_KINDS, COMPLETION_KIND)


def worker_kind(kind: str) -> WorkerKind:
    if kind not in WORKER_KINDS:
        raise ValueError(f"unknown worker kind {kind!r}; choose one of {sorted(WORKER_KINDS)}")
    return WORKER_KINDS[kind]


def bindings_for(kind: str) -> tuple[StageBinding, ...]:
    if kind == "all":
        return tuple(binding for k in WORKER_KINDS.values() for binding in k.stages)
    return worker_kind(kind).stages


@cache
def consumed_event_types(kind: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for binding in bindings_for(kind):
        for event_type in binding.consumes:
            seen[event_type] = None
    return tuple(seen)


def is_live_input(event: Mapping[str, Any]) -> bool:
    """Whether an input event belongs to a live camera (a frame or a result of one)."""
    if event.get("camera_id"):
        return True
    item = event.get("item")
    return isinstance(item, Mapping) and bool(item.get("camera_id"))


@cache
def reporting_stages(event_type: str) -> tuple[str, ...]:
    """The stages (as `kind/stage`) that each publish one work report on a recorded
    (non-camera) event of this type: what the completion processor waits for."""
    return tuple(
        f"{name}/{binding.name}"
        for name, kind in WORKER_KINDS.items()
        for binding in kind.stages
        if binding.takes(event_type, live=False)
    )
