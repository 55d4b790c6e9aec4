-- Listings test each row against the suppressions not deleted: an index of just those, so
-- the test is one probe whatever the table's statistics say.
CREATE INDEX suppressions_live_by_vulnerability ON suppressions (vulnerability_id, package)
    WHERE deleted_at IS NULL;
