"""The erasure stage on the real blob store: every blob of the item goes, nothing else."""

from __future__ import annotations

import uuid

import pytest

from processors.erasure.stage import erase_blobs
from processors.stage import PermanentStageError, StageContext
from tests.factories import sample_event
from tests.processor_factories import new_media_id
from visionlog.blobstore import ARTIFACTS, EXPORTS, ORIGINALS, PROCESSED
from visionlog.schemas import get_catalog


def _erasure(media_id: str, blob_keys: list[str]) -> dict[str, object]:
    return sample_event(
        get_catalog(),
        "MediaDeleted",
        media_id=media_id,
        reason="user_request",
        requested_by="tests",
        blob_keys=blob_keys,
    )


def test_every_blob_of_the_item_goes_and_its_neighbours_stay(ctx: StageContext) -> None:
    media_id, neighbour = new_media_id(), new_media_id()
    blobs = ctx.blobs
    original = f"tests/{media_id}.jpg"
    kept_original = f"tests/{neighbour}.jpg"
    item_blobs = [
        (ORIGINALS, original),
        (PROCESSED, f"{media_id}/pages/0001.png"),
        (PROCESSED, f"{media_id}/redacted/page-0001.jpg"),
        (EXPORTS, f"{media_id}/media/combined-report.html"),
        (ARTIFACTS, f"{media_id}/results/abc.json"),
    ]
    other_blobs = [
        (ORIGINALS, kept_original),
        (PROCESSED, f"{neighbour}/pages/0001.png"),
        (EXPORTS, f"{neighbour}/media/combined-report.html"),
    ]
    for bucket, key in item_blobs + other_blobs:
        blobs.put_bytes(bucket, key, uuid.uuid4().bytes, "application/octet-stream")

    event = _erasure(media_id, [f"{ORIGINALS}/{original}", f"{ARTIFACTS}/orphans/{media_id}.json"])
    assert erase_blobs(event, ctx) == []
    assert [key for bucket, key in item_blobs if blobs.exists(bucket, key)] == []
    assert all(blobs.exists(bucket, key) for bucket, key in other_blobs)
    # A redelivered erasure finds nothing left and does no harm.
    assert erase_blobs(event, ctx) == []
    assert all(blobs.exists(bucket, key) for bucket, key in other_blobs)


def test_a_blob_outside_the_platform_buckets_is_refused(ctx: StageContext) -> None:
    media_id = new_media_id()
    with pytest.raises(PermanentStageError, match="not bucket/key"):
        erase_blobs(_erasure(media_id, ["somewhere-else/secret.txt"]), ctx)
    with pytest.raises(PermanentStageError, match="not bucket/key"):
        erase_blobs(_erasure(media_id, [f"{ORIGINALS}/"]), ctx)
