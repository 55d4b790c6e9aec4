//! The original service's paths and the shapes of their answers, pinned: a renamed or dropped
//! field fails here. The snapshots are in `snapshots/`; after a deliberate change of a shape,
//! review the new ones (`cargo insta review`, or `INSTA_UPDATE=always` and `git diff`) and
//! commit them. Values that change from run to run (ids, times of ingest) are masked.

use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use axum::http::StatusCode;
use serde_json::Value;

/// Keys whose values differ from run to run.
const VOLATILE: &[&str] = &["ID", "ScanID", "CreatedAt", "UpdatedAt", "ObservedAt"];

/// `v` with the values of [`VOLATILE`] keys masked, at any depth.
fn masked(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if VOLATILE.contains(&k.as_str()) && !x.is_null() {
                        *x = Value::String(format!("[{k}]"));
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn pinned(name: &str, v: Value) {
    insta::assert_json_snapshot!(name, masked(v));
}

async fn the_original_paths_answer_as_pinned(app: &TestApp) {
    let app_report = Report::image("compat/app:1.0", &digest(801))
        .at("2025-02-01T08:00:00Z")
        .vuln(
            "CVE-2025-1001",
            "openssl",
            "3.0.1",
            "CRITICAL",
            Some("3.0.2"),
        )
        .vuln("CVE-2025-1002", "zlib", "1.2.13", "LOW", None);
    let created = app.post_scan("", app_report.bytes()).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["ID"].as_str().unwrap().to_string();
    pinned("post_scans", created.json());
    let db_report = Report::image("compat/db:15", &digest(802))
        .at("2025-02-02T08:00:00Z")
        .vuln("CVE-2025-1001", "openssl", "3.0.1", "HIGH", Some("3.0.2"))
        .vuln("CVE-2025-1003", "libpq", "15.2", "MEDIUM", Some("15.3"));
    app.create("", db_report.bytes()).await;

    for (name, uri) in [
        ("list_of_tag", "/scans?tag=1.0".to_string()),
        ("list_of_image", "/scans?image=compat/app&severity=CRITICAL".to_string()),
        ("list_all", "/scans/all".to_string()),
        ("latest", "/scans/latest?image=compat/app&tag=1.0".to_string()),
        ("scan", format!("/scans/{id}")),
        ("scan_vulnerabilities", format!("/scans/{id}/vulnerabilities")),
        ("summary", "/analytics/vulnerabilities/summary".to_string()),
        (
            "trends",
            "/analytics/vulnerabilities/trends?interval=day&from=2025-02-01T00:00:00Z&to=2025-02-02T23:59:59Z"
                .to_string(),
        ),
        ("top_cves", "/analytics/vulnerabilities/top-cves?limit=5".to_string()),
        (
            "cve_images",
            "/analytics/vulnerabilities/cve/CVE-2025-1001/images".to_string(),
        ),
        ("fixable", "/analytics/vulnerabilities/fixable".to_string()),
        ("health", "/health".to_string()),
    ] {
        pinned(name, app.get_json(&uri).await);
    }
    let missing = app.get("/scans/00000000-0000-7000-8000-000000000000").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    pinned("error_not_found", missing.json());
    let bad = app
        .get("/analytics/vulnerabilities/trends?interval=month")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    pinned("error_bad_request", bad.json());
}

on_both_backends!(original_paths, the_original_paths_answer_as_pinned);

/// The OpenAPI document, whole: every path, parameter and field of every answer.
#[test]
fn the_openapi_document_is_pinned() {
    let doc: Value = serde_json::from_str(&scanvault::http::openapi_json()).unwrap();
    insta::assert_json_snapshot!("openapi", doc);
}
