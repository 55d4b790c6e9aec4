//! Retention: the cleanup worker's deletions.
//!
//! Policies, exactly as the original service applied them: only a maximum age set →
//! delete scans older than it; only a number to keep set → delete all but the newest N of
//! each image reference (name and tag); both set → delete a scan only if it is older than
//! the maximum age **and** not among the newest N of its reference.

use super::{micros, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionPolicy {
    /// Zero disables the age rule.
    pub max_age: Duration,
    /// Zero disables the count rule.
    pub keep_per_image: i64,
}

impl RetentionPolicy {
    pub fn is_enabled(&self) -> bool {
        !self.max_age.is_zero() || self.keep_per_image > 0
    }
}

impl Store {
    /// Apply a retention policy as of `now`. Returns the number of scans deleted.
    pub async fn apply_retention(
        &self,
        policy: RetentionPolicy,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if !policy.is_enabled() {
            return Ok(0);
        }
        let cutoff =
            micros(now) - i64::try_from(policy.max_age.as_micros()).unwrap_or(i64::MAX / 2);
        let mut conds = vec![];
        if !policy.max_age.is_zero() {
            conds.push("scanned_at < $1");
        }
        if policy.keep_per_image > 0 {
            conds.push("rn > $2");
        }
        let sql = format!(
            "SELECT id FROM (SELECT id, scanned_at, ROW_NUMBER() OVER (PARTITION BY image_name, image_tag \
             ORDER BY scanned_at DESC, created_at DESC, id DESC) AS rn FROM scans) ranked WHERE {} \
             AND $1 = $1 AND $2 = $2",
            conds.join(" AND ")
        );
        let ids: Vec<String> = sqlx::query(&sql)
            .bind(cutoff)
            .bind(policy.keep_per_image)
            .fetch_all(self.read_pool())
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut deleted = 0;
        for chunk in ids.chunks(200) {
            let mut tx = self.write_pool().begin().await?;
            deleted += self.delete_scans_in_tx(&mut tx, chunk).await?;
            tx.commit().await?;
        }
        if deleted > 0 {
            metrics::counter!("scanvault_retention_deleted_scans_total").increment(deleted);
            // Catalog entries only the deleted scans referenced go now (store/catalog.rs).
            self.mark_catalog_sweep_due();
            self.sweep_catalog_if_due().await?;
        }
        Ok(deleted)
    }
}
