-- One listing index instead of two. Every finding of every current scan had an entry in
-- `fleet_findings_by_vulnerability` (vulnerability, reference) and, when fixable, another in
-- `fleet_findings_fixable` (severity, vulnerability, reference): B-tree insertions were the
-- largest cost of a typical ingest left, and they cost per insertion. This index leads with
-- the fixable severity, -1 for a finding without a fix:
--
-- - `fixable` reads its range >= 0 in order, as it read the partial index;
-- - `cve/{id}/images` merges the six ranges (key, vulnerability) in reference order, each
--   read only as far as the page (store/analytics.rs);
-- - a reference's rows are found by (key, vulnerability, reference).
--
-- The six ranges are all the key can be: severities are ranks 0 to 4.
ALTER TABLE fleet_findings ADD CONSTRAINT fleet_findings_severity CHECK (severity BETWEEN 0 AND 4);
CREATE INDEX fleet_findings_listing ON fleet_findings
    ((CASE WHEN fixed_version IS NULL THEN -1 ELSE severity END) DESC, vulnerability_id, ref_id);
DROP INDEX fleet_findings_by_vulnerability;
DROP INDEX fleet_findings_fixable;
