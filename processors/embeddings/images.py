"""The image embedder the stage uses: detector backbone features, or the descriptor."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from processors.embeddings.backbone import IR_FILE, MODEL_NAME, BackboneEmbedder
from processors.embeddings.image import describe, image_model_ref
from processors.modelstore import ModelNotProvisionedError, load
from processors.openvino_runtime import EngineTuning, OpenVinoRuntime
from visionlog.settings import Settings


class ImageEmbedder(Protocol):
    def embed(self, image_bgr: np.ndarray) -> np.ndarray: ...

    def model_ref(self) -> dict[str, str | None]: ...


class DescriptorEmbedder:
    """The classical colour and gradient descriptor (no weights needed)."""

    def embed(self, image_bgr: np.ndarray) -> np.ndarray:
        return describe(image_bgr)

    def model_ref(self) -> dict[str, str | None]:
        return image_model_ref()


def create_image_embedder(
    settings: Settings,
    runtime: OpenVinoRuntime,
    tuning: EngineTuning | None = None,
    input_side: int | None = None,
) -> ImageEmbedder:
    """Backbone features when the detector is provisioned, else the descriptor.

    Each vector carries its model's ModelRef, so vectors of the two are never compared.
    Workers get theirs from `Engines.image_embedder`.
    """
    try:
        provisioned = load(MODEL_NAME, settings)
        provisioned.path(IR_FILE)
    except ModelNotProvisionedError:
        return DescriptorEmbedder()
    return BackboneEmbedder(runtime, provisioned, tuning, input_side)
