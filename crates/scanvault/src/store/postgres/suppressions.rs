//! Suppressions on PostgreSQL.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::PgStore;
use crate::store::suppressions::{
    describe, AuditRow, SuppressionRow, SuppressionStore, AUDIT_OF, COLUMNS, DELETE, EXPIRE, FIND,
    INSERT, INSERT_AUDIT, LIST,
};
use crate::store::StoreError;

const ACTIVE_OF: &str = const_format::concatcp!(
    "SELECT ",
    COLUMNS,
    " FROM suppressions WHERE vulnerability_id = ANY($1) \
     AND deleted_at IS NULL AND (expires_at IS NULL OR expires_at > $2)"
);

async fn audit(
    conn: &mut PgConnection,
    s: &SuppressionRow,
    action: &str,
    actor: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_AUDIT)
        .bind(&s.id)
        .bind(action)
        .bind(actor)
        .bind(at)
        .bind(describe(s).to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[async_trait]
impl SuppressionStore for PgStore {
    async fn create_suppression(&self, s: &SuppressionRow, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(INSERT)
            .bind(&s.id)
            .bind(&s.vulnerability_id)
            .bind(&s.package)
            .bind(&s.image)
            .bind(&s.state)
            .bind(&s.reason)
            .bind(s.expires_at)
            .bind(s.created_at)
            .bind(&s.created_by)
            .bind(&s.source)
            .execute(&mut *tx)
            .await?;
        audit(&mut tx, s, "created", actor, s.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn suppressions(
        &self,
        active_at: Option<i64>,
    ) -> Result<Vec<SuppressionRow>, StoreError> {
        Ok(sqlx::query_as(LIST)
            .bind(active_at)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn suppression(
        &self,
        id: &str,
    ) -> Result<Option<(SuppressionRow, Vec<AuditRow>)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some(row): Option<SuppressionRow> = sqlx::query_as(FIND)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let trail: Vec<AuditRow> = sqlx::query_as(AUDIT_OF)
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
        Ok(Some((row, trail)))
    }

    async fn delete_suppression(
        &self,
        id: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<SuppressionRow> = sqlx::query_as(DELETE)
            .bind(id)
            .bind(now)
            .bind(actor)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = &row {
            audit(&mut tx, row, "deleted", actor, now).await?;
        }
        tx.commit().await?;
        Ok(row.is_some())
    }

    async fn active_suppressions(
        &self,
        vulnerabilities: &[String],
        now: i64,
    ) -> Result<Vec<SuppressionRow>, StoreError> {
        if vulnerabilities.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(ACTIVE_OF)
            .bind(vulnerabilities)
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn expire_suppressions(&self, now: i64) -> Result<Vec<SuppressionRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<SuppressionRow> =
            sqlx::query_as(EXPIRE).bind(now).fetch_all(&mut *tx).await?;
        for row in &rows {
            audit(&mut tx, row, "expired", "system", now).await?;
        }
        let events: Vec<(&str, serde_json::Value)> = rows
            .iter()
            .map(|r| ("suppression.expired", describe(r)))
            .collect();
        super::webhooks::emit(&mut tx, &events, now).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
