"""HTML and Markdown reports, the detections CSV and the combined per-media report."""

from __future__ import annotations

import base64
import copy
import csv
import io
import random
import re
from html.parser import HTMLParser
from typing import Any

import cv2
import numpy as np
import pytest

from processors.outputs.combined_report import (
    DETAIL_LIMIT,
    ROW_LIMIT,
    TRACK_LIMIT,
    CompletionSummary,
    render_combined_report,
    spread,
)
from processors.outputs.csv_export import CSV_COLUMNS, render_detections_csv
from processors.outputs.html_report import REPORT_CSP, item_section, render_html_report
from processors.outputs.inline_images import INLINE_MAX_BYTES, inline_thumbnail
from processors.outputs.markdown_report import md_escape, render_markdown_report
from processors.outputs.media_results import MediaResults
from tests.processor_factories import (
    codes_event,
    detections_event,
    item,
    new_media_id,
    redaction_event,
    scene_event,
    text_event,
    track_event,
)

HOSTILE = "<script>alert('x')</script> & <img src=x onerror=alert(1)>"


class _Collector(HTMLParser):
    """Collects start tags and the text content of a page as a browser would parse it."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.images: list[str] = []
        self.csp: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.csp.append(values.get("content") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: bytes) -> _Collector:
    collector = _Collector()
    collector.feed(page.decode("utf-8"))
    return collector


def _hostile_results() -> MediaResults:
    media_id = new_media_id()
    ref = item(media_id)
    results = MediaResults(media_id)
    results.add(text_event(media_id, ref, [[[(HOSTILE, (1, 1, 50, 20))]]]))
    results.add(detections_event(media_id, ref, [("<b>cat</b>", 0.5, (1, 1, 9, 9), None)]))
    results.add(codes_event(media_id, ref, [("QR_CODE", "<script>steal()</script>", (1, 1, 9, 9))]))
    results.add(scene_event(media_id, ref, {"en": "<i>A</i> cat", "de": "Eine Katze"}))
    return results


def test_html_report_escapes_text_from_media() -> None:
    page = render_html_report(_hostile_results(), title="<title>")
    parsed = _parse(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "b" not in parsed.tags
    assert b"<script>" not in page and b"&lt;script&gt;alert(&#x27;x&#x27;)" in page
    text = "".join(parsed.text)
    # the text survives literally for the reader
    assert HOSTILE in text and "<script>steal()</script>" in text and "<b>cat</b>" in text
    assert "<i>A</i> cat" in text and "Eine Katze" in text


def test_markdown_report_escapes_markdown_and_html() -> None:
    document = render_markdown_report(_hostile_results(), title="Report").decode("utf-8")
    assert "<script>" not in document and "<img" not in document and "<b>" not in document
    assert "&lt;script&gt;" in document
    assert md_escape("*bold* [link](x) # 1. item | pipe") == (
        r"\*bold\* \[link\]\(x\) \# 1. item \| pipe"
    )
    assert md_escape("1. not a list") == r"1\. not a list"
    assert md_escape("a\\b") == "a\\\\b"


def test_markdown_report_lists_every_result_kind() -> None:
    media_id = new_media_id()
    ref = item(media_id, page=1)
    results = MediaResults(media_id)
    results.add(
        text_event(media_id, ref, [[[("Hello", (1, 1, 9, 9))]], [[("World", (1, 20, 9, 29))]]])
    )
    results.add(detections_event(media_id, ref, [("person", 0.876, (1, 2, 30, 40), 4.0)]))
    results.add(redaction_event(media_id, ref))
    document = render_markdown_report(results, "Page report").decode("utf-8")
    assert document.startswith("# Page report\n")
    assert "## Page 1" in document
    assert "Hello\n\nWorld" in document
    assert "| person | 0\\.88 |" not in document  # numbers are not escaped into noise
    assert "| person | 0.88 | 1, 2, 30, 40 | 4.0 |" in document
    assert "Method BLUR; regions FACE: 2, LICENCE\\_PLATE: 1; masked PII email: 2." in document


def test_detections_csv_has_one_row_per_box() -> None:
    media_id = new_media_id()
    first = detections_event(
        media_id,
        item(media_id, frame=42),
        [("person", 0.9, (1.25, 2, 30, 40), 3.5), ("=HYPERLINK(1)", 0.4, (5, 6, 7, 8), None)],
    )
    second = detections_event(
        media_id, item(media_id, frame=43), [("car", 0.7, (0, 0, 9, 9), 12.0)]
    )
    rows = list(csv.reader(io.StringIO(render_detections_csv([first, second]).decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1] == [
        media_id,
        "frame-00000042",
        "person",
        "0.9000",
        "1.2",
        "2.0",
        "30.0",
        "40.0",
        "3.50",
    ]
    # a class starting with '=' must not turn into a spreadsheet formula
    assert rows[2][2] == "'=HYPERLINK(1)" and rows[2][8] == ""
    assert rows[3][:3] == [media_id, "frame-00000043", "car"]
    assert len(rows) == 4
    with pytest.raises(ValueError, match="ObjectsDetected"):
        render_detections_csv([text_event(media_id, item(media_id), [[[("a", (1, 1, 2, 2))]]])])


def _video_events(media_id: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for frame in range(3):
        ref = item(media_id, frame=frame)
        events.append(
            detections_event(
                media_id, ref, [("car", 0.8, (frame, 0, 10 + frame, 10), None)], seconds=frame
            )
        )
        events.append(
            track_event(
                media_id, frame, [(7, "car", "TRACKED" if frame else "NEW", 0, frame + 1)], frame
            )
        )
    events.append(track_event(media_id, 3, [(7, "car", "LOST", 0, 3)], seconds=3))
    return events


def test_media_results_add_is_idempotent_and_order_independent() -> None:
    media_id = new_media_id()
    events = _video_events(media_id)
    ref = item(media_id, page=None)
    events.append(text_event(media_id, ref, [[[("old", (1, 1, 5, 5))]]], seconds=10))
    events.append(text_event(media_id, ref, [[[("new", (1, 1, 5, 5))]]], seconds=20))
    forward = MediaResults(media_id)
    for event in events:
        assert forward.add(event) is True
    snapshot = forward.to_json()
    assert all(forward.add(event) is False for event in events)  # same event ids: no change
    assert forward.to_json() == snapshot
    shuffled = MediaResults(media_id)
    for event in random.Random(7).sample(events, len(events)):
        shuffled.add(event)
    assert shuffled == forward
    # the latest OCR result of an item wins
    original = next(entry for entry in forward.items() if entry.label == "original")
    assert original.results["TextRecognized"]["text"] == "new"
    tracks = forward.tracks()
    assert len(tracks) == 1
    assert tracks[0]["state"] == "LOST" and tracks[0]["last_frame_index"] == 3
    assert tracks[0]["hits"] == 3 and tracks[0]["first_frame_index"] == 0


def test_media_results_round_trip_through_json() -> None:
    media_id = new_media_id()
    results = MediaResults(media_id)
    for event in _video_events(media_id):
        results.add(event)
    restored = MediaResults.from_json(results.to_json())
    assert restored == results
    assert restored.source_event_ids() == results.source_event_ids()
    assert [entry.label for entry in restored.items()] == [
        "frame-00000000",
        "frame-00000001",
        "frame-00000002",
    ]
    late = scene_event(media_id, item(media_id, frame=1), {"en": "A car.", "de": "Ein Auto."})
    assert restored.add(late) is True and restored != results
    with pytest.raises(ValueError, match="unsupported"):
        MediaResults.from_json(b'{"version": 99}')


def test_media_results_refuses_foreign_and_non_result_events() -> None:
    media_id, other = new_media_id(), new_media_id()
    results = MediaResults(media_id)
    with pytest.raises(ValueError, match="belongs to media"):
        results.add(text_event(other, item(other), [[[("a", (1, 1, 2, 2))]]]))
    upload = text_event(media_id, item(media_id), [[[("a", (1, 1, 2, 2))]]])
    upload["envelope"]["event_type"] = "MediaUploaded"
    with pytest.raises(ValueError, match="not a result event"):
        results.add(upload)
    assert results.seen_count() == 0


def decoded_images(page: bytes) -> list[np.ndarray]:
    """Every picture of a page, as a browser would load it under the page's own CSP: each
    must be an embedded `data:` JPEG (the CSP allows nothing else) that decodes."""
    parsed = _parse(page)
    assert parsed.csp == [REPORT_CSP]
    directives = dict(d.strip().split(" ", 1) for d in REPORT_CSP.split(";"))
    assert directives["img-src"] == "data:" and directives["default-src"] == "'none'"
    images = []
    for src in parsed.images:
        assert src.startswith("data:image/jpeg;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.size > 0
        images.append(image)
    return images


def test_combined_report_aggregates_pages_and_stages_in_document_order() -> None:
    media_id = new_media_id()
    results = MediaResults(media_id)
    for number in (3, 1, 2):
        ref = item(media_id, page=number)
        results.add(text_event(media_id, ref, [[[(f"Text of page {number}", (1, 1, 50, 9))]]]))
        results.add(codes_event(media_id, ref, [("EAN_13", f"400000000000{number}", (1, 1, 9, 9))]))
    results.add(redaction_event(media_id, item(media_id, page=2)))
    completion = CompletionSummary(
        status="completed_with_errors",
        items_expected=4,
        items_completed=3,
        items_failed=1,
        duration_ms=12_300,
        errors=({"stage": "ocr", "item_label": "page-0004", "message": "<b>corrupt</b>"},),
        stages=({"stage": "ocr", "done": 3, "not_applicable": 0, "skipped": 0, "failed": 1},),
    )
    thumbnail = inline_thumbnail(np.full((200, 100, 3), 200, np.uint8))
    page = render_combined_report(results, completion, {"page-0002": thumbnail})
    text = page.decode("utf-8")
    positions = [text.index(f"Text of page {n}") for n in (1, 2, 3)]
    assert positions == sorted(positions)
    assert [m.group(1) for m in re.finditer(r'<section id="([^"]+)"', text)] == [
        "page-0001",
        "page-0002",
        "page-0003",
    ]
    (picture,) = decoded_images(page)
    assert picture.shape[:2] == (160, 80)
    assert "4000000000002" in text and "Anonymisation" in text
    assert f"Report for media {media_id}" in text
    assert "7 result event(s)" in text and "so far" not in text
    assert "Completed with errors" in text and "12.3 s" in text
    assert "&lt;b&gt;corrupt&lt;/b&gt;" in text and "<b>corrupt" not in text
    assert "test-model" in text  # models section
    restored = MediaResults.from_json(results.to_json())
    assert render_combined_report(restored, completion, {"page-0002": thumbnail}) == page
    # Without a completion the page says the results are those seen so far.
    assert b"so far" in render_combined_report(results, None)


def test_report_pictures_must_be_embedded() -> None:
    media_id = new_media_id()
    results = MediaResults(media_id)
    results.add(detections_event(media_id, item(media_id), [("cat", 0.5, (1, 1, 9, 9), None)]))
    (entry,) = results.items()
    with pytest.raises(ValueError, match="data: URIs"):
        item_section(entry, "original/thumbnail.jpg")
    page = render_html_report(
        results, "One item", lambda _label: inline_thumbnail(np.zeros((9, 9, 3), np.uint8))
    )
    assert len(decoded_images(page)) == 1


def test_inline_thumbnails_stay_small_whatever_the_image() -> None:
    noise = np.random.default_rng(3).integers(0, 255, (2400, 1800, 3), dtype=np.uint8)
    src = inline_thumbnail(noise)
    data = base64.b64decode(src.split(",", 1)[1])
    assert len(data) <= INLINE_MAX_BYTES
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and max(image.shape[:2]) <= 160


def test_spread_keeps_the_first_and_last_and_bounds_the_count() -> None:
    assert spread(list(range(5)), 10) == [0, 1, 2, 3, 4]
    picked = spread(list(range(7200)), 40)
    assert len(picked) == 40 and picked[0] == 0 and picked[-1] == 7199
    assert picked == sorted(set(picked))


def _frame_events(media_id: str, frames: int) -> list[dict[str, Any]]:
    """Detections and a track update per frame, made fast by copying one template each."""
    detection = detections_event(
        media_id,
        item(media_id, frame=0),
        [("person", 0.9, (1, 2, 30, 40), 3.0), ("car", 0.7, (50, 50, 90, 80), None)],
    )
    track = track_event(media_id, 0, [(1, "person", "TRACKED", 0, 1)])
    events = []
    for frame in range(frames):
        for template in (detection, track):
            event = copy.deepcopy(template)
            event["envelope"]["event_id"] = f"{template['envelope']['event_id']}-{frame}"
            event["item"] = item(media_id, frame=frame)
            if "tracks" in event:
                # A new track every 10 frames: 720 tracks in an hour.
                event["tracks"][0].update(track_id=frame // 10, first_frame_index=frame // 10 * 10)
            events.append(event)
    return events


def test_the_report_of_a_one_hour_video_has_a_bounded_size() -> None:
    media_id = new_media_id()
    results = MediaResults(media_id)
    frames = 7200  # one hour sampled at 2 frames per second
    for event in _frame_events(media_id, frames):
        results.add(event)
    thumbnail = inline_thumbnail(np.random.default_rng(1).integers(0, 255, (480, 640, 3), np.uint8))
    thumbnails = {entry.label: thumbnail for entry in results.items()[:12]}
    completion = CompletionSummary(
        status="completed", items_expected=frames, items_completed=frames
    )
    page = render_combined_report(results, completion, thumbnails)
    text = page.decode("utf-8")
    assert len(page) < 600_000, len(page)
    assert text.count("<section ") == DETAIL_LIMIT
    # The totals cover every frame, the listings are bounded and say what they leave out.
    assert f"<td>person</td><td>{frames}</td><td>{frames}</td>" in text
    assert f"{ROW_LIMIT} of them listed" in text and f"{frames - ROW_LIMIT} not" in text
    assert f"{frames // 10 - TRACK_LIMIT} more not listed" in text
    assert "Frame 7199" in text  # the last frame is among the detailed ones
    assert len(decoded_images(page)) <= 12
