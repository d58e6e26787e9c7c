"""Convert a TensorFlow.js graph model into an OpenVINO IR, without TensorFlow.

A TF.js graph model is a JSON ``modelTopology`` (a TensorFlow ``GraphDef`` in protobuf's JSON
mapping, with empty ``Const`` nodes) plus binary shards listed in ``weightsManifest``. We
parse the topology with the compiled TensorFlow protos shipped in the ``tensorboard`` wheel,
fill every ``Const`` node with its weights from the shards (dequantising float16 or uint8
quantised floats), write a frozen ``.pb`` and let OpenVINO's TensorFlow frontend convert it.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openvino

# The compiled TensorFlow protos ship with tensorboard; only provisioning needs them.
from processors.detection.tf_protos import ensure_tensorflow_protos

ensure_tensorflow_protos()
from tensorboard.compat.proto import graph_pb2, types_pb2  # noqa: E402

# protobuf ships no type stubs; the JSON mapping is used through one call only.
json_format: Any = importlib.import_module("google.protobuf.json_format")


class TfjsConversionError(ValueError):
    """The TF.js model files are inconsistent or use a feature this converter lacks."""


_MANIFEST_DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("bool"),
    "float16": np.dtype("<f2"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
}

# TF.js stores int64 tensors as int32; the GraphDef still declares the original type.
_TF_TO_NUMPY: dict[int, np.dtype[Any]] = {
    types_pb2.DT_FLOAT: np.dtype("<f4"),
    types_pb2.DT_INT32: np.dtype("<i4"),
    types_pb2.DT_INT64: np.dtype("<i8"),
    types_pb2.DT_BOOL: np.dtype("bool"),
}

_NUMPY_TO_TF: dict[str, int] = {
    "float32": types_pb2.DT_FLOAT,
    "int32": types_pb2.DT_INT32,
    "bool": types_pb2.DT_BOOL,
}


@dataclass(frozen=True)
class WeightSpec:
    """One entry of ``weightsManifest``: where a tensor lies in the shards and how."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: Mapping[str, Any] | None

    @property
    def stored_dtype(self) -> np.dtype[Any]:
        stored = self.quantization["dtype"] if self.quantization else self.dtype
        if stored not in _MANIFEST_DTYPES:
            raise TfjsConversionError(f"weight {self.name}: unsupported stored dtype {stored}")
        return _MANIFEST_DTYPES[stored]

    @property
    def byte_size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.stored_dtype.itemsize

    def decode(self, raw: bytes) -> np.ndarray:
        """The tensor's values in the manifest's (original) dtype."""
        values = np.frombuffer(raw, dtype=self.stored_dtype).reshape(self.shape)
        if self.quantization is None:
            return values
        if self.quantization["dtype"] == "float16":
            return values.astype(np.float32)
        # Affine uint8/uint16 quantisation: value = q * scale + min.
        if "scale" not in self.quantization or "min" not in self.quantization:
            raise TfjsConversionError(
                f"weight {self.name}: quantisation {self.quantization} lacks scale/min"
            )
        scale = float(self.quantization["scale"])
        offset = float(self.quantization["min"])
        return (values.astype(np.float32) * scale + offset).astype(_MANIFEST_DTYPES[self.dtype])


def _weight_specs(group: Mapping[str, Any]) -> Iterator[WeightSpec]:
    for entry in group["weights"]:
        if entry.get("dtype") == "string":
            raise TfjsConversionError(f"weight {entry['name']}: string tensors unsupported")
        yield WeightSpec(
            name=str(entry["name"]),
            shape=tuple(int(d) for d in entry["shape"]),
            dtype=str(entry["dtype"]),
            quantization=entry.get("quantization"),
        )


def read_weights(model_json: Mapping[str, Any], directory: Path) -> dict[str, np.ndarray]:
    """Every weight tensor of the model by node name, decoded from the shards."""
    weights: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        shard = b"".join((directory / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in _weight_specs(group):
            end = offset + spec.byte_size
            if end > len(shard):
                raise TfjsConversionError(
                    f"weight {spec.name} needs bytes {offset}..{end}, "
                    f"but shards {group['paths']} hold only {len(shard)}"
                )
            weights[spec.name] = spec.decode(shard[offset:end])
            offset = end
        if offset != len(shard):
            raise TfjsConversionError(
                f"shards {group['paths']} hold {len(shard)} bytes, manifest describes {offset}"
            )
    return weights


def _fill_const(node: Any, values: np.ndarray) -> None:
    tensor = node.attr["value"].tensor
    declared = tensor.dtype or node.attr["dtype"].type
    if declared in _TF_TO_NUMPY:
        target = _TF_TO_NUMPY[declared]
    elif values.dtype.name in _NUMPY_TO_TF:
        target = values.dtype
        declared = _NUMPY_TO_TF[values.dtype.name]
    else:
        raise TfjsConversionError(f"const {node.name}: unsupported dtype {declared}")
    tensor.Clear()
    tensor.dtype = declared
    for size in values.shape:
        tensor.tensor_shape.dim.add().size = size
    typed = values.astype(target)
    if typed.ndim > 0:
        tensor.tensor_content = np.ascontiguousarray(typed).tobytes()
        return
    # OpenVINO's TensorFlow frontend reads a scalar's tensor_content as 0 (seen with
    # 2026.4: every Concat axis became 0), so scalars go into the typed value fields.
    scalar = typed.item()
    if declared == types_pb2.DT_FLOAT:
        tensor.float_val.append(scalar)
    elif declared == types_pb2.DT_INT64:
        tensor.int64_val.append(scalar)
    elif declared == types_pb2.DT_BOOL:
        tensor.bool_val.append(scalar)
    else:
        tensor.int_val.append(scalar)


_VALUE_FIELDS = ("float_val", "double_val", "half_val", "int_val", "int64_val", "bool_val")


def _holds_values(tensor: Any) -> bool:
    """Whether a TensorProto carries its values inline (in the topology, not the shards)."""
    return bool(tensor.tensor_content) or any(len(getattr(tensor, f)) for f in _VALUE_FIELDS)


def build_graph_def(model_json: Mapping[str, Any], directory: Path) -> Any:
    """The frozen GraphDef: topology parsed from JSON, weights written into its Consts."""
    if model_json.get("format") not in (None, "graph-model"):
        raise TfjsConversionError(f"not a TF.js graph model: format {model_json.get('format')}")
    graph = graph_pb2.GraphDef()
    json_format.ParseDict(model_json["modelTopology"], graph, ignore_unknown_fields=True)
    weights = read_weights(model_json, directory)
    consts = {node.name: node for node in graph.node if node.op == "Const"}
    missing = sorted(set(weights) - set(consts))
    if missing:
        raise TfjsConversionError(f"weights without a Const node: {missing[:5]}")
    # A Const left empty would convert into a graph computing with zeros or fail deep inside
    # OpenVINO; name it here instead.
    unfilled = sorted(
        name
        for name, node in consts.items()
        if name not in weights and not _holds_values(node.attr["value"].tensor)
    )
    if unfilled:
        raise TfjsConversionError(f"Const nodes without weights: {unfilled[:5]}")
    for name, values in weights.items():
        _fill_const(consts[name], values)
    return graph


def convert_tfjs_graph(graph_json: Path, output_xml: Path) -> None:
    """Convert ``graph_json`` (+ its weight shards beside it) into the IR ``output_xml``/.bin."""
    model_json = json.loads(graph_json.read_text())
    graph = build_graph_def(model_json, graph_json.parent)
    with tempfile.TemporaryDirectory(prefix="visionlog-tfjs-") as workdir:
        frozen = Path(workdir) / f"{graph_json.stem}.pb"
        frozen.write_bytes(graph.SerializeToString())
        model = openvino.convert_model(str(frozen))
    openvino.save_model(model, str(output_xml), compress_to_fp16=False)
