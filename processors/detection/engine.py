"""Detectors on OpenVINO: the packaged NanoDet IR and user-supplied YOLO models.

An engine owns one compiled model and turns BGR images into `Detections` in original image
pixels. ``detect`` serves one image on the caller's thread; ``detect_batch`` keeps several
inference requests in flight (an ``AsyncInferQueue``) while the next images are preprocessed,
so all cores work.
"""

from __future__ import annotations

import hashlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import openvino

from processors.detection.coco import COCO_CLASSES
from processors.detection.detections import Detections, FloatArray, ImageTransform
from processors.detection.nanodet import (
    NANODET_MEAN,
    NANODET_STD,
    decode_nanodet,
    group_outputs,
)
from processors.detection.preprocess import UInt8Image, letterbox, stretch, to_nchw
from processors.detection.yolo import (
    YoloConfigurationError,
    YoloLayout,
    class_count,
    decode_yolo,
    detect_layout,
    names_from_metadata,
    read_class_names,
)
from processors.modelstore import ModelRef, ProvisionedModel, load
from visionlog.settings import Settings

PerformanceMode = Literal["LATENCY", "THROUGHPUT"]
NMS_IOU = 0.5
YOLO_DEFAULT_SIZE = 640


def runtime_name() -> str:
    return f"openvino/{openvino.__version__.split('-')[0]}"


class DetectorEngine(ABC):
    """One compiled detection model; subclasses define preprocessing and decoding."""

    model_ref: ModelRef
    class_names: tuple[str, ...]

    def __init__(
        self, model: openvino.Model, threads: int, mode: PerformanceMode = "LATENCY"
    ) -> None:
        config: dict[str, Any] = {"PERFORMANCE_HINT": mode, "INFERENCE_NUM_THREADS": threads}
        self.compiled = openvino.Core().compile_model(model, "CPU", config)
        shape = self.compiled.input(0).shape
        self.input_height, self.input_width = int(shape[2]), int(shape[3])
        self.mode = mode
        self._idle: list[openvino.InferRequest] = []
        self._idle_lock = threading.Lock()
        self._batch_lock = threading.Lock()
        self._queue: openvino.AsyncInferQueue | None = None

    @abstractmethod
    def preprocess(self, image: UInt8Image) -> tuple[FloatArray, ImageTransform]:
        """The model input tensor for a BGR image, and how the image was mapped into it."""

    @abstractmethod
    def decode(self, outputs: Sequence[FloatArray], score_threshold: float) -> Detections:
        """Detections in model-input pixels from the raw outputs."""

    def postprocess(
        self,
        outputs: Sequence[FloatArray],
        transform: ImageTransform,
        width: int,
        height: int,
        score_threshold: float,
    ) -> Detections:
        found = self.decode(outputs, score_threshold)
        return found.to_original(transform, width, height).sorted()

    def infer(self, tensor: FloatArray) -> list[FloatArray]:
        """Raw outputs for one input tensor (thread-safe; requests are pooled)."""
        with self._idle_lock:
            request = self._idle.pop() if self._idle else self.compiled.create_infer_request()
        try:
            request.infer({0: tensor})
            return [request.get_output_tensor(i).data.copy() for i in range(len(self.outputs))]
        finally:
            with self._idle_lock:
                self._idle.append(request)

    @property
    def outputs(self) -> list[Any]:
        return list(self.compiled.outputs)

    def detect_timed(self, image: UInt8Image, score_threshold: float) -> tuple[Detections, float]:
        """Detections in original image pixels, and the inference time in milliseconds."""
        tensor, transform = self.preprocess(image)
        started = time.perf_counter()
        outputs = self.infer(tensor)
        inference_ms = (time.perf_counter() - started) * 1000.0
        height, width = image.shape[:2]
        return self.postprocess(outputs, transform, width, height, score_threshold), inference_ms

    def detect(self, image: UInt8Image, score_threshold: float) -> Detections:
        return self.detect_timed(image, score_threshold)[0]

    def _async_queue(self) -> openvino.AsyncInferQueue:
        if self._queue is None:
            optimal = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self._queue = openvino.AsyncInferQueue(self.compiled, max(2, optimal))
        return self._queue

    def detect_batch(
        self, images: Sequence[UInt8Image], score_threshold: float
    ) -> list[Detections]:
        """Detections for each image, with inference of several images overlapping."""
        results: list[Detections | None] = [None] * len(images)
        errors: list[BaseException] = []

        def finished(request: openvino.InferRequest, userdata: Any) -> None:
            index, transform, width, height = userdata
            try:
                outputs = [
                    request.get_output_tensor(i).data.copy() for i in range(len(self.outputs))
                ]
                results[index] = self.postprocess(
                    outputs, transform, width, height, score_threshold
                )
            except BaseException as error:  # re-raised on the caller's thread below
                errors.append(error)

        with self._batch_lock:
            queue = self._async_queue()
            queue.set_callback(finished)
            try:
                for index, image in enumerate(images):
                    tensor, transform = self.preprocess(image)
                    height, width = image.shape[:2]
                    queue.start_async({0: tensor}, (index, transform, width, height))
            finally:
                # Even when an image fails to preprocess, the requests already started must
                # finish before the queue and its callback serve the next batch.
                queue.wait_all()
        if errors:
            raise errors[0]
        missing = [index for index, found in enumerate(results) if found is None]
        if missing:
            raise RuntimeError(f"no inference result for images {missing} of the batch")
        return [found for found in results if found is not None]


class NanoDetEngine(DetectorEngine):
    """The packaged NanoDet COCO detector (stretched 416x416 BGR input)."""

    def __init__(
        self, provisioned: ProvisionedModel, threads: int, mode: PerformanceMode = "LATENCY"
    ) -> None:
        model = openvino.Core().read_model(provisioned.path("nanodet-ir.xml"))
        super().__init__(model, threads, mode)
        self.class_names = COCO_CLASSES
        self.model_ref = dict(provisioned.model_ref())

    def preprocess(self, image: UInt8Image) -> tuple[FloatArray, ImageTransform]:
        resized, transform = stretch(image, self.input_width, self.input_height)
        return to_nchw(resized, NANODET_MEAN, NANODET_STD, swap_rb=False), transform

    def decode(self, outputs: Sequence[FloatArray], score_threshold: float) -> Detections:
        levels = group_outputs(outputs, self.input_width, self.input_height, len(self.class_names))
        return decode_nanodet(
            levels,
            self.input_width,
            self.input_height,
            self.class_names,
            score_threshold,
            NMS_IOU,
            self.model_ref,
        )


def file_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _onnx_names(path: Path) -> tuple[str, ...] | None:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == "names":
            return names_from_metadata(prop.value, str(path))
    return None


def _single_image_shape(shape: openvino.PartialShape) -> list[int]:
    """The NCHW input shape for one image: batch 1, and sides the model leaves open (dynamic)
    set to the default size; fixed sides are kept, the model was exported for them."""
    defaults = (1, 3, YOLO_DEFAULT_SIZE, YOLO_DEFAULT_SIZE)
    dims = [
        dim.get_length() if dim.is_static else default
        for dim, default in zip(shape, defaults, strict=True)
    ]
    dims[0] = 1
    return dims


class YoloEngine(DetectorEngine):
    """A user-supplied YOLO v5/v8/v11 model (ONNX or OpenVINO IR), letterboxed RGB 0..1."""

    def __init__(
        self,
        model_path: Path,
        class_names_path: Path | None,
        threads: int,
        mode: PerformanceMode = "LATENCY",
    ) -> None:
        if not model_path.is_file():
            raise YoloConfigurationError(f"YOLO model {model_path} does not exist")
        suffix = model_path.suffix.lower()
        if suffix not in (".onnx", ".xml"):
            raise YoloConfigurationError(f"YOLO model {model_path}: expected .onnx or .xml")
        model = openvino.Core().read_model(model_path)
        if len(model.inputs) != 1:
            raise YoloConfigurationError(f"YOLO model {model_path}: expected one input")
        input_shape = model.input(0).partial_shape
        if input_shape.rank.is_dynamic or input_shape.rank.get_length() != 4:
            raise YoloConfigurationError(f"YOLO input must be NCHW, got {input_shape}")
        single_image = _single_image_shape(input_shape)
        if input_shape.is_dynamic or [int(d) for d in input_shape.to_shape()] != single_image:
            model.reshape({0: single_image})
        output_shape = [int(d) for d in model.output(0).shape]
        names = self._class_names(model_path, class_names_path)
        self.layout: YoloLayout = detect_layout(output_shape, len(names) if names else None)
        if names is None:
            count = class_count(output_shape, self.layout)
            if count != len(COCO_CLASSES):
                raise YoloConfigurationError(
                    f"YOLO model {model_path} has {count} classes and no names; "
                    "set processors.yolo_class_names_path"
                )
            names = COCO_CLASSES
        self.class_names = names
        super().__init__(model, threads, mode)
        files = [model_path] + ([model_path.with_suffix(".bin")] if suffix == ".xml" else [])
        self.model_ref = {
            "name": f"yolo-{self.layout}:{model_path.stem}",
            "version": file_digest(files)[:16],
            "source": str(model_path),
            "licence": None,
            "runtime": runtime_name(),
        }

    @staticmethod
    def _class_names(model_path: Path, names_path: Path | None) -> tuple[str, ...] | None:
        if names_path is not None:
            if not names_path.is_file():
                raise YoloConfigurationError(f"class names file {names_path} does not exist")
            return read_class_names(names_path)
        if model_path.suffix.lower() == ".onnx":
            return _onnx_names(model_path)
        return None

    def preprocess(self, image: UInt8Image) -> tuple[FloatArray, ImageTransform]:
        boxed, transform = letterbox(image, self.input_width, self.input_height)
        return to_nchw(boxed, (0.0, 0.0, 0.0), (255.0, 255.0, 255.0), swap_rb=True), transform

    def decode(self, outputs: Sequence[FloatArray], score_threshold: float) -> Detections:
        return decode_yolo(
            outputs[0], self.layout, self.class_names, score_threshold, NMS_IOU, self.model_ref
        )


def create_detector(settings: Settings, mode: PerformanceMode = "LATENCY") -> DetectorEngine:
    """The configured detector: the user's YOLO model when set, else the packaged NanoDet."""
    tuning = settings.processors
    if tuning.yolo_model_path is not None:
        return YoloEngine(
            tuning.yolo_model_path, tuning.yolo_class_names_path, tuning.inference_threads, mode
        )
    return NanoDetEngine(load("nanodet-coco", settings), tuning.inference_threads, mode)
