-- Exploit feeds: CISA's Known Exploited Vulnerabilities and FIRST's EPSS scores, each
-- replaced whole by an import, and when each was last imported.
CREATE TABLE kev (
    vulnerability_id TEXT    PRIMARY KEY,
    date_added       TEXT    NOT NULL,
    due_date         TEXT,
    known_ransomware TEXT,
    vendor_project   TEXT    NOT NULL DEFAULT '',
    product          TEXT    NOT NULL DEFAULT '',
    name             TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE epss (
    vulnerability_id TEXT    PRIMARY KEY,
    score            REAL    NOT NULL,
    percentile       REAL    NOT NULL
);

CREATE TABLE feed_imports (
    feed        TEXT    PRIMARY KEY CHECK (feed IN ('kev', 'epss')),
    version     TEXT    NOT NULL DEFAULT '',
    released    TEXT    NOT NULL DEFAULT '',
    entries     INTEGER NOT NULL,
    imported_at INTEGER NOT NULL,
    imported_by TEXT
);
