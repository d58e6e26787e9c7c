"""Sentence embeddings (all-MiniLM-L6-v2, 384-d, unit length) for OCR text blocks."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import openvino as ov
from safetensors.numpy import load_file

from processors.embeddings import bert_numpy
from processors.embeddings.bert_openvino import build_encoder
from processors.embeddings.minilm_files import MiniLMFiles, minilm_files
from processors.embeddings.wordpiece import Batch, SentenceTokenizer

Backend = Literal["openvino", "numpy"]
BATCH_SIZE = 32


class TextEmbedder:
    """Embeds texts in batches; both backends give the same vectors (cosine ≈ 1)."""

    def __init__(
        self,
        files: MiniLMFiles | None = None,
        backend: Backend = "openvino",
        threads: int = 2,
    ) -> None:
        self.files = files or minilm_files()
        self.backend = backend
        self.tokenizer = SentenceTokenizer(self.files.tokenizer)
        self._layers = int(str(self.files.config["num_hidden_layers"]))
        self._heads = int(str(self.files.config["num_attention_heads"]))
        self._eps = float(str(self.files.config["layer_norm_eps"]))
        self.dimension = int(str(self.files.config["hidden_size"]))
        self._weights = load_file(str(self.files.weights))
        self._request: Any = None
        if backend == "openvino":
            model = build_encoder(self._weights, self._layers, self._heads, self._eps)
            # Full float precision: CPUs with bf16 support would otherwise round, and
            # vectors must not depend on the machine that computed them.
            compiled = ov.Core().compile_model(
                model,
                "CPU",
                {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"},
            )
            self._request = compiled.create_infer_request()
            self._weights = {}  # the graph holds its own copy

    def _run(self, batch: Batch) -> np.ndarray:
        if self._request is not None:
            outputs = self._request.infer(
                {
                    "input_ids": batch.input_ids,
                    "attention_mask": batch.attention_mask,
                    "token_type_ids": batch.token_type_ids,
                }
            )
            return np.array(outputs["embedding"], dtype=np.float32)
        states = bert_numpy.encode(
            self._weights,
            batch.input_ids,
            batch.attention_mask,
            batch.token_type_ids,
            self._layers,
            self._heads,
            self._eps,
        )
        return bert_numpy.mean_pool_normalised(states, batch.attention_mask)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors, in the order of `texts`."""
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        # Texts of similar length share a batch, so little padding is computed.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        vectors = np.zeros((len(texts), self.dimension), np.float32)
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start : start + BATCH_SIZE]
            vectors[chunk] = self._run(self.tokenizer([texts[index] for index in chunk]))
        return vectors

    def model_ref(self) -> dict[str, str | None]:
        ref = self.files.model.model_ref()
        if self.backend == "numpy":
            ref["runtime"] = f"numpy/{np.__version__}"
        return ref


@lru_cache(maxsize=1)
def get_text_embedder() -> TextEmbedder:
    """One embedder per process: building the graph and loading weights takes a moment."""
    return TextEmbedder()
