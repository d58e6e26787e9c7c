"""Model-agnostic detection results: boxes, scores and classes as numpy arrays.

Every detector adapter returns `Detections`; filtering, non-maximum suppression, mapping
boxes back to the original image and conversion to and from the ``detections`` records of
ObjectsDetected live here, so they are written once for all models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from processors.modelstore import ModelRef

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ImageTransform:
    """How an image was resized and padded into the model input.

    ``model_xy = original_xy * scale + pad``; a letterbox has equal scales, a plain resize
    (stretch) has zero padding.
    """

    scale_x: float
    scale_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0

    def after_scaling(self, factor_x: float, factor_y: float) -> ImageTransform:
        """The transform of an image that was first scaled by these factors (a reduced
        decode): ``model_xy = original_xy * factor * scale + pad``."""
        return ImageTransform(
            self.scale_x * factor_x, self.scale_y * factor_y, self.pad_x, self.pad_y
        )

    def to_original(self, boxes: FloatArray, width: int, height: int) -> FloatArray:
        """Boxes (xyxy, model input pixels) in original image pixels, clipped to the image."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = (boxes[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(out[:, 0::2], 0.0, float(width), out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, float(height), out=out[:, 1::2])
        return out


def box_iou(first: FloatArray, second: FloatArray) -> FloatArray:
    """Pairwise IoU of xyxy boxes: shape (len(first), len(second))."""
    a = first[:, None, :]
    b = second[None, :, :]
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0]).clip(0) * (a[..., 3] - a[..., 1]).clip(0)
    area_b = (b[..., 2] - b[..., 0]).clip(0) * (b[..., 3] - b[..., 1]).clip(0)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)


def nms_indices(
    boxes: FloatArray, scores: FloatArray, class_ids: IntArray, iou_threshold: float
) -> IntArray:
    """Indices kept by class-aware greedy NMS, highest score first.

    OpenCV's batched NMS (C++, about 100x faster than a numpy loop over 40 boxes): the
    same greedy rule (a box is dropped when its IoU with a kept box of its class exceeds
    the threshold, ties in score keep their input order). Boxes are moved to positive
    coordinates first, because OpenCV separates classes by offsets from the largest
    coordinate, which negative coordinates (boxes past the image edge) would defeat.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    corners = boxes.astype(np.float64) - min(0.0, float(boxes.min()))
    xywh = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)
    # The stubs ask for sequences; the binding takes arrays as they are (no list copies).
    kept = cv2.dnn.NMSBoxesBatched(
        cast(Any, xywh),
        cast(Any, np.ascontiguousarray(scores, dtype=np.float32)),
        cast(Any, np.ascontiguousarray(class_ids, dtype=np.int32)),
        -np.inf,
        float(iou_threshold),
    )
    return np.asarray(kept, dtype=np.int64).reshape(-1)


@dataclass(frozen=True)
class Detections:
    """Objects found in one image: parallel arrays plus the label set and the model."""

    boxes: FloatArray  # (N, 4) xyxy in pixels
    scores: FloatArray  # (N,)
    class_ids: IntArray  # (N,)
    class_names: tuple[str, ...]
    model: ModelRef = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.boxes.shape != (n, 4) or self.class_ids.shape != (n,):
            raise ValueError(
                f"inconsistent detections: boxes {self.boxes.shape}, scores {self.scores.shape},"
                f" class_ids {self.class_ids.shape}"
            )
        if n and (self.class_ids.min() < 0 or self.class_ids.max() >= len(self.class_names)):
            raise ValueError(
                f"class ids {self.class_ids.min()}..{self.class_ids.max()} outside the "
                f"{len(self.class_names)} class names"
            )

    @classmethod
    def empty(cls, class_names: Sequence[str], model: ModelRef | None = None) -> Detections:
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32),
            class_ids=np.zeros(0, np.int64),
            class_names=tuple(class_names),
            model=dict(model or {}),
        )

    def __len__(self) -> int:
        return len(self.scores)

    def labels(self) -> list[str]:
        return [self.class_names[int(i)] for i in self.class_ids]

    def select(self, index: npt.NDArray[Any]) -> Detections:
        """The detections at an integer index array or boolean mask, in that order."""
        return Detections(
            boxes=self.boxes[index].reshape(-1, 4),
            scores=self.scores[index].reshape(-1),
            class_ids=self.class_ids[index].reshape(-1),
            class_names=self.class_names,
            model=self.model,
        )

    def filter(self, min_score: float = 0.0, classes: Sequence[str] | None = None) -> Detections:
        """Detections scoring at least ``min_score``, optionally of the named classes only."""
        mask = self.scores >= min_score
        if classes is not None:
            unknown = set(classes) - set(self.class_names)
            if unknown:
                raise ValueError(f"unknown classes {sorted(unknown)}")
            wanted = [self.class_names.index(name) for name in classes]
            mask &= np.isin(self.class_ids, wanted)
        return self.select(mask)

    def sorted(self) -> Detections:
        """Highest confidence first (the order ObjectsDetected promises)."""
        return self.select(np.argsort(-self.scores, kind="stable"))

    def nms(self, iou_threshold: float = 0.5) -> Detections:
        return self.select(nms_indices(self.boxes, self.scores, self.class_ids, iou_threshold))

    def to_original(self, transform: ImageTransform, width: int, height: int) -> Detections:
        """Boxes mapped from model input pixels back to the original image."""
        return Detections(
            boxes=transform.to_original(self.boxes, width, height),
            scores=self.scores,
            class_ids=self.class_ids,
            class_names=self.class_names,
            model=self.model,
        )

    def to_records(self) -> list[dict[str, Any]]:
        """The ``detections`` array of ObjectsDetected (track and distance unset)."""
        return [
            {
                "class_id": int(class_id),
                "class_name": self.class_names[int(class_id)],
                "confidence": float(score),
                "box": {
                    "x_min": float(box[0]),
                    "y_min": float(box[1]),
                    "x_max": float(box[2]),
                    "y_max": float(box[3]),
                },
                "track_id": None,
                "distance_m": None,
            }
            for box, score, class_id in zip(self.boxes, self.scores, self.class_ids, strict=True)
        ]

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        class_names: Sequence[str] | None = None,
        model: ModelRef | None = None,
    ) -> Detections:
        """Detections from ObjectsDetected records.

        Without ``class_names`` the label set is rebuilt from the records, large enough for
        the highest class id; names of ids no record mentions stay empty.
        """
        names: list[str]
        if class_names is None:
            size = max((int(r["class_id"]) for r in records), default=-1) + 1
            names = [""] * size
            for record in records:
                names[int(record["class_id"])] = str(record["class_name"])
        else:
            names = list(class_names)
        boxes = np.array(
            [
                [r["box"]["x_min"], r["box"]["y_min"], r["box"]["x_max"], r["box"]["y_max"]]
                for r in records
            ],
            dtype=np.float32,
        ).reshape(-1, 4)
        return cls(
            boxes=boxes,
            scores=np.array([r["confidence"] for r in records], np.float32),
            class_ids=np.array([r["class_id"] for r in records], np.int64),
            class_names=tuple(names),
            model=dict(model or {}),
        )
