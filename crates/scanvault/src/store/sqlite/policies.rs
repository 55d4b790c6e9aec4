//! Compliance policies on SQLite.

use async_trait::async_trait;
use std::collections::HashMap;

use super::SqliteStore;
use crate::store::policies::{
    PolicyRow, PolicyStore, DELETE_POLICY, FIND_POLICY, LIST_POLICIES, POLICY_EXISTS, UPSERT_POLICY,
};
use crate::store::StoreError;

const FIXES_OF: &str = "SELECT vulnerability_id, pkg_name, first_seen_at FROM fix_first_seen \
     WHERE vulnerability_id IN (SELECT value FROM json_each($1))";

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn put_policy(&self, row: &PolicyRow) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await?;
        let existed: i64 = sqlx::query_scalar(POLICY_EXISTS)
            .bind(&row.name)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(UPSERT_POLICY)
            .bind(&row.name)
            .bind(&row.body)
            .bind(row.updated_at)
            .bind(&row.updated_by)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(existed == 0)
    }

    async fn policy(&self, name: &str) -> Result<Option<PolicyRow>, StoreError> {
        Ok(sqlx::query_as(FIND_POLICY)
            .bind(name)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn policies(&self) -> Result<Vec<PolicyRow>, StoreError> {
        Ok(sqlx::query_as(LIST_POLICIES).fetch_all(&self.read).await?)
    }

    async fn delete_policy(&self, name: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(DELETE_POLICY)
            .bind(name)
            .execute(&self.write)
            .await?
            .rows_affected()
            > 0)
    }

    async fn fixes_first_seen(
        &self,
        vulnerabilities: &[String],
    ) -> Result<HashMap<(String, String), i64>, StoreError> {
        if vulnerabilities.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(FIXES_OF)
            .bind(serde_json::to_string(vulnerabilities).unwrap_or_default())
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|(v, p, t)| ((v, p), t)).collect())
    }
}
