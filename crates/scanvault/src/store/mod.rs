//! Storage: one implementation over `sqlx::Any`, two backends.
//!
//! The SQL is written once, in the portable subset both SQLite and PostgreSQL understand
//! (`$n` binds, `RETURNING`, `ON CONFLICT`, `CAST(… AS BIGINT)`), and every timestamp is
//! an integer of microseconds since the epoch, bound from Rust (never `now()`), so the two
//! backends run the same statements and behave the same by construction. The few places
//! where they must differ by design (the job claim, row locks) branch on [`Backend`]; and
//! the writes that end an ingest, which PostgreSQL receives as one statement and SQLite one
//! by one (`batch`).
//!
//! SQLite is the embedded single-node default: writes go through a pool of exactly one
//! connection (SQLite has one writer anyway; queueing in-process avoids `SQLITE_BUSY`),
//! reads through a separate pool in WAL mode. PostgreSQL uses one pool for both.
//!
//! Errors: lookups return `Result<Option<T>, StoreError>`; the caller decides what absence
//! means. `StoreError::Unavailable` means the database could not be reached (→ 503).

pub mod analytics;
mod batch;
pub mod catalog;
pub mod jobs;
pub mod keys;
pub mod retention;
mod rowset;
pub mod scans;
pub mod upkeep;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::redact::{redact_error, redact_url};
pub use scans::{IngestOutcome, NewScan, ScanFilter, ScanRow};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A nullable `DOUBLE PRECISION` parameter. sqlx's Any driver (0.8) sends a `None::<f64>`
/// to PostgreSQL as a 4-byte `real` NULL, so a statement prepared and cached with a value
/// there fails when a later execution binds NULL (22P03), and the other way round. This
/// binds NULL as the 8-byte type every value is sent as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OptF64(pub Option<f64>);

impl sqlx::Type<sqlx::Any> for OptF64 {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <f64 as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for OptF64 {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self.0 {
            Some(v) => <f64 as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&v, buf),
            // sqlx 0.8's Any driver maps the NULL of `f32` (kind `Real`) to PostgreSQL's
            // 8-byte NULL and the NULL of `f64` to the 4-byte one. Cargo.lock pins the
            // version; `tests/it/api.rs` fails with 22P03 if an upgrade changes this.
            None => <Option<f32> as sqlx::Encode<'q, sqlx::Any>>::encode_by_ref(&None, buf),
        }
    }
}

/// The JSON text of `v` (a slice of plain serializable rows cannot fail to serialise).
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(e.into()))
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the work for a passing reason.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A write lost to a concurrent one (unique violation, serialization failure).
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
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                let msg = db.message().to_string();
                match code.as_str() {
                    // PostgreSQL: unique violation, serialization failure, deadlock
                    "23505" | "40001" | "40P01" => StoreError::Conflict(msg),
                    // SQLite: constraint unique / primary key
                    "2067" | "1555" => StoreError::Conflict(msg),
                    // SQLite busy/locked; PostgreSQL admin shutdown, cannot connect now,
                    // too many connections, connection failures
                    "5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "53300" | "08000"
                    | "08003" | "08006" | "08001" | "08004" => StoreError::Unavailable(msg),
                    _ => StoreError::Other(anyhow::Error::new(e)),
                }
            }
            _ => StoreError::Other(anyhow::Error::new(e)),
        }
    }
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `postgres://…`, `sqlite:…`, or `None` for the embedded SQLite file.
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_connections: u32,
    pub min_connections: u32,
    pub max_lifetime: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub acquire_timeout: Duration,
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

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
    /// Poked when a job is queued, to wake in-process workers (PostgreSQL also uses LISTEN/NOTIFY).
    job_notify: tokio::sync::Notify,
    /// Cancellation tokens of the jobs this process is running, so a cancel request kills
    /// the scan at once (other processes learn of it through NOTIFY or their next lease renewal).
    running_jobs:
        std::sync::Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
    url: String,
    /// Non-zero while a catalog sweep is due (store/catalog.rs); bumped by every mark.
    catalog_sweep_due: std::sync::atomic::AtomicU64,
    /// No attempt to shrink the delta tables before this (PostgreSQL; store/analytics.rs).
    shrink_deltas_after: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Store {
    /// Connect (creating the SQLite file and its directory when needed). Does not migrate.
    pub async fn connect(opts: &StoreOptions) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let url = opts.effective_url();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!(
                "DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got a URL with scheme {:?})",
                url.split(':').next().unwrap_or("")
            );
        };
        if backend == Backend::Sqlite {
            if let Some(dir) = opts
                .data_dir
                .as_ref()
                .filter(|_| opts.database_url.is_none())
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating DATA_DIR {}", dir.display()))?;
            }
        }
        // Prepared statements are cached per connection on both backends. Every nullable
        // float is bound through [`OptF64`], so a parameter keeps one type across executions.
        let connect_opts = AnyConnectOptions::from_str(&url)
            .map_err(|e| anyhow::anyhow!("invalid DATABASE_URL: {}", redact_error(&e.to_string())))?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
        let base = |max: u32, min: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(min.min(max))
                .max_lifetime(opts.max_lifetime)
                .idle_timeout(opts.idle_timeout)
                .acquire_timeout(opts.acquire_timeout)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA foreign_keys = ON",
                                "PRAGMA busy_timeout = 10000",
                                // An ingest touches hundreds of index pages: keep them in
                                // memory (64 MiB a connection; SQLite's default is 2 MiB),
                                // read the file through a mapping rather than a copy per
                                // page, and checkpoint the WAL every ~40 MiB, not every 4.
                                "PRAGMA cache_size = -65536",
                                "PRAGMA mmap_size = 1073741824",
                                "PRAGMA wal_autocheckpoint = 10000",
                                "PRAGMA temp_store = MEMORY",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let (read, write) = match backend {
            Backend::Postgres => {
                let pool = base(opts.max_connections, opts.min_connections)
                    .connect_with(connect_opts)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "connecting to PostgreSQL: {}",
                            redact_error(&e.to_string())
                        )
                    })?;
                (pool.clone(), pool)
            }
            Backend::Sqlite => {
                let write = base(1, 1)
                    .connect_with(connect_opts.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("opening SQLite database {url}: {e}"))?;
                let read = base(opts.max_connections.clamp(2, 16), 1)
                    .connect_with(connect_opts)
                    .await
                    .map_err(|e| anyhow::anyhow!("opening SQLite database {url}: {e}"))?;
                (read, write)
            }
        };
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                read,
                write,
                job_notify: tokio::sync::Notify::new(),
                running_jobs: Default::default(),
                url,
                catalog_sweep_due: Default::default(),
                shrink_deltas_after: Default::default(),
            }),
        })
    }

    /// Apply the embedded migrations of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend() {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator
            .run(&self.inner.write)
            .await
            .context("applying database migrations")?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The database URL with any password masked.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.inner.url)
    }

    /// The URL the store was opened with (contains credentials: never log it).
    pub(crate) fn database_url(&self) -> &str {
        &self.inner.url
    }

    pub(crate) fn read_pool(&self) -> &AnyPool {
        &self.inner.read
    }

    pub(crate) fn write_pool(&self) -> &AnyPool {
        &self.inner.write
    }

    /// A connection of its own, outside the pools, for long maintenance statements: they
    /// neither hold a pooled connection nor set off the slow-statement warning.
    pub(crate) async fn maintenance_connection(&self) -> Result<sqlx::AnyConnection, StoreError> {
        let opts = AnyConnectOptions::from_str(&self.inner.url)?.disable_statement_logging();
        Ok(opts.connect().await?)
    }

    pub(crate) fn job_notify(&self) -> &tokio::sync::Notify {
        &self.inner.job_notify
    }

    /// Wait until a job may be available (new job, retry, reclaimed lease) or `timeout`.
    pub async fn wait_for_jobs(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.job_notify.notified()).await;
    }

    /// Register a job this process runs; the token fires when it is cancelled.
    pub fn register_running_job(&self, job_id: &str, token: tokio_util::sync::CancellationToken) {
        if let Ok(mut m) = self.inner.running_jobs.lock() {
            m.insert(job_id.to_string(), token);
        }
    }

    pub fn unregister_running_job(&self, job_id: &str) {
        if let Ok(mut m) = self.inner.running_jobs.lock() {
            m.remove(job_id);
        }
    }

    /// Fire the cancellation token of a job running in this process, if any.
    pub fn signal_job_cancelled(&self, job_id: &str) -> bool {
        let token = self
            .inner
            .running_jobs
            .lock()
            .ok()
            .and_then(|m| m.get(job_id).cloned());
        match token {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// `SELECT 1` on the pool that serves writes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.write_pool()).await?;
        if self.backend() == Backend::Sqlite {
            sqlx::query("SELECT 1").execute(self.read_pool()).await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }

    /// `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose single writer already
    /// serialises the transaction.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

/// Microseconds since the Unix epoch.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}
