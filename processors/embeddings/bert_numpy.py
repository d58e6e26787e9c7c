"""The BERT encoder with mean pooling and L2 normalisation in plain numpy.

The reference implementation: slower than the OpenVINO graph, but every step is visible,
so the graph is checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Weights = Mapping[str, np.ndarray]


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, BERT's GELU needs it.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)))


def gelu(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * x * (1.0 + _erf(x / np.sqrt(2.0))))


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(variance + eps) * gamma + beta)


def _dense(x: np.ndarray, weights: Weights, prefix: str) -> np.ndarray:
    # Linear layers store (out, in) matrices.
    return x @ weights[f"{prefix}.weight"].T + weights[f"{prefix}.bias"]


def encode(
    weights: Weights,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    token_type_ids: np.ndarray,
    num_layers: int,
    num_heads: int,
    eps: float = 1e-12,
) -> np.ndarray:
    """Token states (batch, tokens, hidden) of the last layer."""
    _, tokens = input_ids.shape
    x = (
        weights["embeddings.word_embeddings.weight"][input_ids]
        + weights["embeddings.position_embeddings.weight"][np.arange(tokens)][None]
        + weights["embeddings.token_type_embeddings.weight"][token_type_ids]
    )
    x = layer_norm(
        x, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"], eps
    )
    batch, _, hidden = x.shape
    head = hidden // num_heads
    # Padding keys get a large negative score, so softmax gives them no weight.
    key_bias = (1.0 - attention_mask[:, None, None, :].astype(np.float32)) * -1e9

    def split(t: np.ndarray) -> np.ndarray:
        return t.reshape(batch, tokens, num_heads, head).transpose(0, 2, 1, 3)

    for index in range(num_layers):
        prefix = f"encoder.layer.{index}"
        query = split(_dense(x, weights, f"{prefix}.attention.self.query"))
        key = split(_dense(x, weights, f"{prefix}.attention.self.key"))
        value = split(_dense(x, weights, f"{prefix}.attention.self.value"))
        scores = query @ key.transpose(0, 1, 3, 2) / np.sqrt(head) + key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        probabilities = np.exp(scores)
        probabilities /= probabilities.sum(axis=-1, keepdims=True)
        context = (probabilities @ value).transpose(0, 2, 1, 3).reshape(batch, tokens, hidden)
        attended = _dense(context, weights, f"{prefix}.attention.output.dense")
        x = layer_norm(
            attended + x,
            weights[f"{prefix}.attention.output.LayerNorm.weight"],
            weights[f"{prefix}.attention.output.LayerNorm.bias"],
            eps,
        )
        expanded = gelu(_dense(x, weights, f"{prefix}.intermediate.dense"))
        x = layer_norm(
            _dense(expanded, weights, f"{prefix}.output.dense") + x,
            weights[f"{prefix}.output.LayerNorm.weight"],
            weights[f"{prefix}.output.LayerNorm.bias"],
            eps,
        )
    return np.asarray(x, dtype=np.float32)


def mean_pool_normalised(states: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the real tokens' states, scaled to unit length (batch, hidden)."""
    mask = attention_mask[:, :, None].astype(np.float32)
    pooled = (states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)
