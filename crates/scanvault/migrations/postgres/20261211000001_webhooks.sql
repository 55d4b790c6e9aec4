-- Webhooks and their transactional outbox: an event is written as one delivery per
-- subscribed webhook in the transaction of the change that causes it; the dispatcher
-- sends pending deliveries and records every attempt.
CREATE TABLE webhooks (
    id          TEXT    PRIMARY KEY,
    url         TEXT    NOT NULL,
    -- JSON array of event names
    events      TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT
);

CREATE TABLE webhook_deliveries (
    id              TEXT    PRIMARY KEY,
    webhook_id      TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event           TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT    NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     BIGINT  NOT NULL,
    at          BIGINT  NOT NULL,
    status_code BIGINT,
    error       TEXT,
    duration_ms BIGINT  NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Vulnerabilities the fleet has carried at CRITICAL severity: the first of each makes a
-- fleet.new_critical event.
CREATE TABLE fleet_critical_seen (
    vulnerability_id TEXT    PRIMARY KEY,
    first_seen_at    BIGINT  NOT NULL
);
