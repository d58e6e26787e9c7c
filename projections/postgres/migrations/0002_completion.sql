-- Completion and progress of media items (MediaProgressed, MediaCompleted) and the outcome
-- of each stage per page and frame (EventProcessed). See projections/README.md.

-- An item ends as completed, completed_with_errors or failed (MediaCompleted of its own
-- processing); until then it is processing. 'failed' used to follow any ProcessingFailed.
ALTER TABLE media DROP CONSTRAINT media_status_check;
ALTER TABLE media ADD CONSTRAINT media_status_check CHECK (
    status IN ('uploaded', 'processing', 'completed', 'completed_with_errors', 'failed', 'deleted')
);

-- One row per media item and processing run: run_id '' is the item's own processing after
-- upload, any other value a reprocess run. Progress applies only while the run is
-- processing; the completion is final (latest completion event wins, by time then id).
CREATE TABLE processing_runs (
    media_id text NOT NULL,
    run_id text NOT NULL,
    tenant_id text NOT NULL,
    owner_id text,
    status text NOT NULL
        CHECK (status IN ('processing', 'completed', 'completed_with_errors', 'failed')),
    -- Never lowered: a progress read after a later one (or after the completion) is ignored.
    percent double precision NOT NULL CHECK (percent >= 0 AND percent <= 100),
    items_expected integer,
    items_completed integer NOT NULL,
    items_failed integer,
    -- StageTally records: [{stage, done, not_applicable, skipped, failed}].
    stages jsonb NOT NULL,
    -- The first failures the completion names: [{stage, item_label, message}].
    errors jsonb NOT NULL DEFAULT '[]'::jsonb,
    models jsonb NOT NULL DEFAULT '[]'::jsonb,
    started_at timestamptz,
    completed_at timestamptz,
    duration_ms bigint,
    progress_event_id text,
    progress_at timestamptz,
    completion_event_id text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, run_id)
);
CREATE INDEX processing_runs_status_idx ON processing_runs (status, completed_at);

-- What each stage did with a page or frame (EventProcessed of the item's own processing):
-- {stage: {status, reason}} for every stage that applied, and the most telling outcome
-- (failed, then skipped, then done) with its reason. A live frame skipped as stale or
-- superseded reads outcome 'skipped' with the reason.
ALTER TABLE pages ADD COLUMN stages jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE pages ADD COLUMN outcome text CHECK (outcome IN ('done', 'skipped', 'failed'));
ALTER TABLE pages ADD COLUMN outcome_reason text;
ALTER TABLE frames ADD COLUMN stages jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE frames ADD COLUMN outcome text CHECK (outcome IN ('done', 'skipped', 'failed'));
ALTER TABLE frames ADD COLUMN outcome_reason text;
CREATE INDEX frames_outcome_idx ON frames (media_id, outcome) WHERE outcome <> 'done';

-- A work report may be read before its page or frame (another topic), and a skipped live
-- frame may never be projected otherwise: the row then exists with its outcome only, and
-- the PageRendered or FrameCaptured fills in the rest when it arrives.
ALTER TABLE pages
    ALTER COLUMN event_id DROP NOT NULL,
    ALTER COLUMN page_count DROP NOT NULL,
    ALTER COLUMN dpi DROP NOT NULL,
    ALTER COLUMN width DROP NOT NULL,
    ALTER COLUMN height DROP NOT NULL,
    ALTER COLUMN image_bucket DROP NOT NULL,
    ALTER COLUMN image_key DROP NOT NULL,
    ALTER COLUMN image_sha256 DROP NOT NULL,
    ALTER COLUMN image_size_bytes DROP NOT NULL,
    ALTER COLUMN image_content_type DROP NOT NULL,
    ALTER COLUMN renderer DROP NOT NULL,
    ALTER COLUMN repaired DROP NOT NULL,
    ALTER COLUMN occurred_at DROP NOT NULL;
ALTER TABLE frames
    ALTER COLUMN event_id DROP NOT NULL,
    ALTER COLUMN timestamp_ms DROP NOT NULL,
    ALTER COLUMN captured_at DROP NOT NULL,
    ALTER COLUMN width DROP NOT NULL,
    ALTER COLUMN height DROP NOT NULL,
    ALTER COLUMN image_bucket DROP NOT NULL,
    ALTER COLUMN image_key DROP NOT NULL,
    ALTER COLUMN image_sha256 DROP NOT NULL,
    ALTER COLUMN image_size_bytes DROP NOT NULL,
    ALTER COLUMN image_content_type DROP NOT NULL,
    ALTER COLUMN occurred_at DROP NOT NULL;
