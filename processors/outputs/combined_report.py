"""The combined report of a media item: one bounded page over all its stored results.

It is a view, rendered when the item completes (and on request), never per result. Its
size does not grow with the item: a one-hour video has thousands of frames, so the page
shows how the processing ended, totals over every item (classes, codes, text, tracks),
full sections for at most `DETAIL_LIMIT` items spread evenly over the item, one line each
for at most `ROW_LIMIT` items, and embedded thumbnails for at most `THUMBNAIL_LIMIT`.
Pure: the caller loads the results and the thumbnails (`report_view`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from processors.outputs.html_report import (
    html_page,
    html_table,
    html_text,
    item_section,
    models_section,
    tracks_section,
)
from processors.outputs.media_results import ItemResults, MediaResults

DETAIL_LIMIT = 40
ROW_LIMIT = 300
THUMBNAIL_LIMIT = 12
TRACK_LIMIT = 200
CODE_LIMIT = 200
TEXT_LIMIT = 20_000

_STATUS_TITLES = {
    "completed": "Completed",
    "completed_with_errors": "Completed with errors",
    "failed": "Failed",
    "processing": "Processing",
}
# MediaCompleted.status symbols as the read models spell them.
_STATUS_OF_SYMBOL = {
    "COMPLETED": "completed",
    "COMPLETED_WITH_ERRORS": "completed_with_errors",
    "FAILED": "failed",
}

T = TypeVar("T")


@dataclass(frozen=True)
class CompletionSummary:
    """How the processing of the item (or one reprocess run) ended, or how far it is."""

    status: str
    run_id: str | None = None
    percent: float | None = None
    items_expected: int | None = None
    items_completed: int | None = None
    items_failed: int | None = None
    duration_ms: int | None = None
    stages: tuple[Mapping[str, Any], ...] = ()
    errors: tuple[Mapping[str, Any], ...] = field(default=())

    @classmethod
    def from_event(cls, record: Mapping[str, Any]) -> CompletionSummary:
        """The summary of a MediaCompleted record."""
        symbol = str(getattr(record["status"], "value", record["status"]))
        return cls(
            status=_STATUS_OF_SYMBOL.get(symbol, symbol.lower()),
            run_id=record.get("run_id"),
            percent=100.0,
            items_expected=int(record["items_expected"]),
            items_completed=int(record["items_completed"]),
            items_failed=int(record["items_failed"]),
            duration_ms=int(record["duration_ms"]),
            stages=tuple(dict(tally) for tally in record["stages"]),
            errors=tuple(dict(error) for error in record["errors"]),
        )

    @property
    def final(self) -> bool:
        return self.status != "processing"


def spread(items: Sequence[T], limit: int) -> list[T]:
    """At most `limit` items evenly spread over `items`, the first and the last included."""
    if len(items) <= limit:
        return list(items)
    if limit <= 1:
        return list(items[:limit])
    last = len(items) - 1
    return [items[round(i * last / (limit - 1))] for i in range(limit)]


def detailed_items(results: MediaResults) -> list[ItemResults]:
    """The items shown in full, in document order."""
    return spread(results.items(), DETAIL_LIMIT)


def thumbnail_items(results: MediaResults) -> list[ItemResults]:
    """The items whose thumbnails the report embeds (the first detailed ones)."""
    return detailed_items(results)[:THUMBNAIL_LIMIT]


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _summary_section(completion: CompletionSummary | None, results: MediaResults) -> str:
    items = results.items()
    counted = (
        f"{len(items)} item(s) with results, {results.seen_count()} result event(s)"
        + (" so far" if completion is None or not completion.final else "")
        + "."
    )
    if completion is None:
        return f'<h2>Summary</h2><p>Processing status unknown.</p><p class="muted">{counted}</p>'
    title = _STATUS_TITLES.get(completion.status, completion.status)
    rows: list[tuple[object, object]] = [("status", title)]
    if completion.run_id is not None:
        rows.append(("reprocess run", completion.run_id))
    if not completion.final and completion.percent is not None:
        rows.append(("done", f"{completion.percent:.0f} %"))
    if completion.items_expected is not None:
        rows.append(("items expected", completion.items_expected))
    if completion.items_completed is not None:
        rows.append(("items completed", completion.items_completed))
    if completion.items_failed is not None:
        rows.append(("items failed", completion.items_failed))
    if completion.duration_ms is not None:
        rows.append(("duration", _duration(completion.duration_ms)))
    parts = ["<h2>Summary</h2>", html_table(("", ""), rows), f'<p class="muted">{counted}</p>']
    if completion.errors:
        errors = "".join(
            f"<li>{html_text(error.get('stage'))}"
            + (f" ({html_text(error['item_label'])})" if error.get("item_label") else "")
            + f": {html_text(error.get('message'))}</li>"
            for error in completion.errors
        )
        parts.append(f"<h3>Errors</h3><ul>{errors}</ul>")
    if completion.stages:
        tallies = [
            (t["stage"], t["done"], t["not_applicable"], t["skipped"], t["failed"])
            for t in completion.stages
        ]
        headers = ("stage", "done", "not applicable", "skipped", "failed")
        parts.append("<h3>Stages</h3>" + html_table(headers, tallies))
    return "".join(parts)


def _classes(item: ItemResults) -> Counter[str]:
    detections = item.results.get("ObjectsDetected", {}).get("detections", [])
    return Counter(str(detection["class_name"]) for detection in detections)


def _words(item: ItemResults) -> int:
    return len(str(item.results.get("TextRecognized", {}).get("text", "")).split())


def _overview_section(items: list[ItemResults]) -> str:
    kinds = Counter(
        "pages"
        if item.ref.get("page_number") is not None
        else "frames"
        if item.ref.get("frame_index") is not None
        else "images"
        for item in items
    )
    parts = ["<h2>Overview</h2>"]
    if kinds:
        parts.append(
            "<p>"
            + html_text(", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())))
            + "</p>"
        )
    objects: Counter[str] = Counter()
    seen_in: Counter[str] = Counter()
    codes: dict[tuple[str, str], int] = {}
    words = text_items = 0
    for item in items:
        classes = _classes(item)
        objects.update(classes)
        seen_in.update(classes.keys())
        for code in item.results.get("CodesDecoded", {}).get("codes", []):
            key = (str(code["symbology"]), str(code["text"]))
            codes[key] = codes.get(key, 0) + 1
        if "TextRecognized" in item.results:
            text_items += 1
            words += _words(item)
    if objects:
        counted = [(name, count, seen_in[name]) for name, count in objects.most_common()]
        parts.append("<h3>Objects</h3>" + html_table(("class", "detections", "items"), counted))
    if codes:
        listed = sorted(codes.items())[:CODE_LIMIT]
        found = [(symbology, text, count) for (symbology, text), count in listed]
        parts.append("<h3>Codes</h3>" + html_table(("symbology", "text", "items"), found))
        if len(codes) > CODE_LIMIT:
            parts.append(f'<p class="muted">{len(codes) - CODE_LIMIT} more codes not listed.</p>')
    if text_items:
        parts.append(f"<h3>Text</h3><p>{words} words on {text_items} item(s).</p>")
    return "".join(parts)


def _item_rows_section(items: list[ItemResults]) -> str:
    rows = []
    for item in spread(items, ROW_LIMIT):
        classes = _classes(item)
        scene = item.results.get("SceneDescribed", {}).get("sentences", {}).get("en", "")
        rows.append(
            (
                item.title,
                ", ".join(f"{n} x {name}" if n > 1 else name for name, n in classes.most_common()),
                len(item.results.get("CodesDecoded", {}).get("codes", [])),
                _words(item) if "TextRecognized" in item.results else "",
                scene,
            )
        )
    note = f"{len(items)} items"
    if len(items) > ROW_LIMIT:
        note += f"; {ROW_LIMIT} of them listed, evenly spread, {len(items) - ROW_LIMIT} not"
    headers = ("item", "objects", "codes", "words", "scene")
    return f'<h2>All items</h2><p class="muted">{html_text(note)}.</p>' + html_table(headers, rows)


def render_combined_report(
    results: MediaResults,
    completion: CompletionSummary | None,
    thumbnails: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> bytes:
    """The report page; `thumbnails` maps item labels to embedded `data:` URIs."""
    thumbnails = thumbnails or {}
    items = results.items()
    detailed = detailed_items(results)
    body = [_summary_section(completion, results)]
    body.extend(f'<p class="muted">{html_text(note)}</p>' for note in notes)
    body.append(_overview_section(items))
    if detailed:
        shown = (
            f"{len(detailed)} of {len(items)} items, evenly spread"
            if len(detailed) < len(items)
            else f"all {len(items)} items"
        )
        body.append(f'<h2>Items</h2><p class="muted">In detail: {html_text(shown)}.</p>')
        body.extend(item_section(item, thumbnails.get(item.label), TEXT_LIMIT) for item in detailed)
    else:
        body.append('<p class="muted">No results.</p>')
    if len(detailed) < len(items):
        body.append(_item_rows_section(items))
    body.append(tracks_section(results.tracks(), TRACK_LIMIT))
    body.append(models_section(results))
    return html_page(f"Report for media {results.media_id}", "".join(body))
