"""Type detection by content, extension checks and image header and decode checks."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from producers import media_types
from producers.media_types import (
    AVI,
    BMP,
    GIF,
    JPEG,
    MKV,
    MOV,
    MP4,
    PDF,
    PNG,
    TIFF,
    WEBM,
    WEBP,
    MediaKind,
    check_extension,
    detect_type,
    read_image_header,
    validate_image,
)
from visionlog.media.errors import MediaRejectedError, RejectReason

LIMIT = 100_000_000


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 1) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares the given canvas, followed by a tiny IDAT and IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def video_bytes(tmp_path: Path, suffix: str, fourcc: str) -> bytes:
    path = tmp_path / f"clip{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 5.0, (64, 48))
    assert writer.isOpened()
    for index in range(3):
        writer.write(np.full((48, 64, 3), index * 60, dtype=np.uint8))
    writer.release()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("JPEG", JPEG), ("PNG", PNG), ("TIFF", TIFF), ("BMP", BMP), ("GIF", GIF), ("WEBP", WEBP)],
)
def test_images_are_detected_by_their_bytes(fmt: str, expected: media_types.MediaType) -> None:
    data = encode(noise(32, 24), fmt)
    detected = detect_type(data[: media_types.SNIFF_BYTES])
    assert detected is expected
    assert detected.kind is MediaKind.IMAGE


def test_pdf_is_detected_even_after_leading_junk() -> None:
    assert detect_type(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj") is PDF
    assert detect_type(b"\r\n garbage before the marker %PDF-1.4\n") is PDF


def test_iso_media_brands_tell_mp4_from_quicktime() -> None:
    assert detect_type(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2") is MP4
    assert detect_type(b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ") is MOV
    assert detect_type(b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat") is MOV
    with pytest.raises(MediaRejectedError, match="HEIF/AVIF") as heif:
        detect_type(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    assert heif.value.reason is RejectReason.UNSUPPORTED_TYPE


def test_ebml_doc_type_tells_webm_from_matroska() -> None:
    header = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84"
    assert detect_type(header + b"webm\x42\x87") is WEBM
    assert detect_type(header[:-1] + b"\x88matroska") is MKV


def test_videos_written_by_opencv_are_detected(tmp_path: Path) -> None:
    assert detect_type(video_bytes(tmp_path, ".avi", "MJPG")) is AVI
    assert detect_type(video_bytes(tmp_path, ".mp4", "mp4v")) is MP4


def test_zero_bytes_are_empty() -> None:
    with pytest.raises(MediaRejectedError) as caught:
        detect_type(b"")
    assert caught.value.reason is RejectReason.EMPTY


@pytest.mark.parametrize(
    ("head", "seen"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00", "ZIP archive"),
        (b"hello, this is a note\n", "plain text"),
        (b"<?xml version='1.0'?><svg", "XML or SVG"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "RIFF file of form b'WAVE'"),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc", "unrecognised binary data"),
    ],
)
def test_unsupported_content_names_what_was_seen(head: bytes, seen: str) -> None:
    with pytest.raises(MediaRejectedError) as caught:
        detect_type(head)
    assert caught.value.reason is RejectReason.UNSUPPORTED_TYPE
    assert seen in caught.value.message
    assert head[:2].hex(" ") in caught.value.message


def test_extension_naming_another_format_is_a_mismatch() -> None:
    with pytest.raises(MediaRejectedError) as caught:
        check_extension("holiday/photo.pdf", PNG, trust_content=False)
    assert caught.value.reason is RejectReason.EXTENSION_MISMATCH
    assert "'photo.pdf' says PDF but the content is PNG" in caught.value.message


@pytest.mark.parametrize(
    ("filename", "detected", "trust"),
    [
        ("photo.pdf", PNG, True),  # the caller trusts the content
        ("scan.JPEG", JPEG, False),  # any spelling of the format, any case
        ("clip.mkv", WEBM, False),  # one container, two names
        ("upload.bin", PDF, False),  # an extension no format claims
        ("README", TIFF, False),  # no extension at all
        (None, GIF, False),
    ],
)
def test_matching_unknown_or_trusted_extensions_pass(
    filename: str | None, detected: media_types.MediaType, trust: bool
) -> None:
    check_extension(filename, detected, trust_content=trust)


def test_headers_give_dimensions_for_every_image_format() -> None:
    image = noise(37, 21)
    for fmt, media_type in [
        ("JPEG", JPEG),
        ("PNG", PNG),
        ("BMP", BMP),
        ("GIF", GIF),
        ("WEBP", WEBP),
        ("TIFF", TIFF),
    ]:
        header = read_image_header(encode(image, fmt), media_type)
        assert (header.width, header.height, header.page_count) == (37, 21, 1), fmt
    lossless = read_image_header(encode(image, "WEBP", lossless=True), WEBP)
    assert (lossless.width, lossless.height) == (37, 21)
    with_alpha = read_image_header(encode(image.convert("RGBA"), "WEBP"), WEBP)
    assert (with_alpha.width, with_alpha.height) == (37, 21)


def test_multi_page_tiff_counts_its_pages() -> None:
    pages = [noise(40, 30, seed=1), noise(20, 10, seed=2), noise(8, 8, seed=3)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    header = read_image_header(data, TIFF)
    assert header.page_count == 3
    assert header.total_pixels == 40 * 30 + 20 * 10 + 8 * 8
    assert header.largest_page_pixels == 1200
    info = validate_image(data, TIFF, max_pixels=LIMIT)
    assert (info.width, info.height, info.page_count, info.frames) == (40, 30, 3, 3)


def test_huge_header_is_refused_before_decoding() -> None:
    data = png_with_header(50_000, 50_000)
    with pytest.raises(MediaRejectedError) as caught:
        validate_image(data, PNG, max_pixels=LIMIT)
    assert caught.value.reason is RejectReason.DIMENSIONS_TOO_LARGE
    assert "50000x50000 = 2,500,000,000 pixels" in caught.value.message


def test_small_file_decoding_to_a_huge_raster_is_a_bomb() -> None:
    # 6000x6000 RGB of one colour: about 100 KB on disk, 108 MB once decoded.
    data = encode(Image.new("RGB", (6000, 6000), (250, 250, 250)), "PNG", optimize=False)
    assert len(data) < 1_000_000
    with pytest.raises(MediaRejectedError) as caught:
        validate_image(data, PNG, max_pixels=LIMIT)
    assert caught.value.reason is RejectReason.DECOMPRESSION_BOMB
    assert "108,000,000 bytes" in caught.value.message


def test_truncated_jpeg_is_corrupt() -> None:
    data = encode(noise(200, 150), "JPEG", quality=90)
    with pytest.raises(MediaRejectedError) as caught:
        validate_image(data[: len(data) // 2], JPEG, max_pixels=LIMIT)
    assert caught.value.reason is RejectReason.CORRUPT
    assert "truncated" in caught.value.message


def test_jpeg_without_a_frame_header_is_corrupt() -> None:
    with pytest.raises(MediaRejectedError) as caught:
        read_image_header(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01", JPEG)
    assert caught.value.reason is RejectReason.CORRUPT
    assert "no frame header" in caught.value.message


def test_tiff_directory_loop_is_corrupt() -> None:
    # One directory holding width and height, whose "next directory" points at itself.
    entries = struct.pack("<HHII", 256, 3, 1, 4) + struct.pack("<HHII", 257, 3, 1, 4)
    data = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries
    data += struct.pack("<I", 8)
    with pytest.raises(MediaRejectedError, match="loops back to byte 8") as caught:
        read_image_header(data, TIFF)
    assert caught.value.reason is RejectReason.CORRUPT


def test_valid_images_pass_with_their_dimensions() -> None:
    for fmt, media_type in [("JPEG", JPEG), ("PNG", PNG), ("GIF", GIF), ("WEBP", WEBP)]:
        info = validate_image(encode(noise(64, 48), fmt), media_type, max_pixels=LIMIT)
        assert (info.width, info.height, info.page_count) == (64, 48, 1), fmt


def test_pixel_limit_is_inclusive() -> None:
    data = encode(noise(100, 50), "PNG")
    assert validate_image(data, PNG, max_pixels=5000).width == 100
    with pytest.raises(MediaRejectedError) as caught:
        validate_image(data, PNG, max_pixels=4999)
    assert caught.value.reason is RejectReason.DIMENSIONS_TOO_LARGE
