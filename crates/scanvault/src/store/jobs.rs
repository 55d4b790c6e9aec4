//! Scan jobs: queue, leases, audit log.

use super::{micros, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// Gauges computed at scrape time.
#[derive(Debug, Default)]
pub struct JobGauges {
    pub by_status: Vec<(String, i64)>,
    pub queue_depth: i64,
    pub oldest_queued_age_seconds: f64,
}

impl Store {
    pub async fn job_gauges(&self, now: DateTime<Utc>) -> Result<JobGauges, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM scan_jobs GROUP BY status")
            .fetch_all(self.read_pool())
            .await?;
        let mut g = JobGauges::default();
        for s in [
            "queued",
            "pulling",
            "scanning",
            "completed",
            "failed",
            "cancelled",
        ] {
            let n = rows
                .iter()
                .find(|r| r.get::<String, _>(0) == s)
                .map(|r| r.get::<i64, _>(1))
                .unwrap_or(0);
            g.by_status.push((s.to_string(), n));
            if s == "queued" {
                g.queue_depth = n;
            }
        }
        let oldest: Option<i64> =
            sqlx::query("SELECT MIN(created_at) FROM scan_jobs WHERE status = 'queued'")
                .fetch_one(self.read_pool())
                .await?
                .get(0);
        g.oldest_queued_age_seconds = oldest
            .map(|t| ((micros(now) - t).max(0) as f64) / 1e6)
            .unwrap_or(0.0);
        Ok(g)
    }
}
