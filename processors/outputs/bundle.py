"""Which files one result event yields, rendered in memory (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from processors.outputs.annotate import annotate_image, encode_jpeg, make_thumbnail
from processors.outputs.csv_export import render_detections_csv
from processors.outputs.html_report import render_html_report
from processors.outputs.inline_images import jpeg_data_uri
from processors.outputs.items import event_type, item_title
from processors.outputs.json_export import render_json
from processors.outputs.markdown_report import render_markdown_report
from processors.outputs.media_results import MediaResults
from processors.outputs.searchable_pdf import render_searchable_pdf
from processors.outputs.text_export import render_plain_text
from processors.outputs.views import analysed_view

# File names per source, so results of different stages on one item never share a key.
SOURCE_PREFIX = {
    "TextRecognized": "ocr",
    "ObjectsDetected": "detections",
    "CodesDecoded": "codes",
}
THUMBNAIL_STEM = "thumbnail"


@dataclass(frozen=True)
class RenderedFile:
    kind: str  # an OutputKind symbol
    stem: str
    extension: str
    content_type: str
    data: bytes


def nothing_to_draw(event: Mapping[str, Any]) -> bool:
    """A code reading that found no code: its pictures and reports would show the stored
    image and an empty list (most photos; about 0.9 s of decoding, drawing, encoding and
    storing each under load), so only its JSON is written."""
    return event_type(event) == "CodesDecoded" and not event.get("codes")


def render_result_json(event: Mapping[str, Any]) -> RenderedFile:
    prefix = SOURCE_PREFIX[event_type(event)]
    return RenderedFile("JSON", prefix, "json", "application/json", render_json([event]))


def render_event_files(
    event: Mapping[str, Any], image_bgr: np.ndarray, dpi: float
) -> list[RenderedFile]:
    """Every output of one TextRecognized, ObjectsDetected or CodesDecoded event."""
    kind = event_type(event)
    prefix = SOURCE_PREFIX.get(kind)
    if prefix is None:
        raise ValueError(f"no per-item outputs for {kind}; expected one of {sorted(SOURCE_PREFIX)}")
    single = MediaResults(str(event["media_id"]))
    single.add(event)
    title = f"{item_title(event['item'])} of media {event['media_id']}"
    view = analysed_view(image_bgr, event)
    thumbnail = make_thumbnail(image_bgr)
    # The report embeds its thumbnail: a link next to it would not load through a presigned
    # URL of the private bucket, nor pass the report's CSP.
    embedded = jpeg_data_uri(thumbnail)
    files = [
        render_result_json(event),
        RenderedFile(
            "ANNOTATED_IMAGE",
            f"{prefix}-annotated",
            "jpg",
            "image/jpeg",
            encode_jpeg(annotate_image(view, [event])),
        ),
        # The thumbnail shows the stored image, so every source writes identical bytes.
        RenderedFile("THUMBNAIL", THUMBNAIL_STEM, "jpg", "image/jpeg", thumbnail),
        RenderedFile(
            "HTML_REPORT",
            f"{prefix}-report",
            "html",
            "text/html; charset=utf-8",
            render_html_report(single, title, lambda _label: embedded),
        ),
        RenderedFile(
            "MARKDOWN_REPORT",
            f"{prefix}-report",
            "md",
            "text/markdown; charset=utf-8",
            render_markdown_report(single, title),
        ),
    ]
    if kind == "TextRecognized":
        files.append(
            RenderedFile(
                "TEXT", prefix, "txt", "text/plain; charset=utf-8", render_plain_text(event)
            )
        )
        files.append(
            RenderedFile(
                "SEARCHABLE_PDF",
                prefix,
                "pdf",
                "application/pdf",
                render_searchable_pdf(view, event, dpi),
            )
        )
    if kind == "ObjectsDetected":
        files.append(
            RenderedFile(
                "CSV", prefix, "csv", "text/csv; charset=utf-8", render_detections_csv([event])
            )
        )
    return files
