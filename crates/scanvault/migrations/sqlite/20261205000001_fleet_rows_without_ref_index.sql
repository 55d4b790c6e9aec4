-- A reference's current-fleet rows are a copy of its latest scan's findings. Reads scoped
-- to references take the findings by scan, and a re-scan or deletion finds the rows it
-- replaces through the listing index by (vulnerability, name, tag), from the vulnerability
-- ids of that scan's findings (store/analytics.rs). The index by reference cost ingest one
-- more B-tree insertion per finding.
DROP INDEX IF EXISTS fleet_findings_by_ref;
