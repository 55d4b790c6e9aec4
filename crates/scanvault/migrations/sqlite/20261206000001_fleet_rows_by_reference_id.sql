-- The current fleet's rows name their reference by a number instead of by (image name,
-- tag): the listing indexes of `fleet_findings` take every finding of every ingest, and
-- keys without the reference's two text columns are less than half the size. Mirrors
-- ../postgres/20261206000001_fleet_rows_by_reference_id.sql. AUTOINCREMENT: a number is
-- never given to a second reference.
CREATE TABLE fleet_refs_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    image_name  TEXT    NOT NULL,
    image_tag   TEXT    NOT NULL,
    scan_id     TEXT,
    scanned_at  INTEGER,
    UNIQUE (image_name, image_tag)
);
INSERT INTO fleet_refs_new (image_name, image_tag, scan_id, scanned_at)
    SELECT image_name, image_tag, scan_id, scanned_at FROM fleet_refs ORDER BY image_name, image_tag;
DROP TABLE fleet_refs;
ALTER TABLE fleet_refs_new RENAME TO fleet_refs;
CREATE INDEX fleet_refs_by_scanned_at ON fleet_refs (scanned_at);

CREATE TABLE fleet_rows (
    ref_id           INTEGER NOT NULL,
    vulnerability_id TEXT    NOT NULL,
    pkg_name         TEXT    NOT NULL,
    pkg_version      TEXT    NOT NULL,
    fixed_version    TEXT,
    severity         INTEGER NOT NULL
);
INSERT INTO fleet_rows (ref_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity)
    SELECT r.id, f.vulnerability_id, f.pkg_name, f.pkg_version, f.fixed_version, f.severity
    FROM fleet_findings f JOIN fleet_refs r ON r.image_name = f.image_name AND r.image_tag = f.image_tag;
DROP TABLE fleet_findings;
ALTER TABLE fleet_rows RENAME TO fleet_findings;
-- Full keys, as before: the listings' whole order comes from the index.
CREATE INDEX fleet_findings_by_vulnerability ON fleet_findings (vulnerability_id, ref_id, pkg_name, pkg_version);
CREATE INDEX fleet_findings_fixable ON fleet_findings (severity DESC, vulnerability_id, ref_id, pkg_name, pkg_version)
    WHERE fixed_version IS NOT NULL;
