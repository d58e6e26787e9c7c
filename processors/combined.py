"""Keeps the combined report of a media item current as its results arrive.

Results of one item arrive on several topics with different partition counts, so
different workers may see them; a shared mutable state would race. Instead every result
is stored once as its own immutable object (`analysis-artifacts/{media_id}/results/
{event_id}.json`), and the report is rebuilt from all of them. Writing the same event twice
is harmless, and the report converges: whichever worker writes last has listed every
result stored before it. Each worker caches what it has loaded, so an update reads only
results it has not seen. Camera streams never end, so they get no combined report.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime
from typing import Any

from processors.outputs.media_results import MediaResults
from processors.outputs.stage import render_combined
from processors.stage import Outgoing, StageContext
from visionlog.blobstore import ARTIFACTS

_CACHED_MEDIA = 64
# media id -> (keys already folded in, the accumulated results)
_cache: OrderedDict[str, tuple[set[str], MediaResults]] = OrderedDict()


def results_prefix(media_id: str) -> str:
    return f"{media_id}/results/"


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _cached_results(media_id: str) -> tuple[set[str], MediaResults]:
    """This worker's results of `media_id` so far, the least recently used media evicted."""
    if media_id in _cache:
        _cache.move_to_end(media_id)
    else:
        _cache[media_id] = (set(), MediaResults(media_id))
        while len(_cache) > _CACHED_MEDIA:
            _cache.popitem(last=False)
    return _cache[media_id]


def update_combined_report(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """Any result event -> the media item's rebuilt report.html (OutputGenerated)."""
    item = event.get("item") or {}
    if item.get("camera_id") is not None:
        return []
    media_id = str(event["media_id"])
    event_id = str(event["envelope"]["event_id"])
    body = json.dumps(_json_safe(event), sort_keys=True).encode()
    ctx.blobs.put_bytes(
        ARTIFACTS, f"{results_prefix(media_id)}{event_id}.json", body, "application/json"
    )
    loaded, results = _cached_results(media_id)
    for key in ctx.blobs.list_keys(ARTIFACTS, results_prefix(media_id)):
        if key not in loaded:
            results.add(json.loads(ctx.blobs.get_object_bytes(ARTIFACTS, key)))
            loaded.add(key)
    return render_combined(results, event, ctx)
