//! The SQLite backend: the embedded single-node default. Writes go through a pool of exactly
//! one connection (SQLite has one writer anyway; queueing in-process avoids `SQLITE_BUSY`),
//! reads through a separate pool, in WAL mode.

mod analytics;
mod feeds;
mod ingest;
mod jobs;
mod keys;
mod policies;
mod rows;
mod scans;
mod suppressions;
pub(crate) mod webhooks;

use anyhow::Context;
use async_trait::async_trait;
use sha2::Digest;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Column, ConnectOptions, Row, TypeInfo, ValueRef};
use std::str::FromStr;
use std::time::Duration;

use super::admin::{retention_cutoff, AdminStore, RetentionPolicy, SweepMark, TableChecksum};
use super::{sql, ErrorClass, StoreError, StoreOptions};
crate::store::monitor::impl_monitor_store!(SqliteStore, read, write);

use crate::redact::redact_url;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub(crate) struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    url: String,
    sweep: SweepMark,
}

/// What an SQLite (extended) result code means to the callers.
pub(crate) fn classify(code: &str) -> Option<ErrorClass> {
    match code {
        // constraint unique / primary key
        "2067" | "1555" => Some(ErrorClass::Conflict),
        // busy, locked, busy recovery
        "5" | "6" | "517" => Some(ErrorClass::Unavailable),
        _ => None,
    }
}

impl SqliteStore {
    pub(crate) async fn connect(url: &str, opts: &StoreOptions) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = opts
            .data_dir
            .as_ref()
            .filter(|_| opts.database_url.is_none())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating DATA_DIR {}", dir.display()))?;
        }
        // An ingest touches hundreds of index pages: keep them in memory (64 MiB a
        // connection; SQLite's default is 2 MiB), read the file through a mapping rather
        // than a copy per page, and checkpoint the WAL every ~40 MiB, not every 4.
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("invalid DATABASE_URL {}: {e}", redact_url(url)))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-65536")
            .pragma("mmap_size", "1073741824")
            .pragma("wal_autocheckpoint", "10000")
            .pragma("temp_store", "MEMORY")
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
        let pool = |max: u32, min: u32| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(min.min(max))
                .max_lifetime(opts.max_lifetime)
                .idle_timeout(opts.idle_timeout)
                .acquire_timeout(opts.acquire_timeout)
        };
        let opening = |e: sqlx::Error| anyhow::anyhow!("opening SQLite database {url}: {e}");
        let write = pool(1, 1)
            .connect_with(connect.clone())
            .await
            .map_err(opening)?;
        let read = pool(opts.max_connections.clamp(2, 16), 1)
            .connect_with(connect)
            .await
            .map_err(opening)?;
        Ok(SqliteStore {
            read,
            write,
            url: url.to_string(),
            sweep: SweepMark::default(),
        })
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.write)
            .await
            .context("applying database migrations")
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.write).await?;
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    fn pool_stats(&self) -> Vec<(&'static str, u32, usize)> {
        vec![
            ("write", self.write.size(), self.write.num_idle()),
            ("read", self.read.size(), self.read.num_idle()),
        ]
    }

    async fn backup_into(&self, out: &std::path::Path) -> anyhow::Result<()> {
        let path = out
            .to_str()
            .context("the backup file's path is not UTF-8")?;
        // A read connection: its snapshot is one moment of the database (WAL), and writers
        // go on meanwhile.
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.read)
            .await
            .with_context(|| format!("writing the backup to {path}"))?;
        Ok(())
    }

    fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    async fn retention_candidates(
        &self,
        policy: RetentionPolicy,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(sql::RETENTION_CANDIDATES)
            .bind(retention_cutoff(policy, now))
            .bind(policy.keep_per_image)
            .bind(i64::from(!policy.max_age.is_zero()))
            .fetch_all(&self.read)
            .await?)
    }

    /// `NOT IN` over a subquery, which SQLite evaluates once into a temporary index.
    async fn sweep_catalog(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM vulnerabilities WHERE id NOT IN (SELECT vulnerability_id FROM findings)",
        )
        .persistent(false)
        .execute(&self.write)
        .await?
        .rows_affected())
    }

    fn sweep_mark(&self) -> &SweepMark {
        &self.sweep
    }

    /// Each table's rows as text (every value with its type), sorted and hashed.
    async fn content_checksums(&self) -> Result<Vec<TableChecksum>, StoreError> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '\\_sqlx%' ESCAPE '\\' ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?;
        let mut out = vec![];
        for table in tables {
            let rows = sqlx::query(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))
                .persistent(false)
                .fetch_all(&self.read)
                .await?;
            let mut lines: Vec<String> = rows.iter().map(row_text).collect();
            lines.sort();
            let mut h = sha2::Sha256::new();
            for l in &lines {
                h.update(l.as_bytes());
                h.update(b"\n");
            }
            out.push(TableChecksum {
                table,
                rows: lines.len() as i64,
                sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            });
        }
        Ok(out)
    }
}

/// A row as text: each column's name, storage class and value.
fn row_text(row: &SqliteRow) -> String {
    row.columns()
        .iter()
        .map(|c| {
            let i = c.ordinal();
            let kind = row
                .try_get_raw(i)
                .map(|v| {
                    if v.is_null() {
                        "NULL".to_string()
                    } else {
                        v.type_info().name().to_string()
                    }
                })
                .unwrap_or_default();
            let value = match kind.as_str() {
                "NULL" => String::new(),
                "INTEGER" => row.get::<i64, _>(i).to_string(),
                "REAL" => row.get::<f64, _>(i).to_string(),
                "BLOB" => format!("{:?}", row.get::<Vec<u8>, _>(i)),
                _ => format!("{:?}", row.get::<String, _>(i)),
            };
            format!("{}={kind}:{value}", c.name())
        })
        .collect::<Vec<_>>()
        .join("|")
}
