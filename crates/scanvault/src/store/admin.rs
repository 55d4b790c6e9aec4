//! Running the database: migrations, health, retention, the catalog sweep, and a content
//! checksum of every table for tests and diagnostics.
//!
//! **Retention**, exactly as the original service applied it: only a maximum age set →
//! delete scans whose latest observation is older than it; only a number to keep set →
//! delete all but the newest N scans of each image reference (name and first tag); both set
//! → delete a scan only if it is older than the maximum age **and** not among the newest N
//! of its reference.
//!
//! **The catalog sweep** removes catalog entries (`vulnerabilities`) that no stored finding
//! references any more. Only deleting scans can leave such an entry behind (a scan's
//! findings versions are kept as history). Finding those at once would need an index of
//! every finding by vulnerability id, one more random B-tree insertion per finding on every
//! ingest (ADR 0012). So a deletion marks the sweep due once its transaction has committed,
//! and the sweep removes all orphans in one pass: after each retention run that deleted
//! scans, and otherwise every `CLEANUP_INTERVAL` when due. Until then an orphan is
//! invisible: the catalog is only ever read through findings and the current fleet.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{duration_micros, micros, Store, StoreError};
use crate::periodic::Every;

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

/// One table's row count and a SHA-256 over its rows in a canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableChecksum {
    pub table: String,
    pub rows: i64,
    pub sha256: String,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Apply the embedded migrations of this backend.
    async fn migrate(&self) -> anyhow::Result<()>;

    /// `SELECT 1` on every pool.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Each connection pool: its name, connections open, and how many of them are idle.
    fn pool_stats(&self) -> Vec<(&'static str, u32, usize)>;

    /// Write a consistent copy of the database, as of one moment, to the new file `out`
    /// while the service keeps running (SQLite: `VACUUM INTO`). PostgreSQL is backed up with
    /// its own tools (docs/operations.md): an error saying so.
    async fn backup_into(&self, out: &std::path::Path) -> anyhow::Result<()>;

    async fn close(&self);

    /// The database URL with any password masked.
    fn redacted_url(&self) -> String;

    /// The scans a retention policy deletes as of `now`.
    async fn retention_candidates(
        &self,
        policy: RetentionPolicy,
        now: i64,
    ) -> Result<Vec<String>, StoreError>;

    /// Delete every catalog entry no finding references; how many went.
    async fn sweep_catalog(&self) -> Result<u64, StoreError>;

    /// The sweep's due mark (process-local, see the module's documentation).
    fn sweep_mark(&self) -> &SweepMark;

    /// Every table's row count and content checksum, to prove that a request changed
    /// nothing.
    async fn content_checksums(&self) -> Result<Vec<TableChecksum>, StoreError>;

    /// [`AdminStore::sweep_catalog`] when it is due; the mark stays if a deletion marked
    /// it again while the sweep ran (it may have committed after the sweep's snapshot).
    async fn sweep_catalog_if_due(&self) -> Result<u64, StoreError> {
        let seen = self.sweep_mark().seen();
        if seen == 0 {
            return Ok(0);
        }
        let n = self.sweep_catalog().await?;
        if n > 0 {
            metrics::counter!("scanvault_catalog_swept_total").increment(n);
        }
        self.sweep_mark().clear(seen);
        Ok(n)
    }
}

/// Non-zero while a catalog sweep is due; bumped by every deletion.
#[derive(Debug, Default)]
pub struct SweepMark(AtomicU64);

impl SweepMark {
    /// Note that a catalog entry may have lost its last finding. Call it after the
    /// transaction that removed the findings has committed, so that a sweep whose snapshot
    /// comes after the mark sees the removal.
    pub fn mark(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn is_due(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }

    fn seen(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn clear(&self, seen: u64) {
        let _ = self
            .0
            .compare_exchange(seen, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// The cutoff of the age rule as of `now` (microseconds).
pub(crate) fn retention_cutoff(policy: RetentionPolicy, now: i64) -> i64 {
    now - duration_micros(policy.max_age)
}

/// Apply a retention policy as of `now`: delete what it matches, in batches of 200 scans
/// per transaction, and sweep the catalog. Returns the number of scans deleted.
pub async fn apply_retention(
    store: &Store,
    policy: RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if !policy.is_enabled() {
        return Ok(0);
    }
    let ids = store
        .admin()
        .retention_candidates(policy, micros(now))
        .await?;
    let mut deleted = 0;
    for chunk in ids.chunks(200) {
        deleted += store.scans().delete(chunk).await?;
    }
    if deleted > 0 {
        metrics::counter!("scanvault_retention_deleted_scans_total").increment(deleted);
        store.admin().sweep_catalog_if_due().await?;
    }
    Ok(deleted)
}

/// Run [`AdminStore::sweep_catalog_if_due`] every `every` until `shutdown`.
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
        let Some(done) = every
            .unless_shutdown(store.admin().sweep_catalog_if_due())
            .await
        else {
            break;
        };
        match done {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "catalog sweep: removed unreferenced entries"),
            Err(e) => tracing::warn!(error = %e, "catalog sweep failed"),
        }
    }
}
