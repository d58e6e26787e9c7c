"""The same encoder as `bert_numpy`, built as an OpenVINO graph from the safetensors weights.

Inputs input_ids, attention_mask and token_type_ids (batch, tokens; int64); output
`embedding` (batch, hidden): mean-pooled over real tokens and L2-normalised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import openvino as ov
import openvino.opset13 as ops

Weights = Mapping[str, np.ndarray]


def _const(array: np.ndarray) -> ov.Node:
    # ascontiguousarray would turn a 0-d scalar into shape (1,).
    return ops.constant(np.ascontiguousarray(array) if array.ndim else array)


def _dense(x: ov.Node, weights: Weights, prefix: str) -> ov.Node:
    product = ops.matmul(x, _const(weights[f"{prefix}.weight"]), False, True)
    return ops.add(product, _const(weights[f"{prefix}.bias"]))


def _layer_norm(x: ov.Node, weights: Weights, prefix: str, eps: float) -> ov.Node:
    normalised = ops.mvn(x, _const(np.array([-1], np.int64)), True, eps, "inside_sqrt")
    scaled = ops.multiply(normalised, _const(weights[f"{prefix}.weight"]))
    return ops.add(scaled, _const(weights[f"{prefix}.bias"]))


def build_encoder(
    weights: Weights, num_layers: int, num_heads: int, eps: float = 1e-12
) -> ov.Model:
    input_ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    attention_mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    token_type_ids = ops.parameter([-1, -1], ov.Type.i64, name="token_type_ids")
    axis0 = _const(np.array(0, np.int64))

    shape = ops.shape_of(input_ids, "i64")
    batch = ops.gather(shape, _const(np.array([0], np.int64)), axis0)
    tokens = ops.gather(shape, _const(np.array([1], np.int64)), axis0)
    tokens_scalar = ops.squeeze(tokens, _const(np.array([0], np.int64)))
    positions = ops.range(_const(np.array(0, np.int64)), tokens_scalar, 1, "i64")

    x = ops.add(
        ops.add(
            ops.gather(_const(weights["embeddings.word_embeddings.weight"]), input_ids, axis0),
            ops.gather(_const(weights["embeddings.position_embeddings.weight"]), positions, axis0),
        ),
        ops.gather(
            _const(weights["embeddings.token_type_embeddings.weight"]), token_type_ids, axis0
        ),
    )
    x = _layer_norm(x, weights, "embeddings.LayerNorm", eps)

    hidden = int(weights["embeddings.word_embeddings.weight"].shape[1])
    head = hidden // num_heads
    mask_float = ops.convert(attention_mask, "f32")
    # (batch, 1, 1, tokens): 0 for real tokens, -1e9 for padding keys.
    key_bias = ops.multiply(
        ops.subtract(_const(np.array(1.0, np.float32)), ops.unsqueeze(mask_float, [1, 2])),
        _const(np.array(-1e9, np.float32)),
    )
    split_shape = ops.concat([batch, tokens, _const(np.array([num_heads, head], np.int64))], axis=0)
    merge_shape = ops.concat([batch, tokens, _const(np.array([hidden], np.int64))], axis=0)
    to_heads = _const(np.array([0, 2, 1, 3], np.int64))
    scale = _const(np.array(1.0 / np.sqrt(head), np.float32))

    def split(t: ov.Node) -> ov.Node:
        return ops.transpose(ops.reshape(t, split_shape, False), to_heads)

    for index in range(num_layers):
        prefix = f"encoder.layer.{index}"
        query = split(_dense(x, weights, f"{prefix}.attention.self.query"))
        key = split(_dense(x, weights, f"{prefix}.attention.self.key"))
        value = split(_dense(x, weights, f"{prefix}.attention.self.value"))
        scores = ops.add(ops.multiply(ops.matmul(query, key, False, True), scale), key_bias)
        context = ops.matmul(ops.softmax(scores, -1), value, False, False)
        merged = ops.reshape(ops.transpose(context, to_heads), merge_shape, False)
        attended = _dense(merged, weights, f"{prefix}.attention.output.dense")
        x = _layer_norm(ops.add(attended, x), weights, f"{prefix}.attention.output.LayerNorm", eps)
        expanded = ops.gelu(_dense(x, weights, f"{prefix}.intermediate.dense"), "erf")
        output = _dense(expanded, weights, f"{prefix}.output.dense")
        x = _layer_norm(ops.add(output, x), weights, f"{prefix}.output.LayerNorm", eps)

    mask3 = ops.unsqueeze(mask_float, [2])
    summed = ops.reduce_sum(ops.multiply(x, mask3), _const(np.array([1], np.int64)), False)
    counts = ops.maximum(
        ops.reduce_sum(mask3, _const(np.array([1], np.int64)), False),
        _const(np.array(1e-9, np.float32)),
    )
    pooled = ops.divide(summed, counts)
    embedding = ops.normalize_l2(pooled, _const(np.array([1], np.int64)), 1e-12, "max")
    embedding.output(0).get_tensor().set_names({"embedding"})
    return ov.Model(
        [embedding.output(0)], [input_ids, attention_mask, token_type_ids], "minilm_encoder"
    )
