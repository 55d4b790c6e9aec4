-- Priority lanes: 0 ad hoc (requested through the API), 1 scheduled, 2 re-match. A worker
-- claims the lowest lane first, whatever the other lanes hold.
ALTER TABLE scan_jobs ADD COLUMN lane BIGINT NOT NULL DEFAULT 0 CHECK (lane BETWEEN 0 AND 2);
CREATE INDEX scan_jobs_claim_by_lane ON scan_jobs (status, lane, priority, run_after);
