-- The role CHECK widened to 'triager' (the previous release's roles stay valid).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('reader', 'ingester', 'triager', 'admin'));

-- Triage decisions: keyed by vulnerability (and optionally package and an image-name
-- glob), never by scan or digest, so they survive rebuilds. Deleting keeps the row
-- (deleted_at); expiry is processed once (expired_at) with a suppression.expired event.
CREATE TABLE suppressions (
    id               TEXT    COLLATE "C" PRIMARY KEY,
    vulnerability_id TEXT    COLLATE "C" NOT NULL,
    package          TEXT    COLLATE "C",
    image            TEXT,
    state            TEXT    NOT NULL CHECK (state IN ('not_affected', 'false_positive', 'accepted_risk', 'will_not_fix')),
    reason           TEXT    NOT NULL,
    expires_at       BIGINT,
    created_at       BIGINT  NOT NULL,
    created_by       TEXT,
    source           TEXT    NOT NULL DEFAULT 'api',
    deleted_at       BIGINT,
    deleted_by       TEXT,
    expired_at       BIGINT
);
CREATE INDEX suppressions_by_vulnerability ON suppressions (vulnerability_id);
CREATE INDEX suppressions_expiring ON suppressions (expires_at) WHERE expired_at IS NULL AND deleted_at IS NULL;

-- Who did what to a suppression, and why.
CREATE TABLE suppression_audit (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    suppression_id TEXT    NOT NULL,
    action         TEXT    NOT NULL CHECK (action IN ('created', 'deleted', 'expired')),
    actor          TEXT    NOT NULL,
    at             BIGINT  NOT NULL,
    detail         TEXT    NOT NULL
);
CREATE INDEX suppression_audit_by_suppression ON suppression_audit (suppression_id, id);
