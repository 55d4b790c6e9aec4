-- Compliance policies (PUT /policies/{name}), and when ScanVault first saw a fixed version
-- of each (vulnerability, package): the age of a fix for FixAvailableForDays.
CREATE TABLE policies (
    name        TEXT    COLLATE "C" PRIMARY KEY,
    body        TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    updated_by  TEXT
);

CREATE TABLE fix_first_seen (
    vulnerability_id TEXT    COLLATE "C" NOT NULL,
    pkg_name         TEXT    COLLATE "C" NOT NULL,
    first_seen_at    BIGINT  NOT NULL,
    PRIMARY KEY (vulnerability_id, pkg_name)
);
