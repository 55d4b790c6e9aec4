//! Webhooks and their transactional outbox. An event is written, in the transaction of the
//! change that causes it, as one pending delivery per webhook subscribed to it
//! (`emit` in each backend); the dispatcher (`crate::webhooks`) claims due deliveries with
//! a lease, posts them, and records each attempt. A delivery keeps its id across attempts
//! (receivers deduplicate by it); it is retried with backoff until it is delivered or
//! `WEBHOOK_RETRY_FOR` has passed since the event, then it is dead.

use async_trait::async_trait;

use super::StoreError;

/// Every event a webhook may subscribe to.
pub const EVENTS: [&str; 5] = [
    "scan.noncompliant",
    "fleet.new_critical",
    "image.new_vulnerabilities",
    "job.failed",
    "suppression.expired",
];

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    /// JSON array of event names.
    pub events: String,
    pub secret: String,
    pub created_at: i64,
    pub created_by: Option<String>,
}

impl WebhookRow {
    pub fn event_names(&self) -> Vec<String> {
        serde_json::from_str(&self.events).unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: String,
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery claimed for sending, with where and how to sign it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: String,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
    pub url: String,
    pub secret: String,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub delivery_id: String,
    /// The attempt number (the delivery's `attempts` after the claim).
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// `delivered`, `dead`, or `pending` (then `next_attempt_at`).
    pub status: &'static str,
    pub next_attempt_at: i64,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, w: &WebhookRow) -> Result<(), StoreError>;
    async fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError>;
    async fn webhook(&self, id: &str) -> Result<Option<WebhookRow>, StoreError>;
    /// Delete a webhook and its deliveries; `false` when there was none.
    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError>;
    /// A webhook's deliveries, newest first, with every attempt of each; and how many
    /// deliveries it has in all.
    async fn deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<(DeliveryRow, Vec<AttemptRow>)>, i64), StoreError>;
    /// Claim up to `limit` pending deliveries due at `now`: each gets its next attempt
    /// number and is leased until `lease_until` (a dispatcher that dies returns them then).
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Record an attempt and the delivery's new state, unless another dispatcher has
    /// claimed it since (its attempt number moved on).
    async fn record_attempt(&self, o: &AttemptOutcome) -> Result<(), StoreError>;
}

pub(crate) const INSERT_WEBHOOK: &str =
    "INSERT INTO webhooks (id, url, events, secret, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const LIST_WEBHOOKS: &str =
    "SELECT id, url, events, secret, created_at, created_by FROM webhooks ORDER BY created_at, id";
pub(crate) const FIND_WEBHOOK: &str =
    "SELECT id, url, events, secret, created_at, created_by FROM webhooks WHERE id = $1";
pub(crate) const DELETE_WEBHOOK: &str = "DELETE FROM webhooks WHERE id = $1";
pub(crate) const COUNT_DELIVERIES: &str =
    "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1";
pub(crate) const LIST_DELIVERIES: &str =
    "SELECT id, webhook_id, event, payload, status, attempts, \
     next_attempt_at, created_at, finished_at FROM webhook_deliveries WHERE webhook_id = $1 \
     ORDER BY created_at DESC, id LIMIT $2 OFFSET $3";
pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO webhook_attempts (delivery_id, attempt, at, \
     status_code, error, duration_ms) SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS \
     (SELECT 1 FROM webhook_deliveries WHERE id = $1 AND attempts = $2) \
     ON CONFLICT (delivery_id, attempt) DO NOTHING";
pub(crate) const FINISH_ATTEMPT: &str = "UPDATE webhook_deliveries SET status = $3, \
     next_attempt_at = $4, finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE $5 END \
     WHERE id = $1 AND attempts = $2 AND status = 'pending'";

/// The JSON body a delivery posts: the same bytes at every attempt.
pub fn delivery_body(d: &ClaimedDelivery) -> String {
    let data: serde_json::Value =
        serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "ID": d.id,
        "Event": d.event,
        "CreatedAt": super::from_micros(d.created_at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "Data": data,
    })
    .to_string()
}

/// Each delivery with its attempts (`attempts` ordered by delivery, then attempt).
pub(crate) fn with_attempts(
    rows: Vec<DeliveryRow>,
    attempts: Vec<AttemptRow>,
) -> Vec<(DeliveryRow, Vec<AttemptRow>)> {
    let mut by_delivery: std::collections::HashMap<String, Vec<AttemptRow>> =
        std::collections::HashMap::new();
    for a in attempts {
        by_delivery
            .entry(a.delivery_id.clone())
            .or_default()
            .push(a);
    }
    rows.into_iter()
        .map(|d| {
            let a = by_delivery.remove(&d.id).unwrap_or_default();
            (d, a)
        })
        .collect()
}
