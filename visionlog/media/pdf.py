"""PDF documents: inspection, decryption, repair and page rendering.

qpdf (through pikepdf) opens the document first: it tells encrypted from damaged files,
decrypts with the caller's password and reconstructs broken cross-reference tables
(truncated files, bad ``startxref`` offsets, garbage in the xref, a missing trailer).
pdfium (through pypdfium2) then renders the pages, from the original bytes when they were
intact and unencrypted, otherwise from qpdf's repaired, decrypted copy.

Ingest only opens (`inspect_pdf`, `open_pdf`: page count, password, repair); the render
stage renders (`open_for_rendering`), one page at a time, so a document's memory is one
page's bitmap and its PNG, never all pages.

Pixel limit: a page whose rendering at the requested DPI would exceed ``max_pixels`` is
rendered at the highest DPI that fits (its `PdfPage.dpi` says which): a 14,400-pt page (the
largest PDF allows) is a 25 dpi thumbnail at 25 million pixels, not gigabytes. Only a page
that exceeds the limit even at `MIN_RENDER_DPI` is refused (``DIMENSIONS_TOO_LARGE``, that
page alone).

pdfium is not thread-safe, not even for different documents in different threads: every
call into it holds one process-wide lock (`_PDFIUM`).
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import cv2
import pikepdf
import pypdfium2

from visionlog.media.errors import MediaRejectedError, RejectReason

RENDERER = f"pypdfium2/{pypdfium2.PYPDFIUM_INFO}+pdfium/{pypdfium2.PDFIUM_INFO.build}"

POINTS_PER_INCH = 72
# Below this a page is a smudge: refuse the page rather than pretend it was read.
MIN_RENDER_DPI = 12
PNG_COMPRESSION = 6
# The PDF header may be preceded by junk; readers accept it within the first kilobyte.
_HEADER_WINDOW = 1024
# pdfium may not be entered from two threads at once, even for different documents.
_PDFIUM = threading.RLock()
_STREAM_NAME = re.compile(r"stream <[^>]*>:? ?")
# Page tree nodes as written in the file, for the declared page count of damaged files.
_PAGES_NODE = re.compile(rb"<<(?:(?!<<|>>).)*?/Type\s*/Pages\b(?:(?!<<|>>).)*?>>", re.DOTALL)
_COUNT = re.compile(rb"/Count\s+(\d+)")


@dataclass(frozen=True)
class PdfInspection:
    """What a document holds and what it took to read it.

    page_count: pages the document yields (what `render_pages` renders).
    recovered_pages: pages among them whose content survived; lower than page_count when
        repair found pages whose content streams were lost (they render blank).
    declared_pages: the page count the file itself declares, None when unreadable.
    """

    page_count: int
    encrypted: bool
    repaired: bool
    recovered_pages: int
    declared_pages: int | None
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class PdfPage:
    page_number: int
    page_count: int
    dpi: int
    width: int
    height: int
    png: bytes


@dataclass(frozen=True)
class OpenedPdf:
    inspection: PdfInspection
    # Bytes pdfium can read without a password or repair: the original when it was intact
    # and unencrypted, otherwise qpdf's repaired, decrypted copy.
    renderable: bytes


def _clean_warning(message: str) -> str:
    return _STREAM_NAME.sub("", str(message)).strip()


def _check_header(data: bytes) -> None:
    if not data:
        raise MediaRejectedError(RejectReason.CORRUPT, "not a PDF: the file is empty")
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise MediaRejectedError(
            RejectReason.CORRUPT,
            f"not a PDF: no %PDF- header in the first {_HEADER_WINDOW} bytes",
        )


def _open_with_qpdf(data: bytes, password: str | None) -> tuple[pikepdf.Pdf, bool]:
    """Open strictly first; fall back to qpdf's xref reconstruction. Returns (pdf, rebuilt)."""
    for recover in (False, True):
        try:
            pdf = pikepdf.open(
                io.BytesIO(data),
                password=password or "",
                attempt_recovery=recover,
                inherit_page_attributes=False,
            )
        except pikepdf.PasswordError as exc:
            if password is None:
                raise MediaRejectedError(
                    RejectReason.ENCRYPTED, "the PDF is encrypted and no password was given"
                ) from exc
            raise MediaRejectedError(
                RejectReason.WRONG_PASSWORD, "the password does not open the encrypted PDF"
            ) from exc
        except pikepdf.PdfError as exc:
            if recover:
                raise MediaRejectedError(
                    RejectReason.CORRUPT, f"damaged beyond repair: {_clean_warning(str(exc))}"
                ) from exc
            continue
        return pdf, recover
    raise AssertionError("unreachable: the recovering open either returns or raises")


def _declared_in_file(data: bytes) -> int | None:
    """Largest /Count of the page tree nodes written in the file (the root's), if any."""
    counts = [
        int(count.group(1))
        for node in _PAGES_NODE.finditer(data)
        if (count := _COUNT.search(node.group(0)))
    ]
    return max(counts) if counts else None


def _declared_in_tree(pdf: pikepdf.Pdf) -> int | None:
    try:
        count = pdf.Root.Pages.get("/Count")
        return None if count is None else int(count)
    except (AttributeError, KeyError, TypeError, ValueError, pikepdf.PdfError):
        return None


def _has_content(page: pikepdf.Page) -> bool:
    contents = page.obj.get("/Contents")
    if contents is None:
        return False
    streams = list(contents) if isinstance(contents, pikepdf.Array) else [contents]
    try:
        return bool(streams) and all(isinstance(s, pikepdf.Stream) for s in streams)
    except pikepdf.PdfError:
        return False


def _open(
    data: bytes, password: str | None, max_pages: int, *, renderable: bool
) -> tuple[PdfInspection, bytes | None]:
    """The inspection, plus bytes pdfium can read when `renderable` is asked for."""
    _check_header(data)
    pdf, rebuilt = _open_with_qpdf(data, password)
    with pdf:
        declared = _declared_in_tree(pdf)
        if rebuilt:
            declared = _declared_in_file(data) or declared
        try:
            pages = list(pdf.pages)
        except pikepdf.PdfError as exc:
            raise MediaRejectedError(
                RejectReason.CORRUPT, f"unreadable page tree: {_clean_warning(str(exc))}"
            ) from exc
        if not pages:
            raise MediaRejectedError(RejectReason.CORRUPT, "the PDF has no readable pages")
        if len(pages) > max_pages:
            raise MediaRejectedError(
                RejectReason.TOO_MANY_PAGES,
                f"the PDF has {len(pages)} pages; at most {max_pages} are accepted",
            )
        lost = [number for number, page in enumerate(pages, 1) if not _has_content(page)]
        warnings = [_clean_warning(w) for w in pdf.get_warnings()]
        warnings += [f"page {number}: content lost, renders blank" for number in lost]
        if declared is not None and declared != len(pages):
            warnings.append(f"the file declares {declared} pages; {len(pages)} were found")
        repaired = rebuilt or bool(warnings)
        encrypted = pdf.is_encrypted
        copy: bytes | None = None
        if renderable:
            if repaired or encrypted:
                # qpdf writes a clean, decrypted copy with a fresh xref that pdfium reads.
                buffer = io.BytesIO()
                pdf.save(buffer)
                copy = buffer.getvalue()
            else:
                copy = data
    inspection = PdfInspection(
        page_count=len(pages),
        encrypted=encrypted,
        repaired=repaired,
        recovered_pages=len(pages) - len(lost),
        declared_pages=declared,
        warnings=tuple(dict.fromkeys(warnings)),
    )
    return inspection, copy


def open_pdf(data: bytes, *, password: str | None = None, max_pages: int) -> OpenedPdf:
    """Open, decrypt and if needed repair a PDF for rendering (rejections as `inspect_pdf`)."""
    inspection, renderable = _open(data, password, max_pages, renderable=True)
    assert renderable is not None
    return OpenedPdf(inspection, renderable)


def inspect_pdf(data: bytes, *, password: str | None = None, max_pages: int) -> PdfInspection:
    """Open, decrypt and if needed repair a PDF; report what it holds.

    Raises MediaRejectedError: CORRUPT (not a PDF, damaged beyond repair, no pages),
    ENCRYPTED (no password given), WRONG_PASSWORD, TOO_MANY_PAGES.
    """
    inspection, _ = _open(data, password, max_pages, renderable=False)
    return inspection


def fitting_dpi(width_pt: float, height_pt: float, dpi: int, max_pixels: int) -> int:
    """The requested DPI, or the highest lower one whose rendering stays within max_pixels."""
    if dpi <= 0 or max_pixels <= 0:
        raise ValueError(f"dpi ({dpi}) and max_pixels ({max_pixels}) must be positive")
    area_in2 = (width_pt / POINTS_PER_INCH) * (height_pt / POINTS_PER_INCH)
    if area_in2 <= 0:
        return dpi
    # ceil() of each side may add a pixel row/column: check the rounded size, step down.
    candidate = min(dpi, math.floor(math.sqrt(max_pixels / area_in2)))
    while candidate > 0 and _pixels(width_pt, height_pt, candidate) > max_pixels:
        candidate -= 1
    return candidate


def _pixels(width_pt: float, height_pt: float, dpi: int) -> int:
    scale = dpi / POINTS_PER_INCH
    return math.ceil(width_pt * scale) * math.ceil(height_pt * scale)


def _encode_png(page: pypdfium2.PdfPage, dpi: int) -> tuple[int, int, bytes]:
    """Render at `dpi` and encode as PNG straight from pdfium's BGR buffer (no copy)."""
    bitmap = page.render(scale=dpi / POINTS_PER_INCH, limit_image_cache=True)
    try:
        pixels = bitmap.to_numpy()
        height, width = int(pixels.shape[0]), int(pixels.shape[1])
        ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise ValueError(f"OpenCV could not encode a {width}x{height} page as PNG")
        return width, height, encoded.tobytes()
    finally:
        bitmap.close()


class PdfRenderer:
    """A document opened by pdfium whose pages are rendered one at a time, on request.

    A page that cannot be rendered raises for that page alone (MediaRejectedError), so a
    caller can go on with the next one. Close it (or use it as a context manager)."""

    def __init__(self, opened: OpenedPdf) -> None:
        self.inspection = opened.inspection
        with _PDFIUM:
            try:
                self._document = pypdfium2.PdfDocument(opened.renderable)
            except pypdfium2.PdfiumError as exc:
                raise MediaRejectedError(
                    RejectReason.CORRUPT, f"pdfium cannot open it: {exc}"
                ) from exc
            found = len(self._document)
        if found != self.page_count:
            self.close()
            raise MediaRejectedError(
                RejectReason.CORRUPT,
                f"pdfium reads {found} pages where qpdf found {self.page_count}",
            )

    @property
    def page_count(self) -> int:
        return self.inspection.page_count

    def render_page(self, number: int, *, dpi: int, max_pixels: int) -> PdfPage:
        """Page `number` (1-based) as PNG at `dpi`, or lower where it exceeds max_pixels."""
        if not 1 <= number <= self.page_count:
            raise IndexError(f"page {number} outside 1..{self.page_count}")
        with _PDFIUM:
            try:
                page = self._document[number - 1]
            except pypdfium2.PdfiumError as exc:
                raise MediaRejectedError(
                    RejectReason.CORRUPT, f"page {number} cannot be loaded: {exc}"
                ) from exc
            try:
                width_pt, height_pt = page.get_size()
                page_dpi = fitting_dpi(width_pt, height_pt, dpi, max_pixels)
                if page_dpi < MIN_RENDER_DPI:
                    raise MediaRejectedError(
                        RejectReason.DIMENSIONS_TOO_LARGE,
                        f"page {number} measures {width_pt:.0f}x{height_pt:.0f} pt: even at "
                        f"{MIN_RENDER_DPI} dpi it exceeds {max_pixels} pixels",
                    )
                width, height, png = _encode_png(page, page_dpi)
            except pypdfium2.PdfiumError as exc:
                raise MediaRejectedError(
                    RejectReason.CORRUPT, f"page {number} cannot be rendered: {exc}"
                ) from exc
            finally:
                page.close()
        return PdfPage(
            page_number=number,
            page_count=self.page_count,
            dpi=page_dpi,
            width=width,
            height=height,
            png=png,
        )

    def close(self) -> None:
        with _PDFIUM:
            self._document.close()

    def __enter__(self) -> PdfRenderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_for_rendering(data: bytes, *, password: str | None = None, max_pages: int) -> PdfRenderer:
    """Open a document for rendering; rejections of the whole document raise here."""
    return PdfRenderer(open_pdf(data, password=password, max_pages=max_pages))


def render_pages(
    data: bytes,
    *,
    dpi: int,
    max_pages: int,
    max_pixels: int,
    password: str | None = None,
) -> Iterator[PdfPage]:
    """Every page as PNG, in order, repairing and decrypting first when needed.

    The document is checked when this is called (rejections raise here, before any page);
    pages are rendered lazily, one at a time, as the iterator is consumed, and the first
    page that cannot be rendered ends it with its error. Callers that must go on past a
    bad page use `open_for_rendering` and `PdfRenderer.render_page`.
    """
    if dpi < MIN_RENDER_DPI:
        raise ValueError(f"dpi {dpi} is below the minimum of {MIN_RENDER_DPI}")
    renderer = open_for_rendering(data, password=password, max_pages=max_pages)
    return _every_page(renderer, dpi, max_pixels)


def _every_page(renderer: PdfRenderer, dpi: int, max_pixels: int) -> Iterator[PdfPage]:
    with renderer:
        for number in range(1, renderer.page_count + 1):
            yield renderer.render_page(number, dpi=dpi, max_pixels=max_pixels)
