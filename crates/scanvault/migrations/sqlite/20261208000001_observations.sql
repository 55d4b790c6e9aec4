-- Observations (SQLite). Mirrors ../postgres/20261208000001_observations.sql, except for how
-- findings versions are kept: SQLite keeps one row per finding, valid from the version that
-- added it (`first_version`) to the version that replaced or dropped it (`last_version`,
-- exclusive; NULL while it is in the newest version), so a new version writes only the
-- findings that changed (ADR 0020).

ALTER TABLE scans ADD COLUMN findings_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE scans ADD COLUMN last_version INTEGER NOT NULL DEFAULT 1;

ALTER TABLE scan_tags ADD COLUMN observed_from INTEGER NOT NULL DEFAULT 0;
UPDATE scan_tags SET observed_from = (SELECT scanned_at FROM scans WHERE scans.id = scan_tags.scan_id);

CREATE TABLE observations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_id          TEXT    NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    image_tag        TEXT    NOT NULL,
    scanned_at       INTEGER NOT NULL,
    observed_at      INTEGER NOT NULL,
    source           TEXT    NOT NULL CHECK (source IN ('ingest', 'job', 'rematch')),
    version          INTEGER NOT NULL,
    fixable          INTEGER NOT NULL,
    n_critical       INTEGER NOT NULL,
    n_high           INTEGER NOT NULL,
    n_medium         INTEGER NOT NULL,
    n_low            INTEGER NOT NULL,
    n_unknown        INTEGER NOT NULL,
    findings_added   INTEGER NOT NULL,
    findings_removed INTEGER NOT NULL
);
INSERT INTO observations (scan_id, image_tag, scanned_at, observed_at, source, version, fixable,
        n_critical, n_high, n_medium, n_low, n_unknown, findings_added, findings_removed)
    SELECT id, image_tag, scanned_at, updated_at, source, 1, fixable_count, vuln_critical, vuln_high,
        vuln_medium, vuln_low, vuln_unknown,
        vuln_critical + vuln_high + vuln_medium + vuln_low + vuln_unknown, 0
    FROM scans ORDER BY scanned_at, created_at, id;
CREATE INDEX observations_by_scan ON observations (scan_id, scanned_at, id);

-- Findings per version range.
DROP VIEW findings_brief;
CREATE TABLE findings_versioned (
    scan_id          TEXT    NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    vulnerability_id TEXT    NOT NULL,
    pkg_name         TEXT    NOT NULL,
    pkg_version      TEXT    NOT NULL,
    first_version    INTEGER NOT NULL,
    last_version     INTEGER,
    fixed_version    TEXT,
    severity         INTEGER NOT NULL,
    status           TEXT,
    pkg_type         TEXT,
    class            TEXT,
    target           TEXT,
    pkg_path         TEXT,
    purl             TEXT,
    cvss_score       REAL,
    PRIMARY KEY (scan_id, vulnerability_id, pkg_name, pkg_version, first_version)
);
INSERT INTO findings_versioned (scan_id, vulnerability_id, pkg_name, pkg_version, first_version,
        last_version, fixed_version, severity, status, pkg_type, class, target, pkg_path, purl, cvss_score)
    SELECT scan_id, vulnerability_id, pkg_name, pkg_version, 1, NULL, fixed_version, severity, status,
        pkg_type, class, target, pkg_path, purl, cvss_score
    FROM findings;
DROP TABLE findings;
ALTER TABLE findings_versioned RENAME TO findings;

ALTER TABLE fleet_refs ADD COLUMN observation_id INTEGER;
ALTER TABLE fleet_refs ADD COLUMN version INTEGER;
ALTER TABLE fleet_refs ADD COLUMN fixable INTEGER;
ALTER TABLE fleet_refs ADD COLUMN n_critical INTEGER;
ALTER TABLE fleet_refs ADD COLUMN n_high INTEGER;
ALTER TABLE fleet_refs ADD COLUMN n_medium INTEGER;
ALTER TABLE fleet_refs ADD COLUMN n_low INTEGER;
ALTER TABLE fleet_refs ADD COLUMN n_unknown INTEGER;
UPDATE fleet_refs SET (observation_id, version, fixable, n_critical, n_high, n_medium, n_low, n_unknown) =
    (SELECT o.id, o.version, o.fixable, o.n_critical, o.n_high, o.n_medium, o.n_low, o.n_unknown
     FROM observations o WHERE o.scan_id = fleet_refs.scan_id);
