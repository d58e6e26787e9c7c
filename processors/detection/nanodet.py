"""Decoding NanoDet's raw outputs into detections (pure numpy).

Per stride (8, 16, 32) NanoDet emits sigmoid class scores (cells x classes) and box side
distributions (cells x 4 sides x bins). A side's distance is the expectation of the softmax
over its bins, times the stride, measured from the cell centre ``(col + 0.5, row + 0.5) *
stride`` (the half-cell offset was checked on the sample photos: without it every box sits
half a cell up and left of the object).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.detection.detections import Detections, FloatArray
from processors.modelstore import ModelRef

NANODET_STRIDES: tuple[int, ...] = (8, 16, 32)
NANODET_BINS = 11
# Channel order of the TF.js graph's input is BGR; NanoDet's training normalisation.
NANODET_MEAN = (103.53, 116.28, 123.675)
NANODET_STD = (57.375, 57.12, 58.395)


@dataclass(frozen=True)
class StrideOutput:
    stride: int
    scores: FloatArray  # (cells, classes)
    distributions: FloatArray  # (cells, 4 * bins)


def group_outputs(
    outputs: Sequence[FloatArray], width: int, height: int, num_classes: int
) -> list[StrideOutput]:
    """Pair score and distribution outputs by cell count and assign their strides."""
    cells_per_stride = {
        ((height + s - 1) // s) * ((width + s - 1) // s): s for s in NANODET_STRIDES
    }
    scores: dict[int, FloatArray] = {}
    dists: dict[int, FloatArray] = {}
    for output in outputs:
        array = output.reshape(output.shape[-2], output.shape[-1])
        cells, channels = array.shape
        if cells not in cells_per_stride:
            raise ValueError(
                f"NanoDet output {output.shape} matches no stride for {width}x{height}"
            )
        if channels == num_classes:
            scores[cells_per_stride[cells]] = array
        elif channels == 4 * NANODET_BINS:
            dists[cells_per_stride[cells]] = array
        else:
            raise ValueError(f"NanoDet output {output.shape}: unexpected channel count")
    if sorted(scores) != sorted(NANODET_STRIDES) or sorted(dists) != sorted(NANODET_STRIDES):
        raise ValueError(
            f"NanoDet outputs incomplete: scores for strides {sorted(scores)}, "
            f"distributions for {sorted(dists)}"
        )
    return [StrideOutput(s, scores[s], dists[s]) for s in NANODET_STRIDES]


def _softmax_expectation(distributions: FloatArray) -> FloatArray:
    logits = distributions.reshape(-1, 4, NANODET_BINS).astype(np.float32)
    logits = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    expectation: FloatArray = (weights * np.arange(NANODET_BINS, dtype=np.float32)).sum(axis=-1)
    return expectation


def decode_nanodet(
    levels: Sequence[StrideOutput],
    width: int,
    height: int,
    class_names: Sequence[str],
    score_threshold: float,
    iou_threshold: float = 0.5,
    model: ModelRef | None = None,
) -> Detections:
    """Detections in model-input pixels: threshold, decode boxes, class-aware NMS."""
    boxes: list[FloatArray] = []
    scores: list[FloatArray] = []
    classes: list[np.ndarray] = []
    for level in levels:
        # Only cells where some class reaches the threshold are looked at further: one
        # comparison pass over the (cells x classes) scores instead of an argmax of all.
        keep = np.flatnonzero((level.scores >= score_threshold).any(axis=1))
        if keep.size == 0:
            continue
        candidates = level.scores[keep]
        best = candidates.argmax(axis=1)
        best_score = candidates[np.arange(len(keep)), best]
        columns = (width + level.stride - 1) // level.stride
        centre_x = (keep % columns + 0.5) * level.stride
        centre_y = (keep // columns + 0.5) * level.stride
        sides = _softmax_expectation(level.distributions[keep]) * level.stride
        boxes.append(
            np.stack(
                [
                    centre_x - sides[:, 0],
                    centre_y - sides[:, 1],
                    centre_x + sides[:, 2],
                    centre_y + sides[:, 3],
                ],
                axis=1,
            ).astype(np.float32)
        )
        scores.append(best_score.astype(np.float32))
        classes.append(best.astype(np.int64))
    if not boxes:
        return Detections.empty(class_names, model)
    found = Detections(
        boxes=np.concatenate(boxes),
        scores=np.concatenate(scores),
        class_ids=np.concatenate(classes),
        class_names=tuple(class_names),
        model=dict(model or {}),
    )
    return found.nms(iou_threshold)
