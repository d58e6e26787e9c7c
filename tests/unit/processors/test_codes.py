"""Codes drawn in the test (QR, EAN-13, Code128), scaled and rotated, decode to their text."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from reportlab.graphics.barcode.code128 import Code128

from processors.codes.decoders import decode_image, symbology_name
from processors.codes.found import FoundCode
from processors.codes.merge import merge_codes

# EAN-13 symbology tables: left-hand odd (L) patterns; G is R reversed, R is L inverted.
_EAN_L = ["0001101", "0011001", "0010011", "0111101", "0100011",
          "0110001", "0101111", "0111011", "0110111", "0001011"]  # fmt: skip
_EAN_PARITY = ["LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
               "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL"]  # fmt: skip


def _invert(bits: str) -> str:
    return "".join("1" if bit == "0" else "0" for bit in bits)


def ean13_check_digit(first12: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def ean13_modules(first12: str) -> str:
    """The 95 modules (1 = bar) of an EAN-13 symbol."""
    digits = first12 + ean13_check_digit(first12)
    parity = _EAN_PARITY[int(digits[0])]
    left = ""
    for digit, kind in zip(digits[1:7], parity, strict=True):
        pattern = _EAN_L[int(digit)]
        left += pattern if kind == "L" else _invert(pattern)[::-1]
    right = "".join(_invert(_EAN_L[int(d)]) for d in digits[7:])
    return "101" + left + "01010" + right + "101"


def code128_modules(text: str) -> str:
    """Code 128 modules from reportlab's encoder: upper case = bar, lower = space, A=1 .. D=4."""
    symbol = Code128(value=text, humanReadable=False)
    symbol.validate()
    symbol.encode()
    symbol.decompose()
    modules = ""
    for letter in symbol.decomposed:
        width = ord(letter.upper()) - ord("A") + 1
        modules += ("1" if letter.isupper() else "0") * width
    return modules


def render_linear(modules: str, module_px: int, height_px: int, quiet: int = 12) -> np.ndarray:
    row = np.array([0 if m == "1" else 255 for m in "0" * quiet + modules + "0" * quiet], np.uint8)
    wide = np.repeat(row, module_px)
    return np.ascontiguousarray(np.tile(wide, (height_px, 1)))


def render_qr(text: str, module_px: int) -> np.ndarray:
    encoded = cv2.QRCodeEncoder.create().encode(text)
    scaled = cv2.resize(encoded, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)
    border = 4 * module_px
    return np.ascontiguousarray(cv2.copyMakeBorder(
        scaled, border, border, border, border, cv2.BORDER_CONSTANT, value=255
    ))  # fmt: skip


def canvas(width: int, height: int) -> np.ndarray:
    return np.full((height, width), 255, np.uint8)


def paste(target: np.ndarray, symbol: np.ndarray, x: int, y: int) -> None:
    target[y : y + symbol.shape[0], x : x + symbol.shape[1]] = symbol


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    return cv2.warpAffine(image, matrix, (new_w, new_h), borderValue=255)


def _texts(found: list[FoundCode]) -> dict[str, str]:
    return {code.text: code.symbology for code in found}


def _inside(code: FoundCode, x0: int, y0: int, x1: int, y1: int) -> bool:
    cx, cy = code.centre
    return x0 <= cx <= x1 and y0 <= cy <= y1


def test_ean13_encoder_matches_the_known_check_digit() -> None:
    # 400638133393-1 is a printed retail code; the check digit must come out as 1.
    assert ean13_check_digit("400638133393") == "1"
    assert len(ean13_modules("400638133393")) == 95


@pytest.mark.parametrize("module_px", [4, 9])
def test_two_qr_codes_in_one_image_with_positions(module_px: int) -> None:
    first = render_qr("https://example.org/a?x=1", module_px)
    second = render_qr("Grüße aus Köln", module_px)
    image = canvas(
        first.shape[1] + second.shape[1] + 120, max(first.shape[0], second.shape[0]) + 80
    )
    paste(image, first, 30, 40)
    paste(image, second, 90 + first.shape[1], 40)
    found = decode_image(image)
    assert _texts(found) == {"https://example.org/a?x=1": "QR_CODE", "Grüße aus Köln": "QR_CODE"}
    left = next(code for code in found if code.text.startswith("https"))
    assert _inside(left, 30, 40, 30 + first.shape[1], 40 + first.shape[0])
    assert len(left.polygon) == 4


def test_rotated_qr_code() -> None:
    image = canvas(700, 700)
    paste(image, render_qr("rotated payload 42", 6), 150, 150)
    found = decode_image(rotate(image, 33))
    assert [(code.symbology, code.text) for code in found] == [("QR_CODE", "rotated payload 42")]


@pytest.mark.parametrize(("module_px", "degrees"), [(2, 0.0), (4, 0.0), (3, 20.0), (3, 90.0)])
def test_ean13_scaled_and_rotated(module_px: int, degrees: float) -> None:
    image = canvas(95 * module_px + 200, 80 * module_px + 100)
    paste(image, render_linear(ean13_modules("400638133393"), module_px, 70 * module_px), 60, 50)
    found = decode_image(rotate(image, degrees))
    assert [(code.symbology, code.text) for code in found] == [("EAN_13", "4006381333931")]


@pytest.mark.parametrize(
    ("text", "module_px", "degrees"),
    [
        ("VL-2024/0815", 2, 0.0),
        ("Lager 7, Regal B", 3, 15.0),
        ("Lager 7, Regal B", 3, 40.0),
        ("1234567890", 4, 180.0),
    ],
)
def test_code128_which_opencv_does_not_read(text: str, module_px: int, degrees: float) -> None:
    modules = code128_modules(text)
    image = canvas(len(modules) * module_px + 200, 60 * module_px + 100)
    paste(image, render_linear(modules, module_px, 50 * module_px), 80, 50)
    rotated = rotate(image, degrees)
    found = decode_image(rotated)
    assert [(code.symbology, code.text) for code in found] == [("CODE_128", text)]
    assert found[0].decoder.startswith("zxing-cpp/")
    # The outline is in the coordinates of the scanned image: centred where the symbol is.
    centre_x, centre_y = found[0].centre
    symbol_x = 80 + (len(modules) + 24) * module_px / 2 - image.shape[1] / 2 + rotated.shape[1] / 2
    symbol_y = 50 + 25 * module_px - image.shape[0] / 2 + rotated.shape[0] / 2
    radians = np.deg2rad(degrees)
    dx, dy = symbol_x - rotated.shape[1] / 2, symbol_y - rotated.shape[0] / 2
    expected_x = rotated.shape[1] / 2 + dx * np.cos(radians) + dy * np.sin(radians)
    expected_y = rotated.shape[0] / 2 - dx * np.sin(radians) + dy * np.cos(radians)
    assert abs(centre_x - expected_x) < 15 and abs(centre_y - expected_y) < 15


def test_mixed_symbols_each_found_once() -> None:
    image = canvas(1300, 600)
    paste(image, render_qr("mixed-QR", 6), 40, 40)
    paste(image, render_linear(ean13_modules("590123412345"), 3, 200), 400, 60)
    paste(image, render_linear(code128_modules("MIX-128"), 3, 150), 400, 350)
    found = decode_image(image)
    assert sorted((code.symbology, code.text) for code in found) == [
        ("CODE_128", "MIX-128"),
        ("EAN_13", "5901234123457"),
        ("QR_CODE", "mixed-QR"),
    ]


def test_blank_and_noise_images_have_no_codes() -> None:
    rng = np.random.default_rng(7)
    assert decode_image(canvas(320, 240)) == []
    assert decode_image(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []


def test_empty_image_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty image"):
        decode_image(np.zeros((0, 0, 3), np.uint8))


def test_symbology_names_are_normalised() -> None:
    assert symbology_name("QRCode") == "QR_CODE"
    assert symbology_name("EAN13") == "EAN_13"
    assert symbology_name("EAN_13") == "EAN_13"
    assert symbology_name("Code128") == "CODE_128"
    assert symbology_name("DataMatrix") == "DATA_MATRIX"
    assert symbology_name("UPCA") == "UPC_A"
    assert symbology_name("PDF417") == "PDF_417"


def _square(text: str, symbology: str, x: float, decoder: str) -> FoundCode:
    polygon = ((x, 0.0), (x + 100, 0.0), (x + 100, 100.0), (x, 100.0))
    return FoundCode(symbology, text, polygon, decoder)


def test_merge_keeps_first_decoder_and_separate_copies() -> None:
    opencv = _square("same", "QR_CODE", 0, "opencv-qr/4")
    zxing_same = _square("same", "QR_CODE", 8, "zxing-cpp/3")
    zxing_elsewhere = _square("same", "QR_CODE", 400, "zxing-cpp/3")
    zxing_other_text = _square("other", "QR_CODE", 4, "zxing-cpp/3")
    merged = merge_codes([opencv, zxing_same, zxing_elsewhere, zxing_other_text])
    assert merged == [opencv, zxing_elsewhere, zxing_other_text]


def test_merge_treats_upc_a_and_ean13_with_leading_zero_as_one() -> None:
    ean = _square("0012345678905", "EAN_13", 0, "opencv-barcode/4")
    upc = _square("012345678905", "UPC_A", 5, "zxing-cpp/3")
    assert merge_codes([ean, upc]) == [ean]
