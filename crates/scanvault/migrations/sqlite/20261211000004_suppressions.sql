-- rolling-upgrade-safe: api_keys is rebuilt only to widen its role CHECK to 'triager'; every
-- column, and every role the previous release writes, stays as it was.
CREATE TABLE api_keys_widened (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL DEFAULT '',
    role        TEXT    NOT NULL CHECK (role IN ('reader', 'ingester', 'triager', 'admin')),
    salt        TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
INSERT INTO api_keys_widened (id, name, role, salt, secret_hash, created_at, created_by, expires_at, revoked_at)
    SELECT id, name, role, salt, secret_hash, created_at, created_by, expires_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_widened RENAME TO api_keys;

-- Triage decisions: keyed by vulnerability (and optionally package and an image-name
-- glob), never by scan or digest, so they survive rebuilds. Deleting keeps the row
-- (deleted_at); expiry is processed once (expired_at) with a suppression.expired event.
CREATE TABLE suppressions (
    id               TEXT    PRIMARY KEY,
    vulnerability_id TEXT    NOT NULL,
    package          TEXT,
    image            TEXT,
    state            TEXT    NOT NULL CHECK (state IN ('not_affected', 'false_positive', 'accepted_risk', 'will_not_fix')),
    reason           TEXT    NOT NULL,
    expires_at       INTEGER,
    created_at       INTEGER NOT NULL,
    created_by       TEXT,
    source           TEXT    NOT NULL DEFAULT 'api',
    deleted_at       INTEGER,
    deleted_by       TEXT,
    expired_at       INTEGER
);
CREATE INDEX suppressions_by_vulnerability ON suppressions (vulnerability_id);
CREATE INDEX suppressions_expiring ON suppressions (expires_at) WHERE expired_at IS NULL AND deleted_at IS NULL;

-- Who did what to a suppression, and why.
CREATE TABLE suppression_audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    suppression_id TEXT    NOT NULL,
    action         TEXT    NOT NULL CHECK (action IN ('created', 'deleted', 'expired')),
    actor          TEXT    NOT NULL,
    at             INTEGER NOT NULL,
    detail         TEXT    NOT NULL
);
CREATE INDEX suppression_audit_by_suppression ON suppression_audit (suppression_id, id);
