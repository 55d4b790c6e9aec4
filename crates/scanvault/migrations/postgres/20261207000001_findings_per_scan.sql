-- A scan's findings as one row of arrays (one element per finding, the arrays in step)
-- instead of one row per finding. A typical report has about 150 findings: as rows they
-- cost ingest 150 heap tuples, 150 entries of `findings_by_scan` and their WAL; as arrays,
-- one tuple whose values PostgreSQL compresses (lz4 where the server has it) and keeps out
-- of line. Findings are only ever read by scan (or all of them, by the catalog sweep), and
-- a scan's findings are written whole by the transaction that holds the scan's lock, so
-- nothing needs them one row at a time.
--
-- `findings` stays as a view with the table's columns, so every query that reads a scan's
-- findings reads them as before. `findings_brief` has only the columns the analytics read
-- (SQLite has the same view over its table): it leaves the other arrays of a scan unread,
-- which halves the time of a question about the past.
CREATE TABLE scan_findings (
    scan_id           TEXT               COLLATE "C" PRIMARY KEY,
    vulnerability_ids TEXT[]             COLLATE "C" NOT NULL,
    pkg_names         TEXT[]             COLLATE "C" NOT NULL,
    pkg_versions      TEXT[]             COLLATE "C" NOT NULL,
    fixed_versions    TEXT[]             NOT NULL,
    severities        BIGINT[]           NOT NULL,
    statuses          TEXT[]             NOT NULL,
    pkg_types         TEXT[]             NOT NULL,
    classes           TEXT[]             NOT NULL,
    targets           TEXT[]             NOT NULL,
    pkg_paths         TEXT[]             NOT NULL,
    purls             TEXT[]             NOT NULL,
    cvss_scores       DOUBLE PRECISION[] NOT NULL
);

-- lz4 compresses these arrays at a fraction of the default (pglz) cost. A server built
-- without lz4 keeps the default.
DO $$
DECLARE c TEXT;
BEGIN
    FOREACH c IN ARRAY ARRAY['vulnerability_ids', 'pkg_names', 'pkg_versions', 'fixed_versions',
        'severities', 'statuses', 'pkg_types', 'classes', 'targets', 'pkg_paths', 'purls', 'cvss_scores']
    LOOP
        EXECUTE format('ALTER TABLE scan_findings ALTER COLUMN %I SET COMPRESSION lz4', c);
    END LOOP;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;

-- Every aggregate of one group sees the group's rows in the same order, so the arrays of a
-- scan stay in step.
INSERT INTO scan_findings
    SELECT scan_id, array_agg(vulnerability_id), array_agg(pkg_name), array_agg(pkg_version),
        array_agg(fixed_version), array_agg(severity), array_agg(status), array_agg(pkg_type),
        array_agg(class), array_agg(target), array_agg(pkg_path), array_agg(purl), array_agg(cvss_score)
    FROM findings GROUP BY scan_id;
DROP TABLE findings;

CREATE VIEW findings AS
    SELECT s.scan_id,
        f.vulnerability_id COLLATE "C" AS vulnerability_id,
        f.pkg_name COLLATE "C" AS pkg_name,
        f.pkg_version COLLATE "C" AS pkg_version,
        f.fixed_version, f.severity, f.status, f.pkg_type, f.class, f.target, f.pkg_path, f.purl,
        f.cvss_score
    FROM scan_findings s
    CROSS JOIN LATERAL unnest(s.vulnerability_ids, s.pkg_names, s.pkg_versions, s.fixed_versions,
        s.severities, s.statuses, s.pkg_types, s.classes, s.targets, s.pkg_paths, s.purls, s.cvss_scores)
        AS f(vulnerability_id, pkg_name, pkg_version, fixed_version, severity, status, pkg_type, class,
             target, pkg_path, purl, cvss_score);

CREATE VIEW findings_brief AS
    SELECT s.scan_id,
        f.vulnerability_id COLLATE "C" AS vulnerability_id,
        f.pkg_name COLLATE "C" AS pkg_name,
        f.pkg_version COLLATE "C" AS pkg_version,
        f.fixed_version, f.severity
    FROM scan_findings s
    CROSS JOIN LATERAL unnest(s.vulnerability_ids, s.pkg_names, s.pkg_versions, s.fixed_versions, s.severities)
        AS f(vulnerability_id, pkg_name, pkg_version, fixed_version, severity);
