-- Scan workers say they are alive (every 10 s) and whether their Trivy runs, so the API can
-- tell when no worker can scan (GET /ready, GET /workers, POST /scan-jobs warnings).
CREATE TABLE workers (
    id            TEXT    PRIMARY KEY,
    version       TEXT    NOT NULL,
    trivy_version TEXT,
    trivy_error   TEXT,
    concurrency   BIGINT  NOT NULL,
    started_at    BIGINT  NOT NULL,
    heartbeat_at  BIGINT  NOT NULL
);
