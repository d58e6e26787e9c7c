"""The combined report of a media item: a view over its stored results, rendered once.

Two stages of the outputs worker (`processors.bindings`):

- `keep_result` stores every result event of a recorded item once, as its own immutable
  object (`analysis-artifacts/{media_id}/results/{event_id}.json`): an idempotent put, no
  listing, no rendering.
- `render_report` runs on MediaCompleted, of the item's own processing and of each reprocess
  run, and renders `exports/{media_id}/report.html` once from the stored results. There is
  one report per item: the newest results of each kind win, so after a reprocess run it
  shows the new models' view. Its OutputGenerated id is deterministic in the completion,
  that is in the media item and the run.

Camera streams never complete, so they get no combined report.
"""

from __future__ import annotations

from typing import Any

from processors.outputs.combined_report import CompletionSummary
from processors.outputs.report_view import build_report, store_report
from processors.outputs.stage import announce_combined_report
from processors.outputs.stored_results import store_result
from processors.outputs.summaries import RESULT_TYPES
from processors.stage import Outgoing, StageContext


def _is_camera(event: dict[str, Any]) -> bool:
    item = event.get("item") or {}
    return item.get("camera_id") is not None


def keep_result(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """Any result event of a recorded item -> stored once for the item's report."""
    if event["envelope"]["event_type"] not in RESULT_TYPES or _is_camera(event):
        return []
    store_result(ctx.blobs, event)
    return []


def render_report(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """MediaCompleted -> the item's report.html, rendered from its stored results."""
    if event["envelope"]["event_type"] != "MediaCompleted":
        return []
    media_id = str(event["media_id"])
    page = build_report(ctx.blobs, media_id, CompletionSummary.from_event(event))
    blob = store_report(ctx.blobs, media_id, page)
    return [announce_combined_report(event, blob)]
