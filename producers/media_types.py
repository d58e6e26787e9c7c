"""Media type detection from content (magic bytes), never from the file name.

`detect_type` names the format from the first bytes; `check_extension` refuses a file name
whose extension names a different known format unless the caller trusts the content;
`read_image_header` reads dimensions (and TIFF page count) from the header alone, so
oversized canvases are refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

from visionlog.media.errors import MediaRejectedError, RejectReason

# PDF allows up to 1 KiB of leading junk before the %PDF- marker.
SNIFF_BYTES = 1024
# A TIFF with more pages than this is refused rather than walked.
MAX_TIFF_PAGES = 10_000


class MediaKind(StrEnum):
    """Symbols of the MediaKind enum in the MediaUploaded contract."""

    IMAGE = "IMAGE"
    PDF = "PDF"
    VIDEO = "VIDEO"


@dataclass(frozen=True)
class MediaType:
    name: str
    kind: MediaKind
    mime: str
    # The extension stored originals get, then every other spelling of the same format.
    extensions: tuple[str, ...]

    @property
    def extension(self) -> str:
        return self.extensions[0]


JPEG = MediaType("jpeg", MediaKind.IMAGE, "image/jpeg", ("jpg", "jpeg", "jpe", "jfif"))
PNG = MediaType("png", MediaKind.IMAGE, "image/png", ("png",))
TIFF = MediaType("tiff", MediaKind.IMAGE, "image/tiff", ("tif", "tiff"))
BMP = MediaType("bmp", MediaKind.IMAGE, "image/bmp", ("bmp", "dib"))
GIF = MediaType("gif", MediaKind.IMAGE, "image/gif", ("gif",))
WEBP = MediaType("webp", MediaKind.IMAGE, "image/webp", ("webp",))
PDF = MediaType("pdf", MediaKind.PDF, "application/pdf", ("pdf",))
MP4 = MediaType("mp4", MediaKind.VIDEO, "video/mp4", ("mp4", "m4v", "3gp"))
MOV = MediaType("mov", MediaKind.VIDEO, "video/quicktime", ("mov", "qt"))
AVI = MediaType("avi", MediaKind.VIDEO, "video/x-msvideo", ("avi",))
MKV = MediaType("mkv", MediaKind.VIDEO, "video/x-matroska", ("mkv",))
WEBM = MediaType("webm", MediaKind.VIDEO, "video/webm", ("webm",))

SUPPORTED: tuple[MediaType, ...] = (JPEG, PNG, TIFF, BMP, GIF, WEBP, PDF, MP4, MOV, AVI, MKV, WEBM)

# MKV and WebM are one container; a .mkv holding a WebM doc type is not a mismatch.
_SAME_CONTAINER = {MKV.name: WEBM.extensions, WEBM.name: MKV.extensions}

# ISO base media file format brands (bytes 8..12 after "ftyp").
_QUICKTIME_BRANDS = {b"qt  "}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso8", b"mp41", b"mp42",
    b"avc1", b"dash", b"M4V ", b"M4VH", b"M4VP", b"mmp4", b"f4v ", b"XAVC", b"MSNV",
    b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"3ge6", b"3gg6",
}  # fmt: skip
_STILL_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
# Classic QuickTime files may start with a top-level atom instead of "ftyp".
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide"}

_BMP_DIB_SIZES = {12, 40, 52, 56, 64, 108, 124}

# Signatures of common formats the platform does not take, to name what was seen.
_KNOWN_OTHERS: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"%!PS", "a PostScript document"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg media file"),
    (b"fLaC", "a FLAC audio file"),
    (b"8BPS", "a Photoshop document"),
    (b"\x00\x00\x01\x00", "a Windows icon"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"II+\x00", "a BigTIFF image"),
    (b"MM\x00+", "a BigTIFF image"),
    (b"\x00\x00\x01\xba", "an MPEG program stream"),
    (b"GIF8", "a GIF with an unknown version"),
)


def _first_bytes(head: bytes, count: int = 16) -> str:
    return " ".join(f"{byte:02x}" for byte in head[:count])


def describe_unknown(head: bytes) -> str:
    """A short description of bytes that are no supported format, for error messages."""
    for signature, name in _KNOWN_OTHERS:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF":
        return f"a RIFF file of form {head[8:12]!r}"
    if head[4:8] == b"ftyp":
        return f"an ISO media file with brand {head[8:12]!r}"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "an EBML file without a Matroska or WebM doc type"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<svg", b"<?xml")):
        return "an XML or SVG document"
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "an HTML document"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised binary data"
    return "plain text"


def _iso_media_type(head: bytes) -> MediaType | None:
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _QUICKTIME_BRANDS:
            return MOV
        if brand in _MP4_BRANDS:
            return MP4
        if brand in _STILL_IMAGE_BRANDS:
            raise MediaRejectedError(
                RejectReason.UNSUPPORTED_TYPE,
                f"unsupported media type: a HEIF/AVIF still image (brand {brand!r}); "
                "convert it to JPEG or PNG",
            )
        if brand in _AUDIO_BRANDS:
            raise MediaRejectedError(
                RejectReason.UNSUPPORTED_TYPE,
                f"unsupported media type: an MPEG-4 audio file (brand {brand!r})",
            )
        return None
    if head[4:8] in _QUICKTIME_ATOMS:
        return MOV
    return None


def _ebml_media_type(head: bytes) -> MediaType:
    # The DocType element follows the EBML header within the first few dozen bytes.
    return WEBM if b"webm" in head[:64] else MKV


def detect_type(head: bytes) -> MediaType:
    """The supported format the first bytes (at least `SNIFF_BYTES` when available) show.

    Raises MediaRejectedError(EMPTY) for no bytes and (UNSUPPORTED_TYPE) naming what was
    seen for anything else.
    """
    if not head:
        raise MediaRejectedError(RejectReason.EMPTY, "the file is empty (0 bytes)")
    found: MediaType | None = None
    if head.startswith(b"\xff\xd8\xff"):
        found = JPEG
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        found = PNG
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        found = TIFF
    elif head[:2] == b"BM" and len(head) >= 18 and _u32le(head, 14) in _BMP_DIB_SIZES:
        found = BMP
    elif head[:6] in (b"GIF87a", b"GIF89a"):
        found = GIF
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        found = WEBP
    elif head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        found = AVI
    elif head[:4] == b"\x1a\x45\xdf\xa3":
        found = _ebml_media_type(head)
    elif b"%PDF-" in head[:SNIFF_BYTES]:
        found = PDF
    else:
        found = _iso_media_type(head)
    if found is None:
        raise MediaRejectedError(
            RejectReason.UNSUPPORTED_TYPE,
            f"unsupported media type: the content is {describe_unknown(head)} "
            f"(first bytes: {_first_bytes(head)}); supported are "
            f"{', '.join(t.name.upper() for t in SUPPORTED)}",
        )
    return found


_EXTENSION_OWNERS: dict[str, MediaType] = {
    extension: media_type for media_type in SUPPORTED for extension in media_type.extensions
}


def check_extension(filename: str | None, detected: MediaType, *, trust_content: bool) -> None:
    """Refuse a name whose extension names another known format than the content.

    Names without an extension, or with one no supported format uses (``.dat``, ``.bin``),
    are accepted: the content decides. With `trust_content` a mismatch is accepted too.
    """
    if not filename or trust_content:
        return
    extension = PurePath(filename).suffix.lower().lstrip(".")
    claimed = _EXTENSION_OWNERS.get(extension)
    if claimed is None or extension in detected.extensions:
        return
    if extension in _SAME_CONTAINER.get(detected.name, ()):
        return
    raise MediaRejectedError(
        RejectReason.EXTENSION_MISMATCH,
        f"file name {PurePath(filename).name!r} says {claimed.name.upper()} but the content "
        f"is {detected.name.upper()}; rename it, or accept it by content "
        "(trust_content=True, CLI --ignore-extension)",
    )


@dataclass(frozen=True)
class ImageHeader:
    """What an image header declares, read without decoding pixels."""

    width: int
    height: int
    # TIFF directories (pages); 1 for every other format (animations count as one image).
    page_count: int
    # Pixels of the largest page and of all pages together.
    largest_page_pixels: int
    total_pixels: int


def _u16be(data: bytes, offset: int) -> int:
    return int(struct.unpack_from(">H", data, offset)[0])


def _u32le(data: bytes, offset: int) -> int:
    return int(struct.unpack_from("<I", data, offset)[0])


def _corrupt(media_type: MediaType, why: str) -> MediaRejectedError:
    return MediaRejectedError(
        RejectReason.CORRUPT, f"corrupt {media_type.name.upper()} header: {why}"
    )


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD9)}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise _corrupt(JPEG, f"expected a marker at byte {offset}")
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _JPEG_STANDALONE:
            offset += 2
            continue
        if marker in (0xD9, 0xDA):
            raise _corrupt(JPEG, "image data starts before any frame header (SOF)")
        length = _u16be(data, offset + 2)
        if marker in _JPEG_SOF:
            if offset + 9 > len(data):
                break
            height, width = _u16be(data, offset + 5), _u16be(data, offset + 7)
            if height == 0:
                raise _corrupt(JPEG, "frame height 0 (height defined later) is not supported")
            return width, height
        if length < 2:
            raise _corrupt(JPEG, f"segment length {length} at byte {offset}")
        offset += 2 + length
    raise _corrupt(JPEG, "no frame header (SOF) before the end of the data")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _corrupt(PNG, "the first chunk is not IHDR")
    width, height = struct.unpack_from(">II", data, 16)
    return int(width), int(height)


def _gif_size(data: bytes) -> tuple[int, int]:
    if len(data) < 10:
        raise _corrupt(GIF, "shorter than the logical screen descriptor")
    width, height = struct.unpack_from("<HH", data, 6)
    return int(width), int(height)


def _bmp_size(data: bytes) -> tuple[int, int]:
    if len(data) < 26:
        raise _corrupt(BMP, "shorter than the bitmap header")
    if _u32le(data, 14) == 12:
        width, height = struct.unpack_from("<HH", data, 18)
        return int(width), int(height)
    width, height = struct.unpack_from("<ii", data, 18)
    # A negative height marks a top-down bitmap.
    return abs(int(width)), abs(int(height))


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        if data[23:26] != b"\x9d\x01\x2a":
            raise _corrupt(WEBP, "bad VP8 start code")
        width, height = struct.unpack_from("<HH", data, 26)
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        if data[20] != 0x2F:
            raise _corrupt(WEBP, "bad VP8L signature")
        bits = _u32le(data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise _corrupt(WEBP, f"unknown or truncated first chunk {chunk!r}")


_TIFF_TYPE_FORMATS = {3: "H", 4: "I"}


def _tiff_pages(data: bytes) -> list[tuple[int, int]]:
    endian = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        raise _corrupt(TIFF, "shorter than the file header")
    offset = int(struct.unpack_from(endian + "I", data, 4)[0])
    pages: list[tuple[int, int]] = []
    seen: set[int] = set()
    while offset:
        if offset in seen:
            raise _corrupt(TIFF, f"directory chain loops back to byte {offset}")
        if len(pages) >= MAX_TIFF_PAGES:
            raise MediaRejectedError(
                RejectReason.TOO_MANY_PAGES, f"TIFF has more than {MAX_TIFF_PAGES} pages"
            )
        seen.add(offset)
        if offset + 2 > len(data):
            raise _corrupt(TIFF, f"directory {len(pages) + 1} at byte {offset} is past the end")
        count = int(struct.unpack_from(endian + "H", data, offset)[0])
        end = offset + 2 + 12 * count
        if end + 4 > len(data):
            raise _corrupt(TIFF, f"directory {len(pages) + 1} is truncated")
        size: dict[int, int] = {}
        for entry in range(offset + 2, end, 12):
            tag, kind = struct.unpack_from(endian + "HH", data, entry)
            if tag in (256, 257) and kind in _TIFF_TYPE_FORMATS:
                size[tag] = int(
                    struct.unpack_from(endian + _TIFF_TYPE_FORMATS[kind], data, entry + 8)[0]
                )
        if 256 not in size or 257 not in size:
            raise _corrupt(TIFF, f"page {len(pages) + 1} declares no width or height")
        pages.append((size[256], size[257]))
        offset = int(struct.unpack_from(endian + "I", data, end)[0])
    if not pages:
        raise _corrupt(TIFF, "no image directory")
    return pages


def read_image_header(data: bytes, media_type: MediaType) -> ImageHeader:
    """Dimensions declared by an image's header; raises CORRUPT when it cannot be read."""
    try:
        if media_type is TIFF:
            pages = _tiff_pages(data)
        elif media_type is JPEG:
            pages = [_jpeg_size(data)]
        elif media_type is PNG:
            pages = [_png_size(data)]
        elif media_type is GIF:
            pages = [_gif_size(data)]
        elif media_type is BMP:
            pages = [_bmp_size(data)]
        elif media_type is WEBP:
            pages = [_webp_size(data)]
        else:
            raise ValueError(f"{media_type.name} is not an image format")
    except struct.error as exc:
        raise _corrupt(media_type, f"truncated ({exc})") from exc
    for number, (width, height) in enumerate(pages, start=1):
        if width <= 0 or height <= 0:
            raise _corrupt(media_type, f"page {number} declares {width}x{height} pixels")
    areas = [width * height for width, height in pages]
    return ImageHeader(
        width=pages[0][0],
        height=pages[0][1],
        page_count=len(pages),
        largest_page_pixels=max(areas),
        total_pixels=sum(areas),
    )


# A decompression bomb is a small file that decodes into a huge raster. Refused when the
# decoded size exceeds both the floor and this multiple of the file size (zlib tops out
# near 1000:1; real photos and scans stay far below 100:1).
BOMB_MIN_DECODED_BYTES = 64 * 1024 * 1024
BOMB_MAX_RATIO = 250

_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I": 4, "F": 4}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    page_count: int
    frames: int
    mode: str


def _check_bomb(decoded_bytes: int, file_size: int, what: str) -> None:
    if decoded_bytes > BOMB_MIN_DECODED_BYTES and decoded_bytes > BOMB_MAX_RATIO * file_size:
        raise MediaRejectedError(
            RejectReason.DECOMPRESSION_BOMB,
            f"decompression bomb: {file_size:,} bytes would decode to {decoded_bytes:,} bytes "
            f"of pixels ({what}), more than {BOMB_MAX_RATIO}x the file size",
        )


def validate_image(data: bytes, media_type: MediaType, *, max_pixels: int) -> ImageInfo:
    """Check that an image decodes completely and safely; returns what it holds.

    Order matters: the header's dimensions are checked before Pillow sees the file, the
    decoded size is estimated before any pixel is decoded, then every page or animation
    frame is decoded once. Raises MediaRejectedError(DIMENSIONS_TOO_LARGE,
    DECOMPRESSION_BOMB or CORRUPT).
    """
    header = read_image_header(data, media_type)
    if header.largest_page_pixels > max_pixels:
        raise MediaRejectedError(
            RejectReason.DIMENSIONS_TOO_LARGE,
            f"the {media_type.name.upper()} header declares {header.width}x{header.height} "
            f"= {header.largest_page_pixels:,} pixels; the limit is {max_pixels:,} per image",
        )
    # Imported here: Pillow's plugins load lazily and detection alone does not need them.
    from PIL import Image

    # Pillow's own guard, as a second line behind the header check above; the global is
    # restored so this call's limit does not leak into other users of Pillow.
    previous_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        frames, mode = _decode_every_frame(data, media_type, header)
    except MediaRejectedError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaRejectedError(
            RejectReason.DECOMPRESSION_BOMB, f"decompression bomb: {exc}"
        ) from exc
    except ValueError as exc:
        if "Decompressed Data Too Large" in str(exc):
            raise MediaRejectedError(
                RejectReason.DECOMPRESSION_BOMB,
                f"decompression bomb in a {media_type.name.upper()} metadata chunk: {exc}",
            ) from exc
        raise _decode_failure(media_type, exc) from exc
    except (OSError, SyntaxError, EOFError, struct.error, IndexError) as exc:
        raise _decode_failure(media_type, exc) from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    return ImageInfo(
        width=header.width,
        height=header.height,
        page_count=header.page_count,
        frames=frames,
        mode=mode,
    )


def _decode_every_frame(data: bytes, media_type: MediaType, header: ImageHeader) -> tuple[int, str]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as probe:
        probe.verify()
    with Image.open(io.BytesIO(data)) as image:
        if image.size != (header.width, header.height):
            raise MediaRejectedError(
                RejectReason.CORRUPT,
                f"corrupt {media_type.name.upper()}: header says {header.width}x{header.height}, "
                f"decoder says {image.size[0]}x{image.size[1]}",
            )
        per_pixel = _BYTES_PER_PIXEL.get(image.mode, len(image.getbands()))
        _check_bomb(header.total_pixels * per_pixel, len(data), f"{header.page_count} page(s)")
        frames = int(getattr(image, "n_frames", 1))
        _check_bomb(
            header.largest_page_pixels * per_pixel * frames, len(data), f"{frames} frame(s)"
        )
        for index in range(frames):
            image.seek(index)
            image.load()
        return frames, str(image.mode)


def _decode_failure(media_type: MediaType, exc: Exception) -> MediaRejectedError:
    return MediaRejectedError(
        RejectReason.CORRUPT,
        f"corrupt {media_type.name.upper()}: the image does not decode ({exc})",
    )
