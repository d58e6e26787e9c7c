"""Projections: consumers that build the read models (MongoDB, PostgreSQL, Qdrant) from the
event log, idempotently, each in its own consumer group; rebuildable by replay."""
