"""Stages that store rendered outputs in the exports bucket and announce them.

Layout: ``exports/{media_id}/{item}/{file}`` per page, frame or original (item is
``original``, ``page-0003`` or ``frame-00000042``) and ``exports/{media_id}/report.html``
for the combined report. Each stored file gets one OutputGenerated event with a
deterministic id, so a replay announces the same files under the same ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.outputs.bundle import SOURCE_PREFIX, RenderedFile, render_event_files
from processors.outputs.html_report import build_combined_report
from processors.outputs.items import event_id, event_type, export_key
from processors.outputs.media_results import MediaResults
from processors.stage import (
    PROCESSORS_VERSION,
    Outgoing,
    PermanentStageError,
    StageContext,
    derived_envelope,
    item_label,
)
from visionlog.blobstore import EXPORTS, BlobRef

STAGE_NAME = "outputs"
GENERATOR = f"processors.{STAGE_NAME}/{PROCESSORS_VERSION}"
COMBINED_REPORT_NAME = "report.html"


def _announce(
    source: Mapping[str, Any],
    media_id: str,
    item: Mapping[str, Any] | None,
    kind: str,
    label: str,
    blob: BlobRef,
    source_event_ids: list[str],
) -> Outgoing:
    record = {
        "envelope": derived_envelope(source, "OutputGenerated", STAGE_NAME, kind, label),
        "media_id": media_id,
        "item": dict(item) if item is not None else None,
        "kind": kind,
        "output": dict(blob),
        "source_event_ids": source_event_ids,
        "generator": GENERATOR,
    }
    return Outgoing(event_type="OutputGenerated", record=record, key=media_id)


def render_outputs(event: dict[str, Any], ctx: StageContext) -> list[Outgoing]:
    """Renders and stores the outputs of one OCR, detection or code result."""
    kind = event_type(event)
    if kind not in SOURCE_PREFIX:
        raise PermanentStageError(
            f"render_outputs handles {', '.join(sorted(SOURCE_PREFIX))}, not {kind}"
        )
    media_id = str(event["media_id"])
    item = event["item"]
    label = item_label(item)
    image = ctx.load_image(item["image"])
    try:
        files: list[RenderedFile] = render_event_files(event, image, ctx.settings.ingest.pdf_dpi)
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentStageError(f"{kind} {event_id(event)} cannot be rendered: {exc}") from exc
    outgoing = []
    for file in files:
        key = export_key(media_id, label, file.stem, file.extension)
        blob = ctx.blobs.put_bytes(EXPORTS, key, file.data, file.content_type)
        outgoing.append(_announce(event, media_id, item, file.kind, label, blob, [event_id(event)]))
    return outgoing


def render_combined(
    results: MediaResults, trigger_event: dict[str, Any], ctx: StageContext
) -> list[Outgoing]:
    """Stores the combined report of a media item after `trigger_event` was added."""
    media_id = str(trigger_event["media_id"])
    if media_id != results.media_id:
        raise PermanentStageError(
            f"trigger {event_id(trigger_event)} is about media {media_id}, "
            f"the results about {results.media_id}"
        )
    report = build_combined_report(results)
    key = f"{media_id}/{COMBINED_REPORT_NAME}"
    blob = ctx.blobs.put_bytes(EXPORTS, key, report, "text/html; charset=utf-8")
    return [
        _announce(
            trigger_event,
            media_id,
            None,
            "COMBINED_REPORT",
            "media",
            blob,
            results.source_event_ids(),
        )
    ]
