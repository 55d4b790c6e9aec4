//! Exploit feeds on PostgreSQL.

use async_trait::async_trait;
use scanvault_core::feeds::{EpssFeed, KevCatalog};
use std::collections::HashMap;

use super::PgStore;
use crate::store::feeds::{
    merge, EpssRow, Exploit, FeedRow, FeedStore, KevRow, CHUNK, LIST_FEEDS, UPSERT_IMPORT,
};
use crate::store::StoreError;

const INSERT_KEV: &str =
    "INSERT INTO kev (vulnerability_id, date_added, due_date, known_ransomware, \
     vendor_project, product, name) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], \
     $4::text[], $5::text[], $6::text[], $7::text[])";
const INSERT_EPSS: &str = "INSERT INTO epss (vulnerability_id, score, percentile) \
     SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[])";
const KEV_OF: &str = "SELECT vulnerability_id, date_added, due_date, known_ransomware FROM kev \
     WHERE vulnerability_id = ANY($1)";
const EPSS_OF: &str =
    "SELECT vulnerability_id, score, percentile FROM epss WHERE vulnerability_id = ANY($1)";

#[async_trait]
impl FeedStore for PgStore {
    async fn replace_kev(
        &self,
        catalog: &KevCatalog,
        now: i64,
        by: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM kev").execute(&mut *tx).await?;
        for chunk in catalog.entries.chunks(CHUNK) {
            let col =
                |f: fn(&scanvault_core::feeds::KevEntry) -> Option<String>| -> Vec<Option<String>> {
                    chunk.iter().map(f).collect()
                };
            sqlx::query(INSERT_KEV)
                .bind(col(|e| Some(e.cve_id.clone())))
                .bind(col(|e| Some(e.date_added.clone())))
                .bind(col(|e| e.due_date.clone()))
                .bind(col(|e| e.known_ransomware.clone()))
                .bind(col(|e| Some(e.vendor_project.clone())))
                .bind(col(|e| Some(e.product.clone())))
                .bind(col(|e| Some(e.name.clone())))
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM epss").execute(&mut *tx).await?;
        for chunk in feed.entries.chunks(CHUNK) {
            let ids: Vec<&str> = chunk.iter().map(|e| e.cve_id.as_str()).collect();
            let scores: Vec<f64> = chunk.iter().map(|e| e.score).collect();
            let pcts: Vec<f64> = chunk.iter().map(|e| e.percentile).collect();
            sqlx::query(INSERT_EPSS)
                .bind(&ids)
                .bind(&scores)
                .bind(&pcts)
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
        Ok(sqlx::query_as(LIST_FEEDS).fetch_all(&self.pool).await?)
    }

    async fn exploits(&self, ids: &[String]) -> Result<HashMap<String, Exploit>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.pool.acquire().await?;
        let kev: Vec<KevRow> = sqlx::query_as(KEV_OF)
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
        let epss: Vec<EpssRow> = sqlx::query_as(EPSS_OF)
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
        Ok(merge(kev, epss))
    }
}

/// Record a feed's import, in its transaction.
async fn record_import(
    conn: &mut sqlx::PgConnection,
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
