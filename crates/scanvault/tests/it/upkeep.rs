//! Table upkeep where PostgreSQL's autovacuum does not run (store/upkeep.rs).

use crate::support::{digest, Db, Report, TestApp};
use sqlx::{Connection, PgConnection, Row};
use std::time::{Duration, Instant};

/// A table with `autovacuum_enabled = false` gets analysed (and, with dead rows, vacuumed)
/// by the store; the rest of the database is left to the server's autovacuum unless that
/// is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_autovacuum_skips_are_analysed_and_vacuumed_postgres() {
    let Some(app) = TestApp::try_new(Db::Postgres).await else {
        return;
    };
    let mut pg = PgConnection::connect(app.pg_url().unwrap()).await.unwrap();
    for table in ["fleet_cve_deltas", "fleet_findings"] {
        sqlx::query(&format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = off)"
        ))
        .execute(&mut pg)
        .await
        .unwrap();
    }
    // Two scans of one reference: the second replaces the first's 80 fleet rows, which
    // leaves them dead.
    for (n, at) in [(1, "2025-01-01T00:00:00Z"), (2, "2025-01-02T00:00:00Z")] {
        let mut report = Report::image("upkeep/app:1", &digest(n)).at(at);
        for i in 0..80 {
            report = report.vuln(&format!("CVE-2025-{i:04}"), "pkg", "1.0", "HIGH", None);
        }
        let r = app.post_scan("", report.bytes()).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    // The statistics counters reach the shared stats a little after each commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    let due = loop {
        let due = app.store.tables_due_for_upkeep().await.unwrap();
        let fleet = due.iter().find(|t| t.table == "fleet_findings");
        if fleet.is_some_and(|t| t.vacuum && t.analyze) || Instant::now() > deadline {
            break due;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let fleet = due.iter().find(|t| t.table == "fleet_findings");
    assert!(
        fleet.is_some_and(|t| t.vacuum && t.analyze),
        "fleet_findings (80 dead rows, 160 changes, never analysed) is due for both: {due:?}"
    );
    assert!(
        due.iter()
            .any(|t| t.table == "fleet_cve_deltas" && t.analyze),
        "fleet_cve_deltas (80 new rows, one per CVE, never analysed) is due for ANALYZE: {due:?}"
    );
    let autovacuum_on: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(&mut pg)
        .await
        .unwrap();
    if autovacuum_on == "on" {
        assert!(
            due.iter()
                .all(|t| t.table == "fleet_cve_deltas" || t.table == "fleet_findings"),
            "with autovacuum on, only the tables it skips: {due:?}"
        );
    }

    let done = app.store.upkeep_tables().await.unwrap();
    assert!(done.iter().any(|t| t.table == "fleet_findings"), "{done:?}");
    let row = sqlx::query(
        "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL, \
         (SELECT reltuples FROM pg_class WHERE relname = 'fleet_findings') \
         FROM pg_stat_user_tables WHERE relname = 'fleet_findings'",
    )
    .fetch_one(&mut pg)
    .await
    .unwrap();
    assert!(row.get::<bool, _>(0), "fleet_findings was vacuumed");
    assert!(row.get::<bool, _>(1), "fleet_findings was analysed");
    assert_eq!(
        row.get::<f32, _>(2),
        80.0,
        "the planner now knows fleet_findings' size"
    );
    pg.close().await.unwrap();
    app.finish().await;
}

/// SQLite needs none of this.
#[tokio::test]
async fn nothing_to_do_on_sqlite() {
    let app = TestApp::new(Db::Sqlite).await;
    let r = app
        .post_scan(
            "",
            Report::image("a/b:1", &digest(1))
                .vuln("CVE-1", "p", "1", "LOW", None)
                .bytes(),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(app.store.tables_due_for_upkeep().await.unwrap().is_empty());
    assert!(app.store.upkeep_tables().await.unwrap().is_empty());
    app.finish().await;
}
