"""MongoDB read models: media items, analysis results and OCR documents per generation."""

from projections.mongo.projection import (
    MongoProjection,
    drop_generation,
    mongo_checksum,
    promote_mongo,
    read_live_generation,
)

__all__ = [
    "MongoProjection",
    "drop_generation",
    "mongo_checksum",
    "promote_mongo",
    "read_live_generation",
]
