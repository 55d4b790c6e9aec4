-- Package inventories (SBOMs) of image digests: written once per digest by the worker's
-- scans or by POST /sboms, compressed, outside the hot tables; re-matched against newer
-- vulnerability databases without the registry.
CREATE TABLE inventories (
    image_digest  TEXT    NOT NULL PRIMARY KEY,
    image_name    TEXT    NOT NULL,
    image_tag     TEXT    NOT NULL DEFAULT '',
    format        TEXT    NOT NULL CHECK (format IN ('cyclonedx', 'spdx')),
    spec_version  TEXT    NOT NULL,
    packages      BIGINT  NOT NULL,
    size_bytes    BIGINT  NOT NULL,
    encoding      TEXT    NOT NULL,
    document      BLOB   NOT NULL,
    source        TEXT    NOT NULL CHECK (source IN ('scan', 'ingest')),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- A job scans an image from its registry or re-matches a stored inventory; one active job
-- of each kind per reference.
ALTER TABLE scan_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'scan' CHECK (kind IN ('scan', 'rematch'));
DROP INDEX scan_jobs_one_active_per_image;
CREATE UNIQUE INDEX scan_jobs_one_active_per_image ON scan_jobs (image_ref, kind)
    WHERE status IN ('queued', 'pulling', 'scanning');

-- Registry access given with a request (the Harbor scanner API): kept while the job may
-- run, deleted when it ends.
CREATE TABLE job_credentials (
    job_id         TEXT    NOT NULL PRIMARY KEY,
    registry_url   TEXT    NOT NULL,
    auth_header    TEXT    NOT NULL
);

-- Scan schedules: each round is a batch of jobs in the scheduled lane.
CREATE TABLE scan_schedules (
    id                TEXT    NOT NULL PRIMARY KEY,
    images            TEXT    NOT NULL,
    interval_seconds  BIGINT  NOT NULL CHECK (interval_seconds > 0),
    next_run_at       BIGINT  NOT NULL,
    last_batch_id     TEXT,
    created_at        BIGINT  NOT NULL,
    created_by        TEXT
);
CREATE INDEX scan_schedules_due ON scan_schedules (next_run_at);

-- A batch: a schedule's round or a re-match round. Its jobs are counted through
-- scan_batch_jobs (a job already active when the round came belongs to it too).
CREATE TABLE scan_batches (
    id           TEXT    NOT NULL PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('schedule', 'rematch')),
    schedule_id  TEXT,
    created_at   BIGINT  NOT NULL,
    created_by   TEXT,
    problems     TEXT    NOT NULL DEFAULT '[]'
);
CREATE TABLE scan_batch_jobs (
    batch_id  TEXT  NOT NULL,
    job_id    TEXT  NOT NULL,
    PRIMARY KEY (batch_id, job_id)
);

-- The vulnerability database the last re-match round was made for, and when.
CREATE TABLE rematch_state (
    id             BIGINT  NOT NULL PRIMARY KEY CHECK (id = 1),
    db_updated_at  TEXT    NOT NULL DEFAULT '',
    last_round_at  BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO rematch_state (id) VALUES (1);
