"""The blob layout's key builders and dedupe index entries (pure functions)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from producers.storage import (
    artifact_key,
    dedupe_scope,
    export_key,
    index_entry,
    original_key,
    orphan_marker_key,
    parse_index_entry,
    sha256_index_key,
)
from visionlog.blobstore import BlobRef
from visionlog.media.keys import (
    StorageKeyError,
    decrypted_key,
    frame_key,
    page_key,
    processed_key,
)

MEDIA_ID = "0b9f8c1e-6a55-4d1c-9b7e-2f1f3c4d5e6f"


def test_original_key_is_dated_by_utc_upload_day() -> None:
    moment = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    assert original_key(MEDIA_ID, "jpg", moment) == f"2026/03/09/{MEDIA_ID}.jpg"
    # 01:30 at UTC+2 is still the previous day in UTC.
    local = datetime(2026, 3, 10, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert original_key(MEDIA_ID, "pdf", local) == f"2026/03/09/{MEDIA_ID}.pdf"


def test_original_key_refuses_naive_times_and_odd_extensions() -> None:
    with pytest.raises(StorageKeyError, match="timezone-aware"):
        original_key(MEDIA_ID, "jpg", datetime(2026, 1, 1))
    with pytest.raises(StorageKeyError, match="extension"):
        original_key(MEDIA_ID, "../x", datetime(2026, 1, 1, tzinfo=UTC))


def test_page_and_frame_keys_are_zero_padded_under_the_media_id() -> None:
    assert page_key(MEDIA_ID, 7) == f"{MEDIA_ID}/pages/0007.png"
    assert frame_key(MEDIA_ID, 1234) == f"{MEDIA_ID}/frames/00001234.jpg"
    assert sorted([page_key(MEDIA_ID, 10), page_key(MEDIA_ID, 9)])[0].endswith("0009.png")
    with pytest.raises(StorageKeyError):
        page_key(MEDIA_ID, 0)
    with pytest.raises(StorageKeyError):
        frame_key(MEDIA_ID, -1)
    assert decrypted_key(MEDIA_ID) == f"{MEDIA_ID}/decrypted/document.pdf"


def test_processed_artifact_export_and_orphan_keys() -> None:
    assert processed_key(MEDIA_ID, "redacted", "v1/image.png") == (
        f"{MEDIA_ID}/redacted/v1/image.png"
    )
    assert artifact_key(MEDIA_ID, "job-42", "report.json") == f"{MEDIA_ID}/job-42/report.json"
    created = datetime(2026, 12, 31, 12, tzinfo=UTC)
    assert export_key("exp-1", "all.csv", created) == "2026/12/31/exp-1/all.csv"
    assert orphan_marker_key(MEDIA_ID) == f"orphans/{MEDIA_ID}.json"


@pytest.mark.parametrize("bad", ["..", "a/b", "", ".hidden", "x" * 200, "sp ace"])
def test_segments_cannot_escape_their_prefix(bad: str) -> None:
    with pytest.raises(StorageKeyError):
        processed_key(MEDIA_ID, bad, "x.png")
    with pytest.raises(StorageKeyError):
        artifact_key(bad, "job", "x.json")


def test_names_may_nest_but_not_climb() -> None:
    with pytest.raises(StorageKeyError):
        processed_key(MEDIA_ID, "pages", "a/../../etc")
    with pytest.raises(StorageKeyError):
        artifact_key(MEDIA_ID, "job", "a//b")


def test_index_key_requires_a_lower_case_digest() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    scope = dedupe_scope("tenant", "alice")
    assert sha256_index_key(digest, scope) == f"by-sha256/{scope}/{digest}.json"
    with pytest.raises(StorageKeyError):
        sha256_index_key(digest.upper(), scope)
    with pytest.raises(StorageKeyError):
        sha256_index_key(digest[:-1], scope)
    with pytest.raises(StorageKeyError):
        sha256_index_key(digest, "../other")


def test_dedupe_scopes_are_per_tenant_and_owner_and_name_nobody() -> None:
    scopes = {
        dedupe_scope("tenant", "alice"),
        dedupe_scope("tenant", "bob"),
        dedupe_scope("other", "alice"),
        dedupe_scope("tenant", None),
    }
    assert len(scopes) == 4
    assert dedupe_scope("tenant", "alice") == dedupe_scope("tenant", "alice")
    assert all("alice" not in scope and len(scope) == 32 for scope in scopes)


def test_index_entry_round_trips_and_checks_its_digest() -> None:
    digest = hashlib.sha256(b"bytes").hexdigest()
    ref = BlobRef(
        bucket="media-originals",
        key=f"2026/01/02/{MEDIA_ID}.png",
        sha256=digest,
        size_bytes=5,
        content_type="image/png",
    )
    raw = json.dumps(index_entry(MEDIA_ID, ref, datetime(2026, 1, 2, tzinfo=UTC))).encode()
    assert parse_index_entry(raw, digest) == (MEDIA_ID, ref)
    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(ValueError, match="names a blob with sha256"):
        parse_index_entry(raw, other)
