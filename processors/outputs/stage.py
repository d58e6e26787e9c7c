"""Stages that store rendered outputs in the exports bucket and announce them.

Layout: ``exports/{media_id}/{item}/{file}`` per page, frame or original (item is
``original``, ``page-0003`` or ``frame-00000042``) and ``exports/{media_id}/report.html``
for the combined report (`processors.combined`). Each stored file gets one OutputGenerated
event with a deterministic id, so a replay announces the same files under the same ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.outputs.bundle import (
    SOURCE_PREFIX,
    RenderedFile,
    nothing_to_draw,
    render_event_files,
    render_result_json,
)
from processors.outputs.items import event_id, event_type, export_key
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
    try:
        files: list[RenderedFile] = (
            [render_result_json(event)]
            if nothing_to_draw(event)
            else render_event_files(
                event, ctx.load_image(item["image"]), ctx.settings.ingest.pdf_dpi
            )
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentStageError(f"{kind} {event_id(event)} cannot be rendered: {exc}") from exc
    outgoing = []
    for file in files:
        key = export_key(media_id, label, file.stem, file.extension)
        blob = ctx.blobs.put_bytes(EXPORTS, key, file.data, file.content_type)
        outgoing.append(_announce(event, media_id, item, file.kind, label, blob, [event_id(event)]))
    return outgoing


def announce_combined_report(completion: dict[str, Any], blob: BlobRef) -> Outgoing:
    """The OutputGenerated of a stored combined report, caused by the MediaCompleted it was
    rendered for: one id per media item and run. Its source is that completion (the report
    shows every stored result of the item; listing their ids would not be bounded)."""
    media_id = str(completion["media_id"])
    return _announce(
        completion, media_id, None, "COMBINED_REPORT", "media", blob, [event_id(completion)]
    )
