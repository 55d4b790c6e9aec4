-- Exploit feeds: CISA's Known Exploited Vulnerabilities and FIRST's EPSS scores, each
-- replaced whole by an import, and when each was last imported.
CREATE TABLE kev (
    vulnerability_id TEXT    COLLATE "C" PRIMARY KEY,
    date_added       TEXT    NOT NULL,
    due_date         TEXT,
    known_ransomware TEXT,
    vendor_project   TEXT    NOT NULL DEFAULT '',
    product          TEXT    NOT NULL DEFAULT '',
    name             TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE epss (
    vulnerability_id TEXT    COLLATE "C" PRIMARY KEY,
    score            DOUBLE PRECISION NOT NULL,
    percentile       DOUBLE PRECISION NOT NULL
);

CREATE TABLE feed_imports (
    feed        TEXT    PRIMARY KEY CHECK (feed IN ('kev', 'epss')),
    version     TEXT    NOT NULL DEFAULT '',
    released    TEXT    NOT NULL DEFAULT '',
    entries     BIGINT  NOT NULL,
    imported_at BIGINT  NOT NULL,
    imported_by TEXT
);
