"""The output stages against the real MinIO of the local stack."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

import processors.combined as combined_module
from processors.combined import results_prefix, update_combined_report
from processors.outputs.media_results import MediaResults
from processors.outputs.stage import GENERATOR, render_combined, render_outputs
from processors.stage import PermanentStageError, StageContext
from tests.processor_factories import (
    assert_valid,
    codes_event,
    detections_event,
    item,
    new_media_id,
    text_event,
)
from tests.unit.processors.test_outputs_render import WORDS, render_words
from visionlog.blobstore import ARTIFACTS, EXPORTS, ORIGINALS


def _upload_page(ctx: StageContext, media_id: str) -> tuple[np.ndarray, dict[str, object]]:
    image, _ = render_words(WORDS)
    ok, png = cv2.imencode(".png", image)
    assert ok
    ref = ctx.blobs.put_bytes(ORIGINALS, f"tests/{media_id}/page-1.png", png.tobytes(), "image/png")
    return image, item(media_id, page=1, image=dict(ref))


def test_ocr_outputs_are_stored_and_announced(ctx: StageContext) -> None:
    media_id = new_media_id()
    _, ref = _upload_page(ctx, media_id)
    _, placed = render_words(WORDS)
    event = text_event(media_id, ref, [placed], size=(900, 420))
    outgoing = render_outputs(event, ctx)
    kinds = {out.record["kind"]: out.record for out in outgoing}
    assert set(kinds) == {
        "JSON",
        "TEXT",
        "ANNOTATED_IMAGE",
        "THUMBNAIL",
        "SEARCHABLE_PDF",
        "HTML_REPORT",
        "MARKDOWN_REPORT",
    }
    for out in outgoing:
        assert out.event_type == "OutputGenerated" and out.key == media_id
        assert_valid("OutputGenerated", out.record)
        record = out.record
        assert record["source_event_ids"] == [event["envelope"]["event_id"]]
        assert record["generator"] == GENERATOR
        assert record["envelope"]["causation_id"] == event["envelope"]["event_id"]
        assert record["output"]["bucket"] == EXPORTS
        assert record["output"]["key"].startswith(f"{media_id}/page-0001/")
    assert kinds["TEXT"]["output"]["key"] == f"{media_id}/page-0001/ocr.txt"
    text = ctx.blobs.get_bytes(kinds["TEXT"]["output"]).decode("utf-8")
    assert text.split() == [word for line in WORDS for word in line]
    pdf = pdfium.PdfDocument(ctx.blobs.get_bytes(kinds["SEARCHABLE_PDF"]["output"]))
    assert "Grüße aus der Straße" in pdf[0].get_textpage().get_text_range()
    document = json.loads(ctx.blobs.get_bytes(kinds["JSON"]["output"]))
    assert document["results"][0]["envelope"]["event_id"] == event["envelope"]["event_id"]
    thumb = cv2.imdecode(
        np.frombuffer(ctx.blobs.get_bytes(kinds["THUMBNAIL"]["output"]), np.uint8),
        cv2.IMREAD_COLOR,
    )
    assert thumb is not None
    assert max(thumb.shape[:2]) == 320
    # replaying the same event gives the same ids and the same bytes
    again = render_outputs(event, ctx)
    assert [o.record["envelope"]["event_id"] for o in again] == [
        o.record["envelope"]["event_id"] for o in outgoing
    ]
    assert [o.record["output"]["sha256"] for o in again] == [
        o.record["output"]["sha256"] for o in outgoing
    ]


def test_detection_and_code_outputs_share_the_thumbnail_but_not_other_files(
    ctx: StageContext,
) -> None:
    media_id = new_media_id()
    _, ref = _upload_page(ctx, media_id)
    detections = detections_event(
        media_id, ref, [("person", 0.9, (10, 10, 200, 300), 4.0)], size=(900, 420)
    )
    codes = codes_event(media_id, ref, [("QR_CODE", "hello", (500, 10, 600, 110))])
    from_detections = {o.record["kind"]: o.record for o in render_outputs(detections, ctx)}
    from_codes = {o.record["kind"]: o.record for o in render_outputs(codes, ctx)}
    assert "CSV" in from_detections and "CSV" not in from_codes
    csv_text = ctx.blobs.get_bytes(from_detections["CSV"]["output"]).decode("utf-8")
    assert csv_text.splitlines()[1].startswith(f"{media_id},page-0001,person,0.9000")
    assert from_detections["THUMBNAIL"]["output"] == from_codes["THUMBNAIL"]["output"]
    keys = {r["output"]["key"] for r in from_detections.values()} & {
        r["output"]["key"] for r in from_codes.values()
    }
    assert keys == {f"{media_id}/page-0001/thumbnail.jpg"}
    # both stored files stay readable: neither overwrote the other
    for record in [*from_detections.values(), *from_codes.values()]:
        assert ctx.blobs.get_bytes(record["output"])


def test_combined_report_is_stored_with_its_sources(ctx: StageContext) -> None:
    media_id = new_media_id()
    _, ref = _upload_page(ctx, media_id)
    text = text_event(media_id, ref, [[[("<script>x</script>", (1, 1, 90, 20))]]])
    detections = detections_event(media_id, ref, [("dog", 0.7, (1, 1, 9, 9), None)], seconds=5)
    results = MediaResults(media_id)
    results.add(text)
    results.add(detections)
    (out,) = render_combined(results, detections, ctx)
    assert_valid("OutputGenerated", out.record)
    assert out.record["kind"] == "COMBINED_REPORT" and out.record["item"] is None
    assert out.record["output"]["key"] == f"{media_id}/report.html"
    assert out.record["source_event_ids"] == sorted(
        [text["envelope"]["event_id"], detections["envelope"]["event_id"]]
    )
    page = ctx.blobs.get_bytes(out.record["output"])
    assert b"&lt;script&gt;x&lt;/script&gt;" in page and b"<script>" not in page
    other = new_media_id()
    with pytest.raises(PermanentStageError, match="about media"):
        render_combined(MediaResults(other), detections, ctx)


def test_bad_inputs_are_permanent_errors(ctx: StageContext) -> None:
    media_id = new_media_id()
    broken = ctx.blobs.put_bytes(ORIGINALS, f"tests/{media_id}/x.jpg", b"not a jpeg", "image/jpeg")
    event = detections_event(media_id, item(media_id, image=dict(broken)), [])
    with pytest.raises(PermanentStageError, match="not a decodable image"):
        render_outputs(event, ctx)
    event["envelope"]["event_type"] = "SceneDescribed"
    with pytest.raises(PermanentStageError, match="render_outputs handles"):
        render_outputs(event, ctx)


def test_combined_report_converges_across_workers(ctx: StageContext) -> None:
    media_id = new_media_id()
    ref = item(media_id, page=1)
    text = text_event(media_id, ref, [[[("Invoice", (1, 1, 90, 20))]]])
    detections = detections_event(media_id, ref, [("dog", 0.7, (1, 1, 9, 9), None)], seconds=5)
    text_id, detections_id = text["envelope"]["event_id"], detections["envelope"]["event_id"]

    (first,) = update_combined_report(text, ctx)
    assert_valid("OutputGenerated", first.record)
    assert first.record["source_event_ids"] == [text_id]
    stored = set(ctx.blobs.list_keys(ARTIFACTS, results_prefix(media_id)))
    assert stored == {f"{results_prefix(media_id)}{text_id}.json"}

    # Another worker (nothing cached) sees the detections: its report holds both results.
    combined_module._cache.clear()
    (second,) = update_combined_report(detections, ctx)
    assert second.record["source_event_ids"] == sorted([text_id, detections_id])
    assert second.record["output"]["key"] == f"{media_id}/report.html"
    page = ctx.blobs.get_bytes(second.record["output"]).decode("utf-8")
    assert "Invoice" in page and "dog" in page and "2 result event(s)" in page
    # The same event again changes nothing.
    (replayed,) = update_combined_report(detections, ctx)
    assert replayed.record["output"]["sha256"] == second.record["output"]["sha256"]

    camera_id = new_media_id()
    frame = detections_event(
        camera_id, {**item(camera_id, frame=3), "camera_id": "gate-1"}, [], seconds=1
    )
    assert update_combined_report(frame, ctx) == []
    assert list(ctx.blobs.list_keys(ARTIFACTS, results_prefix(camera_id))) == []
