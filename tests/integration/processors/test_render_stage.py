"""The render stage against the real MinIO: uploaded PDFs become pages, videos frames.

Ingest no longer renders (see tests/integration/producers); this stage, in the document
worker, does it outside the request, page by page, with bounded memory.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from PIL import Image

from processors.render.stage import page_pixel_limit, render_media
from processors.stage import Outgoing, StageContext
from tests.factories import sample_event
from tests.integration.producers import samples
from tests.processor_factories import assert_valid
from visionlog.blobstore import ORIGINALS, PROCESSED, BlobNotFoundError
from visionlog.envelope import deterministic_event_id
from visionlog.errors import Disposition, classify
from visionlog.media.decrypted import store_decrypted_copy
from visionlog.media.errors import MediaRejectedError, RejectReason
from visionlog.media.keys import frame_key, page_key
from visionlog.schemas import get_catalog
from visionlog.stream.headers import new_trace_id

TRACE = new_trace_id()
CONTENT_TYPES = {"pdf": "application/pdf", "avi": "video/x-msvideo", "png": "image/png"}


def uploaded(
    ctx: StageContext, data: bytes, kind: str, extension: str, **fields: Any
) -> dict[str, Any]:
    """A MediaUploaded whose original is really stored, as ingest would leave it."""
    media_id = str(uuid.uuid4())
    ref = ctx.blobs.put_bytes(
        ORIGINALS, f"tests-render/{media_id}.{extension}", data, CONTENT_TYPES[extension]
    )
    record = sample_event(
        get_catalog(),
        "MediaUploaded",
        media_id=media_id,
        media_kind=kind,
        original=dict(ref),
        original_filename=f"upload.{extension}",
        profile=fields.pop("profile", "full"),
        duplicate_of=None,
        **fields,
    )
    record["envelope"]["trace_id"] = TRACE
    assert_valid("MediaUploaded", record)
    return record


def tuned(ctx: StageContext, **limits: Any) -> StageContext:
    settings = ctx.settings.model_copy(
        update={"ingest": ctx.settings.ingest.model_copy(update=limits)}
    )
    return StageContext(settings=settings, blobs=ctx.blobs)


def of_type(outputs: list[Outgoing], event_type: str) -> list[dict[str, Any]]:
    return [o.record for o in outputs if o.event_type == event_type]


def with_corrupt_page(data: bytes, page_index: int) -> bytes:
    """The page's MediaBox says a billion points: no renderer can make an image of it."""
    with pikepdf.open(io.BytesIO(data)) as document:
        document.pages[page_index].obj["/MediaBox"] = pikepdf.Array([0, 0, 1e9, 1e9])
        out = io.BytesIO()
        document.save(out)
    return out.getvalue()


def test_pdf_pages_are_rendered_stored_and_announced_with_deterministic_ids(
    ctx: StageContext,
) -> None:
    event = uploaded(ctx, samples.pdf([(595, 842), (842, 595), (300, 300)]), "PDF", "pdf")
    outputs = render_media(event, ctx)
    pages = of_type(outputs, "PageRendered")
    assert [o.event_type for o in outputs] == ["PageRendered"] * 3
    assert {o.key for o in outputs} == {event["media_id"]}
    upload_id = event["envelope"]["event_id"]
    for number, page in enumerate(pages, start=1):
        assert_valid("PageRendered", page)
        assert page["page_number"] == number and page["page_count"] == 3
        assert page["envelope"]["causation_id"] == upload_id
        assert page["envelope"]["event_id"] == deterministic_event_id(
            "PageRendered", upload_id, "page", number
        )
        assert page["envelope"]["trace_id"] == TRACE
        assert page["image"]["bucket"] == PROCESSED
        assert page["image"]["key"] == page_key(event["media_id"], number)
        rendered = Image.open(io.BytesIO(ctx.blobs.get_bytes(page["image"])))
        assert rendered.format == "PNG" and rendered.size == (page["width"], page["height"])
        assert page["dpi"] == ctx.settings.ingest.pdf_dpi
        assert page["renderer"].startswith("pypdfium2/") and page["repaired"] is False
    # Landscape page 2 is wider than tall; at 150 dpi A4 is about 1240 px wide.
    assert pages[1]["width"] > pages[1]["height"]
    assert abs(pages[0]["width"] - 1240) <= 2
    # A redelivered upload yields the same events under the same keys: duplicates absorb.
    again = of_type(render_media(event, ctx), "PageRendered")
    assert [p["envelope"]["event_id"] for p in again] == [p["envelope"]["event_id"] for p in pages]
    assert [p["image"] for p in again] == [p["image"] for p in pages]


def test_a_corrupt_page_is_dead_lettered_and_the_other_pages_rendered(ctx: StageContext) -> None:
    data = with_corrupt_page(samples.pdf([(595, 842), (300, 300), (400, 400), (300, 300)]), 2)
    event = uploaded(ctx, data, "PDF", "pdf")
    outputs = render_media(event, ctx)
    assert [o.event_type for o in outputs] == [
        "PageRendered",
        "PageRendered",
        "ProcessingFailed",
        "PageRendered",
    ]
    assert [p["page_number"] for p in of_type(outputs, "PageRendered")] == [1, 2, 4]
    (failed,) = of_type(outputs, "ProcessingFailed")
    assert_valid("ProcessingFailed", failed)
    assert failed["stage"] == "render"
    assert failed["error_message"].startswith("page-0003: ")
    assert "page 3 measures 1000000000x1000000000 pt" in failed["error_message"]
    assert failed["error_type"] == "MediaRejectedError"
    assert failed["retryable"] is False
    assert failed["failed_event_type"] == "MediaUploaded"
    assert failed["input_blob"] == event["original"]
    assert failed["envelope"]["causation_id"] == event["envelope"]["event_id"]
    assert failed["envelope"]["trace_id"] == TRACE
    # Deterministic too: a retried stage dead-letters the page under the same id.
    (again,) = of_type(render_media(event, ctx), "ProcessingFailed")
    assert again["envelope"]["event_id"] == failed["envelope"]["event_id"]
    assert not ctx.blobs.exists(PROCESSED, page_key(event["media_id"], 3))


def test_encrypted_pdf_renders_from_the_decrypted_copy_ingest_stored(ctx: StageContext) -> None:
    data = samples.pdf([(400, 400), (300, 300)], password="s3cret")
    event = uploaded(ctx, data, "PDF", "pdf")
    with pytest.raises(MediaRejectedError) as caught:
        render_media(event, ctx)
    # No copy, no password anywhere: permanent, dead-lettered as a whole.
    assert caught.value.reason is RejectReason.ENCRYPTED
    assert classify(caught.value) is Disposition.PERMANENT
    with pikepdf.open(io.BytesIO(data), password="s3cret") as document:
        decrypted = io.BytesIO()
        document.save(decrypted)
    store_decrypted_copy(ctx.blobs, event["media_id"], decrypted.getvalue(), repaired=True)
    pages = of_type(render_media(event, ctx), "PageRendered")
    assert [(p["page_number"], p["width"]) for p in pages] == [(1, 834), (2, 625)]
    # The original's repair travels with the copy's metadata.
    assert all(p["repaired"] for p in pages)


def test_missing_original_is_a_permanent_error(ctx: StageContext) -> None:
    event = uploaded(ctx, samples.pdf([(300, 300)]), "PDF", "pdf")
    ctx.blobs.delete(ORIGINALS, event["original"]["key"])
    with pytest.raises(BlobNotFoundError):
        render_media(event, ctx)


def test_video_frames_are_sampled_with_the_upload_profile(
    ctx: StageContext, tmp_path: Path
) -> None:
    clip = samples.video(tmp_path / "clip.avi", frames=20, fps=10.0).read_bytes()
    event = uploaded(ctx, clip, "VIDEO", "avi", profile="vision", fps=10.0)
    outputs = render_media(event, tuned(ctx, video_sample_fps=2.0))
    frames = of_type(outputs, "FrameCaptured")
    assert [o.event_type for o in outputs] == ["FrameCaptured"] * 4
    assert [f["frame_index"] for f in frames] == [0, 5, 10, 15]
    assert [f["timestamp_ms"] for f in frames] == [0, 500, 1000, 1500]
    upload_id = event["envelope"]["event_id"]
    for frame in frames:
        assert_valid("FrameCaptured", frame)
        assert frame["envelope"]["event_id"] == deterministic_event_id(
            "FrameCaptured", upload_id, "frame", frame["frame_index"]
        )
        assert frame["envelope"]["trace_id"] == TRACE
        assert frame["image"]["key"] == frame_key(event["media_id"], frame["frame_index"])
        assert frame["sampling_fps"] == 2.0 and frame["source_fps"] == 10.0
        assert frame["camera_id"] is None
        # FrameCaptured v2: the upload's profile; staleness is for live frames only.
        assert frame["profile"] == "vision" and frame["max_age_ms"] is None
        decoded = Image.open(io.BytesIO(ctx.blobs.get_bytes(frame["image"])))
        assert decoded.format == "JPEG" and decoded.size == (96, 64)


def test_video_every_nth_frame_with_a_cap(ctx: StageContext, tmp_path: Path) -> None:
    clip = samples.video(tmp_path / "clip.avi", frames=20).read_bytes()
    event = uploaded(ctx, clip, "VIDEO", "avi", fps=10.0)
    frames = of_type(
        render_media(event, tuned(ctx, video_every_n_frames=7, max_video_frames=2)),
        "FrameCaptured",
    )
    assert [f["frame_index"] for f in frames] == [0, 7]
    assert {f["sampling_fps"] for f in frames} == {None}


def test_video_breaking_mid_way_keeps_its_frames_and_names_the_break(
    ctx: StageContext, tmp_path: Path
) -> None:
    clip = bytearray(samples.video(tmp_path / "clip.avi", frames=20).read_bytes())
    starts = [m.start() for m in re.finditer(b"\xff\xd8\xff", bytes(clip))]
    assert len(starts) == 20
    # Frame 10's JPEG data is wiped; the container and the last frame stay intact.
    clip[starts[10] : starts[11] - 8] = bytes(starts[11] - 8 - starts[10])
    event = uploaded(ctx, bytes(clip), "VIDEO", "avi", fps=10.0)
    outputs = render_media(event, ctx)
    assert [o.event_type for o in outputs] == ["FrameCaptured", "ProcessingFailed"]
    (failed,) = of_type(outputs, "ProcessingFailed")
    assert failed["error_message"].startswith("frame-00000010: ")
    assert "decoding stopped after 10 of 20" in failed["error_message"]
    assert failed["retryable"] is False


def test_images_are_not_for_this_stage(ctx: StageContext) -> None:
    event = uploaded(ctx, samples.png(), "IMAGE", "png")
    assert render_media(event, ctx) == []
    page = sample_event(get_catalog(), "PageRendered")
    assert render_media(page, ctx) == []


# Peak resident memory from /proc: ru_maxrss would inherit the forking pytest's peak.
_CHILD = """
import json, sys, time
from processors.render.stage import render_media
from processors.stage import StageContext
from visionlog.blobstore import BlobStore
from visionlog.settings import Settings

def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

event = json.loads(sys.stdin.read())
settings = Settings()
ctx = StageContext(settings=settings, blobs=BlobStore.from_settings(settings.minio))
ctx.blobs.exists("media-processed", "warm-up")  # connection pool and TLS-free client ready
before = peak_kb()
started = time.monotonic()
outputs = render_media(event, ctx)
seconds = time.monotonic() - started
after = peak_kb()
print(json.dumps({
    "growth_mb": (after - before) / 1024,
    "seconds": seconds,
    "outputs": [[o.event_type, o.record.get("dpi"), o.record.get("width"),
                 o.record.get("height")] for o in outputs],
}))
"""


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    envelope = dict(record["envelope"])
    envelope["occurred_at"] = int(envelope["occurred_at"].timestamp() * 1000)
    return {**record, "envelope": envelope}


def test_giant_pages_render_at_a_lower_dpi_within_bounded_memory(ctx: StageContext) -> None:
    """The fault test's document: 2.6 KB, four 14,400-pt pages. It took the worker to
    4.8 GB; now each page is one bounded bitmap, rendered at the DPI that fits."""
    data = samples.pdf([(14_400, 14_400)] * 4)
    assert len(data) < 4096
    event = uploaded(ctx, data, "PDF", "pdf")
    child = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(_jsonable(event)),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    limit = page_pixel_limit(ctx.settings.ingest)
    assert [kind for kind, *_ in report["outputs"]] == ["PageRendered"] * 4
    for _, dpi, width, height in report["outputs"]:
        assert dpi < ctx.settings.ingest.pdf_dpi
        assert width * height <= limit
    # One page's bitmap (3 bytes a pixel) and its PNG at a time, never all four.
    bound_mb = 2.5 * 3 * limit / 2**20
    assert report["growth_mb"] < bound_mb, report
    print(f"giant pages: {report}")  # the measured figures, for the record
