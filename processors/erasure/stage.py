"""Stage: on `MediaDeleted`, delete every blob of the item.

What goes: each blob the event names (`bucket/key`: the original, unless another live item
shares those bytes, and markers kept outside the item's prefix) and everything under the
item's own prefix `{media_id}/` in the derived buckets (pages, frames, redacted copies,
exports, reports, speech, stored results, analysis artifacts). Deleting what is already gone
is not an error, so a repeated or redelivered erasure does the same again. The stage
publishes nothing of its own; its work report says it ran.
"""

from __future__ import annotations

import logging
from typing import Any

from processors.stage import Outgoing, PermanentStageError, StageContext
from visionlog.blobstore import ARTIFACTS, BUCKETS, EXPORTS, PROCESSED
from visionlog.media.keys import segment

# Buckets whose objects of an item all sit under `{media_id}/`.
DERIVED_BUCKETS = (PROCESSED, ARTIFACTS, EXPORTS)

log = logging.getLogger(__name__)


def named_blobs(blob_keys: list[str]) -> list[tuple[str, str]]:
    """(bucket, key) of each `bucket/key`; a key outside the platform's buckets is refused."""
    named = []
    for blob_key in blob_keys:
        bucket, _, key = blob_key.partition("/")
        if bucket not in BUCKETS or not key:
            raise PermanentStageError(
                f"blob {blob_key!r} is not bucket/key in one of {', '.join(BUCKETS)}"
            )
        named.append((bucket, key))
    return named


def item_prefix(media_id: str) -> str:
    return f"{segment(media_id, 'media id')}/"


def erase_blobs(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    media_id = str(event["media_id"])
    doomed = named_blobs(list(event["blob_keys"]))
    prefix = item_prefix(media_id)
    for bucket in DERIVED_BUCKETS:
        doomed.extend((bucket, key) for key in ctx.blobs.list_keys(bucket, prefix))
    for bucket, key in doomed:
        ctx.blobs.delete(bucket, key)
    log.info("erased %d blobs of media %s", len(doomed), media_id)
    return []
