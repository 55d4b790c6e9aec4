-- Fleet analytics state kept by ingest (SQLite). Mirrors ../postgres/20261123000002_analytics.sql.
-- See src/store/analytics.rs for how each table is maintained and read.
--
-- fleet_refs:      each image reference (name, tag) -> its latest scan (by scanned_at,
--                  then created_at, then id). Locked per reference by every ingest/delete
--                  that touches the reference, so concurrent changes of one reference serialise.
-- fleet_findings:  the findings of each reference's latest scan, one row per reference
--                  (a scan under two tags is two images): what cve/{id}/images and fixable page through.
-- fleet_cves, fleet_totals, fleet_daily: compacted sums; the *_deltas tables take the
--                  append-only changes of each ingest (no hot rows), summed at read time and
--                  folded into the compacted tables in the background.
-- fleet_daily:     per UTC day, the change of the fleet's counts at that day (carry-forward
--                  trends are prefix sums).

CREATE TABLE fleet_refs (
    image_name  TEXT    NOT NULL,
    image_tag   TEXT    NOT NULL,
    scan_id     TEXT,
    scanned_at  INTEGER,
    PRIMARY KEY (image_name, image_tag)
);
CREATE INDEX fleet_refs_by_scanned_at ON fleet_refs (scanned_at);

CREATE TABLE fleet_findings (
    image_name       TEXT    NOT NULL,
    image_tag        TEXT    NOT NULL,
    vulnerability_id TEXT    NOT NULL,
    pkg_name         TEXT    NOT NULL,
    pkg_version      TEXT    NOT NULL,
    scan_id          TEXT    NOT NULL,
    fixed_version    TEXT,
    severity         INTEGER NOT NULL
);
-- Not a primary key: a reference's rows are only ever replaced together, and a narrow
-- index costs ingest far less than a unique one over five text columns.
CREATE INDEX fleet_findings_by_ref ON fleet_findings (image_name, image_tag);
CREATE INDEX fleet_findings_by_vulnerability ON fleet_findings (vulnerability_id, image_name, image_tag, pkg_name, pkg_version);
CREATE INDEX fleet_findings_fixable ON fleet_findings (severity DESC, vulnerability_id, image_name, image_tag, pkg_name, pkg_version)
    WHERE fixed_version IS NOT NULL;

CREATE TABLE fleet_cves (
    vulnerability_id TEXT    PRIMARY KEY,
    images           INTEGER NOT NULL DEFAULT 0,
    fixable          INTEGER NOT NULL DEFAULT 0,
    n_critical       INTEGER NOT NULL DEFAULT 0,
    n_high           INTEGER NOT NULL DEFAULT 0,
    n_medium         INTEGER NOT NULL DEFAULT 0,
    n_low            INTEGER NOT NULL DEFAULT 0,
    n_unknown        INTEGER NOT NULL DEFAULT 0,
    severity         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX fleet_cves_ranking ON fleet_cves (images DESC, severity DESC, vulnerability_id);
CREATE INDEX fleet_cves_by_severity ON fleet_cves (severity, images DESC, vulnerability_id);

CREATE TABLE fleet_cve_deltas (
    vulnerability_id TEXT    NOT NULL,
    images           INTEGER NOT NULL,
    fixable          INTEGER NOT NULL,
    n_critical       INTEGER NOT NULL,
    n_high           INTEGER NOT NULL,
    n_medium         INTEGER NOT NULL,
    n_low            INTEGER NOT NULL,
    n_unknown        INTEGER NOT NULL
);

CREATE TABLE fleet_totals (
    id          INTEGER PRIMARY KEY,
    images      INTEGER NOT NULL,
    fixable     INTEGER NOT NULL,
    n_critical  INTEGER NOT NULL,
    n_high      INTEGER NOT NULL,
    n_medium    INTEGER NOT NULL,
    n_low       INTEGER NOT NULL,
    n_unknown   INTEGER NOT NULL
);

CREATE TABLE fleet_total_deltas (
    images      INTEGER NOT NULL,
    fixable     INTEGER NOT NULL,
    n_critical  INTEGER NOT NULL,
    n_high      INTEGER NOT NULL,
    n_medium    INTEGER NOT NULL,
    n_low       INTEGER NOT NULL,
    n_unknown   INTEGER NOT NULL
);

CREATE TABLE fleet_daily (
    day         INTEGER PRIMARY KEY,
    images      INTEGER NOT NULL,
    fixable     INTEGER NOT NULL,
    n_critical  INTEGER NOT NULL,
    n_high      INTEGER NOT NULL,
    n_medium    INTEGER NOT NULL,
    n_low       INTEGER NOT NULL,
    n_unknown   INTEGER NOT NULL
);

CREATE TABLE fleet_daily_deltas (
    day         INTEGER NOT NULL,
    images      INTEGER NOT NULL,
    fixable     INTEGER NOT NULL,
    n_critical  INTEGER NOT NULL,
    n_high      INTEGER NOT NULL,
    n_medium    INTEGER NOT NULL,
    n_low       INTEGER NOT NULL,
    n_unknown   INTEGER NOT NULL
);
