-- Identifiers, names, tags, packages and versions compare byte by byte (COLLATE "C"),
-- whatever the database's default collation. This is the order SQLite (BINARY) and the
-- service itself use, so listings, keyset cursors and the analytics order images the same
-- way on both backends and on every server locale (under en_US.UTF-8, for example,
-- "appa" sorts before "app-b", the hyphen being ignored; by bytes it sorts after). It is
-- also cheaper: a locale-aware comparison (strcoll on NUL-terminated copies) runs for
-- every key compared in every B-tree descent, and ingest descends about five indexes per
-- finding. Under a C.UTF-8 default the order does not change (its order is code point
-- order, which for UTF-8 is byte order), but PostgreSQL 15 still compares with strcoll.
ALTER TABLE scans ALTER COLUMN id TYPE TEXT COLLATE "C", ALTER COLUMN image_name TYPE TEXT COLLATE "C",
    ALTER COLUMN image_tag TYPE TEXT COLLATE "C", ALTER COLUMN image_digest TYPE TEXT COLLATE "C",
    ALTER COLUMN image_id TYPE TEXT COLLATE "C", ALTER COLUMN identity TYPE TEXT COLLATE "C";
ALTER TABLE scan_tags ALTER COLUMN scan_id TYPE TEXT COLLATE "C", ALTER COLUMN image_name TYPE TEXT COLLATE "C",
    ALTER COLUMN image_tag TYPE TEXT COLLATE "C";
ALTER TABLE scan_reports ALTER COLUMN scan_id TYPE TEXT COLLATE "C";
ALTER TABLE vulnerabilities ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE findings ALTER COLUMN scan_id TYPE TEXT COLLATE "C", ALTER COLUMN vulnerability_id TYPE TEXT COLLATE "C",
    ALTER COLUMN pkg_name TYPE TEXT COLLATE "C", ALTER COLUMN pkg_version TYPE TEXT COLLATE "C";
ALTER TABLE scan_jobs ALTER COLUMN id TYPE TEXT COLLATE "C", ALTER COLUMN image_ref TYPE TEXT COLLATE "C",
    ALTER COLUMN image_name TYPE TEXT COLLATE "C", ALTER COLUMN scan_id TYPE TEXT COLLATE "C";
ALTER TABLE scan_audit_log ALTER COLUMN job_id TYPE TEXT COLLATE "C";
ALTER TABLE api_keys ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE fleet_refs ALTER COLUMN image_name TYPE TEXT COLLATE "C", ALTER COLUMN image_tag TYPE TEXT COLLATE "C",
    ALTER COLUMN scan_id TYPE TEXT COLLATE "C";
ALTER TABLE fleet_findings ALTER COLUMN image_name TYPE TEXT COLLATE "C", ALTER COLUMN image_tag TYPE TEXT COLLATE "C",
    ALTER COLUMN vulnerability_id TYPE TEXT COLLATE "C", ALTER COLUMN pkg_name TYPE TEXT COLLATE "C",
    ALTER COLUMN pkg_version TYPE TEXT COLLATE "C", ALTER COLUMN scan_id TYPE TEXT COLLATE "C";
ALTER TABLE fleet_cves ALTER COLUMN vulnerability_id TYPE TEXT COLLATE "C";
ALTER TABLE fleet_cve_deltas ALTER COLUMN vulnerability_id TYPE TEXT COLLATE "C";
