//! docs/metrics.md documents every metric the code records, and nothing else; and a scrape
//! after some work shows the scrape-time gauges and the ingest histograms.

use crate::support::{corpus_file, Db, TestApp};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `scanvault_…` name given to a `counter!`, `gauge!` or `histogram!` in the source.
fn recorded() -> BTreeSet<String> {
    let mut files = vec![];
    rust_files(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for macro_name in ["counter!(", "gauge!(", "histogram!("] {
            for (i, _) in text.match_indices(macro_name) {
                let rest = text[i + macro_name.len()..].trim_start();
                if let Some(rest) = rest.strip_prefix("\"scanvault_") {
                    let name: String = rest.chars().take_while(|c| *c != '"').collect();
                    names.insert(format!("scanvault_{name}"));
                }
            }
        }
    }
    names
}

fn documented() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md"),
    )
    .unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `scanvault_"))
        .map(|l| format!("scanvault_{}", l.split('`').next().unwrap()))
        .collect()
}

#[test]
fn every_recorded_metric_is_documented() {
    let recorded = recorded();
    assert!(recorded.len() >= 15, "{recorded:?}");
    assert_eq!(recorded, documented());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_pools_queue_and_ingest_sizes() {
    let app = TestApp::new(Db::Sqlite).await;
    app.create("", corpus_file("trivy/alpine-3.10_trivy-dev-head.json"))
        .await;
    let r = app.get("/metrics").await;
    let text = String::from_utf8_lossy(&r.body);
    for needle in [
        "scanvault_db_pool_connections{pool=\"write\",state=\"in_use\"}",
        "scanvault_db_pool_connections{pool=\"read\",state=\"idle\"}",
        "scanvault_jobs_queued ",
        "scanvault_ingest_report_bytes_bucket{source=\"ingest\",le=\"1000000\"}",
        "scanvault_ingest_report_findings_count{source=\"ingest\"}",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    app.finish().await;
}
