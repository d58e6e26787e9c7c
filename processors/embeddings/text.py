"""Sentence embeddings (all-MiniLM-L6-v2, 384-d, unit length) for OCR text blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from safetensors.numpy import load_file

from processors.embeddings import bert_numpy
from processors.embeddings.bert_openvino import build_encoder
from processors.embeddings.minilm_files import MODEL_NAME as MINILM_MODEL
from processors.embeddings.minilm_files import MiniLMFiles, minilm_files
from processors.embeddings.wordpiece import Batch, SentenceTokenizer
from processors.modelstore import load
from processors.openvino_runtime import EngineTuning, OpenVinoRuntime, RequestPool
from visionlog.settings import Settings, get_settings

Backend = Literal["openvino", "numpy"]
BATCH_SIZE = 32


class TextEmbedder:
    """Embeds texts in batches; both backends give the same vectors (cosine ≈ 1).

    Safe to call from several threads at once: each batch borrows an infer request of its
    own (the numpy backend holds no state between calls).
    """

    def __init__(
        self,
        files: MiniLMFiles | None = None,
        backend: Backend = "openvino",
        runtime: OpenVinoRuntime | None = None,
        tuning: EngineTuning | None = None,
    ) -> None:
        self.files = files or minilm_files()
        self.backend = backend
        self.tokenizer = SentenceTokenizer(self.files.tokenizer)
        self._layers = int(str(self.files.config["num_hidden_layers"]))
        self._heads = int(str(self.files.config["num_attention_heads"]))
        self._eps = float(str(self.files.config["layer_norm_eps"]))
        self.dimension = int(str(self.files.config["hidden_size"]))
        self._weights = load_file(str(self.files.weights))
        self._requests: RequestPool | None = None
        if backend == "openvino":
            if runtime is None:
                raise ValueError("the openvino backend needs the process's OpenVinoRuntime")
            model = build_encoder(self._weights, self._layers, self._heads, self._eps)
            # Full float precision: CPUs with bf16 support would otherwise round, and
            # vectors must not depend on the machine that computed them.
            compiled = runtime.compile(model, tuning or EngineTuning(precision="f32"))
            self._requests = RequestPool(compiled)
            self._weights = {}  # the graph holds its own copy

    def _run(self, batch: Batch) -> np.ndarray:
        if self._requests is not None:
            with self._requests.borrow() as request:
                outputs = request.infer(
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


def create_text_embedder(
    settings: Settings, runtime: OpenVinoRuntime, tuning: EngineTuning | None = None
) -> TextEmbedder:
    """A new embedder (building the graph and loading weights takes a moment: keep it).
    Workers get theirs from `Engines.text_embedder`."""
    return TextEmbedder(minilm_files(load(MINILM_MODEL, settings)), runtime=runtime, tuning=tuning)


def get_text_embedder(settings: Settings | None = None) -> TextEmbedder:
    """A new embedder on the process's OpenVINO runtime, for callers outside a worker (the
    API keeps the one it gets). Not cached: every call builds one."""
    resolved = settings or get_settings()
    return create_text_embedder(resolved, OpenVinoRuntime.from_settings(resolved))
