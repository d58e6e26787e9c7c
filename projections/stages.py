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
)
