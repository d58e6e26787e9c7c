"""Markdown reports of one or more items; media text is escaped for Markdown and HTML."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from processors.outputs.media_results import MediaResults

# Characters with Markdown meaning; '<', '>' and '&' become entities because Markdown
# renderers pass raw HTML through.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~])")
_ORDERED_LIST = re.compile(r"^(\d+)([.)])", re.MULTILINE)


def md_escape_inline(value: object) -> str:
    """Text that renders literally inside a table cell or after other text on a line."""
    text = escape("" if value is None else str(value), quote=False)
    return _SPECIAL.sub(r"\\\1", text)


def md_escape(value: object) -> str:
    """Text that renders literally as a paragraph (no list starts at a line's beginning)."""
    return _ORDERED_LIST.sub(r"\1\\\2", md_escape_inline(value))


def _cell(value: object) -> str:
    # Table cells are one line: newlines become explicit breaks.
    return md_escape_inline(value).replace("\r", "").replace("\n", "<br>")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = [
        "| " + " | ".join(_cell(header) for header in headers) + " |",
        "|" + "---|" * len(headers),
    ]
    lines.extend("| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows)
    return lines


def _section(kind: str, summary: dict[str, Any]) -> list[str]:
    if kind == "TextRecognized":
        paragraphs = [md_escape(part) for part in str(summary["text"]).split("\n\n")]
        # Two trailing spaces keep the OCR line breaks inside a paragraph.
        return ["### Text", "", *(p.replace("\n", "  \n") + "\n" for p in paragraphs)]
    if kind == "ObjectsDetected":
        if not summary["detections"]:
            return ["### Objects", "", "No objects detected.", ""]
        rows = [
            (
                d["class_name"],
                f"{d['confidence']:.2f}",
                ", ".join(f"{v:.0f}" for v in d["box"]),
                "" if d["distance_m"] is None else f"{d['distance_m']:.1f}",
            )
            for d in summary["detections"]
        ]
        return ["### Objects", "", *_table(("class", "confidence", "box", "distance m"), rows), ""]
    if kind == "CodesDecoded":
        if not summary["codes"]:
            return ["### Codes", "", "No codes found.", ""]
        code_rows = [(code["symbology"], code["text"]) for code in summary["codes"]]
        return ["### Codes", "", *_table(("symbology", "text"), code_rows), ""]
    if kind == "SceneDescribed":
        sentences = [
            f"- {md_escape(lang)}: {md_escape(s)}" for lang, s in summary["sentences"].items()
        ]
        return ["### Scene", "", *sentences, ""]
    if kind == "MediaRedacted":
        regions = ", ".join(f"{k}: {v}" for k, v in summary["regions"].items()) or "none"
        pii = ", ".join(f"{k}: {v}" for k, v in summary["pii_counts"].items()) or "none"
        return [
            "### Anonymisation",
            "",
            f"Method {md_escape(summary['method'])}; regions {md_escape(regions)}; "
            f"masked PII {md_escape(pii)}.",
            "",
        ]
    raise ValueError(f"no Markdown section for {kind}")


def render_markdown_report(results: MediaResults, title: str) -> bytes:
    """A Markdown document with a section per item and result kind."""
    lines = [f"# {md_escape(title)}", ""]
    for item in results.items():
        lines += [f"## {md_escape(item.title)}", ""]
        for kind, summary in item.results.items():
            lines += _section(kind, summary)
    tracks = results.tracks()
    if tracks:
        rows = [
            (
                t["track_id"],
                t["class_name"],
                t["first_frame_index"],
                t["last_frame_index"],
                t["hits"],
            )
            for t in tracks
        ]
        lines += ["## Tracks", "", *_table(("track", "class", "first", "last", "hits"), rows), ""]
    return ("\n".join(lines).rstrip("\n") + "\n").encode("utf-8")
