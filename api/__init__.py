"""The query API (FastAPI): reads the read models and the blob store, writes only through
the producers' ingest endpoint."""
