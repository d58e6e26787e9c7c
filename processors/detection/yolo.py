"""Decoding raw YOLO outputs (v5 and v8/v11 layouts) into detections (pure numpy).

- v5: (1, N, 5 + C) rows of centre x, centre y, width, height, objectness, C class scores;
  a detection's confidence is objectness * class score.
- v8 / v11: (1, 4 + C, N), transposed, no objectness; confidence is the class score.
Boxes are in model-input pixels (the letterboxed image).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from processors.detection.detections import Detections, FloatArray
from processors.modelstore import ModelRef

YoloLayout = Literal["v5", "v8"]


class YoloConfigurationError(ValueError):
    """A user-supplied YOLO model or label file that cannot be used."""


def detect_layout(shape: Sequence[int], num_classes: int | None = None) -> YoloLayout:
    """The YOLO version family from the output shape (and the class count, when known)."""
    dims = [int(d) for d in shape]
    if len(dims) == 3 and dims[0] == 1:
        dims = dims[1:]
    if len(dims) != 2:
        raise YoloConfigurationError(f"YOLO output must be (1, A, B), got {tuple(shape)}")
    rows, cols = dims
    if num_classes is not None:
        fits_v5 = cols == 5 + num_classes
        fits_v8 = rows == 4 + num_classes
        if fits_v5 and not fits_v8:
            return "v5"
        if fits_v8 and not fits_v5:
            return "v8"
        if not fits_v5 and not fits_v8:
            raise YoloConfigurationError(
                f"YOLO output {tuple(shape)} fits neither (N, 5+{num_classes}) nor "
                f"(4+{num_classes}, N) for {num_classes} class names"
            )
    # Without a decisive class count: candidates always outnumber channels.
    if rows < cols and rows > 4:
        return "v8"
    if cols > 5:
        return "v5"
    raise YoloConfigurationError(f"cannot tell the YOLO layout of output {tuple(shape)}")


def class_count(shape: Sequence[int], layout: YoloLayout) -> int:
    dims = [int(d) for d in shape][-2:]
    return dims[1] - 5 if layout == "v5" else dims[0] - 4


def decode_yolo(
    output: FloatArray,
    layout: YoloLayout,
    class_names: Sequence[str],
    score_threshold: float,
    iou_threshold: float = 0.5,
    model: ModelRef | None = None,
    max_detections: int = 300,
) -> Detections:
    """Threshold, convert centre/size boxes to corners, class-aware NMS."""
    rows = output.reshape(output.shape[-2], output.shape[-1]).astype(np.float32)
    if layout == "v8":
        rows = rows.T
        class_scores = rows[:, 4:]
        objectness = None
    else:
        class_scores = rows[:, 5:]
        objectness = rows[:, 4]
    if class_scores.shape[1] != len(class_names):
        raise YoloConfigurationError(
            f"YOLO output has {class_scores.shape[1]} classes, {len(class_names)} names given"
        )
    best = class_scores.argmax(axis=1)
    confidence = class_scores[np.arange(len(best)), best]
    if objectness is not None:
        confidence = confidence * objectness
    keep = np.nonzero(confidence >= score_threshold)[0]
    if keep.size == 0:
        return Detections.empty(class_names, model)
    centre = rows[keep, 0:2]
    half = rows[keep, 2:4] / 2.0
    found = Detections(
        boxes=np.concatenate([centre - half, centre + half], axis=1).astype(np.float32),
        scores=confidence[keep].astype(np.float32),
        class_ids=best[keep].astype(np.int64),
        class_names=tuple(class_names),
        model=dict(model or {}),
    ).nms(iou_threshold)
    return found.select(np.arange(min(len(found), max_detections)))


def read_class_names(path: Path) -> tuple[str, ...]:
    """Labels from a file: a JSON list, a JSON object {index: name}, or one name per line."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if isinstance(data, list) and all(isinstance(n, str) for n in data):
            names = tuple(data)
        elif isinstance(data, dict):
            names = names_from_mapping(data, str(path))
        else:
            raise YoloConfigurationError(f"{path}: expected a list of names or an index map")
    else:
        names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise YoloConfigurationError(f"{path}: no class names")
    return names


def names_from_mapping(mapping: dict[object, object], origin: str) -> tuple[str, ...]:
    """Names from an {index: name} map with indices 0..n-1 (as exporters write it)."""
    try:
        indexed = {int(str(k)): str(v) for k, v in mapping.items()}
    except ValueError as error:
        raise YoloConfigurationError(f"{origin}: class map keys must be integers") from error
    if sorted(indexed) != list(range(len(indexed))):
        raise YoloConfigurationError(f"{origin}: class indices must be 0..{len(indexed) - 1}")
    return tuple(indexed[i] for i in range(len(indexed)))


def names_from_metadata(value: str, origin: str) -> tuple[str, ...]:
    """Names from an exporter's ``names`` metadata string, e.g. ``{0: 'person', 1: 'car'}``."""
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError) as error:
        raise YoloConfigurationError(f"{origin}: unreadable names metadata") from error
    if isinstance(parsed, dict):
        return names_from_mapping(parsed, origin)
    if isinstance(parsed, list | tuple):
        return tuple(str(n) for n in parsed)
    raise YoloConfigurationError(f"{origin}: names metadata is neither a map nor a list")
