//! The catalog sweep: removes catalog entries (`vulnerabilities`) that no stored finding
//! references any more.
//!
//! Deleting a scan, or re-ingesting a report from which a vulnerability is gone, can leave
//! such an entry behind. Finding those at once would need an index of every finding by
//! vulnerability id, one more random B-tree insertion per finding on every ingest, which
//! costs about a tenth of ingest throughput at 100,000 images (docs/benchmarks.md). So
//! the writes that can orphan an entry only mark the sweep due, and the sweep removes all
//! orphans in one pass over `findings`: after each retention run that deleted scans, and
//! otherwise every `CLEANUP_INTERVAL` when due. Until then an orphan is invisible: the
//! catalog is only ever read through findings and the current fleet.

use super::{Backend, Store, StoreError};
use crate::periodic::Every;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Store {
    /// Note that an entry of the catalog may have lost its last finding. Call it after the
    /// transaction that removed the findings has committed, so that a sweep whose snapshot
    /// comes after the mark sees the removal.
    pub fn mark_catalog_sweep_due(&self) {
        self.inner.catalog_sweep_due.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether a write since the last sweep may have left an orphan.
    pub fn catalog_sweep_due(&self) -> bool {
        self.inner.catalog_sweep_due.load(Ordering::SeqCst) != 0
    }

    /// Delete every catalog entry no finding references. Returns how many went. One
    /// statement: on PostgreSQL the distinct ids of the scans' vulnerability-id arrays (one
    /// sequential pass over `scan_findings` that reads no other column, hashed)
    /// anti-joined with the catalog; on SQLite `NOT IN` over a subquery, which SQLite
    /// evaluates once into a temporary index.
    pub async fn sweep_catalog(&self) -> Result<u64, StoreError> {
        let sql = match self.backend() {
            Backend::Postgres => {
                "DELETE FROM vulnerabilities v WHERE NOT EXISTS \
                 (SELECT 1 FROM (SELECT DISTINCT unnest(vulnerability_ids) AS id FROM scan_findings) u \
                 WHERE u.id = v.id)"
            }
            Backend::Sqlite => {
                "DELETE FROM vulnerabilities WHERE id NOT IN (SELECT vulnerability_id FROM findings)"
            }
        };
        let n = sqlx::query(sql)
            .persistent(false)
            .execute(self.write_pool())
            .await?
            .rows_affected();
        if n > 0 {
            metrics::counter!("scanvault_catalog_swept_total").increment(n);
        }
        Ok(n)
    }

    /// [`Store::sweep_catalog`] when it is due; the mark stays if a write marked it again
    /// while the sweep ran (that write may have committed after the sweep's snapshot).
    pub async fn sweep_catalog_if_due(&self) -> Result<u64, StoreError> {
        let due = &self.inner.catalog_sweep_due;
        let seen = due.load(Ordering::SeqCst);
        if seen == 0 {
            return Ok(0);
        }
        let n = self.sweep_catalog().await?;
        let _ = due.compare_exchange(seen, 0, Ordering::SeqCst, Ordering::SeqCst);
        Ok(n)
    }
}

/// Run [`Store::sweep_catalog_if_due`] every `every` until `shutdown`.
pub async fn catalog_sweep_loop(
    store: Store,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    if every.is_zero() {
        return;
    }
    let mut every = Every::after_one_period(every, &shutdown).await;
    while every.next().await {
        let Some(done) = every.unless_shutdown(store.sweep_catalog_if_due()).await else {
            break;
        };
        match done {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "catalog sweep: removed unreferenced entries"),
            Err(e) => tracing::warn!(error = %e, "catalog sweep failed"),
        }
    }
}
