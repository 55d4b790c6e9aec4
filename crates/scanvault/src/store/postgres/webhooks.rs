//! Webhooks and the outbox on PostgreSQL.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::PgStore;
use crate::store::webhooks::{
    AttemptOutcome, AttemptRow, ClaimedDelivery, DeliveryRow, WebhookRow, WebhookStore,
    COUNT_DELIVERIES, DELETE_WEBHOOK, FIND_WEBHOOK, FINISH_ATTEMPT, INSERT_ATTEMPT, INSERT_WEBHOOK,
    LIST_DELIVERIES, LIST_WEBHOOKS,
};
use crate::store::StoreError;

const EMIT: &str = "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, \
     attempts, next_attempt_at, created_at) SELECT replace(gen_random_uuid()::text, '-', ''), w.id, \
     e.ev, e.p, 'pending', 0, $3, $3 FROM unnest($1::text[], $2::text[]) AS e(ev, p) \
     JOIN webhooks w ON jsonb_exists(w.events::jsonb, e.ev)";
/// Claimed with SKIP LOCKED: dispatchers in several processes take different deliveries.
const CLAIM: &str = "UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = $2 \
     FROM webhooks w WHERE w.id = d.webhook_id AND d.id IN (SELECT id FROM webhook_deliveries \
     WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3 \
     FOR UPDATE SKIP LOCKED) RETURNING d.id, d.event, d.payload, d.attempts, d.created_at, w.url, w.secret";
const ATTEMPTS_OF: &str = "SELECT delivery_id, attempt, at, status_code, error, duration_ms \
     FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt";

/// Write `events` (name, data) as pending deliveries to every webhook subscribed to each,
/// in the caller's transaction: one statement however many.
pub(crate) async fn emit(
    conn: &mut PgConnection,
    events: &[(&str, serde_json::Value)],
    now: i64,
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = events.iter().map(|(e, _)| *e).collect();
    let payloads: Vec<String> = events.iter().map(|(_, p)| p.to_string()).collect();
    Ok(sqlx::query(EMIT)
        .bind(&names)
        .bind(&payloads)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(&self, w: &WebhookRow) -> Result<(), StoreError> {
        sqlx::query(INSERT_WEBHOOK)
            .bind(&w.id)
            .bind(&w.url)
            .bind(&w.events)
            .bind(&w.secret)
            .bind(w.created_at)
            .bind(&w.created_by)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        Ok(sqlx::query_as(LIST_WEBHOOKS).fetch_all(&self.pool).await?)
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookRow>, StoreError> {
        Ok(sqlx::query_as(FIND_WEBHOOK)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(DELETE_WEBHOOK)
            .bind(id)
            .execute(&self.pool)
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
        let mut tx = self.pool.begin().await?;
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
            .bind(&ids)
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
        Ok(sqlx::query_as(CLAIM)
            .bind(now)
            .bind(lease_until)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn record_attempt(&self, o: &AttemptOutcome) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
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
