-- Uploads the API accepted (MediaUploaded acknowledged by Kafka) and the read model may not
-- show yet: `GET /v1/media/{id}` answers them as `accepted` instead of 404 until the
-- PostgreSQL projection has applied the event. Rows are deleted once the read model has the
-- item, or after a day (`api.accepted`).

CREATE TABLE accepted_uploads (
    media_id         text PRIMARY KEY,
    tenant_id        text NOT NULL,
    owner_id         text,
    event_id         text NOT NULL,
    trace_id         text NOT NULL,
    filename         text,
    kind             text NOT NULL,
    media_type       text NOT NULL,
    content_type     text,
    size_bytes       bigint,
    profile          text NOT NULL,
    duplicate_of     text,
    labels           jsonb NOT NULL DEFAULT '{}'::jsonb,
    original_bucket  text NOT NULL,
    original_key     text NOT NULL,
    original_sha256  text,
    width            integer,
    height           integer,
    page_count       integer,
    duration_ms      bigint,
    -- Where the MediaUploaded is stored; NULL when the publisher did not say.
    log_topic        text,
    log_partition    integer,
    log_offset       bigint,
    accepted_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX accepted_uploads_accepted_at ON accepted_uploads (accepted_at);
