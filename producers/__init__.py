"""Producers: the platform's front door.

Uploads (library, CLI, HTTP ingest, fetch by URL, hot folder) are checked, stored in the blob
store and announced as MediaUploaded; camera capture publishes FrameCaptured (see
schemas/avro/events). Rendering PDF pages and sampling video frames is not done here but by
the document worker's render stage (`processors.render`), with the media code both share in
`visionlog.media`.
"""
