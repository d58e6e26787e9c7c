"""Files for people and downstream systems, rendered from result events.

Pure renderers (JSON, text, annotated image, thumbnail, searchable PDF, HTML and Markdown
reports, CSV, the combined per-media report) are separate from `stage`, which stores the
files in the blob store and announces each with an OutputGenerated event.
"""
