-- Compliance policies (PUT /policies/{name}), and when ScanVault first saw a fixed version
-- of each (vulnerability, package): the age of a fix for FixAvailableForDays.
CREATE TABLE policies (
    name        TEXT    PRIMARY KEY,
    body        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT
);

CREATE TABLE fix_first_seen (
    vulnerability_id TEXT    NOT NULL,
    pkg_name         TEXT    NOT NULL,
    first_seen_at    INTEGER NOT NULL,
    PRIMARY KEY (vulnerability_id, pkg_name)
);
