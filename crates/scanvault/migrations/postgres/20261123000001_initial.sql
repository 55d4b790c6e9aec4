-- ScanVault schema (PostgreSQL). Mirrors ../sqlite/20261123000001_initial.sql: same tables,
-- same columns, same order; only the type names differ.
-- Timestamps are integer microseconds since the Unix epoch (UTC) on both backends, so the
-- SQL that reads and buckets them is the same text on both.

CREATE TABLE scans (
    id              TEXT    PRIMARY KEY,
    image_name      TEXT    NOT NULL,
    image_tag       TEXT    NOT NULL DEFAULT '',
    image_digest    TEXT    NOT NULL DEFAULT '',
    image_id        TEXT    NOT NULL DEFAULT '',
    -- content identity used for de-duplication: manifest digest, else image id, else NULL
    identity        TEXT,
    repo_tags       TEXT    NOT NULL DEFAULT '[]',
    repo_digests    TEXT    NOT NULL DEFAULT '[]',
    artifact_name   TEXT,
    artifact_type   TEXT,
    os_family       TEXT,
    os_name         TEXT,
    scanner         TEXT    NOT NULL,
    scanner_version TEXT,
    report_format   TEXT    NOT NULL,
    source          TEXT    NOT NULL CHECK (source IN ('ingest', 'job')),
    created_at      BIGINT  NOT NULL,
    scanned_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    vuln_critical   BIGINT  NOT NULL DEFAULT 0,
    vuln_high       BIGINT  NOT NULL DEFAULT 0,
    vuln_medium     BIGINT  NOT NULL DEFAULT 0,
    vuln_low        BIGINT  NOT NULL DEFAULT 0,
    vuln_unknown    BIGINT  NOT NULL DEFAULT 0,
    fixable_count   BIGINT  NOT NULL DEFAULT 0,
    risk_score      BIGINT  NOT NULL DEFAULT 0,
    cvss_score      DOUBLE PRECISION,
    is_compliant    BIGINT  NOT NULL DEFAULT 1 CHECK (is_compliant IN (0, 1)),
    created_by      TEXT
);
CREATE UNIQUE INDEX scans_identity_key ON scans (image_name, identity) WHERE identity IS NOT NULL;
CREATE INDEX scans_by_image ON scans (image_name, scanned_at);
CREATE INDEX scans_by_scanned_at ON scans (scanned_at);

-- Every image reference (name, tag) a scan was stored under. A digest can carry several
-- tags; re-ingesting it under another tag adds a row here and leaves the scan's history alone.
CREATE TABLE scan_tags (
    scan_id       TEXT    NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    image_name    TEXT    NOT NULL,
    image_tag     TEXT    NOT NULL,
    first_seen_at BIGINT  NOT NULL,
    PRIMARY KEY (scan_id, image_tag)
);
CREATE INDEX scan_tags_by_ref ON scan_tags (image_name, image_tag);
CREATE INDEX scan_tags_by_tag ON scan_tags (image_tag);

-- The raw report, compressed, outside the hot tables. Never indexed, never read by analytics.
CREATE TABLE scan_reports (
    scan_id    TEXT    PRIMARY KEY REFERENCES scans (id) ON DELETE CASCADE,
    encoding   TEXT    NOT NULL,
    size_bytes BIGINT  NOT NULL,
    sha256     TEXT    NOT NULL,
    body       BYTEA    NOT NULL
);

-- The catalog: one row per vulnerability id, stored once.
CREATE TABLE vulnerabilities (
    id          TEXT    PRIMARY KEY,
    title       TEXT,
    description TEXT,
    severity    BIGINT  NOT NULL,
    cvss_score  DOUBLE PRECISION,
    cvss_vector TEXT,
    primary_url TEXT,
    refs        TEXT    NOT NULL DEFAULT '[]',
    published_at BIGINT,
    modified_at  BIGINT,
    updated_at   BIGINT  NOT NULL
);

-- One row per (vulnerability, package, installed version) per scan.
CREATE TABLE findings (
    scan_id          TEXT    NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    vulnerability_id TEXT    NOT NULL,
    pkg_name         TEXT    NOT NULL,
    pkg_version      TEXT    NOT NULL,
    fixed_version    TEXT,
    severity         BIGINT  NOT NULL,
    status           TEXT,
    pkg_type         TEXT,
    class            TEXT,
    target           TEXT,
    pkg_path         TEXT,
    purl             TEXT,
    cvss_score       DOUBLE PRECISION,
    PRIMARY KEY (scan_id, vulnerability_id, pkg_name, pkg_version)
);
CREATE INDEX findings_by_vulnerability ON findings (vulnerability_id);

CREATE TABLE scan_jobs (
    id               TEXT    PRIMARY KEY,
    image_ref        TEXT    NOT NULL,
    image_name       TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'pulling', 'scanning', 'completed', 'failed', 'cancelled')),
    force            BIGINT  NOT NULL DEFAULT 0,
    priority         BIGINT  NOT NULL DEFAULT 0,
    attempt          BIGINT  NOT NULL DEFAULT 0,
    max_attempts     BIGINT  NOT NULL,
    run_after        BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    resolved_digest  TEXT,
    cancel_requested BIGINT  NOT NULL DEFAULT 0,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    started_at       BIGINT,
    completed_at     BIGINT,
    error_message    TEXT,
    error_class      TEXT,
    scan_id          TEXT    REFERENCES scans (id) ON DELETE SET NULL,
    requested_by     TEXT
);
CREATE INDEX scan_jobs_claim ON scan_jobs (status, priority, run_after);
CREATE INDEX scan_jobs_by_image ON scan_jobs (image_ref, status);

CREATE TABLE scan_audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     TEXT    NOT NULL REFERENCES scan_jobs (id) ON DELETE CASCADE,
    attempt    BIGINT  NOT NULL,
    old_status TEXT,
    new_status TEXT    NOT NULL,
    changed_by TEXT    NOT NULL,
    reason     TEXT,
    at         BIGINT  NOT NULL
);
CREATE INDEX scan_audit_log_by_job ON scan_audit_log (job_id, id);
