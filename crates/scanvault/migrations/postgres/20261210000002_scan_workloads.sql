-- The Kubernetes workloads that run each scan's image, from `trivy k8s` cluster reports:
-- a cluster report replaces, for each namespace it covers, the workloads recorded for that
-- cluster and namespace. Mirrors ../sqlite/20261210000002_scan_workloads.sql.
CREATE TABLE scan_workloads (
    scan_id   TEXT   COLLATE "C" NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    cluster   TEXT   COLLATE "C" NOT NULL,
    namespace TEXT   COLLATE "C" NOT NULL,
    kind      TEXT   COLLATE "C" NOT NULL,
    name      TEXT   COLLATE "C" NOT NULL,
    -- when a cluster report last said so (microseconds)
    seen_at   BIGINT NOT NULL,
    PRIMARY KEY (scan_id, cluster, namespace, kind, name)
);
CREATE INDEX scan_workloads_by_namespace ON scan_workloads (cluster, namespace);
