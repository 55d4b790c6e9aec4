-- At most one active (queued or running) job per image reference: a second request for the
-- same image while one is active gets that job back instead of queueing another.
CREATE UNIQUE INDEX scan_jobs_one_active_per_image ON scan_jobs (image_ref)
    WHERE status IN ('queued', 'pulling', 'scanning');
CREATE INDEX scan_jobs_by_lease ON scan_jobs (status, lease_expires_at);
