"""PDF inspection, decryption, repair and rendering on documents generated here."""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pikepdf
import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from visionlog.errors import Disposition, PermanentError, classify, http_status
from visionlog.media.errors import MediaRejectedError, RejectReason
from visionlog.media.pdf import (
    MIN_RENDER_DPI,
    RENDERER,
    fitting_dpi,
    inspect_pdf,
    open_for_rendering,
    open_pdf,
    render_pages,
)


def text_pdf(pages: int, pagesize: tuple[float, float] = A4) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=pagesize)
    for number in range(1, pages + 1):
        pdf.setFont("Helvetica-Bold", 60)
        pdf.drawString(72, pagesize[1] - 144, f"Page {number}")
        # A black bar whose width encodes the page number, measurable after rendering.
        pdf.rect(72, 72, 40 * number, 40, stroke=0, fill=1)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def flat_pdf(pages: int) -> bytes:
    """Same document rewritten by qpdf without object streams: objects in page order."""
    with pikepdf.open(io.BytesIO(text_pdf(pages))) as pdf:
        out = io.BytesIO()
        pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return out.getvalue()


def encrypted_pdf(pages: int, user_password: str) -> bytes:
    with pikepdf.open(io.BytesIO(text_pdf(pages))) as pdf:
        out = io.BytesIO()
        pdf.save(out, encryption=pikepdf.Encryption(user=user_password, owner="owner-pw", R=6))
    return out.getvalue()


def bar_width_px(png: bytes) -> int:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    bottom_rows = image[-image.shape[0] // 8 :]
    dark_columns = (bottom_rows < 64).any(axis=0)
    return int(dark_columns.sum())


def test_intact_pdf_is_inspected_without_repair() -> None:
    inspection = inspect_pdf(text_pdf(4), max_pages=10)
    assert inspection.page_count == 4
    assert inspection.declared_pages == 4
    assert inspection.recovered_pages == 4
    assert inspection.repaired is False
    assert inspection.encrypted is False
    assert inspection.warnings == ()


def test_pages_render_in_order_at_the_requested_dpi() -> None:
    pages = list(render_pages(text_pdf(3), dpi=100, max_pages=10, max_pixels=10**8))
    assert [p.page_number for p in pages] == [1, 2, 3]
    assert {p.page_count for p in pages} == {3}
    for page in pages:
        assert page.dpi == 100
        # A4 is 595.28 x 841.89 pt: at 100 dpi 827 x 1170 pixels.
        assert (page.width, page.height) == (827, 1170)
        assert page.png.startswith(b"\x89PNG\r\n\x1a\n")
    widths = [bar_width_px(p.png) for p in pages]
    # Bars are 40, 80, 120 pt wide: 56, 111, 167 px at 100 dpi.
    assert widths == pytest.approx([56, 111, 167], abs=2)
    assert RENDERER.startswith("pypdfium2/")


def test_oversized_pages_render_at_a_lower_dpi_within_the_pixel_limit() -> None:
    limit = 500_000
    pages = list(render_pages(text_pdf(1), dpi=150, max_pages=5, max_pixels=limit))
    (page,) = pages
    assert page.width * page.height <= limit
    assert MIN_RENDER_DPI <= page.dpi < 150
    assert fitting_dpi(595.28, 841.89, 150, limit) == page.dpi
    # One more dpi would have exceeded the limit: the highest fitting DPI was chosen.
    assert fitting_dpi(595.28, 841.89, page.dpi + 1, limit) == page.dpi


def test_a_page_too_large_even_at_the_minimum_dpi_is_rejected() -> None:
    huge = text_pdf(1, pagesize=(14_000, 14_000))
    with pytest.raises(MediaRejectedError) as caught:
        next(render_pages(huge, dpi=150, max_pages=5, max_pixels=1_000_000))
    assert caught.value.reason is RejectReason.DIMENSIONS_TOO_LARGE
    assert "page 1 measures 14000x14000 pt" in caught.value.message


def test_too_many_pages_is_rejected_before_rendering() -> None:
    with pytest.raises(MediaRejectedError) as caught:
        render_pages(text_pdf(6), dpi=72, max_pages=5, max_pixels=10**8)
    assert caught.value.reason is RejectReason.TOO_MANY_PAGES
    assert caught.value.message == "the PDF has 6 pages; at most 5 are accepted"


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, this is plain text" * 40, b"\x89PNG\r\n\x1a\n" + b"\x00" * 200],
    ids=["empty", "text", "png"],
)
def test_input_that_is_not_a_pdf_is_corrupt(data: bytes) -> None:
    with pytest.raises(MediaRejectedError) as caught:
        inspect_pdf(data, max_pages=10)
    assert caught.value.reason is RejectReason.CORRUPT
    assert caught.value.message.startswith("not a PDF")


def test_pdf_header_with_garbage_is_damaged_beyond_repair() -> None:
    with pytest.raises(MediaRejectedError) as caught:
        inspect_pdf(b"%PDF-1.7\n" + b"\x00garbage" * 200, max_pages=10)
    assert caught.value.reason is RejectReason.CORRUPT
    assert caught.value.message.startswith("damaged beyond repair")


def test_encrypted_pdf_without_password_is_rejected_as_encrypted() -> None:
    with pytest.raises(MediaRejectedError) as caught:
        inspect_pdf(encrypted_pdf(2, "s3cret"), max_pages=10)
    assert caught.value.reason is RejectReason.ENCRYPTED


def test_encrypted_pdf_with_a_wrong_password_is_rejected() -> None:
    with pytest.raises(MediaRejectedError) as caught:
        render_pages(
            encrypted_pdf(2, "s3cret"), dpi=72, max_pages=10, max_pixels=10**8, password="x"
        )
    assert caught.value.reason is RejectReason.WRONG_PASSWORD


def test_encrypted_pdf_renders_with_the_right_password() -> None:
    data = encrypted_pdf(2, "s3cret")
    inspection = inspect_pdf(data, password="s3cret", max_pages=10)
    assert inspection.encrypted is True
    assert inspection.repaired is False
    assert inspection.page_count == 2
    pages = list(render_pages(data, dpi=72, max_pages=10, max_pixels=10**8, password="s3cret"))
    assert [bar_width_px(p.png) for p in pages] == pytest.approx([40, 80], abs=2)


def test_pdf_encrypted_for_owner_only_opens_without_password() -> None:
    # An empty user password: readers open it freely; only permissions are restricted.
    inspection = inspect_pdf(encrypted_pdf(3, ""), max_pages=10)
    assert inspection.encrypted is True
    assert inspection.page_count == 3


def _damage_startxref(data: bytes) -> bytes:
    at = data.rindex(b"startxref")
    return data[:at] + b"startxref\n999999\n%%EOF\n"


def _damage_xref_table(data: bytes) -> bytes:
    at = data.rindex(b"\nxref") + 1
    return data[:at] + b"xref\n0 3\nGARBAGE GARBAGE\n" + data[at + 40 :]


def _remove_trailer(data: bytes) -> bytes:
    return data[: data.rindex(b"trailer")]


def _truncate_tail(data: bytes) -> bytes:
    return data[: int(len(data) * 0.9)]


@pytest.mark.parametrize(
    ("damage", "expected_warning"),
    [
        (_damage_startxref, "(offset 999999): xref not found"),
        (_damage_xref_table, "invalid xref entry"),
        (_remove_trailer, "can't find startxref"),
        (_truncate_tail, "can't find startxref"),
    ],
    ids=["startxref", "xref-table", "no-trailer", "truncated-tail"],
)
def test_broken_xref_is_reconstructed_and_every_page_recovered(
    damage: Callable[[bytes], bytes], expected_warning: str
) -> None:
    data = damage(flat_pdf(5))
    inspection = inspect_pdf(data, max_pages=10)
    assert inspection.repaired is True
    assert inspection.page_count == inspection.recovered_pages == inspection.declared_pages == 5
    assert "Attempting to reconstruct cross-reference table" in inspection.warnings
    assert any(expected_warning in warning for warning in inspection.warnings)
    pages = list(render_pages(data, dpi=72, max_pages=10, max_pixels=10**8))
    assert [bar_width_px(p.png) for p in pages] == pytest.approx([40, 80, 120, 160, 200], abs=2)


def test_truncated_pdf_reports_pages_whose_content_was_lost() -> None:
    original = flat_pdf(6)
    # Objects are in order: cut in the content stream of page 3.
    with pikepdf.open(io.BytesIO(original)) as pdf:
        third_content = pdf.pages[2].obj.Contents.objgen[0]
    cut = original.index(f"\n{third_content} 0 obj".encode()) + 20
    inspection = inspect_pdf(original[:cut], max_pages=10)
    assert inspection.repaired is True
    assert inspection.declared_pages == 6
    assert inspection.page_count == 6
    assert inspection.recovered_pages == 2
    for number in (3, 4, 5, 6):
        assert f"page {number}: content lost, renders blank" in inspection.warnings
    pages = list(render_pages(original[:cut], dpi=72, max_pages=10, max_pixels=10**8))
    widths = [bar_width_px(p.png) for p in pages]
    assert widths[:2] == pytest.approx([40, 80], abs=2)
    assert widths[2:] == [0, 0, 0, 0]


def test_truncated_page_tree_reports_declared_versus_found_pages() -> None:
    original = flat_pdf(6)
    # Cut inside the third page object: pages 3..6 no longer exist.
    with pikepdf.open(io.BytesIO(original)) as pdf:
        third_page = pdf.pages[2].obj.objgen[0]
    cut = original.index(f"\n{third_page} 0 obj".encode()) + 20
    inspection = inspect_pdf(original[:cut], max_pages=10)
    assert inspection.declared_pages == 6
    assert inspection.page_count == 2
    assert "the file declares 6 pages; 2 were found" in inspection.warnings


def test_flipped_bytes_are_reported_as_repairs() -> None:
    data = bytearray(flat_pdf(3))
    # Damage the dictionary of the second page: qpdf parses around it and warns.
    with pikepdf.open(io.BytesIO(bytes(data))) as pdf:
        second_page = pdf.pages[1].obj.objgen[0]
    at = bytes(data).index(f"\n{second_page} 0 obj".encode()) + 12
    for offset in range(at, at + 30, 3):
        data[offset] ^= 0xFF
    inspection = inspect_pdf(bytes(data), max_pages=10)
    assert inspection.repaired is True
    assert inspection.warnings
    assert all("_io.BytesIO" not in warning for warning in inspection.warnings)
    pages = list(render_pages(bytes(data), dpi=72, max_pages=10, max_pixels=10**8))
    assert len(pages) == inspection.page_count


def test_fitting_dpi_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        fitting_dpi(100, 100, 0, 1000)
    assert fitting_dpi(72, 72, 300, 10**6) == 300


def test_rejections_are_permanent_value_errors() -> None:
    error = MediaRejectedError(RejectReason.CORRUPT, "broken")
    assert isinstance(error, PermanentError) and isinstance(error, ValueError)
    assert classify(error) is Disposition.PERMANENT
    assert http_status(error) == 422


def test_the_largest_page_pdf_allows_renders_within_the_pixel_bound() -> None:
    # 14,400 pt is 200 inches: at 150 dpi 900 million pixels; bounded, 25 dpi and 25 MP.
    (page,) = render_pages(
        text_pdf(1, pagesize=(14_400, 14_400)), dpi=150, max_pages=1, max_pixels=25_000_000
    )
    assert (page.dpi, page.width, page.height) == (25, 5000, 5000)
    assert page.png.startswith(b"\x89PNG")


def test_a_page_that_cannot_be_rendered_leaves_the_others_renderable() -> None:
    with pikepdf.open(io.BytesIO(text_pdf(3))) as document:
        document.pages[1].obj["/MediaBox"] = pikepdf.Array([0, 0, 1e9, 1e9])
        damaged = io.BytesIO()
        document.save(damaged)
    with open_for_rendering(damaged.getvalue(), max_pages=5) as renderer:
        assert renderer.page_count == 3
        first = renderer.render_page(1, dpi=72, max_pixels=10**7)
        with pytest.raises(MediaRejectedError) as caught:
            renderer.render_page(2, dpi=72, max_pixels=10**7)
        third = renderer.render_page(3, dpi=72, max_pixels=10**7)
    assert caught.value.reason is RejectReason.DIMENSIONS_TOO_LARGE
    assert [bar_width_px(p.png) for p in (first, third)] == pytest.approx([40, 120], abs=2)
    # The convenience iterator stops at the bad page with its error.
    pages = render_pages(damaged.getvalue(), dpi=72, max_pages=5, max_pixels=10**7)
    assert next(pages).page_number == 1
    with pytest.raises(MediaRejectedError):
        next(pages)


def test_opening_with_the_password_gives_a_decrypted_copy() -> None:
    opened = open_pdf(encrypted_pdf(2, "s3cret"), password="s3cret", max_pages=5)
    assert opened.inspection.encrypted is True
    # The copy opens without any password: what ingest stores for the render stage.
    assert inspect_pdf(opened.renderable, max_pages=5).encrypted is False
    with open_for_rendering(opened.renderable, max_pages=5) as renderer:
        page = renderer.render_page(2, dpi=72, max_pixels=10**8)
    assert bar_width_px(page.png) == pytest.approx(80, abs=2)


def test_pdfium_is_entered_by_one_thread_at_a_time() -> None:
    data = text_pdf(2)

    def render_all(_: int) -> list[int]:
        return [p.width for p in render_pages(data, dpi=50, max_pages=5, max_pixels=10**8)]

    with ThreadPoolExecutor(4) as pool:
        widths = list(pool.map(render_all, range(8)))
    assert widths == [[414, 414]] * 8
