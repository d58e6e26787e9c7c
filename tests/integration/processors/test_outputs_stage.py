"""The output stages against the real MinIO of the local stack."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, cast

import cv2
import httpx
import numpy as np
import pypdfium2 as pdfium
import pytest

from processors.bindings import WORKER_KINDS
from processors.combined import keep_result, render_report
from processors.outputs import combined_report
from processors.outputs.combined_report import THUMBNAIL_LIMIT
from processors.outputs.report_view import report_key
from processors.outputs.stage import GENERATOR, render_outputs
from processors.outputs.stored_results import result_key, results_prefix
from processors.stage import Outgoing, PermanentStageError, StageContext
from tests.numbered_frames import NumberedFrames
from tests.processor_factories import (
    assert_valid,
    codes_event,
    detections_event,
    item,
    new_media_id,
    text_event,
    track_event,
)
from tests.unit.processors.test_outputs_render import WORDS, render_words
from tests.unit.processors.test_reports import decoded_images
from tests.unit.projections.completion_events import media_completed
from visionlog.blobstore import ARTIFACTS, EXPORTS, ORIGINALS, PROCESSED, BlobRef, BlobStore


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


def test_a_code_reading_that_found_nothing_writes_only_its_json(ctx: StageContext) -> None:
    media_id = new_media_id()
    _, ref = _upload_page(ctx, media_id)
    # Points at no stored image: nothing that would be drawn is read either.
    image = dict(cast(dict[str, object], ref["image"]))
    missing = {**ref, "image": {**image, "key": f"{media_id}/absent.png"}}
    outgoing = render_outputs(codes_event(media_id, missing, []), ctx)
    assert [o.record["kind"] for o in outgoing] == ["JSON"]
    stored = json.loads(ctx.blobs.get_bytes(outgoing[0].record["output"]))
    assert [result["codes"] for result in stored["results"]] == [[]]


def test_bad_inputs_are_permanent_errors(ctx: StageContext) -> None:
    media_id = new_media_id()
    broken = ctx.blobs.put_bytes(ORIGINALS, f"tests/{media_id}/x.jpg", b"not a jpeg", "image/jpeg")
    event = detections_event(media_id, item(media_id, image=dict(broken)), [])
    with pytest.raises(PermanentStageError, match="not a decodable image"):
        render_outputs(event, ctx)
    event["envelope"]["event_type"] = "SceneDescribed"
    with pytest.raises(PermanentStageError, match="render_outputs handles"):
        render_outputs(event, ctx)


class CountingBlobs(BlobStore):
    """The real blob store, counting what a stage asks of it."""

    def __init__(self, blobs: BlobStore) -> None:
        super().__init__(blobs.client)
        self.calls: Counter[str] = Counter()
        self.puts: Counter[str] = Counter()

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> BlobRef:
        self.calls["put"] += 1
        self.puts[f"{bucket}/{key}"] += 1
        return super().put_bytes(bucket, key, data, content_type)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        self.calls["list"] += 1
        return super().list_keys(bucket, prefix)

    def get_object_bytes(self, bucket: str, key: str) -> bytes:
        self.calls["get"] += 1
        return super().get_object_bytes(bucket, key)


@pytest.fixture
def counted(ctx: StageContext) -> tuple[StageContext, CountingBlobs]:
    blobs = CountingBlobs(ctx.blobs)
    return StageContext(settings=ctx.settings, blobs=blobs), blobs


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Media ids of every report rendering (the real renderer runs)."""
    rendered: list[str] = []
    real = combined_report.render_combined_report

    def counting(results: Any, *args: Any, **kwargs: Any) -> bytes:
        rendered.append(results.media_id)
        return real(results, *args, **kwargs)

    monkeypatch.setattr("processors.outputs.report_view.render_combined_report", counting)
    return rendered


def _through_bindings(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """What the outputs worker does with `event` (a recorded item's), by its bindings; the
    per-item exports are left out to spare the CPU: they are not the report."""
    outgoing: list[Outgoing] = []
    for binding in WORKER_KINDS["outputs"].stages:
        if binding.name != "outputs" and binding.takes(event["envelope"]["event_type"], False):
            outgoing.extend(binding.load()(event, ctx))
    return outgoing


def test_keep_result_stores_each_result_once_without_listing_or_rendering(
    counted: tuple[StageContext, CountingBlobs], renders: list[str]
) -> None:
    ctx, blobs = counted
    media_id = new_media_id()
    ref = item(media_id, page=1)
    events = [
        text_event(media_id, ref, [[[("Invoice", (1, 1, 90, 20))]]]),
        detections_event(media_id, ref, [("dog", 0.7, (1, 1, 9, 9), None)], seconds=5),
        codes_event(media_id, ref, [("QR_CODE", "hello", (1, 1, 9, 9))]),
    ]
    for event in [*events, *events]:  # every event twice, as after a redelivery
        assert keep_result(event, ctx) == []
    assert blobs.calls == Counter({"put": 6})
    assert renders == []
    expected = {result_key(media_id, e["envelope"]["event_id"]) for e in events}
    assert {f"{ARTIFACTS}/{key}" for key in expected} == set(blobs.puts)
    assert set(ctx.blobs.list_keys(ARTIFACTS, results_prefix(media_id))) == expected
    stored = json.loads(ctx.blobs.get_object_bytes(ARTIFACTS, sorted(expected)[0]))
    assert stored["media_id"] == media_id and isinstance(stored["envelope"]["occurred_at"], int)

    camera_id = new_media_id()
    frame = detections_event(
        camera_id, {**item(camera_id, frame=3), "camera_id": "gate-1"}, [], seconds=1
    )
    assert keep_result(frame, ctx) == []
    assert ctx.blobs.list_keys(ARTIFACTS, results_prefix(camera_id)) == []


def _video(ctx: StageContext, media_id: str, frames: int) -> list[dict[str, Any]]:
    """Stored frames of a video, each with its detections and track update."""
    drawer = NumberedFrames(320, 240, 8)
    events: list[dict[str, Any]] = []
    for index in range(frames):
        ok, jpeg = cv2.imencode(".jpg", drawer.frame(index))
        assert ok
        image = ctx.blobs.put_bytes(
            PROCESSED, f"{media_id}/frames/{index:08d}.jpg", jpeg.tobytes(), "image/jpeg"
        )
        ref = item(media_id, frame=index, image=dict(image))
        events.append(
            detections_event(
                media_id, ref, [("person", 0.9, (10, 10, 100, 200), 4.0)], seconds=index
            )
        )
        track = track_event(media_id, index, [(1, "person", "TRACKED", 0, index + 1)], index)
        track["item"] = ref
        events.append(track)
    return events


def test_the_report_of_a_100_frame_video_is_rendered_once_per_completion(
    counted: tuple[StageContext, CountingBlobs], renders: list[str]
) -> None:
    ctx, blobs = counted
    media_id = new_media_id()
    events = _video(ctx, media_id, 100)
    blobs.calls.clear()
    for event in events:
        assert _through_bindings(event, ctx) == []
    # 200 result events: each stored once, nothing listed, nothing rendered.
    assert renders == [] and blobs.calls == Counter({"put": 200})
    assert f"{EXPORTS}/{report_key(media_id)}" not in blobs.puts

    completed = media_completed(media_id, expected=100, completed=100, seconds=120)
    (announced,) = _through_bindings(completed, ctx)
    assert renders == [media_id]
    assert blobs.puts[f"{EXPORTS}/{report_key(media_id)}"] == 1
    assert blobs.calls["list"] == 1  # one listing of the stored results per rendering
    record = announced.record
    assert_valid("OutputGenerated", record)
    assert record["kind"] == "COMBINED_REPORT" and record["item"] is None
    assert record["output"]["key"] == report_key(media_id)
    assert record["source_event_ids"] == [completed["envelope"]["event_id"]]
    assert record["envelope"]["causation_id"] == completed["envelope"]["event_id"]

    page = ctx.blobs.get_bytes(record["output"])
    assert len(page) < 300_000, len(page)
    pictures = decoded_images(page)
    assert len(pictures) == THUMBNAIL_LIMIT
    # The thumbnails are the frames themselves (not blank).
    assert all(picture.max() > 100 for picture in pictures)
    text = page.decode("utf-8")
    assert "100 frames" in text and "Completed" in text
    # It opens where a user opens it: through a presigned URL of the private bucket.
    assert httpx.get(ctx.blobs.presigned_url(record["output"], 60)).content == page

    # A redelivered completion renders again under the same id; a reprocess run's
    # completion renders the newest view under its own id, at the same key.
    (again,) = render_report(completed, ctx)
    assert again.record["envelope"]["event_id"] == record["envelope"]["event_id"]
    rerun = detections_event(
        media_id, events[0]["item"], [("bus", 0.8, (1, 1, 300, 200), None)], seconds=500
    )
    assert keep_result(rerun, ctx) == []
    rerun_done = media_completed(media_id, run_id="rerun-1", expected=1, completed=1, seconds=600)
    (newest,) = render_report(rerun_done, ctx)
    assert newest.record["envelope"]["event_id"] != record["envelope"]["event_id"]
    assert newest.record["output"]["key"] == report_key(media_id)
    assert len(renders) == 3
    latest = ctx.blobs.get_bytes(newest.record["output"]).decode("utf-8")
    assert "<td>bus</td>" in latest and "rerun-1" in latest


def test_a_report_leaves_out_pictures_it_cannot_load(ctx: StageContext) -> None:
    media_id = new_media_id()
    missing = item(media_id, page=1)  # points at a blob that does not exist
    keep_result(text_event(media_id, missing, [[[("Lost", (1, 1, 20, 9))]]]), ctx)
    (out,) = render_report(media_completed(media_id, "FAILED", expected=1, completed=0), ctx)
    page = ctx.blobs.get_bytes(out.record["output"])
    assert decoded_images(page) == [] and b"<img" not in page
    assert b"Lost" in page and b"Failed" in page
