"""YOLO v5 and v8/v11 outputs: layout detection, decoding, NMS, through the OpenVINO engine.

The models are tiny ONNX graphs built here: their output is a fixed candidate tensor in the
YOLO layout, except that one candidate's score is the mean of the input image, so the tests
also prove the preprocessed image reaches the model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import openvino
import pytest
from onnx import TensorProto, helper, numpy_helper

from processors.detection.engine import YoloEngine
from processors.detection.yolo import (
    YoloConfigurationError,
    decode_yolo,
    detect_layout,
    names_from_metadata,
    read_class_names,
)
from processors.openvino_runtime import OpenVinoRuntime
from visionlog.settings import Settings


def yolo_graph(
    path: Path,
    candidates: np.ndarray,
    score_index: tuple[int, int],
    input_size: int | None,
    metadata: dict[str, str] | None = None,
    dynamic_batch: bool = False,
) -> Path:
    """ONNX model: output = candidates + mean(image) at ``score_index`` (2-D position)."""
    side: int | str = input_size if input_size is not None else "size"
    batch: int | str = "batch" if dynamic_batch else 1
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, side, side])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, *candidates.shape])
    mask = np.zeros((1, *candidates.shape), np.float32)
    mask[(0, *score_index)] = 1.0
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "mask"], ["image_score"]),
        helper.make_node("Add", ["base", "image_score"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "yolo-test",
        [images],
        [output],
        initializer=[
            numpy_helper.from_array(candidates[None].astype(np.float32), "base"),
            numpy_helper.from_array(mask, "mask"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# v8 layout: one column per candidate (cx, cy, w, h, cat, dog, bird), transposed below.
V8_CANDIDATES = np.array(
    [
        [100, 80, 80, 40, 0.0, 0.0, 0.0],  # dog scored by the image: [60, 60, 140, 100]
        [100, 160, 40, 40, 0.9, 0.0, 0.0],  # cat [80, 140, 120, 180]
        [104, 160, 40, 40, 0.8, 0.0, 0.0],  # cat overlapping the first: suppressed
        [120, 160, 80, 80, 0.0, 0.7, 0.0],  # dog on the cat's spot: kept (other class)
        [240, 40, 40, 40, 0.1, 0.0, 0.0],  # too weak
        *([[10, 10, 4, 4, 0.0, 0.0, 0.0]] * 3),  # empty candidates
    ],
    np.float32,
).T
DOG_ROW = 4 + 1


@pytest.fixture(scope="module")
def runtime() -> OpenVinoRuntime:
    # Engines of tests compile through the process's one OpenVINO runtime, as in a worker.
    return OpenVinoRuntime.from_settings(Settings())


@pytest.fixture
def names_file(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("cat\ndog\n\nbird\n")
    return path


def test_layout_detection_from_output_shapes() -> None:
    assert detect_layout((1, 84, 8400)) == "v8"
    assert detect_layout((1, 25200, 85)) == "v5"
    assert detect_layout((1, 7, 5), num_classes=3) == "v8"
    assert detect_layout((1, 5, 8), num_classes=3) == "v5"
    with pytest.raises(YoloConfigurationError, match="fits neither"):
        detect_layout((1, 84, 8400), num_classes=3)
    with pytest.raises(YoloConfigurationError, match=r"\(1, A, B\)"):
        detect_layout((1, 2, 3, 4))


def test_v5_decoding_multiplies_objectness() -> None:
    rows = np.array(
        [
            [50, 50, 20, 20, 0.9, 0.1, 0.8],  # dog 0.72
            [52, 50, 20, 20, 0.5, 0.9, 0.1],  # cat 0.45, overlaps the dog: other class
            [10, 10, 4, 4, 0.3, 0.9, 0.0],  # 0.27: below threshold
        ],
        np.float32,
    )
    found = decode_yolo(rows[None], "v5", ("cat", "dog"), 0.3)
    assert found.labels() == ["dog", "cat"]
    np.testing.assert_allclose(found.scores, [0.72, 0.45], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[0], [40, 40, 60, 60])
    with pytest.raises(YoloConfigurationError, match="2 classes, 3 names"):
        decode_yolo(rows[None], "v5", ("a", "b", "c"), 0.3)


def test_v8_onnx_model_through_the_engine(
    tmp_path: Path, names_file: Path, runtime: OpenVinoRuntime
) -> None:
    model_path = yolo_graph(tmp_path / "tiny-v8.onnx", V8_CANDIDATES, (DOG_ROW, 0), 320)
    engine = YoloEngine(model_path, names_file, runtime)
    assert engine.layout == "v8" and engine.class_names == ("cat", "dog", "bird")
    assert engine.model_ref["version"] == hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]
    assert engine.model_ref["source"] == str(model_path)
    assert str(engine.model_ref["runtime"]).startswith("openvino/")

    # A black 640 x 640 image: scale 0.5, no padding; the image-driven dog scores 0.
    black = np.zeros((640, 640, 3), np.uint8)
    found = engine.detect(black, 0.25)
    assert found.labels() == ["cat", "dog"]  # cat 0.8 suppressed by cat 0.9; weak one dropped
    np.testing.assert_allclose(found.scores, [0.9, 0.7], rtol=1e-5)
    np.testing.assert_allclose(found.boxes[0], [2 * 80, 2 * 140, 2 * 120, 2 * 180], atol=1e-3)
    np.testing.assert_allclose(found.boxes[1], [2 * 80, 2 * 120, 2 * 160, 2 * 200], atol=1e-3)

    # A white image scores the image-driven dog at mean(image / 255) = 1.
    white = np.full((640, 640, 3), 255, np.uint8)
    found = engine.detect(white, 0.25)
    assert found.labels() == ["dog", "cat", "dog"]
    np.testing.assert_allclose(found.boxes[0], [2 * 60, 2 * 60, 2 * 140, 2 * 100], atol=1e-3)


def test_letterboxed_boxes_map_back_to_a_wide_image(
    tmp_path: Path, names_file: Path, runtime: OpenVinoRuntime
) -> None:
    model_path = yolo_graph(tmp_path / "tiny-v8.onnx", V8_CANDIDATES, (DOG_ROW, 0), 320)
    engine = YoloEngine(model_path, names_file, runtime)
    # 800 x 400 -> scale 0.4, 320 x 160 placed at y 80..240.
    found = engine.detect(np.zeros((400, 800, 3), np.uint8), 0.25)
    cat = found.filter(classes=["cat"])
    np.testing.assert_allclose(cat.boxes[0], [200, 150, 300, 250], atol=1e-3)


def test_v5_dynamic_onnx_with_names_metadata(tmp_path: Path, runtime: OpenVinoRuntime) -> None:
    candidates = np.array(
        [
            [320, 320, 64, 32, 0.0, 1.0, 0.0],  # objectness comes from the image
            [100, 100, 50, 50, 0.9, 0.2, 0.9],
        ],
        np.float32,
    )
    model_path = yolo_graph(
        tmp_path / "tiny-v5.onnx",
        candidates,
        (0, 4),
        None,
        metadata={"names": "{0: 'cat', 1: 'dog'}"},
    )
    engine = YoloEngine(model_path, None, runtime)
    assert engine.layout == "v5" and engine.class_names == ("cat", "dog")
    assert (engine.input_width, engine.input_height) == (640, 640)
    assert engine.detect(np.zeros((640, 640, 3), np.uint8), 0.3).labels() == ["dog"]
    found = engine.detect(np.full((640, 640, 3), 255, np.uint8), 0.3)
    assert found.labels() == ["cat", "dog"]
    np.testing.assert_allclose(found.boxes[0], [288, 304, 352, 336], atol=1e-3)


def test_dynamic_batch_keeps_the_exported_input_size(
    tmp_path: Path, names_file: Path, runtime: OpenVinoRuntime
) -> None:
    model_path = yolo_graph(
        tmp_path / "tiny-v8.onnx", V8_CANDIDATES, (DOG_ROW, 0), 320, dynamic_batch=True
    )
    engine = YoloEngine(model_path, names_file, runtime)
    # Only the batch is open: the model still sees 320 x 320, so boxes scale by 640 / 320.
    assert (engine.input_width, engine.input_height) == (320, 320)
    cat = engine.detect(np.zeros((640, 640, 3), np.uint8), 0.25).filter(classes=["cat"])
    np.testing.assert_allclose(cat.boxes[0], [2 * 80, 2 * 140, 2 * 120, 2 * 180], atol=1e-3)


def test_openvino_ir_with_json_names(tmp_path: Path, runtime: OpenVinoRuntime) -> None:
    onnx_path = yolo_graph(tmp_path / "tiny.onnx", V8_CANDIDATES, (DOG_ROW, 0), 320)
    xml_path = tmp_path / "tiny.xml"
    openvino.save_model(openvino.convert_model(str(onnx_path)), str(xml_path))
    names = tmp_path / "names.json"
    names.write_text('{"0": "cat", "1": "dog", "2": "bird"}')
    engine = YoloEngine(xml_path, names, runtime)
    digest = hashlib.sha256(xml_path.read_bytes() + xml_path.with_suffix(".bin").read_bytes())
    assert engine.model_ref["version"] == digest.hexdigest()[:16]
    assert engine.detect(np.zeros((320, 320, 3), np.uint8), 0.25).labels() == ["cat", "dog"]


def test_bad_configuration_is_reported_precisely(
    tmp_path: Path, names_file: Path, runtime: OpenVinoRuntime
) -> None:
    with pytest.raises(YoloConfigurationError, match="does not exist"):
        YoloEngine(tmp_path / "missing.onnx", None, runtime)
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    with pytest.raises(YoloConfigurationError, match=r"expected \.onnx or \.xml"):
        YoloEngine(other, None, runtime)
    model_path = yolo_graph(tmp_path / "tiny.onnx", V8_CANDIDATES, (DOG_ROW, 0), 320)
    with pytest.raises(YoloConfigurationError, match="3 classes and no names"):
        YoloEngine(model_path, None, runtime)
    two = tmp_path / "two.txt"
    two.write_text("cat\ndog\n")
    with pytest.raises(YoloConfigurationError, match="fits neither"):
        YoloEngine(model_path, two, runtime)


def test_class_name_files_and_metadata(tmp_path: Path, names_file: Path) -> None:
    assert read_class_names(names_file) == ("cat", "dog", "bird")
    listed = tmp_path / "list.json"
    listed.write_text('["a", "b"]')
    assert read_class_names(listed) == ("a", "b")
    gap = tmp_path / "gap.json"
    gap.write_text('{"0": "a", "2": "c"}')
    with pytest.raises(YoloConfigurationError, match="indices must be"):
        read_class_names(gap)
    assert names_from_metadata("['x', 'y']", "m") == ("x", "y")
    with pytest.raises(YoloConfigurationError, match="unreadable"):
        names_from_metadata("{0: person", "m")
