"""Image embeddings from the NanoDet detector's backbone: pooled deepest features (512-d).

The backbone was trained to find COCO objects, so its features group pictures by what they
show (people with people, vehicles with vehicles) and stay stable under crops and
brightness changes. The detector is the packaged model; nothing is trained here.
"""

from __future__ import annotations

import cv2
import numpy as np
import openvino as ov

from processors.modelstore import ProvisionedModel, load
from processors.openvino_runtime import EngineTuning, OpenVinoRuntime, RequestPool

MODEL_NAME = "nanodet-coco"
IR_FILE = "nanodet-ir.xml"
EMBEDDING_NAME = "nanodet-coco-backbone"
# NanoDet's training normalisation; the graph takes BGR pixels.
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)


def feature_node(model: ov.Model) -> ov.Node:
    """The backbone's last stage: the 4-D Concat with the most channels, deepest first."""
    candidates = [
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Concat"
        and op.get_output_partial_shape(0).rank.is_static
        and op.get_output_partial_shape(0).rank.get_length() == 4
    ]
    if not candidates:
        raise ValueError(f"{model.get_friendly_name()}: no 4-D feature concatenation found")
    return max(candidates, key=lambda op: op.get_output_partial_shape(0)[1].get_length())


class BackboneEmbedder:
    """Pooled backbone features; safe to call from several threads at once (each call
    borrows an infer request of its own)."""

    def __init__(
        self,
        runtime: OpenVinoRuntime,
        model: ProvisionedModel | None = None,
        tuning: EngineTuning | None = None,
        input_side: int | None = None,
    ) -> None:
        self.model = model or load(MODEL_NAME)
        network = runtime.read_model(self.model.path(IR_FILE))
        shape = network.inputs[0].get_partial_shape()
        if shape.rank.get_length() != 4 or shape[1].get_length() != 3:
            raise ValueError(f"{IR_FILE}: expected an NCHW input with 3 channels, got {shape}")
        self.input_size = (shape[3].get_length(), shape[2].get_length())
        self.name = EMBEDDING_NAME
        node = feature_node(network)
        self.dimension = node.get_output_partial_shape(0)[1].get_length()
        features = ov.Model([node.output(0)], network.get_parameters(), "backbone_features")
        if input_side is not None and (input_side, input_side) != self.input_size:
            # The backbone is fully convolutional and its features are pooled, so a smaller
            # square input gives vectors of the same length at a fraction of the cost;
            # they form a vector space of their own, named apart.
            if input_side < 32 or input_side % 32:
                raise ValueError(f"input_side must be a multiple of 32, got {input_side}")
            features.reshape({features.inputs[0]: ov.PartialShape([1, 3, input_side, input_side])})
            self.input_size = (input_side, input_side)
            self.name = f"{EMBEDDING_NAME}-{input_side}"
        # Full float precision keeps vectors independent of the CPU that computed them.
        self._requests = RequestPool(
            runtime.compile(features, tuning or EngineTuning(precision="f32"))
        )

    def embed(self, image_bgr: np.ndarray) -> np.ndarray:
        """A unit-length float32 vector of `dimension` values."""
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or min(image_bgr.shape[:2]) < 2:
            raise ValueError(f"expected a BGR image of at least 2x2 pixels, got {image_bgr.shape}")
        # Stretched, not letterboxed, as the detector was trained.
        resized = cv2.resize(image_bgr, self.input_size, interpolation=cv2.INTER_LINEAR)
        tensor = ((resized.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
        features = np.asarray(
            self._requests.infer({0: np.ascontiguousarray(tensor)})[0], np.float32
        )
        pooled = features.mean(axis=(2, 3))[0]
        norm = float(np.linalg.norm(pooled))
        return np.asarray(pooled / norm if norm > 0 else pooled, np.float32)

    def model_ref(self) -> dict[str, str | None]:
        ref = self.model.model_ref()
        ref["name"] = self.name
        return ref
