"""The image embedder the stage uses: detector backbone features, or the descriptor."""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import numpy as np

from processors.embeddings.backbone import IR_FILE, MODEL_NAME, BackboneEmbedder
from processors.embeddings.image import describe, image_model_ref
from processors.modelstore import ModelNotProvisionedError, load


class ImageEmbedder(Protocol):
    def embed(self, image_bgr: np.ndarray) -> np.ndarray: ...

    def model_ref(self) -> dict[str, str | None]: ...


class DescriptorEmbedder:
    """The classical colour and gradient descriptor (no weights needed)."""

    def embed(self, image_bgr: np.ndarray) -> np.ndarray:
        return describe(image_bgr)

    def model_ref(self) -> dict[str, str | None]:
        return image_model_ref()


@lru_cache(maxsize=1)
def get_image_embedder() -> ImageEmbedder:
    """Backbone features when the detector is provisioned, else the descriptor.

    Each vector carries its model's ModelRef, so vectors of the two are never compared.
    """
    try:
        load(MODEL_NAME).path(IR_FILE)
    except ModelNotProvisionedError:
        return DescriptorEmbedder()
    return BackboneEmbedder()
