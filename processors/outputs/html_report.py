"""HTML reports: one item's results, or every item of a media item (the combined report).

Every piece of text that comes from media or models (OCR text, code payloads, class names,
sentences) is HTML-escaped; the page carries no scripts and a restrictive CSP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import Any

from processors.outputs.media_results import ItemResults, MediaResults

_STYLE = """
body{font-family:sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}
h3{font-size:1.05em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}img.thumb{max-width:320px}
.muted{color:#777}
"""
_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def _text(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{_text(header)}</th>" for header in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _ocr_section(summary: dict[str, Any]) -> str:
    languages = sorted({block["language"] for block in summary["blocks"] if block["language"]})
    caption = f"{len(summary['blocks'])} blocks"
    if languages:
        caption += ", languages " + ", ".join(languages)
    return f'<h3>Text</h3><p class="muted">{_text(caption)}</p><pre>{_text(summary["text"])}</pre>'


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
    return "<h3>Objects</h3>" + _table(headers, rows)


def _codes_section(summary: dict[str, Any]) -> str:
    if not summary["codes"]:
        return '<h3>Codes</h3><p class="muted">No codes found.</p>'
    rows = [(code["symbology"], code["text"]) for code in summary["codes"]]
    return "<h3>Codes</h3>" + _table(("symbology", "text"), rows)


def _scene_section(summary: dict[str, Any]) -> str:
    items = "".join(
        f'<li lang="{_text(language)}">{_text(sentence)}</li>'
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
    return "<h3>Anonymisation</h3>" + _table(("", ""), rows)


_SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "TextRecognized": _ocr_section,
    "ObjectsDetected": _detection_section,
    "CodesDecoded": _codes_section,
    "SceneDescribed": _scene_section,
    "MediaRedacted": _redaction_section,
}


def item_section(item: ItemResults, thumbnail_href: str | None) -> str:
    """One item's heading, thumbnail and a section per result kind."""
    parts = [f'<section id="{_text(item.label)}"><h2>{_text(item.title)}</h2>']
    if thumbnail_href is not None:
        parts.append(f'<img class="thumb" src="{_text(thumbnail_href)}" alt="{_text(item.title)}">')
    for kind, summary in item.results.items():
        parts.append(_SECTIONS[kind](summary))
    parts.append("</section>")
    return "".join(parts)


def _tracks_section(tracks: list[dict[str, Any]]) -> str:
    if not tracks:
        return ""
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
    return "<h2>Tracks</h2>" + _table(headers, rows)


def _models_section(results: MediaResults) -> str:
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
    return "<h2>Models</h2>" + _table(("name", "version"), models)


def _page(title: str, body: str) -> bytes:
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{_text(title)}</h1>{body}</body></html>\n"
    )
    return document.encode("utf-8")


def render_html_report(
    results: MediaResults, title: str, thumbnail_href: Callable[[str], str] | None = None
) -> bytes:
    """A page with every item of `results`; `thumbnail_href(label)` links item thumbnails."""
    body = "".join(
        item_section(item, thumbnail_href(item.label) if thumbnail_href else None)
        for item in results.items()
    )
    if not body:
        body = '<p class="muted">No results yet.</p>'
    body += _tracks_section(results.tracks()) + _models_section(results)
    return _page(title, body)


def build_combined_report(results: MediaResults) -> bytes:
    """The report of a whole media item, stored at {media_id}/report.html beside its items."""
    items = results.items()
    summary = (
        f'<p class="muted">{len(items)} item(s), {results.seen_count()} result event(s) so far.</p>'
    )
    body = summary + "".join(item_section(item, f"{item.label}/thumbnail.jpg") for item in items)
    body += _tracks_section(results.tracks()) + _models_section(results)
    return _page(f"Report for media {results.media_id}", body)
