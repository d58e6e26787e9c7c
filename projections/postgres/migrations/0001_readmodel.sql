-- The PostgreSQL read model (projections/README.md). Applied with search_path set to the
-- target schema, so the same file builds the live, rebuild and test schemas.
-- No foreign keys: results may arrive before their MediaUploaded (different topics).
-- Columns named updated_at/applied_at are projection time; every other column is derived
-- from the log alone, so a rebuild reproduces it exactly (see checksum.py).

CREATE TABLE media (
    media_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    owner_id text,
    -- Event id of the MediaUploaded; NULL while only later events were seen.
    event_id text,
    status text NOT NULL CHECK (status IN ('uploaded', 'processing', 'failed', 'deleted')),
    -- Event time of the event that set the status: the latest event wins, whatever the
    -- order in which partitions were read.
    status_at timestamptz NOT NULL,
    kind text,
    filename text,
    source text,
    source_uri text,
    profile text,
    duplicate_of text,
    original_bucket text,
    original_key text,
    original_sha256 text,
    original_size_bytes bigint,
    original_content_type text,
    width integer,
    height integer,
    page_count integer,
    duration_ms bigint,
    fps double precision,
    labels jsonb NOT NULL DEFAULT '{}'::jsonb,
    camera_id text,
    uploaded_at timestamptz,
    deleted_at timestamptz,
    deleted_reason text,
    deleted_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_tenant_owner_idx ON media (tenant_id, owner_id, uploaded_at DESC);
CREATE INDEX media_status_idx ON media (status);
CREATE INDEX media_camera_idx ON media (camera_id) WHERE camera_id IS NOT NULL;
CREATE INDEX media_sha256_idx ON media (original_sha256);

CREATE TABLE pages (
    media_id text NOT NULL,
    page_number integer NOT NULL,
    event_id text NOT NULL,
    tenant_id text NOT NULL,
    owner_id text,
    item_label text NOT NULL,
    page_count integer NOT NULL,
    dpi integer NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    image_bucket text NOT NULL,
    image_key text NOT NULL,
    image_sha256 text NOT NULL,
    image_size_bytes bigint NOT NULL,
    image_content_type text NOT NULL,
    renderer text NOT NULL,
    repaired boolean NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (media_id, page_number)
);

CREATE TABLE frames (
    media_id text NOT NULL,
    frame_index bigint NOT NULL,
    event_id text NOT NULL,
    tenant_id text NOT NULL,
    owner_id text,
    item_label text NOT NULL,
    camera_id text,
    timestamp_ms bigint NOT NULL,
    captured_at timestamptz NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    image_bucket text NOT NULL,
    image_key text NOT NULL,
    image_sha256 text NOT NULL,
    image_size_bytes bigint NOT NULL,
    image_content_type text NOT NULL,
    source_fps double precision,
    sampling_fps double precision,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (media_id, frame_index)
);
CREATE INDEX frames_camera_time_idx ON frames (camera_id, captured_at);

CREATE TABLE text_results (
    event_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    owner_id text,
    media_id text NOT NULL,
    item_label text NOT NULL,
    page_number integer,
    frame_index bigint,
    camera_id text,
    model_name text NOT NULL,
    model_version text NOT NULL,
    models jsonb NOT NULL,
    image_width integer NOT NULL,
    image_height integer NOT NULL,
    full_text text NOT NULL,
    languages text[] NOT NULL,
    orientation_degrees integer NOT NULL,
    skew_degrees double precision NOT NULL,
    preprocessing text[] NOT NULL,
    block_count integer NOT NULL,
    word_count integer NOT NULL,
    mean_confidence double precision,
    -- Blocks, lines and words with their polygons, in reading order.
    blocks jsonb NOT NULL,
    inference_ms double precision NOT NULL,
    occurred_at timestamptz NOT NULL,
    tsv_english tsvector GENERATED ALWAYS AS (to_tsvector('english', full_text)) STORED,
    tsv_german tsvector GENERATED ALWAYS AS (to_tsvector('german', full_text)) STORED
);
CREATE INDEX text_results_media_idx ON text_results (media_id, item_label);
CREATE INDEX text_results_tenant_idx ON text_results (tenant_id, owner_id);
CREATE INDEX text_results_tsv_english_idx ON text_results USING gin (tsv_english);
CREATE INDEX text_results_tsv_german_idx ON text_results USING gin (tsv_german);

CREATE TABLE detections (
    event_id text NOT NULL,
    box_index integer NOT NULL,
    tenant_id text NOT NULL,
    owner_id text,
    media_id text NOT NULL,
    item_label text NOT NULL,
    page_number integer,
    frame_index bigint,
    -- Capture time of the frame when known, else the event's time.
    observed_at timestamptz NOT NULL,
    camera_id text,
    class_name text NOT NULL,
    class_id integer NOT NULL,
    confidence double precision NOT NULL,
    x_min double precision NOT NULL,
    y_min double precision NOT NULL,
    x_max double precision NOT NULL,
    y_max double precision NOT NULL,
    distance_m double precision,
    track_id bigint,
    image_width integer NOT NULL,
    image_height integer NOT NULL,
    model_name text NOT NULL,
    model_version text NOT NULL,
    score_threshold double precision NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (event_id, box_index)
);
CREATE INDEX detections_class_time_idx ON detections (class_name, observed_at);
CREATE INDEX detections_camera_time_idx ON detections (camera_id, observed_at);
CREATE INDEX detections_time_idx ON detections (observed_at);
CREATE INDEX detections_confidence_idx ON detections (class_name, confidence);
CREATE INDEX detections_media_idx ON detections (media_id, item_label);
CREATE INDEX detections_tenant_idx ON detections (tenant_id, owner_id, observed_at);

CREATE TABLE codes (
    event_id text NOT NULL,
    code_index integer NOT NULL,
    tenant_id text NOT NULL,
    owner_id text,
    media_id text NOT NULL,
    item_label text NOT NULL,
    page_number integer,
    frame_index bigint,
    camera_id text,
    symbology text NOT NULL,
    text text NOT NULL,
    decoder text NOT NULL,
    polygon jsonb NOT NULL,
    x_min double precision NOT NULL,
    y_min double precision NOT NULL,
    x_max double precision NOT NULL,
    y_max double precision NOT NULL,
    model_name text NOT NULL,
    model_version text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (event_id, code_index)
);
CREATE INDEX codes_media_idx ON codes (media_id, item_label);
CREATE INDEX codes_text_idx ON codes (symbology, text);

CREATE TABLE tracks (
    event_id text NOT NULL,
    track_id bigint NOT NULL,
    tenant_id text NOT NULL,
    owner_id text,
    media_id text NOT NULL,
    item_label text NOT NULL,
    frame_index bigint,
    camera_id text,
    class_name text NOT NULL,
    state text NOT NULL,
    confidence double precision NOT NULL,
    x_min double precision NOT NULL,
    y_min double precision NOT NULL,
    x_max double precision NOT NULL,
    y_max double precision NOT NULL,
    first_frame_index bigint NOT NULL,
    hits integer NOT NULL,
    model_name text NOT NULL,
    model_version text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (event_id, track_id)
);
CREATE INDEX tracks_media_track_idx ON tracks (media_id, track_id, frame_index);

CREATE TABLE redactions (
    event_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    owner_id text,
    media_id text NOT NULL,
    item_label text NOT NULL,
    page_number integer,
    frame_index bigint,
    camera_id text,
    method text NOT NULL,
    redacted_bucket text NOT NULL,
    redacted_key text NOT NULL,
    redacted_sha256 text NOT NULL,
    redacted_text_bucket text,
    redacted_text_key text,
    -- Regions (kind, box, confidence) and counts only: never the redacted content.
    regions jsonb NOT NULL,
    region_counts jsonb NOT NULL,
    pii_counts jsonb NOT NULL,
    model_name text NOT NULL,
    model_version text NOT NULL,
    models jsonb NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX redactions_media_idx ON redactions (media_id, item_label);

CREATE TABLE scenes (
    event_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    owner_id text,
    media_id text NOT NULL,
    item_label text NOT NULL,
    page_number integer,
    frame_index bigint,
    camera_id text,
    sentences jsonb NOT NULL,
    objects jsonb NOT NULL,
    relations jsonb NOT NULL,
    object_count integer NOT NULL,
    focal_length_px double precision,
    model_name text NOT NULL,
    model_version text NOT NULL,
    models jsonb NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX scenes_media_idx ON scenes (media_id, item_label);

CREATE TABLE outputs (
    event_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    owner_id text,
    media_id text NOT NULL,
    -- 'media' for outputs about the whole media item (no item in the event).
    item_label text NOT NULL,
    page_number integer,
    frame_index bigint,
    kind text NOT NULL,
    output_bucket text NOT NULL,
    output_key text NOT NULL,
    output_sha256 text NOT NULL,
    output_size_bytes bigint NOT NULL,
    output_content_type text NOT NULL,
    source_event_ids text[] NOT NULL,
    generator text NOT NULL,
    model_name text NOT NULL,
    model_version text NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX outputs_media_idx ON outputs (media_id, kind);

CREATE TABLE processing_status (
    media_id text NOT NULL,
    stage text NOT NULL,
    item_label text NOT NULL,
    -- '' for failures, whose event does not name the model.
    model_version text NOT NULL,
    tenant_id text NOT NULL,
    owner_id text,
    model_name text NOT NULL,
    status text NOT NULL CHECK (status IN ('done', 'failed')),
    error_type text,
    error text,
    retryable boolean,
    attempts integer,
    -- The event that set the status; the latest event time (then event id) wins.
    event_id text NOT NULL,
    event_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, stage, item_label, model_version)
);
CREATE INDEX processing_status_failed_idx ON processing_status (status, event_at)
    WHERE status = 'failed';

CREATE TABLE audit_log (
    event_id text PRIMARY KEY,
    event_type text NOT NULL,
    media_id text,
    tenant_id text NOT NULL,
    owner_id text,
    producer text NOT NULL,
    correlation_id text NOT NULL,
    causation_id text,
    occurred_at timestamptz NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_media_idx ON audit_log (media_id, occurred_at);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, occurred_at);

CREATE TABLE projection_offsets (
    consumer text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL CHECK (next_offset >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
