//! The delta tables on PostgreSQL: a burst of ingest grows them, and a quiet round of the
//! compaction loop gives their pages back.

use crate::support::{digest, Db, Report, TestApp};
use axum::http::StatusCode;

/// A burst of ingest grows the delta tables; the compactor empties them but their pages
/// stay, and every summary, top-CVEs and CVE-images answer would read them all. Once a
/// compaction finds nothing to fold (ingest quiet), the shrink the compaction loop then
/// starts truncates them: their pages go, and every answer is the same as before. Ingest
/// afterwards counts as it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_compaction_gives_the_delta_pages_back_postgres() {
    use scanvault::store::analytics::SHRINK_PAGES;
    let Some(app) = TestApp::try_new(Db::Postgres).await else {
        return;
    };
    ingest_burst(&app).await;
    let folded = app.store.analytics().compact().await.unwrap();
    assert!(
        folded > 2000,
        "one per-CVE delta row per CVE and report, and more: {folded}"
    );
    let burst = app.store.analytics().delta_pages().await.unwrap();
    assert!(
        burst.iter().any(|(_, p)| *p > SHRINK_PAGES),
        "2,000 per-CVE delta rows, folded, leave their pages: {burst:?}"
    );
    let uris = [
        "/analytics/vulnerabilities/summary",
        "/analytics/vulnerabilities/top-cves?limit=5",
        "/analytics/vulnerabilities/cve/CVE-2025-0007/images",
        "/analytics/vulnerabilities/fixable?limit=5",
    ];
    let mut before = vec![];
    for uri in uris {
        before.push(app.get_json(uri).await);
    }
    assert_eq!(before[0]["TotalScans"], 20);
    assert_eq!(app.store.analytics().compact().await.unwrap(), 0);
    assert!(app.store.analytics().shrink_quiet_deltas().await.unwrap());
    let after = app.store.analytics().delta_pages().await.unwrap();
    for (table, was) in &burst {
        let now = after.iter().find(|(t, _)| t == table).map(|(_, p)| *p);
        if *was > SHRINK_PAGES {
            assert_eq!(now, Some(0), "the shrink truncates {table}: {after:?}");
        } else {
            assert_eq!(now, Some(*was), "a small table is left alone: {after:?}");
        }
    }
    assert!(
        !app.store.analytics().shrink_quiet_deltas().await.unwrap(),
        "nothing left to shrink"
    );
    for (uri, was) in uris.iter().zip(&before) {
        assert_eq!(&app.get_json(uri).await, was, "{uri}");
    }
    let r = app.post_scan("", burst_report(21).bytes()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let s = app.get_json(uris[0]).await;
    assert_eq!(s["TotalScans"], 21);
    assert_eq!(s["TotalVulnerabilities"], 2100);
    assert_eq!(s["Fixable"], 2100);
    app.store.analytics().compact().await.unwrap();
    let c = app.get_json(uris[2]).await;
    assert_eq!(c["ImageCount"], 21, "{c}");
    app.finish().await;
}

/// Image `i` of a burst: 100 fixable HIGH findings, the same 100 CVEs in every image.
fn burst_report(i: u32) -> Report {
    let mut r = Report::image(&format!("burst/app-{i}:1"), &digest(i)).at("2025-01-01T00:00:00Z");
    for j in 0..100 {
        r = r.vuln(
            &format!("CVE-2025-{j:04}"),
            "pkg",
            "1.0",
            "HIGH",
            Some("1.1"),
        );
    }
    r
}

/// 20 new images: 2,000 per-CVE delta rows, more than [`SHRINK_PAGES`] of them.
async fn ingest_burst(app: &TestApp) {
    for i in 1..=20 {
        let r = app.post_scan("", burst_report(i).bytes()).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

/// The background loop as the server runs it: it folds the burst's deltas, and in the first
/// round after that with nothing to fold it starts the shrink, which truncates the tables
/// the burst grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compaction_loop_shrinks_the_deltas_once_ingest_is_quiet_postgres() {
    use scanvault::store::analytics::{compaction_loop, SHRINK_PAGES};
    let Some(app) = TestApp::try_new(Db::Postgres).await else {
        return;
    };
    ingest_burst(&app).await;
    let grown = app.store.analytics().delta_pages().await.unwrap();
    assert!(
        grown.iter().any(|(_, p)| *p > SHRINK_PAGES),
        "the burst grew a delta table: {grown:?}"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let looping = tokio::spawn(compaction_loop(app.store.clone(), stop.clone()));
    // Two rounds (COMPACTION_INTERVAL apart) and the shrink: well within 30 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut now = app.store.analytics().delta_pages().await.unwrap();
    while now.iter().any(|(_, p)| *p > SHRINK_PAGES) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        now = app.store.analytics().delta_pages().await.unwrap();
    }
    stop.cancel();
    looping.await.unwrap();
    assert!(
        now.iter().all(|(_, p)| *p <= SHRINK_PAGES),
        "the loop shrank the delta tables: {grown:?} -> {now:?}"
    );
    let s = app.get_json("/analytics/vulnerabilities/summary").await;
    assert_eq!(s["TotalScans"], 20);
    assert_eq!(s["TotalVulnerabilities"], 2000);
    app.finish().await;
}
