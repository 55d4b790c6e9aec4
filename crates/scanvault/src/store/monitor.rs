//! Continuous monitoring: stored package inventories, re-match rounds, scan schedules and
//! the batches their rounds make (ADR 0027).
//!
//! The statements are the same on both backends, so the implementation is written once, by
//! [`impl_monitor_store!`], inside each backend's module (which owns its pools).

use async_trait::async_trait;

use super::body::{decompress, StoredBody, BODY_ENCODING};
use super::StoreError;

/// A package inventory to store.
#[derive(Debug, Clone)]
pub struct NewInventory<'a> {
    pub image_digest: &'a str,
    pub image_name: &'a str,
    pub image_tag: &'a str,
    /// `cyclonedx` or `spdx`.
    pub format: &'a str,
    pub spec_version: &'a str,
    pub packages: i64,
    /// The document as received or made.
    pub document: &'a [u8],
    /// `scan` (made by the worker from its scan) or `ingest` (`POST /sboms`).
    pub source: InventorySource,
    pub now: i64,
}

/// Where an inventory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventorySource {
    /// Made by the worker from its own scan: stored once per digest, never replaced.
    Scan,
    /// Given through `POST /sboms` or `scanvault ingest`: replaces the digest's inventory.
    Ingest,
}

impl InventorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            InventorySource::Scan => "scan",
            InventorySource::Ingest => "ingest",
        }
    }
}

/// A stored inventory, without its document.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InventoryRow {
    pub image_digest: String,
    pub image_name: String,
    pub image_tag: String,
    pub format: String,
    pub spec_version: String,
    pub packages: i64,
    pub size_bytes: i64,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An image of the current fleet to re-match: one per (name, digest), whatever its tags.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RematchTarget {
    pub image_name: String,
    pub image_tag: String,
    pub image_digest: String,
}

/// A batch with the exact count of its jobs in each state.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct BatchRow {
    pub id: String,
    pub kind: String,
    pub schedule_id: Option<String>,
    pub created_at: i64,
    pub created_by: Option<String>,
    /// JSON array of what could not be queued (`{Entry, Error}`).
    pub problems: String,
    pub queued: i64,
    pub running: i64,
    pub completed: i64,
    pub cached: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// A scan schedule.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduleRow {
    pub id: String,
    /// JSON array of references and `registry/repo:*` patterns.
    pub images: String,
    pub interval_seconds: i64,
    pub next_run_at: i64,
    pub last_batch_id: Option<String>,
    pub created_at: i64,
    pub created_by: Option<String>,
}

#[async_trait]
pub trait MonitorStore: Send + Sync {
    /// Store an inventory; `false` when the worker's inventory of this digest exists
    /// already (it is written once). An ingested one replaces what is stored.
    async fn put_inventory(&self, inv: &NewInventory<'_>) -> Result<bool, StoreError>;

    async fn inventory(&self, digest: &str) -> Result<Option<InventoryRow>, StoreError>;

    /// The inventory with its document as stored (decompressed).
    async fn inventory_document(
        &self,
        digest: &str,
    ) -> Result<Option<(InventoryRow, Vec<u8>)>, StoreError>;

    /// The current fleet's images whose digest has an inventory, optionally only those
    /// named `image` (and tagged `tag`, when not empty).
    async fn rematch_targets(
        &self,
        image: &str,
        tag: &str,
    ) -> Result<Vec<RematchTarget>, StoreError>;

    /// The vulnerability database (its `UpdatedAt`) of the last re-match round, and when
    /// that round started (microseconds).
    async fn rematch_state(&self) -> Result<(String, i64), StoreError>;

    /// Start a round for the database `db` unless one was made for it, or one started
    /// after `not_before`: whether this caller starts it (one process wins).
    async fn begin_rematch_round(
        &self,
        db: &str,
        now: i64,
        not_before: i64,
    ) -> Result<bool, StoreError>;

    /// Record a batch whose jobs are queued (they joined it through `NewJob::batch`).
    async fn insert_batch(
        &self,
        id: &str,
        kind: &str,
        schedule_id: Option<&str>,
        by: Option<&str>,
        problems: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    async fn batch(&self, id: &str) -> Result<Option<BatchRow>, StoreError>;

    async fn insert_schedule(&self, s: &ScheduleRow) -> Result<(), StoreError>;

    async fn schedules(&self) -> Result<Vec<ScheduleRow>, StoreError>;

    async fn schedule(&self, id: &str) -> Result<Option<ScheduleRow>, StoreError>;

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError>;

    /// Schedules whose next round is due at `now`.
    async fn due_schedules(&self, now: i64) -> Result<Vec<ScheduleRow>, StoreError>;

    /// Move a schedule's next round from `expected` to `next`: whether this caller won the
    /// round (another process may have taken it).
    async fn advance_schedule(
        &self,
        id: &str,
        expected: i64,
        next: i64,
    ) -> Result<bool, StoreError>;

    /// Note the batch of a schedule's latest round.
    async fn set_schedule_batch(&self, id: &str, batch: &str) -> Result<(), StoreError>;

    /// The registry URL and `Authorization` a job was requested with.
    async fn job_credentials(&self, job_id: &str) -> Result<Option<(String, String)>, StoreError>;

    /// Forget them (the job ended).
    async fn forget_job_credentials(&self, job_id: &str) -> Result<(), StoreError>;
}

pub(crate) const INVENTORY_COLUMNS: &str = "image_digest, image_name, image_tag, format, \
     spec_version, packages, size_bytes, source, created_at, updated_at";

pub(crate) const PUT_INVENTORY: &str = "INSERT INTO inventories (image_digest, image_name, \
     image_tag, format, spec_version, packages, size_bytes, encoding, document, source, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
     ON CONFLICT (image_digest) DO UPDATE SET image_name = excluded.image_name, \
     image_tag = excluded.image_tag, format = excluded.format, \
     spec_version = excluded.spec_version, packages = excluded.packages, \
     size_bytes = excluded.size_bytes, encoding = excluded.encoding, \
     document = excluded.document, source = excluded.source, updated_at = excluded.updated_at \
     WHERE excluded.source = 'ingest' \
     RETURNING image_digest";

pub(crate) const INVENTORY: &str = const_format::concatcp!(
    "SELECT ",
    INVENTORY_COLUMNS,
    " FROM inventories WHERE image_digest = $1"
);

pub(crate) const INVENTORY_DOCUMENT: &str =
    "SELECT encoding, document FROM inventories WHERE image_digest = $1";

/// One row per (name, digest) of the current fleet with an inventory; its first tag.
pub(crate) const REMATCH_TARGETS: &str = "SELECT s.image_name, MIN(r.image_tag) AS image_tag, \
     s.image_digest FROM fleet_refs r JOIN scans s ON s.id = r.scan_id \
     JOIN inventories i ON i.image_digest = s.image_digest \
     WHERE ($1 = '' OR s.image_name = $1) AND ($2 = '' OR r.image_tag = $2) \
     GROUP BY s.image_name, s.image_digest ORDER BY s.image_name, s.image_digest";

pub(crate) const REMATCH_STATE: &str =
    "SELECT db_updated_at, last_round_at FROM rematch_state WHERE id = 1";

pub(crate) const BEGIN_REMATCH_ROUND: &str =
    "UPDATE rematch_state SET db_updated_at = $1, last_round_at = $2 \
     WHERE id = 1 AND db_updated_at <> $1 AND last_round_at <= $3";

pub(crate) const INSERT_BATCH: &str = "INSERT INTO scan_batches (id, kind, schedule_id, \
     created_at, created_by, problems) VALUES ($1, $2, $3, $4, $5, $6)";

/// A job joins a batch (a job already active when the round came joins it too).
pub(crate) const JOIN_BATCH: &str =
    "INSERT INTO scan_batch_jobs (batch_id, job_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// The batch and its jobs by state; `cached` = completed from a fresh scan (the job went
/// from pulling straight to completed, which only a cache hit does).
pub(crate) const BATCH: &str = "SELECT b.id, b.kind, b.schedule_id, b.created_at, \
     b.created_by, b.problems, \
     COALESCE(SUM(CASE WHEN j.status = 'queued' THEN 1 ELSE 0 END), 0) AS queued, \
     COALESCE(SUM(CASE WHEN j.status IN ('pulling', 'scanning') THEN 1 ELSE 0 END), 0) AS running, \
     COALESCE(SUM(CASE WHEN j.status = 'completed' AND NOT EXISTS (SELECT 1 FROM scan_audit_log a \
        WHERE a.job_id = j.id AND a.old_status = 'pulling' AND a.new_status = 'completed') \
        THEN 1 ELSE 0 END), 0) AS completed, \
     COALESCE(SUM(CASE WHEN j.status = 'completed' AND EXISTS (SELECT 1 FROM scan_audit_log a \
        WHERE a.job_id = j.id AND a.old_status = 'pulling' AND a.new_status = 'completed') \
        THEN 1 ELSE 0 END), 0) AS cached, \
     COALESCE(SUM(CASE WHEN j.status = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
     COALESCE(SUM(CASE WHEN j.status = 'cancelled' THEN 1 ELSE 0 END), 0) AS cancelled \
     FROM scan_batches b LEFT JOIN scan_batch_jobs m ON m.batch_id = b.id \
     LEFT JOIN scan_jobs j ON j.id = m.job_id WHERE b.id = $1 \
     GROUP BY b.id, b.kind, b.schedule_id, b.created_at, b.created_by, b.problems";

pub(crate) const SCHEDULE_COLUMNS: &str =
    "id, images, interval_seconds, next_run_at, last_batch_id, created_at, created_by";

pub(crate) const INSERT_SCHEDULE: &str = "INSERT INTO scan_schedules (id, images, \
     interval_seconds, next_run_at, last_batch_id, created_at, created_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const SCHEDULES: &str = const_format::concatcp!(
    "SELECT ",
    SCHEDULE_COLUMNS,
    " FROM scan_schedules ORDER BY created_at, id"
);

pub(crate) const SCHEDULE: &str = const_format::concatcp!(
    "SELECT ",
    SCHEDULE_COLUMNS,
    " FROM scan_schedules WHERE id = $1"
);

pub(crate) const DUE_SCHEDULES: &str = const_format::concatcp!(
    "SELECT ",
    SCHEDULE_COLUMNS,
    " FROM scan_schedules WHERE next_run_at <= $1 ORDER BY next_run_at, id"
);

pub(crate) const ADVANCE_SCHEDULE: &str =
    "UPDATE scan_schedules SET next_run_at = $3 WHERE id = $1 AND next_run_at = $2";

pub(crate) const SET_SCHEDULE_BATCH: &str =
    "UPDATE scan_schedules SET last_batch_id = $2 WHERE id = $1";

pub(crate) const DELETE_SCHEDULE: &str = "DELETE FROM scan_schedules WHERE id = $1";

pub(crate) const INSERT_JOB_CREDENTIALS: &str =
    "INSERT INTO job_credentials (job_id, registry_url, auth_header) VALUES ($1, $2, $3)";

pub(crate) const JOB_CREDENTIALS: &str =
    "SELECT registry_url, auth_header FROM job_credentials WHERE job_id = $1";

pub(crate) const FORGET_JOB_CREDENTIALS: &str = "DELETE FROM job_credentials WHERE job_id = $1";

/// The compressed form of an inventory document.
pub(crate) fn compress(document: &[u8]) -> Result<StoredBody, StoreError> {
    StoredBody::of(document)
}

pub(crate) fn decompress_document(encoding: &str, body: &[u8]) -> Result<Vec<u8>, StoreError> {
    decompress(encoding, body).map_err(|e| StoreError::Other(e.into()))
}

pub(crate) const ENCODING: &str = BODY_ENCODING;

/// The [`MonitorStore`] of a backend whose pools are `self.$read` and `self.$write`.
macro_rules! impl_monitor_store {
    ($store:ty, $read:ident, $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::monitor::MonitorStore for $store {
            async fn put_inventory(
                &self,
                inv: &$crate::store::monitor::NewInventory<'_>,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::monitor as m;
                let body = m::compress(inv.document)?;
                let written: Option<String> = sqlx::query_scalar(m::PUT_INVENTORY)
                    .bind(inv.image_digest)
                    .bind(inv.image_name)
                    .bind(inv.image_tag)
                    .bind(inv.format)
                    .bind(inv.spec_version)
                    .bind(inv.packages)
                    .bind(inv.document.len() as i64)
                    .bind(m::ENCODING)
                    .bind(&body.compressed)
                    .bind(inv.source.as_str())
                    .bind(inv.now)
                    .fetch_optional(&self.$write)
                    .await?;
                Ok(written.is_some())
            }

            async fn inventory(
                &self,
                digest: &str,
            ) -> Result<Option<$crate::store::monitor::InventoryRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as($crate::store::monitor::INVENTORY)
                    .bind(digest)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn inventory_document(
                &self,
                digest: &str,
            ) -> Result<
                Option<($crate::store::monitor::InventoryRow, Vec<u8>)>,
                $crate::store::StoreError,
            > {
                use $crate::store::monitor as m;
                let Some(row) = self.inventory(digest).await? else {
                    return Ok(None);
                };
                let stored: Option<(String, Vec<u8>)> = sqlx::query_as(m::INVENTORY_DOCUMENT)
                    .bind(digest)
                    .fetch_optional(&self.$read)
                    .await?;
                match stored {
                    Some((encoding, body)) => {
                        Ok(Some((row, m::decompress_document(&encoding, &body)?)))
                    }
                    None => Ok(None),
                }
            }

            async fn rematch_targets(
                &self,
                image: &str,
                tag: &str,
            ) -> Result<Vec<$crate::store::monitor::RematchTarget>, $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::monitor::REMATCH_TARGETS)
                    .bind(image)
                    .bind(tag)
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn rematch_state(&self) -> Result<(String, i64), $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::monitor::REMATCH_STATE)
                    .fetch_optional(&self.$write)
                    .await?
                    .unwrap_or_default())
            }

            async fn begin_rematch_round(
                &self,
                db: &str,
                now: i64,
                not_before: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                Ok(sqlx::query($crate::store::monitor::BEGIN_REMATCH_ROUND)
                    .bind(db)
                    .bind(now)
                    .bind(not_before)
                    .execute(&self.$write)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn insert_batch(
                &self,
                id: &str,
                kind: &str,
                schedule_id: Option<&str>,
                by: Option<&str>,
                problems: &str,
                now: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::monitor::INSERT_BATCH)
                    .bind(id)
                    .bind(kind)
                    .bind(schedule_id)
                    .bind(now)
                    .bind(by)
                    .bind(problems)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn batch(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::monitor::BatchRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::monitor::BATCH)
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn insert_schedule(
                &self,
                s: &$crate::store::monitor::ScheduleRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::monitor::INSERT_SCHEDULE)
                    .bind(&s.id)
                    .bind(&s.images)
                    .bind(s.interval_seconds)
                    .bind(s.next_run_at)
                    .bind(&s.last_batch_id)
                    .bind(s.created_at)
                    .bind(&s.created_by)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn schedules(
                &self,
            ) -> Result<Vec<$crate::store::monitor::ScheduleRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::monitor::SCHEDULES)
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn schedule(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::monitor::ScheduleRow>, $crate::store::StoreError>
            {
                Ok(sqlx::query_as($crate::store::monitor::SCHEDULE)
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn delete_schedule(&self, id: &str) -> Result<bool, $crate::store::StoreError> {
                Ok(sqlx::query($crate::store::monitor::DELETE_SCHEDULE)
                    .bind(id)
                    .execute(&self.$write)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn due_schedules(
                &self,
                now: i64,
            ) -> Result<Vec<$crate::store::monitor::ScheduleRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::monitor::DUE_SCHEDULES)
                    .bind(now)
                    .fetch_all(&self.$write)
                    .await?)
            }

            async fn advance_schedule(
                &self,
                id: &str,
                expected: i64,
                next: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                Ok(sqlx::query($crate::store::monitor::ADVANCE_SCHEDULE)
                    .bind(id)
                    .bind(expected)
                    .bind(next)
                    .execute(&self.$write)
                    .await?
                    .rows_affected()
                    > 0)
            }

            async fn set_schedule_batch(
                &self,
                id: &str,
                batch: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::monitor::SET_SCHEDULE_BATCH)
                    .bind(id)
                    .bind(batch)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn job_credentials(
                &self,
                job_id: &str,
            ) -> Result<Option<(String, String)>, $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::monitor::JOB_CREDENTIALS)
                    .bind(job_id)
                    .fetch_optional(&self.$write)
                    .await?)
            }

            async fn forget_job_credentials(
                &self,
                job_id: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::monitor::FORGET_JOB_CREDENTIALS)
                    .bind(job_id)
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_monitor_store;
