"""The render stage of the document worker: uploaded PDFs become pages, videos frames."""
