"""The render stage's choices that need no store: what applies, limits, file names."""

from __future__ import annotations

from typing import Any

from minio import Minio

from processors.render.source import local_name
from processors.render.stage import page_pixel_limit, render_media
from processors.stage import StageContext
from tests.factories import sample_event
from visionlog.blobstore import BlobStore
from visionlog.profiles import STAGES_BY_PROFILE, UPLOAD_PROFILES
from visionlog.schemas import get_catalog
from visionlog.settings import IngestSettings, Settings


def _unreachable_context() -> StageContext:
    # Nothing listens there: a stage that touched the store would fail, not pass.
    blobs = BlobStore(Minio("127.0.0.1:9", access_key="x", secret_key="y", secure=False))
    return StageContext(settings=Settings(), blobs=blobs)


def _upload(kind: str, **fields: Any) -> dict[str, Any]:
    return sample_event(get_catalog(), "MediaUploaded", media_kind=kind, **fields)


def test_images_and_other_events_are_not_applicable() -> None:
    ctx = _unreachable_context()
    assert render_media(_upload("IMAGE", profile="full"), ctx) == []
    for event_type in ("PageRendered", "FrameCaptured", "TextRecognized"):
        assert render_media(sample_event(get_catalog(), event_type), ctx) == []


def test_every_upload_profile_renders() -> None:
    # A profile without rendering would leave documents without pages: none exists.
    assert all("render" in STAGES_BY_PROFILE[profile] for profile in UPLOAD_PROFILES)


def test_page_pixels_are_bounded_by_both_limits() -> None:
    limits = IngestSettings()
    assert limits.max_page_pixels == 25_000_000
    assert page_pixel_limit(limits) == 25_000_000
    assert page_pixel_limit(limits.model_copy(update={"max_image_pixels": 1_000_000})) == 1_000_000


def test_local_file_names_keep_the_uploader_stem_and_the_stored_extension() -> None:
    original = {"key": "2026/05/10/0b9f.avi"}
    assert local_name({"original": original, "original_filename": "Holiday 2025.AVI"}) == (
        "Holiday_2025.avi"
    )
    assert local_name({"original": original, "original_filename": None}) == "upload.avi"
    assert local_name({"original": original, "original_filename": "../../etc/passwd"}) == (
        "passwd.avi"
    )
