//! Webhooks and the outbox on SQLite.

use async_trait::async_trait;
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::webhooks::{
    AttemptOutcome, AttemptRow, ClaimedDelivery, DeliveryRow, WebhookRow, WebhookStore,
    COUNT_DELIVERIES, DELETE_WEBHOOK, FIND_WEBHOOK, FINISH_ATTEMPT, INSERT_ATTEMPT, INSERT_WEBHOOK,
    LIST_DELIVERIES, LIST_WEBHOOKS,
};
use crate::store::StoreError;

const EMIT: &str = "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, \
     attempts, next_attempt_at, created_at) SELECT lower(hex(randomblob(16))), w.id, \
     json_extract(e.value, '$.e'), json_extract(e.value, '$.p'), 'pending', 0, $2, $2 \
     FROM json_each($1) e JOIN webhooks w ON EXISTS (SELECT 1 FROM json_each(w.events) \
     WHERE value = json_extract(e.value, '$.e'))";
const CLAIM: &str = "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2 \
     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
     ORDER BY next_attempt_at, id LIMIT $3) RETURNING id";
const CLAIMED: &str = "SELECT d.id, d.event, d.payload, d.attempts, d.created_at, w.url, w.secret \
     FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
     WHERE d.id IN (SELECT value FROM json_each($1)) ORDER BY d.next_attempt_at, d.id";
const ATTEMPTS_OF: &str = "SELECT delivery_id, attempt, at, status_code, error, duration_ms \
     FROM webhook_attempts WHERE delivery_id IN (SELECT value FROM json_each($1)) \
     ORDER BY delivery_id, attempt";

/// Write `events` (name, data) as pending deliveries to every webhook subscribed to each,
/// in the caller's transaction: one statement however many.
pub(crate) async fn emit(
    conn: &mut SqliteConnection,
    events: &[(&str, serde_json::Value)],
    now: i64,
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|(e, p)| serde_json::json!({"e": e, "p": p}))
        .collect();
    Ok(sqlx::query(EMIT)
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(&self, w: &WebhookRow) -> Result<(), StoreError> {
        sqlx::query(INSERT_WEBHOOK)
            .bind(&w.id)
            .bind(&w.url)
            .bind(&w.events)
            .bind(&w.secret)
            .bind(w.created_at)
            .bind(&w.created_by)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        Ok(sqlx::query_as(LIST_WEBHOOKS).fetch_all(&self.read).await?)
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookRow>, StoreError> {
        Ok(sqlx::query_as(FIND_WEBHOOK)
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(DELETE_WEBHOOK)
            .bind(id)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<(DeliveryRow, Vec<AttemptRow>)>, i64), StoreError> {
        let mut tx = self.read.begin().await?;
        let total: i64 = sqlx::query_scalar(COUNT_DELIVERIES)
            .bind(webhook_id)
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<DeliveryRow> = sqlx::query_as(LIST_DELIVERIES)
            .bind(webhook_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *tx)
            .await?;
        let ids: Vec<&str> = rows.iter().map(|d| d.id.as_str()).collect();
        let attempts: Vec<AttemptRow> = sqlx::query_as(ATTEMPTS_OF)
            .bind(serde_json::to_string(&ids).unwrap_or_default())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((crate::store::webhooks::with_attempts(rows, attempts), total))
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut tx = self.write.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(CLAIM)
            .bind(now)
            .bind(lease_until)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let claimed = if ids.is_empty() {
            vec![]
        } else {
            sqlx::query_as(CLAIMED)
                .bind(serde_json::to_string(&ids).unwrap_or_default())
                .fetch_all(&mut *tx)
                .await?
        };
        tx.commit().await?;
        Ok(claimed)
    }

    async fn record_attempt(&self, o: &AttemptOutcome) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query(INSERT_ATTEMPT)
            .bind(&o.delivery_id)
            .bind(o.attempt)
            .bind(o.at)
            .bind(o.status_code)
            .bind(&o.error)
            .bind(o.duration_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(FINISH_ATTEMPT)
            .bind(&o.delivery_id)
            .bind(o.attempt)
            .bind(o.status)
            .bind(o.next_attempt_at)
            .bind(o.at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
