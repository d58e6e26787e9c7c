"""Every bad input the ingest issue lists: a precise reason, and no blob and no event.

The module's topics receive nothing but these uploads, so "no event" is checked as zero
events on all of them; each test's originals live under its own far-future day prefix.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from producers.ingest import Ingestor
from producers.storage import OriginalStore
from tests.integration.producers import samples
from tests.integration.producers.conftest import ANONYMOUS, EventLog, IngestorFactory, originals_on
from visionlog.blobstore import BlobStore
from visionlog.media.errors import MediaRejectedError, RejectReason


@pytest.fixture
def rejects(
    make_ingestor: IngestorFactory,
    event_log: EventLog,
    blobs: BlobStore,
    upload_day: datetime,
) -> Callable[..., MediaRejectedError]:
    """Upload, expect a rejection, and check that nothing was stored or published."""

    def upload(
        data: bytes | Path, limits: dict[str, object] | None = None, **options: object
    ) -> MediaRejectedError:
        ingestor: Ingestor = make_ingestor(**(limits or {}))
        with pytest.raises(MediaRejectedError) as caught:
            ingestor.ingest_bytes(data, **options)  # type: ignore[arg-type]
        raw = data.read_bytes() if isinstance(data, Path) else data
        assert originals_on(blobs, upload_day) == []
        assert OriginalStore(blobs).lookup(hashlib.sha256(raw).hexdigest(), ANONYMOUS) is None
        assert event_log.total() == 0
        return caught.value

    return upload


def test_zero_byte_upload_is_empty(
    rejects: Callable[..., MediaRejectedError], tmp_path: Path
) -> None:
    assert rejects(b"", filename="empty.jpg").reason is RejectReason.EMPTY
    empty = tmp_path / "empty.png"
    empty.touch()
    error = rejects(empty)
    assert error.reason is RejectReason.EMPTY
    assert "0 bytes" in error.message


def test_upload_over_the_size_limit_is_too_large(
    rejects: Callable[..., MediaRejectedError],
) -> None:
    data = samples.png(200, 200)
    error = rejects(data, limits={"max_upload_bytes": 1000})
    assert error.reason is RejectReason.TOO_LARGE
    assert f"{len(data):,} bytes; the limit is 1,000" in error.message


def test_truncated_jpeg_is_corrupt(rejects: Callable[..., MediaRejectedError]) -> None:
    data = samples.jpeg(320, 240)
    error = rejects(data[: len(data) * 2 // 3], filename="cut.jpg")
    assert error.reason is RejectReason.CORRUPT
    assert "image file is truncated" in error.message


def test_decompression_bomb_is_refused(rejects: Callable[..., MediaRejectedError]) -> None:
    buffer = io.BytesIO()
    Image.new("L", (9000, 9000), 255).save(buffer, format="PNG")
    error = rejects(buffer.getvalue(), filename="blank.png")
    assert error.reason is RejectReason.DECOMPRESSION_BOMB
    assert "81,000,000 bytes of pixels" in error.message


def test_fifty_thousand_square_header_is_refused_before_decoding(
    rejects: Callable[..., MediaRejectedError],
) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )
    error = rejects(data, filename="huge.png")
    assert error.reason is RejectReason.DIMENSIONS_TOO_LARGE
    assert "50000x50000" in error.message


def test_wrong_extension_is_refused(rejects: Callable[..., MediaRejectedError]) -> None:
    error = rejects(samples.png(), filename="invoice.pdf")
    assert error.reason is RejectReason.EXTENSION_MISMATCH
    assert "says PDF but the content is PNG" in error.message


def test_unsupported_type_names_what_was_seen(
    rejects: Callable[..., MediaRejectedError],
) -> None:
    error = rejects(b"PK\x03\x04" + bytes(200), filename="archive.bin")
    assert error.reason is RejectReason.UNSUPPORTED_TYPE
    assert "ZIP archive" in error.message
    text = rejects("Grüße, just some text\n".encode(), filename="notes.txt")
    assert text.reason is RejectReason.UNSUPPORTED_TYPE
    assert "plain text" in text.message


def test_password_protected_pdf_needs_the_right_password(
    rejects: Callable[..., MediaRejectedError],
) -> None:
    data = samples.pdf(password="opensesame")
    assert rejects(data).reason is RejectReason.ENCRYPTED
    assert rejects(data, password="guess").reason is RejectReason.WRONG_PASSWORD


def test_broken_pdf_is_corrupt(rejects: Callable[..., MediaRejectedError]) -> None:
    data = b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
    error = rejects(data, filename="broken.pdf")
    assert error.reason is RejectReason.CORRUPT


def test_pdf_with_too_many_pages(rejects: Callable[..., MediaRejectedError]) -> None:
    error = rejects(samples.pdf([(300, 300)] * 3), limits={"max_pdf_pages": 2})
    assert error.reason is RejectReason.TOO_MANY_PAGES


def test_truncated_video_is_corrupt(
    rejects: Callable[..., MediaRejectedError], tmp_path: Path
) -> None:
    clip = samples.video(tmp_path / "clip.avi", frames=20).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip[: len(clip) * 6 // 10])
    error = rejects(cut)
    assert error.reason is RejectReason.CORRUPT
    assert "truncated or damaged" in error.message
