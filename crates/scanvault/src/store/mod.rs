//! Storage: two backends, each on its native sqlx driver, behind one handle split by
//! capability.
//!
//! ```text
//! Store ── scans()     ScanStore      ingest (one transaction), lookups, deletion
//!       ── analytics() AnalyticsStore the fleet: summary, trends, top CVEs, listings, compaction
//!       ── jobs()      JobStore       the scan queue, leases, the audit log
//!       ── keys()      KeyStore       API keys
//!       ── admin()     AdminStore     migrations, health, retention candidates, catalog sweep
//!       ── webhooks()  WebhookStore   webhooks and the outbox of their deliveries
//!       ── feeds()     FeedStore      exploit feeds (KEV, EPSS)
//!       ── policies()  PolicyStore    compliance policies, fixes first seen
//!       ── suppressions() SuppressionStore  triage decisions and their audit trail
//! ```
//!
//! `postgres/` and `sqlite/` implement every trait in files of the same names with their
//! functions in the same order, so that comparing the two shows only the dialect. What
//! both backends decide alike is written once: the ingest transaction (`ingest.rs`, generic
//! over each backend's primitive statements), the fleet arithmetic
//! (`scanvault_core::fleet`), and SQL text that is the same in both dialects (`sql.rs`).
//!
//! Every timestamp is an integer of microseconds since the epoch, bound from Rust (never
//! `now()`), so that both backends bucket and compare time the same way (ADR 0001).
//!
//! Errors: lookups return `Result<Option<T>, StoreError>`; the caller decides what absence
//! means. `StoreError::Unavailable` means the database could not be reached (→ 503).

pub mod admin;
pub mod analytics;
pub mod body;
pub mod feeds;
mod ingest;
pub mod jobs;
pub mod keys;
pub mod monitor;
pub mod policies;
mod postgres;
pub mod scans;
mod sql;
mod sqlite;
pub mod suppressions;
pub mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use admin::AdminStore;
pub use analytics::AnalyticsStore;
pub use body::StoredBody;
pub use feeds::FeedStore;
pub use jobs::JobStore;
pub use keys::KeyStore;
pub use monitor::MonitorStore;
pub use policies::PolicyStore;
pub use scans::{IngestOutcome, NewScan, ScanFilter, ScanRow, ScanStore};
pub use suppressions::SuppressionStore;
pub use webhooks::WebhookStore;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a database URL names.
    pub fn of_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            anyhow::bail!(
                "DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got a URL with scheme {:?})",
                url.split(':').next().unwrap_or("")
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the work for a passing reason.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A write lost to a concurrent one (unique violation, serialization failure, deadlock).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => {
                let msg = db.message().to_string();
                let class =
                    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                        postgres::classify(pg.code())
                    } else {
                        sqlite::classify(db.code().as_deref().unwrap_or_default())
                    };
                match class {
                    Some(ErrorClass::Conflict) => StoreError::Conflict(msg),
                    Some(ErrorClass::Unavailable) => StoreError::Unavailable(msg),
                    None => StoreError::Other(anyhow::Error::new(e)),
                }
            }
            _ => StoreError::Other(anyhow::Error::new(e)),
        }
    }
}

/// What a backend's error code means to the callers ([`StoreError`]).
pub(crate) enum ErrorClass {
    Conflict,
    Unavailable,
}

/// How to open the database.
#[derive(Clone)]
pub struct StoreOptions {
    /// `postgres://…`, `sqlite:…`, or `None` for the embedded SQLite file. Holds credentials:
    /// never logged (`Debug` masks it).
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_connections: u32,
    pub min_connections: u32,
    pub max_lifetime: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::redact::redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .finish_non_exhaustive()
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            database_url: None,
            data_dir: None,
            max_connections: 25,
            min_connections: 2,
            max_lifetime: Some(Duration::from_secs(1800)),
            idle_timeout: Some(Duration::from_secs(300)),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl StoreOptions {
    /// The URL actually used, with the embedded default resolved.
    pub fn effective_url(&self) -> String {
        match &self.database_url {
            Some(u) if !u.trim().is_empty() => u.trim().to_string(),
            _ => {
                let dir = self.data_dir.clone().unwrap_or_else(|| PathBuf::from("."));
                format!("sqlite://{}?mode=rwc", dir.join("scanvault.db").display())
            }
        }
    }
}

/// Everything a backend implements.
pub trait Database:
    ScanStore
    + AnalyticsStore
    + JobStore
    + KeyStore
    + AdminStore
    + WebhookStore
    + FeedStore
    + PolicyStore
    + SuppressionStore
    + MonitorStore
{
}

impl<
        T: ScanStore
            + AnalyticsStore
            + JobStore
            + KeyStore
            + AdminStore
            + WebhookStore
            + FeedStore
            + PolicyStore
            + SuppressionStore
            + MonitorStore,
    > Database for T
{
}

/// The store: one backend, reached by capability. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<dyn Database>,
    backend: Backend,
}

impl Store {
    /// Connect (creating the SQLite file and its directory when needed). Does not migrate.
    pub async fn connect(opts: &StoreOptions) -> anyhow::Result<Store> {
        let url = opts.effective_url();
        let backend = Backend::of_url(&url)?;
        let db: Arc<dyn Database> = match backend {
            Backend::Postgres => Arc::new(postgres::PgStore::connect(&url, opts).await?),
            Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(&url, opts).await?),
        };
        Ok(Store { db, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn scans(&self) -> &dyn ScanStore {
        &*self.db
    }

    pub fn analytics(&self) -> &dyn AnalyticsStore {
        &*self.db
    }

    pub fn jobs(&self) -> &dyn JobStore {
        &*self.db
    }

    pub fn keys(&self) -> &dyn KeyStore {
        &*self.db
    }

    pub fn admin(&self) -> &dyn AdminStore {
        &*self.db
    }

    pub fn webhooks(&self) -> &dyn WebhookStore {
        &*self.db
    }

    pub fn feeds(&self) -> &dyn FeedStore {
        &*self.db
    }

    pub fn policies(&self) -> &dyn PolicyStore {
        &*self.db
    }

    pub fn monitor(&self) -> &dyn MonitorStore {
        &*self.db
    }

    pub fn suppressions(&self) -> &dyn SuppressionStore {
        &*self.db
    }

    /// Apply the embedded migrations of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.admin().migrate().await
    }

    pub async fn close(&self) {
        self.admin().close().await
    }

    /// The database URL with any password masked.
    pub fn redacted_url(&self) -> String {
        self.admin().redacted_url()
    }
}

/// Microseconds since the Unix epoch.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// A duration in microseconds, saturating.
pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}
