//! The number of statements one ingest issues on PostgreSQL, pinned.

use crate::fleet_model::{base, GenFinding, GenReport};
use crate::support::{digest, Db, TestApp};
use chrono::{Duration, Utc};

/// Counts the statements sqlx logs (target `sqlx::query`).
struct StatementCounter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The statements one direct `store.ingest` issues, counted on this thread.
async fn count_statements(app: &TestApp, report: &GenReport, tag_override: Option<&str>) -> usize {
    use tracing_subscriber::layer::SubscriberExt;
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry()
        .with(StatementCounter(n.clone()))
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let new = scanvault::ingest::build_new_scan(
        report.bytes(),
        &scanvault::ingest::IngestOverrides {
            image: None,
            tag: tag_override.map(str::to_string),
            digest: None,
        },
        &scanvault::ingest::IngestSettings {
            compliance_fail_on: scanvault_core::report::Severity::Critical,
            max_findings: 100_000,
        },
        scanvault::store::scans::ScanSource::Ingest,
        Utc::now(),
    )
    .unwrap();
    let body = scanvault::store::StoredBody::of(&new.raw).unwrap();
    let _guard = tracing::subscriber::set_default(subscriber);
    app.store.scans().ingest(&new, &body, None).await.unwrap();
    n.load(std::sync::atomic::Ordering::Relaxed)
}

fn big_report(n_findings: usize, digest_n: u32, day: i64) -> GenReport {
    GenReport {
        image: "counted".into(),
        tag: "1.0".into(),
        digest: digest(digest_n),
        at: base() + Duration::days(day),
        findings: (0..n_findings)
            .map(|i| GenFinding {
                cve: format!("CVE-2024-{:05}", i),
                pkg: format!("pkg{}", i % 37),
                ver: "1.0".into(),
                sev: i % 5,
                fixed: (i % 2 == 0).then(|| "2.0".to_string()),
            })
            .collect(),
    }
}

/// An N+1 regression (a statement per finding, per CVE, per tag…) fails here. Run on a
/// current-thread runtime so every statement is logged on this thread. PostgreSQL only:
/// sqlx runs (and logs) SQLite statements on a worker thread per connection, which a
/// thread-local subscriber does not see. SQLite runs the same statements, except that the
/// writes PostgreSQL sends as one statement (`FINISH`) go one by one, and an update reads
/// the scan's open finding rows to compare them with the new version.
fn statements_per_ingest_are_pinned_on(db: Db) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Some(app) = TestApp::try_new(db).await else {
            return;
        };
        // Warm up (connections, catalog, callsite registration).
        count_statements(&app, &big_report(10, 9, 0), Some("warm")).await;
        // A new image with 150 findings.
        let first = count_statements(&app, &big_report(150, 1, 0), None).await;
        // 1,200 findings: the same statements (a row set's parameters do not grow with it).
        let bigger = count_statements(&app, &big_report(1200, 2, 1), Some("2.0")).await;
        // A re-scan of the first digest a day later with a few findings changed.
        let mut rescan = big_report(150, 1, 2);
        rescan.findings.truncate(140);
        let update = count_statements(&app, &rescan, None).await;
        // The same report again: nothing changes.
        let same = count_statements(&app, &rescan, None).await;
        app.finish().await;
        // Pinned: raise these only on purpose (and say why in the commit).
        assert_eq!(
            (first, bigger, update, same),
            (PINNED_NEW, PINNED_NEW_1200, PINNED_UPDATE, PINNED_SAME),
            "statements per ingest on {db:?}: (new, new with 1,200 findings, update, unchanged)"
        );
    });
}

// On PostgreSQL a new scan's row, its tag and its first observation are one statement, and
// the writes nobody reads back (its findings, report, reference pointers, current-fleet rows
// and deltas) one more (`store/postgres/ingest.rs`, `FINISH`). An update is the scan's row
// with its observation, its tag, its current findings (read for the difference), the catalog,
// the references, the old current-fleet rows out, and the same final statement. The same
// report again reads what it needs to know it is the same, and writes nothing. A report with
// CRITICAL findings (these have) adds two: the vulnerabilities first carried at CRITICAL
// are recorded, and its events (fleet.new_critical, scan.noncompliant) go to the outbox in
// one statement however many there are.
const PINNED_NEW: usize = 9;
const PINNED_NEW_1200: usize = 9;
const PINNED_UPDATE: usize = 11;
const PINNED_SAME: usize = 4;

#[test]
fn statements_per_ingest_are_pinned_postgres() {
    statements_per_ingest_are_pinned_on(Db::Postgres);
}
