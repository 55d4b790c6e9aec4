//! Table upkeep on PostgreSQL when its autovacuum does not run.
//!
//! Ingest's statements are planned from table statistics. A server with `autovacuum = off`
//! (or a table with `autovacuum_enabled = false`) never collects them: every table keeps
//! the planner's default guesses, and the reads of one reference's scans become hash
//! joins over all of `scan_tags`, a cost that grows with the fleet. Dead rows (every
//! re-scan replaces a reference's `fleet_findings`) are never reclaimed either. For such
//! tables the store does what autovacuum would: `ANALYZE` after 10 % of a table changed,
//! `VACUUM` after 20 % of it died (autovacuum's default thresholds), throttled like
//! autovacuum (`vacuum_cost_delay = 2ms`), one table at a time. Where autovacuum runs,
//! this does nothing. SQLite plans without collected statistics and needs none of it.

use super::{Backend, Store, StoreError};
use crate::periodic::Every;
use sqlx::{AnyConnection, Row};
use std::time::Duration;

/// How often [`upkeep_loop`] looks at the tables' counters
/// (autovacuum's own default `autovacuum_naptime`).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(60);

/// What one table needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUpkeep {
    pub table: String,
    pub vacuum: bool,
    pub analyze: bool,
}

/// Tables of the current schema that autovacuum does not look after, and what each needs
/// by autovacuum's default thresholds. `reltuples` is -1 before a table's first
/// `ANALYZE`/`VACUUM` (counted as empty: such a table is analysed after 50 changes).
const NEEDS_SQL: &str = "SELECT CAST(s.relname AS TEXT), \
     CAST(CASE WHEN s.n_dead_tup > 50 + 0.2 * GREATEST(c.reltuples, 0) THEN 1 ELSE 0 END AS BIGINT), \
     CAST(CASE WHEN s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0) THEN 1 ELSE 0 END AS BIGINT) \
     FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
     WHERE s.schemaname = current_schema() \
     AND (current_setting('autovacuum') = 'off' OR current_setting('track_counts') = 'off' \
          OR EXISTS (SELECT 1 FROM unnest(c.reloptions) o WHERE lower(o) IN \
          ('autovacuum_enabled=false', 'autovacuum_enabled=off', 'autovacuum_enabled=0', \
           'autovacuum_enabled=no', 'autovacuum_enabled=f', 'autovacuum_enabled=n'))) \
     ORDER BY s.relname";

impl Store {
    /// The tables autovacuum leaves alone and that are due for `VACUUM` or `ANALYZE`
    /// (always empty on SQLite).
    pub async fn tables_due_for_upkeep(&self) -> Result<Vec<TableUpkeep>, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(vec![]);
        }
        let rows = sqlx::query(NEEDS_SQL).fetch_all(self.write_pool()).await?;
        Ok(rows
            .iter()
            .map(|r| TableUpkeep {
                table: r.get(0),
                vacuum: r.get::<i64, _>(1) == 1,
                analyze: r.get::<i64, _>(2) == 1,
            })
            .filter(|t| t.vacuum || t.analyze)
            .collect())
    }

    /// Vacuum and analyse the tables that are due ([`Store::tables_due_for_upkeep`]), one
    /// at a time. Returns what was done.
    pub async fn upkeep_tables(&self) -> Result<Vec<TableUpkeep>, StoreError> {
        let due = self.tables_due_for_upkeep().await?;
        if due.is_empty() {
            return Ok(due);
        }
        let mut conn = self.maintenance_connection().await?;
        let result = run_upkeep(&mut conn, &due).await;
        let _ = sqlx::Connection::close(conn).await;
        result?;
        Ok(due)
    }
}

/// `VACUUM`/`ANALYZE` each of `due` on `conn` (a connection of its own, closed after),
/// with autovacuum's throttle so that a large table's vacuum does not starve ingest.
async fn run_upkeep(conn: &mut AnyConnection, due: &[TableUpkeep]) -> Result<(), StoreError> {
    sqlx::query("SET vacuum_cost_delay = 2")
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    for t in due {
        let sql = format!(
            "{} {}",
            if t.vacuum {
                "VACUUM (ANALYZE)"
            } else {
                "ANALYZE"
            },
            quote_ident(&t.table)
        );
        sqlx::query(&sql)
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A PostgreSQL identifier, quoted.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Run [`Store::upkeep_tables`] every [`UPKEEP_INTERVAL`] until `shutdown`.
pub async fn upkeep_loop(store: Store, shutdown: tokio_util::sync::CancellationToken) {
    if store.backend() != Backend::Postgres {
        return;
    }
    let mut every = Every::new(UPKEEP_INTERVAL, &shutdown);
    let mut announced = false;
    while every.next().await {
        // Shutdown does not wait for a long VACUUM: the statement is abandoned with its
        // connection.
        let Some(done) = every.unless_shutdown(store.upkeep_tables()).await else {
            break;
        };
        match done {
            Ok(done) if !done.is_empty() => {
                if !announced {
                    tracing::info!(
                        "PostgreSQL's autovacuum does not look after some of ScanVault's tables: the service analyses and vacuums them itself"
                    );
                    announced = true;
                }
                for t in done {
                    tracing::debug!(table = %t.table, vacuum = t.vacuum, "table upkeep done");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "table upkeep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("scan_tags"), "\"scan_tags\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
