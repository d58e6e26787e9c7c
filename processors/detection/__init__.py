"""Object detection: model-agnostic results, NanoDet and YOLO decoders, OpenVINO engines."""

from processors.detection.coco import COCO_CLASSES
from processors.detection.detections import Detections, ImageTransform, box_iou, nms_indices
from processors.detection.engine import (
    DetectorEngine,
    NanoDetEngine,
    YoloEngine,
    create_detector,
)

__all__ = [
    "COCO_CLASSES",
    "Detections",
    "DetectorEngine",
    "ImageTransform",
    "NanoDetEngine",
    "YoloEngine",
    "box_iou",
    "create_detector",
    "nms_indices",
]
