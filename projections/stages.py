"""The processing stage each result event completes, as every read model names it.

The names are the processors' stage names (processors/bindings.py), so a status in the
read models, a ProcessingFailed's `stage` and a reprocess request all speak of the same
thing. Embeddings of text and of images share one progress entry.
"""

from __future__ import annotations

RESULT_STAGES: dict[str, str] = {
    "PageRendered": "render",
    "TextRecognized": "ocr",
    "ObjectsDetected": "detection",
    "CodesDecoded": "codes",
    "MediaRedacted": "anonymise",
    "TrackUpdated": "tracking",
    "SceneDescribed": "scene",
    "OutputGenerated": "outputs",
    "EmbeddingComputed": "embedding",
}

# Every event some read model is built from, in the order of a media item's life.
PROJECTED_EVENTS: tuple[str, ...] = (
    "MediaUploaded",
    "MediaDeleted",
    "PageRendered",
    "FrameCaptured",
    "TextRecognized",
    "ObjectsDetected",
    "CodesDecoded",
    "TrackUpdated",
    "MediaRedacted",
    "SceneDescribed",
    "OutputGenerated",
    "ProcessingFailed",
    "EmbeddingComputed",
    # Completion: work reports (topic `processing`), progress and the final status.
    "EventProcessed",
    "MediaProgressed",
    "MediaCompleted",
)

# Processing reports, not facts about the media: they arrive for every input (every camera
# frame), carry no user data and are not kept in the audit log.
REPORT_EVENTS: frozenset[str] = frozenset({"EventProcessed", "MediaProgressed"})

# MediaCompleted.status as the read models spell it (lower-case, like every status): the
# final statuses of a media item. Once one is set, later events never move the item back.
COMPLETION_STATUS: dict[str, str] = {
    "COMPLETED": "completed",
    "COMPLETED_WITH_ERRORS": "completed_with_errors",
    "FAILED": "failed",
}
COMPLETION_STATUSES: tuple[str, ...] = tuple(COMPLETION_STATUS.values())
