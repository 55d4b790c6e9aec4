-- API keys: only a salted SHA-256 of the secret is stored. A key is `svk_<id>_<secret>`;
-- the id finds the row, the secret is checked against the hash.
CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL DEFAULT '',
    role        TEXT    NOT NULL CHECK (role IN ('reader', 'ingester', 'admin')),
    salt        TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
