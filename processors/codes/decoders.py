"""Running the code decoders on one image and normalising what each reports."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import cv2
import numpy as np
import zxingcpp

from processors.codes.found import FoundCode, polygon_from_array
from processors.codes.merge import merge_codes
from processors.codes.rectify import upright_crop
from processors.distributions import installed_distribution, opencv_distribution

OPENCV_QR = "opencv-qr"
OPENCV_BARCODE = "opencv-barcode"
ZXING = "zxing-cpp"

# zxing-cpp names formats in CamelCase; the events use upper snake case.
_SPECIAL_NAMES = {"UPCA": "UPC_A", "UPCE": "UPC_E", "QRCode": "QR_CODE"}


@cache
def _zxing_package() -> tuple[str, str]:
    return installed_distribution("zxing-cpp")


def _decoder_versions() -> dict[str, str]:
    opencv_version = str(cv2.__version__)
    return {OPENCV_QR: opencv_version, OPENCV_BARCODE: opencv_version, ZXING: _zxing_package()[1]}


def decoder_labels() -> list[str]:
    """The decoders run on every image, as `name/version` (the events' `decoders` field)."""
    return [_label(name) for name in _decoder_versions()]


def _model_ref(
    name: str, version: str, package: str, package_version: str
) -> dict[str, str | None]:
    return {
        "name": name,
        "version": version,
        "source": f"pypi:{package}@{package_version}",
        "licence": "Apache-2.0",
        "runtime": f"{name}/{version}",
    }


def decoder_model_refs() -> list[dict[str, str | None]]:
    """ModelRef records for the decoders, for events that list the models they used."""
    opencv_package, opencv_package_version = opencv_distribution()
    zxing_package, zxing_version = _zxing_package()
    opencv_version = str(cv2.__version__)
    return [
        _model_ref(OPENCV_QR, opencv_version, opencv_package, opencv_package_version),
        _model_ref(OPENCV_BARCODE, opencv_version, opencv_package, opencv_package_version),
        _model_ref(ZXING, zxing_version, zxing_package, zxing_version),
    ]


def symbology_name(raw: str) -> str:
    """Upper snake case for a decoder's format name: `EAN13` and `EAN_13` become `EAN_13`."""
    if raw in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[raw]
    spaced = re.sub(
        r"(?<=[a-z])(?=[A-Z0-9])|(?<=[A-Za-z])(?=\d)|(?<=[A-Z])(?=[A-Z][a-z])", "_", raw
    )
    return re.sub(r"[^A-Za-z0-9]+", "_", spaced).strip("_").upper()


def _label(name: str) -> str:
    return f"{name}/{_decoder_versions()[name]}"


def decode_opencv_qr(gray: np.ndarray) -> list[FoundCode]:
    found, texts, points, _ = cv2.QRCodeDetector().detectAndDecodeMulti(gray)
    if not found or points is None:
        return []
    label = _label(OPENCV_QR)
    # Detected but undecodable symbols come back as empty strings; zxing gets another try.
    return [
        FoundCode("QR_CODE", str(text), polygon_from_array(corners), label)
        for text, corners in zip(texts, points, strict=True)
        if text
    ]


@dataclass(frozen=True)
class LinearScan:
    """OpenCV's barcode results, and the regions it located but could not decode."""

    decoded: list[FoundCode]
    undecoded_regions: list[np.ndarray]


def decode_opencv_barcodes(gray: np.ndarray) -> LinearScan:
    # The stubs promise an array, but nothing found comes back as None.
    scan: tuple[Any, ...] = cv2.barcode.BarcodeDetector().detectAndDecodeWithType(gray)
    _, texts, kinds, points = scan
    if points is None:
        return LinearScan([], [])
    label = _label(OPENCV_BARCODE)
    decoded, undecoded = [], []
    for text, kind, corners in zip(texts, kinds, points, strict=True):
        if text:
            decoded.append(
                FoundCode(symbology_name(str(kind)), str(text), polygon_from_array(corners), label)
            )
        else:
            undecoded.append(np.asarray(corners, np.float32))
    return LinearScan(decoded, undecoded)


def _zxing_polygon(position: Any) -> tuple[tuple[float, float], ...]:
    corners = (
        position.top_left,
        position.top_right,
        position.bottom_right,
        position.bottom_left,
    )
    return tuple((float(point.x), float(point.y)) for point in corners)


def decode_zxing(gray: np.ndarray, formats: Any = None) -> list[FoundCode]:
    label = _label(ZXING)
    results = (
        zxingcpp.read_barcodes(gray)
        if formats is None
        else zxingcpp.read_barcodes(gray, formats=formats)
    )
    return [
        FoundCode(
            symbology_name(result.format.name),
            str(result.text),
            _zxing_polygon(result.position),
            label,
        )
        for result in results
        if result.valid and result.text
    ]


def decode_tilted_linear(gray: np.ndarray, regions: list[np.ndarray]) -> list[FoundCode]:
    """zxing on level crops of the barcode regions OpenCV located but could not read."""
    found: list[FoundCode] = []
    for region in regions:
        crop = upright_crop(gray, region)
        if crop is None:
            continue
        for code in decode_zxing(crop.image, zxingcpp.BarcodeFormat.AllLinear):
            found.append(replace(code, polygon=crop.polygon_in_image(code.polygon)))
    return found


def to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return np.ascontiguousarray(cv2.cvtColor(image, code))
    raise ValueError(f"expected a grey or BGR(A) image, got an array of shape {image.shape}")


def decode_image(image: np.ndarray) -> list[FoundCode]:
    """Every code in the image, OpenCV's results first, repeats of one symbol merged."""
    if image.size == 0:
        raise ValueError("cannot scan an empty image")
    gray = to_gray(image)
    linear = decode_opencv_barcodes(gray)
    return merge_codes(
        [
            *decode_opencv_qr(gray),
            *linear.decoded,
            *decode_zxing(gray),
            *decode_tilted_linear(gray, linear.undecoded_regions),
        ]
    )
