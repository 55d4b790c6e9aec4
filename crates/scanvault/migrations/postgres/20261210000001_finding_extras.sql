-- What some report formats say of a finding beyond Trivy's fields (Grype's own severity
-- word, EPSS and risk; CycloneDX VEX analysis), as compact JSON: one element per finding,
-- NULL when there is nothing. Mirrors ../sqlite/20261210000001_finding_extras.sql.
ALTER TABLE scan_findings ADD COLUMN extras TEXT[];
DO $$
BEGIN
    ALTER TABLE scan_findings ALTER COLUMN extras SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;

DROP VIEW findings;
CREATE VIEW findings AS
    SELECT s.scan_id, s.version,
        f.vulnerability_id COLLATE "C" AS vulnerability_id,
        f.pkg_name COLLATE "C" AS pkg_name,
        f.pkg_version COLLATE "C" AS pkg_version,
        f.fixed_version, f.severity, f.status, f.pkg_type, f.class, f.target, f.pkg_path, f.purl,
        f.cvss_score, f.extra
    FROM scan_findings s
    CROSS JOIN LATERAL unnest(s.vulnerability_ids, s.pkg_names, s.pkg_versions, s.fixed_versions,
        s.severities, s.statuses, s.pkg_types, s.classes, s.targets, s.pkg_paths, s.purls, s.cvss_scores,
        COALESCE(s.extras, array_fill(NULL::text, ARRAY[cardinality(s.vulnerability_ids)])))
        AS f(vulnerability_id, pkg_name, pkg_version, fixed_version, severity, status, pkg_type, class,
             target, pkg_path, purl, cvss_score, extra);
