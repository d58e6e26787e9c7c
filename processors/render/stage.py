"""Stage: render an uploaded PDF into pages and sample an uploaded video into frames.

Ingest only checks an upload and announces it (MediaUploaded); the work that grows with the
document (pages, frames) happens here, in the document worker, outside any request:

- PDF: every page is rendered with pdfium at ``ingest.pdf_dpi`` (lower where a page would
  exceed ``ingest.max_page_pixels`` or ``ingest.max_image_pixels``), stored as
  ``media-processed/{media_id}/pages/{n:04d}.png`` and announced as PageRendered. One page
  at a time: a document costs the memory of one page's bitmap and PNG, never all pages.
  A password-protected PDF is rendered from the decrypted copy ingest stored (see
  `visionlog.media.decrypted`): the password itself never leaves the upload request.
- VIDEO: frames are sampled as configured (``video_sample_fps`` or every N frames, at most
  ``max_video_frames``), stored as ``media-processed/{media_id}/frames/{index:08d}.jpg``
  and announced as FrameCaptured carrying the upload's profile.
- IMAGE: nothing to do (not applicable).

A page that cannot be rendered (or a video that breaks off) does not stop the rest: its
ProcessingFailed (built with `part_failure`, labelled ``page-0003`` or
``frame-00000042``) is returned with the pages or frames that did succeed. A document
that cannot be opened at all raises a permanent error and is dead-lettered as a whole; a
blob store that fails raises as it is, so the runtime waits it out and retries the stage
(same keys and deterministic event ids, so a retry overwrites, never duplicates).

Event ids are deterministic in the upload event and the page or frame, exactly as when
ingest rendered: ``envelope_caused_by(uploaded, "PageRendered", ..., "page", n)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.render.source import original_file
from processors.stage import Outgoing, StageContext, derived_envelope
from visionlog.blobstore import PROCESSED
from visionlog.envelope import now_millis
from visionlog.media import pdf, video
from visionlog.media.decrypted import load_decrypted_copy
from visionlog.media.errors import MediaRejectedError, RejectReason
from visionlog.media.keys import frame_key, page_key
from visionlog.profiles import stage_wanted
from visionlog.settings import IngestSettings
from visionlog.stream.deadletter import part_failure
from visionlog.stream.priority_pool import note_progress

STAGE_NAME = "render"
_NEEDS_PASSWORD = frozenset({RejectReason.ENCRYPTED, RejectReason.WRONG_PASSWORD})


def render_media(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """MediaUploaded of a PDF -> PageRendered per page; of a video -> FrameCaptured per
    sampled frame; plus a ProcessingFailed per page or frame that failed. [] otherwise."""
    if event["envelope"]["event_type"] != "MediaUploaded" or not stage_wanted(STAGE_NAME, event):
        return []
    if event["media_kind"] == "PDF":
        return render_document(event, ctx)
    if event["media_kind"] == "VIDEO":
        return sample_video(event, ctx)
    return []


def page_pixel_limit(limits: IngestSettings) -> int:
    return min(limits.max_page_pixels, limits.max_image_pixels)


def _failed_part(event: Mapping[str, Any], part: str, error: BaseException) -> Outgoing:
    record = part_failure(event, STAGE_NAME, part, error)
    return Outgoing("ProcessingFailed", dict(record), str(event["media_id"]), item_label=part)


def _open_document(event: Mapping[str, Any], ctx: StageContext) -> tuple[pdf.PdfRenderer, bool]:
    """The document ready to render, and whether its original had to be repaired."""
    max_pages = ctx.settings.ingest.max_pdf_pages
    data = ctx.blobs.get_bytes(event["original"])
    try:
        renderer = pdf.open_for_rendering(data, max_pages=max_pages)
    except MediaRejectedError as exc:
        if exc.reason not in _NEEDS_PASSWORD:
            raise
        copy = load_decrypted_copy(ctx.blobs, str(event["media_id"]))
        if copy is None:
            raise MediaRejectedError(
                exc.reason,
                "the PDF needs a password and ingest stored no decrypted copy of it "
                f"({exc.message}); upload it again with its password",
            ) from exc
        decrypted, repaired = copy
        renderer = pdf.open_for_rendering(decrypted, max_pages=max_pages)
        return renderer, repaired or renderer.inspection.repaired
    return renderer, renderer.inspection.repaired


def render_document(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    media_id = str(event["media_id"])
    limits = ctx.settings.ingest
    max_pixels = page_pixel_limit(limits)
    outputs: list[Outgoing] = []
    renderer, repaired = _open_document(event, ctx)
    with renderer:
        for number in range(1, renderer.page_count + 1):
            try:
                page = renderer.render_page(number, dpi=limits.pdf_dpi, max_pixels=max_pixels)
            except Exception as exc:
                # Rendering touches no store: whatever fails here is this page's own fault.
                outputs.append(_failed_part(event, f"page-{number:04d}", exc))
                continue
            image = ctx.blobs.put_bytes(
                PROCESSED, page_key(media_id, number), page.png, "image/png"
            )
            record = {
                "envelope": derived_envelope(event, "PageRendered", STAGE_NAME, "page", number),
                "media_id": media_id,
                "page_number": number,
                "page_count": page.page_count,
                "dpi": page.dpi,
                "width": page.width,
                "height": page.height,
                "image": dict(image),
                "renderer": pdf.RENDERER,
                "repaired": repaired,
            }
            # Only the small record is kept; the page's pixels and PNG go with `page`.
            del page
            outputs.append(Outgoing("PageRendered", record, media_id))
            note_progress()
    return outputs


def sample_video(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    media_id = str(event["media_id"])
    limits = ctx.settings.ingest
    every_n = limits.video_every_n_frames
    target_fps = None if every_n is not None else limits.video_sample_fps
    outputs: list[Outgoing] = []
    with original_file(ctx.blobs, event) as path:
        frames = video.sample_frames(
            path,
            target_fps=target_fps,
            every_n=every_n,
            max_frames=limits.max_video_frames,
            jpeg_quality=limits.frame_jpeg_quality,
        )
        try:
            for frame in frames:
                image = ctx.blobs.put_bytes(
                    PROCESSED, frame_key(media_id, frame.frame_index), frame.jpeg, "image/jpeg"
                )
                record = {
                    "envelope": derived_envelope(
                        event, "FrameCaptured", STAGE_NAME, "frame", frame.frame_index
                    ),
                    "media_id": media_id,
                    "camera_id": None,
                    "frame_index": frame.frame_index,
                    "timestamp_ms": frame.timestamp_ms,
                    "captured_at": now_millis(),
                    "width": frame.width,
                    "height": frame.height,
                    "image": dict(image),
                    "source_fps": event.get("fps"),
                    "sampling_fps": target_fps,
                    "profile": event["profile"],
                    # Staleness applies to live frames only; a video's frames wait their turn.
                    "max_age_ms": None,
                }
                outputs.append(Outgoing("FrameCaptured", record, media_id))
                note_progress()
        except video.FrameDecodeError as exc:
            # The frames before the break stand; the rest of the video is unreadable.
            outputs.append(_failed_part(event, f"frame-{exc.frame_index:08d}", exc))
    return outputs
