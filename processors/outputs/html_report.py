"""HTML reports of items: the sections every report shows, and the page around them.

Every piece of text that comes from media or models (OCR text, code payloads, class names,
sentences) is HTML-escaped; the page carries no scripts and a restrictive CSP. Pictures are
embedded as `data:` URIs (`inline_images`), the only images the CSP lets load, so a report
shows them wherever it is opened. The combined report of a whole media item is
`combined_report`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any

from processors.outputs.inline_images import DATA_URI_PREFIX
from processors.outputs.media_results import ItemResults, MediaResults

_STYLE = """
body{font-family:sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}
h3{font-size:1.05em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}img.thumb{max-width:320px}
.muted{color:#777}
"""
# Nothing loads but the page's own style and the images embedded in it.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def html_text(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html_text(header)}</th>" for header in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html_text(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _ocr_section(summary: dict[str, Any]) -> str:
    languages = sorted({block["language"] for block in summary["blocks"] if block["language"]})
    caption = f"{len(summary['blocks'])} blocks"
    if languages:
        caption += ", languages " + ", ".join(languages)
    text = html_text(summary["text"])
    return f'<h3>Text</h3><p class="muted">{html_text(caption)}</p><pre>{text}</pre>'


def _detection_section(summary: dict[str, Any]) -> str:
    rows = [
        (
            detection["class_name"],
            _number(detection["confidence"]),
            ", ".join(f"{value:.0f}" for value in detection["box"]),
            _number(detection["distance_m"], 1),
            "" if detection["track_id"] is None else detection["track_id"],
        )
        for detection in summary["detections"]
    ]
    if not rows:
        return '<h3>Objects</h3><p class="muted">No objects detected.</p>'
    headers = ("class", "confidence", "box (x1, y1, x2, y2)", "distance m", "track")
    return "<h3>Objects</h3>" + html_table(headers, rows)


def _codes_section(summary: dict[str, Any]) -> str:
    if not summary["codes"]:
        return '<h3>Codes</h3><p class="muted">No codes found.</p>'
    rows = [(code["symbology"], code["text"]) for code in summary["codes"]]
    return "<h3>Codes</h3>" + html_table(("symbology", "text"), rows)


def _scene_section(summary: dict[str, Any]) -> str:
    items = "".join(
        f'<li lang="{html_text(language)}">{html_text(sentence)}</li>'
        for language, sentence in summary["sentences"].items()
    )
    return f"<h3>Scene</h3><ul>{items}</ul>"


def _redaction_section(summary: dict[str, Any]) -> str:
    regions = ", ".join(f"{kind}: {count}" for kind, count in summary["regions"].items())
    pii = ", ".join(f"{kind}: {count}" for kind, count in summary["pii_counts"].items())
    rows = [
        ("method", summary["method"]),
        ("regions", regions or "none"),
        ("masked PII", pii or "none"),
        ("anonymised copy", summary["redacted_image"]),
    ]
    return "<h3>Anonymisation</h3>" + html_table(("", ""), rows)


_SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "TextRecognized": _ocr_section,
    "ObjectsDetected": _detection_section,
    "CodesDecoded": _codes_section,
    "SceneDescribed": _scene_section,
    "MediaRedacted": _redaction_section,
}


def item_section(
    item: ItemResults, thumbnail_src: str | None, text_limit: int | None = None
) -> str:
    """One item's heading, embedded thumbnail and a section per result kind; OCR text
    longer than `text_limit` characters is cut."""
    parts = [f'<section id="{html_text(item.label)}"><h2>{html_text(item.title)}</h2>']
    if thumbnail_src is not None:
        if not thumbnail_src.startswith(DATA_URI_PREFIX):
            raise ValueError("report pictures are embedded data: URIs; a link would not load")
        parts.append(
            f'<img class="thumb" src="{html_text(thumbnail_src)}" alt="{html_text(item.title)}">'
        )
    for kind, summary in item.results.items():
        if kind == "TextRecognized" and text_limit is not None:
            summary = _cut_text(summary, text_limit)
        parts.append(_SECTIONS[kind](summary))
    parts.append("</section>")
    return "".join(parts)


def _cut_text(summary: dict[str, Any], limit: int) -> dict[str, Any]:
    text = str(summary["text"])
    if len(text) <= limit:
        return summary
    return {**summary, "text": f"{text[:limit]}… ({len(text) - limit} more characters)"}


def tracks_section(tracks: list[dict[str, Any]], limit: int | None = None) -> str:
    """The tracks table; beyond `limit` rows, the longest-seen tracks and a count of the rest."""
    if not tracks:
        return ""
    note = ""
    if limit is not None and len(tracks) > limit:
        kept = sorted(tracks, key=lambda track: (-int(track["hits"]), int(track["track_id"])))
        tracks = sorted(kept[:limit], key=lambda track: int(track["track_id"]))
        note = (
            f'<p class="muted">The {limit} tracks seen longest of {len(kept)}; '
            f"{len(kept) - limit} more not listed.</p>"
        )
    rows = [
        (
            track["track_id"],
            track["class_name"],
            track["first_frame_index"],
            track["last_frame_index"],
            track["hits"],
            track["state"],
        )
        for track in tracks
    ]
    headers = ("track", "class", "first frame", "last frame", "hits", "state")
    return "<h2>Tracks</h2>" + note + html_table(headers, rows)


def models_section(results: MediaResults) -> str:
    models = sorted(
        {
            (model["name"], model["version"])
            for item in results.items()
            for summary in item.results.values()
            for model in summary["models"]
        }
    )
    if not models:
        return ""
    return "<h2>Models</h2>" + html_table(("name", "version"), models)


def html_page(title: str, body: str) -> bytes:
    """The whole document: the CSP, the style, the title as heading, then `body`."""
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
        f"<title>{html_text(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html_text(title)}</h1>{body}</body></html>\n"
    )
    return document.encode("utf-8")


def render_html_report(
    results: MediaResults, title: str, thumbnail_src: Callable[[str], str | None] | None = None
) -> bytes:
    """A page with every item of `results`; `thumbnail_src(label)` gives an item's embedded
    thumbnail (a `data:` URI) or None."""
    body = "".join(
        item_section(item, thumbnail_src(item.label) if thumbnail_src else None)
        for item in results.items()
    )
    if not body:
        body = '<p class="muted">No results yet.</p>'
    body += tracks_section(results.tracks()) + models_section(results)
    return html_page(title, body)
