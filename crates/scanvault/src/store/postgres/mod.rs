//! The PostgreSQL backend: the production store, shared by any number of API and worker
//! processes. One pool serves reads and writes.

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
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::admin::{retention_cutoff, AdminStore, RetentionPolicy, SweepMark, TableChecksum};
use super::{sql, ErrorClass, StoreError, StoreOptions};
crate::store::monitor::impl_monitor_store!(PgStore, pool, pool);

use crate::redact::{redact_error, redact_url};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub(crate) struct PgStore {
    pool: PgPool,
    /// The URL the store was opened with (holds credentials: never logged).
    url: String,
    sweep: SweepMark,
    /// No attempt to shrink the delta tables before this (analytics.rs).
    shrink_after: Mutex<Option<Instant>>,
}

/// What a PostgreSQL error code means to the callers.
pub(crate) fn classify(code: &str) -> Option<ErrorClass> {
    match code {
        // unique violation, serialization failure, deadlock
        "23505" | "40001" | "40P01" => Some(ErrorClass::Conflict),
        // admin shutdown, crash shutdown, cannot connect now, too many connections,
        // connection failures
        "57P01" | "57P02" | "57P03" | "53300" | "08000" | "08003" | "08006" | "08001" | "08004" => {
            Some(ErrorClass::Unavailable)
        }
        _ => None,
    }
}

/// Where connections go, for messages (no password).
fn target(o: &PgConnectOptions) -> String {
    format!(
        "{}:{} (database {}, user {})",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or(o.get_username()),
        o.get_username()
    )
}

/// Open one connection and close it: why it failed, in words an operator acts on.
async fn probe(o: &PgConnectOptions, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, PgConnection::connect_with(o)).await {
        Ok(Ok(c)) => {
            let _ = c.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(connect_failure(&e)),
        Err(_) => Err(format!(
            "no answer within {} s (a firewall, or a host that is down?)",
            timeout.as_secs_f64()
        )),
    }
}

fn connect_failure(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused: nothing listens there (is PostgreSQL running, on this host and port?)".into()
        }
        sqlx::Error::Io(io) if io.to_string().contains("lookup address") => {
            format!("the host name does not resolve ({io})")
        }
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("28P01" | "28000") => format!("authentication failed: {}", d.message()),
            Some("3D000") => format!("{} (create it, or correct DATABASE_URL)", d.message()),
            _ => d.message().to_string(),
        },
        other => redact_error(&other.to_string()),
    }
}

impl PgStore {
    pub(crate) async fn connect(url: &str, opts: &StoreOptions) -> anyhow::Result<PgStore> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("invalid DATABASE_URL: {}", redact_error(&e.to_string())))?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
        // One connection first, on its own: the pool would report only that it timed out.
        probe(&connect, opts.acquire_timeout).await.map_err(|why| {
            anyhow::anyhow!(
                "cannot connect to PostgreSQL at {}: {why}",
                target(&connect)
            )
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .min_connections(opts.min_connections.min(opts.max_connections))
            .max_lifetime(opts.max_lifetime)
            .idle_timeout(opts.idle_timeout)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| {
                anyhow::anyhow!("connecting to PostgreSQL: {}", redact_error(&e.to_string()))
            })?;
        Ok(PgStore {
            pool,
            url: url.to_string(),
            sweep: SweepMark::default(),
            shrink_after: Mutex::new(None),
        })
    }

    /// A connection of its own, outside the pool, for long maintenance statements: it
    /// neither holds a pooled connection nor sets off the slow-statement warning.
    async fn maintenance_connection(&self) -> Result<PgConnection, StoreError> {
        let opts = PgConnectOptions::from_str(&self.url)?.disable_statement_logging();
        Ok(opts.connect().await?)
    }
}

#[async_trait]
impl AdminStore for PgStore {
    async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }

    fn pool_stats(&self) -> Vec<(&'static str, u32, usize)> {
        vec![("main", self.pool.size(), self.pool.num_idle())]
    }

    async fn backup_into(&self, _out: &std::path::Path) -> anyhow::Result<()> {
        anyhow::bail!(
            "scanvault backup copies the embedded SQLite database; back up PostgreSQL with \
             pg_dump, or a base backup with WAL archiving (docs/operations.md)"
        )
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if sqlx::query("SELECT 1").execute(&self.pool).await.is_ok() {
            return Ok(());
        }
        let options = self.pool.connect_options();
        let why = match probe(&options, Duration::from_secs(3)).await {
            Err(why) => why,
            Ok(()) => "connections succeed, but none of the pool's answered".into(),
        };
        Err(StoreError::Unavailable(format!(
            "cannot connect to PostgreSQL at {}: {why}",
            target(&options)
        )))
    }

    async fn close(&self) {
        self.pool.close().await;
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
            .fetch_all(&self.pool)
            .await?)
    }

    /// One statement: the distinct ids of the versions' vulnerability-id arrays (one
    /// sequential pass over `scan_findings` that reads no other column, hashed),
    /// anti-joined with the catalog.
    async fn sweep_catalog(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM vulnerabilities v WHERE NOT EXISTS \
             (SELECT 1 FROM (SELECT DISTINCT unnest(vulnerability_ids) AS id FROM scan_findings) u \
             WHERE u.id = v.id)",
        )
        .persistent(false)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    fn sweep_mark(&self) -> &SweepMark {
        &self.sweep
    }

    /// Each table's rows as text, ordered and hashed in the database.
    async fn content_checksums(&self) -> Result<Vec<TableChecksum>, StoreError> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename NOT LIKE '\\_sqlx%' ORDER BY tablename",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![];
        for table in tables {
            let (rows, sha256): (i64, String) = sqlx::query_as(&format!(
                "SELECT COUNT(*), COALESCE(encode(sha256(convert_to(string_agg(t::text, E'\\n' \
                 ORDER BY t::text COLLATE \"C\"), 'UTF8')), 'hex'), '') FROM \"{}\" t",
                table.replace('"', "\"\"")
            ))
            .persistent(false)
            .fetch_one(&self.pool)
            .await?;
            out.push(TableChecksum {
                table,
                rows,
                sha256,
            });
        }
        Ok(out)
    }
}

/// Close a connection of its own, ignoring the outcome (it is done with).
async fn close_quietly(conn: PgConnection) {
    let _ = conn.close().await;
}
