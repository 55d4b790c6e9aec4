//! API keys on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::keys::{bootstrap_key, new_key_row, KeyRow, KeyStore, NewKey};
use crate::store::{micros, sql, StoreError};

#[async_trait]
impl KeyStore for SqliteStore {
    async fn create(&self, new: NewKey) -> Result<(KeyRow, String), StoreError> {
        let mut conn = self.write.acquire().await?;
        insert_key(&mut conn, &new).await
    }

    async fn bootstrap_admin(
        &self,
        secret: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        // The one writer serialises concurrent bootstraps.
        let mut tx = self.write.begin().await?;
        let n: i64 = sqlx::query_scalar(sql::COUNT_KEYS)
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let (_, key) = insert_key(&mut tx, &bootstrap_key(secret, now)).await?;
        tx.commit().await?;
        Ok(Some(key))
    }

    async fn find(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        Ok(sqlx::query_as(sql::FIND_KEY)
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn list(&self) -> Result<Vec<KeyRow>, StoreError> {
        Ok(sqlx::query_as(sql::LIST_KEYS).fetch_all(&self.read).await?)
    }

    async fn revoke(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let r = sqlx::query(sql::REVOKE_KEY)
            .bind(micros(now))
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

async fn insert_key(
    conn: &mut SqliteConnection,
    new: &NewKey,
) -> Result<(KeyRow, String), StoreError> {
    let (row, key) = new_key_row(new);
    sqlx::query(sql::INSERT_KEY)
        .bind(&row.id)
        .bind(&row.name)
        .bind(&row.role)
        .bind(&row.salt)
        .bind(&row.secret_hash)
        .bind(row.created_at)
        .bind(&row.created_by)
        .bind(row.expires_at)
        .execute(&mut *conn)
        .await?;
    Ok((row, key))
}
