"""Typical real heights (metres) of COCO classes whose upright height varies little.

Classes whose box height depends mostly on pose or orientation (skis, kites, pizzas) are
left out: a distance from them would be a guess.
"""

from __future__ import annotations

CLASS_HEIGHTS_M: dict[str, float] = {
    "person": 1.7,
    "bicycle": 1.05,
    "car": 1.5,
    "motorcycle": 1.15,
    "bus": 3.2,
    "train": 4.0,
    "truck": 3.5,
    "traffic light": 0.9,
    "fire hydrant": 0.8,
    "stop sign": 0.75,
    "parking meter": 1.3,
    "bench": 0.85,
    "bird": 0.25,
    "cat": 0.3,
    "dog": 0.6,
    "horse": 1.6,
    "sheep": 0.9,
    "cow": 1.4,
    "elephant": 3.0,
    "bear": 1.2,
    "zebra": 1.4,
    "giraffe": 5.0,
    "backpack": 0.5,
    "umbrella": 1.0,
    "handbag": 0.3,
    "suitcase": 0.65,
    "sports ball": 0.22,
    "tennis racket": 0.68,
    "bottle": 0.27,
    "wine glass": 0.2,
    "cup": 0.1,
    "chair": 0.9,
    "couch": 0.85,
    "dining table": 0.75,
    "toilet": 0.75,
    "tv": 0.6,
    "laptop": 0.25,
    "cell phone": 0.15,
    "microwave": 0.3,
    "oven": 0.9,
    "toaster": 0.2,
    "refrigerator": 1.8,
    "book": 0.24,
    "clock": 0.3,
    "vase": 0.3,
    "teddy bear": 0.3,
}


def class_height_m(class_name: str) -> float | None:
    return CLASS_HEIGHTS_M.get(class_name.strip().lower())
