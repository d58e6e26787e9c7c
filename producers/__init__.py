"""Producers: the platform's front door.

Uploads (library, CLI, HTTP ingest, fetch by URL), PDF page rendering, video frame sampling
and camera capture store bytes in the blob store and publish MediaUploaded, PageRendered
and FrameCaptured events (see schemas/avro/events).
"""
