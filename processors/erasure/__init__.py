"""Erasure of a media item's blobs on `MediaDeleted`."""
