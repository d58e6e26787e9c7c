"""Qdrant read models: image, object-crop and text embeddings behind per-target aliases."""

from projections.qdrant.projection import (
    QdrantProjection,
    live_qdrant_generation,
    promote_qdrant,
    qdrant_checksum,
)

__all__ = ["QdrantProjection", "live_qdrant_generation", "promote_qdrant", "qdrant_checksum"]
