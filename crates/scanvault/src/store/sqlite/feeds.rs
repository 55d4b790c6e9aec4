//! Exploit feeds on SQLite.

use async_trait::async_trait;
use scanvault_core::feeds::{EpssFeed, KevCatalog};
use std::collections::HashMap;

use super::SqliteStore;
use crate::store::feeds::{
    merge, EpssRow, Exploit, FeedRow, FeedStore, KevRow, CHUNK, LIST_FEEDS, UPSERT_IMPORT,
};
use crate::store::StoreError;

const INSERT_KEV: &str = "INSERT INTO kev (vulnerability_id, date_added, due_date, known_ransomware, \
     vendor_project, product, name) SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
     json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
     json_extract(value, '$[5]'), json_extract(value, '$[6]') FROM json_each($1)";
const INSERT_EPSS: &str = "INSERT INTO epss (vulnerability_id, score, percentile) SELECT \
     json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') \
     FROM json_each($1)";
const KEV_OF: &str = "SELECT vulnerability_id, date_added, due_date, known_ransomware FROM kev \
     WHERE vulnerability_id IN (SELECT value FROM json_each($1))";
const EPSS_OF: &str = "SELECT vulnerability_id, score, percentile FROM epss \
     WHERE vulnerability_id IN (SELECT value FROM json_each($1))";

#[async_trait]
impl FeedStore for SqliteStore {
    async fn replace_kev(
        &self,
        catalog: &KevCatalog,
        now: i64,
        by: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM kev").execute(&mut *tx).await?;
        for chunk in catalog.entries.chunks(CHUNK) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|e| {
                    serde_json::json!([
                        e.cve_id,
                        e.date_added,
                        e.due_date,
                        e.known_ransomware,
                        e.vendor_project,
                        e.product,
                        e.name
                    ])
                })
                .collect();
            sqlx::query(INSERT_KEV)
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut *tx)
                .await?;
        }
        record_import(
            &mut tx,
            "kev",
            &catalog.catalog_version,
            &catalog.date_released,
            catalog.entries.len(),
            now,
            by,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn replace_epss(
        &self,
        feed: &EpssFeed,
        now: i64,
        by: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM epss").execute(&mut *tx).await?;
        for chunk in feed.entries.chunks(CHUNK) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|e| serde_json::json!([e.cve_id, e.score, e.percentile]))
                .collect();
            sqlx::query(INSERT_EPSS)
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut *tx)
                .await?;
        }
        record_import(
            &mut tx,
            "epss",
            &feed.model_version,
            &feed.score_date,
            feed.entries.len(),
            now,
            by,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn feeds(&self) -> Result<Vec<FeedRow>, StoreError> {
        Ok(sqlx::query_as(LIST_FEEDS).fetch_all(&self.read).await?)
    }

    async fn exploits(&self, ids: &[String]) -> Result<HashMap<String, Exploit>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = serde_json::to_string(ids).unwrap_or_default();
        let mut conn = self.read.acquire().await?;
        let kev: Vec<KevRow> = sqlx::query_as(KEV_OF)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        let epss: Vec<EpssRow> = sqlx::query_as(EPSS_OF)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        Ok(merge(kev, epss))
    }
}

/// Record a feed's import, in its transaction.
async fn record_import(
    conn: &mut sqlx::SqliteConnection,
    feed: &str,
    version: &str,
    released: &str,
    entries: usize,
    now: i64,
    by: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(UPSERT_IMPORT)
        .bind(feed)
        .bind(version)
        .bind(released)
        .bind(entries as i64)
        .bind(now)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
