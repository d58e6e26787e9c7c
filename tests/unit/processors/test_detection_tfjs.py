"""TF.js graph model conversion: a small model written here converts and computes correctly."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import openvino
import pytest

from processors.detection.tfjs_convert import TfjsConversionError, convert_tfjs_graph


def _shape(*dims: int) -> dict[str, Any]:
    return {"dim": [{"size": str(d)} for d in dims]}


def _const(name: str, dtype: str, *dims: int) -> dict[str, Any]:
    return {
        "name": name,
        "op": "Const",
        "attr": {
            "value": {"tensor": {"dtype": dtype, "tensorShape": _shape(*dims)}},
            "dtype": {"type": dtype},
        },
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_model(directory: Path, kernel: np.ndarray, bias: np.ndarray) -> Path:
    """NHWC input -> 1x1 conv (float16-quantised kernel) -> + bias -> concat with itself on
    the channel axis (a scalar const) -> reshape with an int64 shape stored as int32."""
    nodes = [
        {
            "name": "input",
            "op": "Placeholder",
            "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": _shape(1, 4, 4, 2)}},
        },
        _const("kernel", "DT_FLOAT", 1, 1, 2, 3),
        _const("bias", "DT_FLOAT", 3),
        _const("axis", "DT_INT32"),
        _const("target_shape", "DT_INT64", 2),
        {
            "name": "conv",
            "op": "Conv2D",
            "input": ["input", "kernel"],
            "attr": {
                "T": {"type": "DT_FLOAT"},
                "strides": {"list": {"i": ["1", "1", "1", "1"]}},
                "dilations": {"list": {"i": ["1", "1", "1", "1"]}},
                "padding": {"s": _b64("VALID")},
                "data_format": {"s": _b64("NHWC")},
                "explicit_paddings": {"list": {}},
            },
        },
        {
            "name": "biased",
            "op": "Add",
            "input": ["conv", "bias"],
            "attr": {"T": {"type": "DT_FLOAT"}},
        },
        {
            "name": "joined",
            "op": "ConcatV2",
            "input": ["biased", "biased", "axis"],
            "attr": {"T": {"type": "DT_FLOAT"}, "N": {"i": "2"}, "Tidx": {"type": "DT_INT32"}},
        },
        {
            "name": "flat",
            "op": "Reshape",
            "input": ["joined", "target_shape"],
            "attr": {"T": {"type": "DT_FLOAT"}, "Tshape": {"type": "DT_INT64"}},
        },
        {
            "name": "Identity",
            "op": "Identity",
            "input": ["flat"],
            "attr": {"T": {"type": "DT_FLOAT"}},
        },
    ]
    weights = [
        {"name": "kernel", "shape": [1, 1, 2, 3], "dtype": "float32",
         "quantization": {"dtype": "float16", "original_dtype": "float32"}},
        {"name": "bias", "shape": [3], "dtype": "float32"},
        {"name": "axis", "shape": [], "dtype": "int32"},
        {"name": "target_shape", "shape": [2], "dtype": "int32"},
    ]  # fmt: skip
    shard = b"".join(
        [
            kernel.astype("<f2").tobytes(),
            bias.astype("<f4").tobytes(),
            np.array(3, "<i4").tobytes(),
            np.array([1, -1], "<i4").tobytes(),
        ]
    )
    (directory / "tiny.bin").write_bytes(shard)
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes, "library": {}, "versions": {}},
        "weightsManifest": [{"paths": ["tiny.bin"], "weights": weights}],
    }
    path = directory / "tiny.json"
    path.write_text(json.dumps(model))
    return path


def test_converted_model_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    kernel = rng.normal(size=(1, 1, 2, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    graph_json = write_model(tmp_path, kernel, bias)
    convert_tfjs_graph(graph_json, tmp_path / "tiny-ir.xml")
    assert (tmp_path / "tiny-ir.bin").is_file()

    # f32 explicitly: CPUs with bf16 units would otherwise round the result.
    compiled = openvino.Core().compile_model(
        str(tmp_path / "tiny-ir.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    image = rng.normal(size=(1, 4, 4, 2)).astype(np.float32)
    result = compiled(image)[0]
    # Expected: the float16-rounded kernel, concatenated on channels, flattened.
    conv = image @ kernel.astype(np.float16).astype(np.float32)[0, 0] + bias
    expected = np.concatenate([conv, conv], axis=3).reshape(1, -1)
    assert result.shape == (1, 96)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


def test_truncated_weights_are_reported(tmp_path: Path) -> None:
    graph_json = write_model(tmp_path, np.ones((1, 1, 2, 3)), np.ones(3))
    shard = tmp_path / "tiny.bin"
    shard.write_bytes(shard.read_bytes()[:-6])
    with pytest.raises(TfjsConversionError, match="needs bytes"):
        convert_tfjs_graph(graph_json, tmp_path / "out.xml")


def test_weights_without_const_node_are_reported(tmp_path: Path) -> None:
    graph_json = write_model(tmp_path, np.ones((1, 1, 2, 3)), np.ones(3))
    model = json.loads(graph_json.read_text())
    model["weightsManifest"][0]["weights"][1]["name"] = "renamed"
    graph_json.write_text(json.dumps(model))
    with pytest.raises(TfjsConversionError, match="without a Const node"):
        convert_tfjs_graph(graph_json, tmp_path / "out.xml")


def test_const_nodes_without_weights_are_reported(tmp_path: Path) -> None:
    graph_json = write_model(tmp_path, np.ones((1, 1, 2, 3)), np.ones(3))
    model = json.loads(graph_json.read_text())
    # Drop the bias from the manifest and its 3 float32 values after the float16 kernel.
    del model["weightsManifest"][0]["weights"][1]
    graph_json.write_text(json.dumps(model))
    shard = tmp_path / "tiny.bin"
    data = shard.read_bytes()
    kernel_bytes = 6 * 2
    shard.write_bytes(data[:kernel_bytes] + data[kernel_bytes + 3 * 4 :])
    with pytest.raises(TfjsConversionError, match=r"Const nodes without weights: \['bias'\]"):
        convert_tfjs_graph(graph_json, tmp_path / "out.xml")
