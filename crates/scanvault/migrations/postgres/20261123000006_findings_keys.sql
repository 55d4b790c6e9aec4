-- Ingest cost per finding: the foreign key's per-row check (a lookup and a KEY SHARE lock
-- on the scan for every inserted finding) and the unique key over four text columns cost
-- more than writing the row. The store keeps both guarantees itself: a scan's findings are
-- written only by the transaction holding the scan row's lock, de-duplicated by
-- (vulnerability, package, version) before they are written, and deleted with their scan
-- in the same transaction. The narrow index on scan_id (deduplicated by PostgreSQL's
-- B-tree) serves every read and delete by scan.
ALTER TABLE findings DROP CONSTRAINT findings_scan_id_fkey;
ALTER TABLE findings DROP CONSTRAINT findings_pkey;
CREATE INDEX findings_by_scan ON findings (scan_id);
