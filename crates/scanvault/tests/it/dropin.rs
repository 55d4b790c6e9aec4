//! A client of the original Go service, unchanged: the requests of its README (the curl
//! examples), of its Postman collection (with today's PascalCase names) and of its handler,
//! repository and parser tests, written here from their documentation and sent over HTTP,
//! with the original's status codes and response fields asserted. Each of the points where
//! ScanVault once broke such a client has an assertion of its own. README "Migrating from
//! the Go service" lists what differs on purpose.

use crate::on_both_backends;
use crate::support::TestApp;
use axum::http::StatusCode;
use serde_json::{json, Value};

/// No value anywhere in `v` is `null`: the original omitted empty strings, and a typed
/// client reads `null` as an error or as a missing field.
fn assert_no_null(v: &Value, ctx: &str) {
    fn walk(v: &Value, path: &str, ctx: &str) {
        match v {
            Value::Null => panic!("{ctx}: null at {path}"),
            Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| walk(x, &format!("{path}.{k}"), ctx)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk(x, &format!("{path}[{i}]"), ctx)),
            _ => {}
        }
    }
    walk(v, "$", ctx)
}

/// `GET uri`: 200 and a JSON body without nulls.
async fn ok(app: &TestApp, uri: &str) -> Value {
    let r = app.get(uri).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_no_null(&v, uri);
    v
}

/// `uri` answers `status` with `{"error": <message>, "code": …}`; the message.
async fn error(app: &TestApp, uri: &str, status: StatusCode) -> String {
    let r = app.get(uri).await;
    assert_eq!(
        r.status,
        status,
        "{uri}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.error_code();
    r.json()["error"].as_str().unwrap().to_string()
}

fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[key].as_str().unwrap())
        .collect()
}

/// The README's curl examples, in order.
async fn the_readme_examples(app: &TestApp) {
    let body = json!({
        "ArtifactName": "nginx:1.25", "ArtifactType": "container_image",
        "Metadata": {"ImageID": "sha256:abc123", "RepoTags": ["nginx:1.25"],
                     "RepoDigests": ["nginx@sha256:def456"]},
        "Results": [{"Target": "nginx:1.25", "Class": "os-pkgs", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2026-0001", "PkgName": "openssl", "FixedVersion": "3.0.3",
             "Severity": "CRITICAL", "Title": "OpenSSL bug"}]}]
    });
    let created = app.post_scan("", body.to_string().into_bytes()).await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let scan = created.json();
    assert_no_null(&scan, "POST /scans");
    assert_eq!(scan["ImageName"], "nginx");
    assert_eq!(scan["ImageTag"], "1.25");
    assert_eq!(scan["VulnCritical"], 1);
    for k in ["VulnHigh", "VulnMedium", "VulnLow", "VulnUnknown"] {
        assert_eq!(scan[k], 0, "{k}");
    }
    assert!(scan["CreatedAt"].is_string());
    // The answer carries the stored scan's ScanResult, as the original's did.
    let result = &scan["ScanResult"];
    assert_eq!(result["ArtifactName"], "nginx:1.25");
    assert_eq!(result["ArtifactType"], "container_image");
    assert_eq!(result["Metadata"]["RepoTags"], json!(["nginx:1.25"]));
    let v = &result["Results"][0]["Vulnerabilities"][0];
    assert_eq!(result["Results"][0]["Target"], "nginx:1.25");
    assert_eq!(result["Results"][0]["Class"], "os-pkgs");
    assert_eq!(
        v,
        &json!({"VulnerabilityID": "CVE-2026-0001", "PkgName": "openssl", "PkgVersion": "",
                "FixedVersion": "3.0.3", "Severity": "CRITICAL", "Title": "OpenSSL bug"})
    );
    let id = scan["ID"].as_str().unwrap().to_string();

    let list = ok(app, "/scans?image=nginx&severity=CRITICAL").await;
    assert_eq!(list["Image"], "nginx");
    assert_eq!(list["Severity"], "CRITICAL");
    assert_eq!(list["Count"], 1);
    assert_eq!(list["Items"][0]["ID"], id.as_str());
    assert_eq!(list["Items"][0]["ScanResult"], scan["ScanResult"]);

    let summary = ok(app, "/analytics/vulnerabilities/summary?image=nginx").await;
    assert_eq!(summary["Image"], "nginx");
    assert_eq!(summary["TotalScans"], 1);
    assert_eq!(summary["TotalVulnerabilities"], 1);
    let critical = summary["SeverityCounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Severity"] == "CRITICAL")
        .unwrap();
    assert_eq!(critical["Count"], 1);
    assert_eq!(summary["TopCVEs"][0]["CVEID"], "CVE-2026-0001");

    let top = ok(app, "/analytics/vulnerabilities/top-cves?limit=20").await;
    assert_eq!(top["Limit"], 20);
    assert_eq!(top["Count"], 1);
    let c = &top["CVEs"][0];
    assert_eq!(c["CVEID"], "CVE-2026-0001");
    assert_eq!(c["Severity"], "CRITICAL");
    assert_eq!(c["Title"], "OpenSSL bug");
    assert_eq!(c["ImageCount"], 1);
    assert_eq!(c["Fixable"], true);

    let images = ok(app, "/analytics/vulnerabilities/cve/CVE-2026-0001/images").await;
    assert_eq!(images["CVEID"], "CVE-2026-0001");
    assert_eq!(images["Count"], 1);
    let i = &images["Images"][0];
    assert_eq!(i["ImageName"], "nginx");
    assert_eq!(i["ImageTag"], "1.25");
    assert_eq!(i["PkgName"], "openssl");
    assert_eq!(i["FixedVersion"], "3.0.3");
    assert!(i["ScannedAt"].is_string());

    let fixable = ok(app, "/analytics/vulnerabilities/fixable?image=nginx").await;
    assert_eq!(fixable["Image"], "nginx");
    assert_eq!(fixable["TotalVulns"], 1);
    assert_eq!(fixable["Fixable"], 1);
    assert_eq!(fixable["NotFixable"], 0);
    assert_eq!(fixable["FixablePct"], 100.0);
    let f = &fixable["FixableItems"][0];
    for (k, want) in [
        ("CVEID", "CVE-2026-0001"),
        ("PkgName", "openssl"),
        ("FixedVersion", "3.0.3"),
        ("Severity", "CRITICAL"),
        ("ImageName", "nginx"),
        ("ImageTag", "1.25"),
    ] {
        assert_eq!(f[k], want, "{k}");
    }

    // No `from`: the whole history, as the original answered (the scan is from today).
    let trends = ok(
        app,
        "/analytics/vulnerabilities/trends?image=nginx&interval=day",
    )
    .await;
    assert_eq!(trends["Interval"], "day");
    let critical: Vec<&Value> = trends["Points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["Severity"] == "CRITICAL" && p["Count"] == 1)
        .collect();
    assert_eq!(critical.len(), 1, "{trends}");
    assert!(critical[0]["Bucket"].is_string());

    let latest = ok(app, "/scans/latest?image=nginx").await;
    assert_eq!(latest["ID"], id.as_str());
    assert_eq!(latest["ScanResult"], scan["ScanResult"]);

    let none = ok(
        app,
        &format!("/scans/{id}/vulnerabilities?severity=HIGH&pkg=openssl"),
    )
    .await;
    assert_eq!(none["ScanID"], id.as_str());
    assert_eq!(none["Severity"], "HIGH");
    assert_eq!(none["Pkg"], "openssl");
    assert_eq!(none["Count"], 0);
    assert_eq!(none["Items"], json!([]));
    let one = ok(
        app,
        &format!("/scans/{id}/vulnerabilities?severity=critical&pkg=OpenSSL"),
    )
    .await;
    assert_eq!(one["Count"], 1);
    assert_eq!(
        one["Items"][0]["Vulnerability"]["VulnerabilityID"],
        "CVE-2026-0001"
    );
}

on_both_backends!(readme_examples, the_readme_examples);

/// The Postman collection's requests, with its variables (`image` nginx, `tag` 1.25,
/// `severity` CRITICAL, `pkg` openssl) and its tests on today's field names.
async fn the_postman_collection(app: &TestApp) {
    let body = json!({
        "ArtifactName": "nginx:1.25", "ArtifactType": "container_image",
        "Metadata": {"ImageID": "sha256:abc123", "RepoTags": ["nginx:1.25"],
                     "RepoDigests": ["nginx@sha256:def456"]},
        "Results": [{"Target": "nginx:1.25 (debian 12)", "Class": "os-pkgs", "Type": "debian",
          "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2026-0001", "PkgName": "openssl",
             "InstalledVersion": "3.0.2-0ubuntu1.12", "FixedVersion": "3.0.2-0ubuntu1.13",
             "Severity": "CRITICAL", "Title": "OpenSSL: memory corruption"},
            {"VulnerabilityID": "CVE-2026-0002", "PkgName": "glibc",
             "InstalledVersion": "2.35-0ubuntu3.1", "FixedVersion": "",
             "Severity": "HIGH", "Title": "glibc: heap overflow"},
            {"VulnerabilityID": "CVE-2026-0003", "PkgName": "busybox",
             "InstalledVersion": "1.35.0", "FixedVersion": "1.36.0",
             "Severity": "MEDIUM", "Title": "busybox: command injection"}]}]
    });
    assert_eq!(ok(app, "/health").await, json!({"status": "ok"}));
    // Create Scan, twice: the collection is run again and again.
    let mut scan_id = String::new();
    for _ in 0..2 {
        let r = app.post_scan("", body.to_string().into_bytes()).await;
        assert!(
            [StatusCode::OK, StatusCode::CREATED].contains(&r.status),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let res = r.json();
        assert_no_null(&res, "Create Scan");
        assert_eq!(res["ImageName"], "nginx");
        assert_eq!(res["ImageTag"], "1.25");
        for (k, n) in [
            ("VulnCritical", 1),
            ("VulnHigh", 1),
            ("VulnMedium", 1),
            ("VulnLow", 0),
            ("VulnUnknown", 0),
        ] {
            assert_eq!(res[k], n, "{k}");
        }
        let vulns = &res["ScanResult"]["Results"][0]["Vulnerabilities"];
        assert_eq!(vulns.as_array().unwrap().len(), 3);
        // An empty FixedVersion is left out, never null.
        let glibc = vulns
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["PkgName"] == "glibc")
            .unwrap();
        assert!(glibc.get("FixedVersion").is_none(), "{glibc}");
        scan_id = res["ID"].as_str().unwrap().to_string();
    }
    for uri in [
        "/scans?tag=1.25",
        "/scans?tag=1.25&limit=50&offset=0",
        "/scans?image=nginx",
    ] {
        let v = ok(app, uri).await;
        assert!(!v["Items"].as_array().unwrap().is_empty(), "{uri}");
        assert!(v["Items"][0]["ScanResult"].is_object(), "{uri}");
    }
    let by_sev = ok(
        app,
        "/scans?image=nginx&severity=CRITICAL&limit=50&offset=0",
    )
    .await;
    for item in by_sev["Items"].as_array().unwrap() {
        assert!(item["VulnCritical"].as_i64().unwrap() > 0);
    }
    let all = ok(app, "/scans/all?limit=100&offset=0").await;
    assert!(all["Count"].as_i64().unwrap() >= 1);
    ok(app, "/scans/latest?image=nginx").await;
    let v = ok(
        app,
        &format!("/scans/{scan_id}/vulnerabilities?severity=CRITICAL"),
    )
    .await;
    assert_eq!(v["Items"].as_array().unwrap().len(), 1);
    let summary = ok(app, "/analytics/vulnerabilities/summary?image=nginx").await;
    assert_eq!(summary["TotalScans"], 1);
    assert_eq!(summary["TotalVulnerabilities"], 3);
    assert!(summary["SeverityCounts"].is_array());
    assert!(summary["TopCVEs"].is_array());
    for interval in ["day", "week"] {
        let t = ok(
            app,
            &format!("/analytics/vulnerabilities/trends?image=nginx&interval={interval}"),
        )
        .await;
        assert!(!t["Points"].as_array().unwrap().is_empty(), "{interval}");
    }
    // Count is every item matching, whatever the page.
    let page = ok(app, &format!("/scans/{scan_id}/vulnerabilities?limit=1")).await;
    assert_eq!(
        (page["Count"].as_i64(), page["HasMore"].as_bool()),
        (Some(3), Some(true))
    );
    let page = ok(
        app,
        &format!("/scans/{scan_id}/vulnerabilities?limit=1&offset=2"),
    )
    .await;
    assert_eq!(
        (page["Count"].as_i64(), page["HasMore"].as_bool()),
        (Some(3), Some(false))
    );
    let page = ok(
        app,
        "/analytics/vulnerabilities/fixable?image=nginx&limit=1",
    )
    .await;
    assert_eq!(
        (page["Count"].as_i64(), page["HasMore"].as_bool()),
        (Some(2), Some(true))
    );
    let page = ok(
        app,
        "/analytics/vulnerabilities/cve/CVE-2026-0001/images?limit=1&offset=1",
    )
    .await;
    assert_eq!(page["Count"], 1);
    assert_eq!(page["Images"], json!([]));
    let top = ok(
        app,
        "/analytics/vulnerabilities/top-cves?image=nginx&limit=10",
    )
    .await;
    let cve_id = top["CVEs"][0]["CVEID"].as_str().unwrap().to_string();
    let images = ok(
        app,
        &format!("/analytics/vulnerabilities/cve/{cve_id}/images"),
    )
    .await;
    assert_eq!(images["CVEID"], cve_id.as_str());
    assert_eq!(images["Count"], 1);
    assert!(images["Images"].is_array());
    let fixable = ok(app, "/analytics/vulnerabilities/fixable?image=nginx").await;
    assert_eq!(fixable["TotalVulns"], 3);
    assert_eq!(fixable["Fixable"], 2);
    assert_eq!(fixable["NotFixable"], 1);
    for item in fixable["FixableItems"].as_array().unwrap() {
        for k in ["CVEID", "PkgName", "Severity", "ImageName", "ImageTag"] {
            assert!(item[k].is_string(), "{k}: {item}");
        }
        assert!(!item["FixedVersion"].as_str().unwrap().is_empty());
    }
}

on_both_backends!(postman_collection, the_postman_collection);

/// The original's handler tests, over HTTP against a real store.
async fn the_handler_tests(app: &TestApp) {
    let post = |q: &'static str, body: &'static str| async move {
        app.post_scan(q, body.as_bytes().to_vec()).await
    };
    let r = post("", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    r.error_code();
    let r = post("", "not-json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    r.error_code();
    let nameless = r#"{"ArtifactName":"","Metadata":{},"Results":[]}"#;
    let r = post("", nameless).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "image_required");
    assert_eq!(
        r.json()["error"],
        "could not determine image_name from payload; provide ?image=<name> query param"
    );
    let r = post("image=nginx&tag=latest", nameless).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["ImageName"], "nginx");
    assert_eq!(r.json()["ImageTag"], "latest");
    let valid = r#"{"ArtifactName":"nginx:1.25","ArtifactType":"container_image","Metadata":{"ImageID":"sha256:abc","RepoTags":["nginx:1.25"]},"Results":[]}"#;
    assert_eq!(post("", valid).await.status, StatusCode::CREATED);
    // The dropped override test: no ArtifactName, the name and tag from the query.
    let r = post("image=alpine&tag=3.19", r#"{"Results":[]}"#).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["ImageName"], "alpine");
    assert_eq!(r.json()["ImageTag"], "3.19");

    error(app, "/scans", StatusCode::BAD_REQUEST).await;
    ok(app, "/scans?tag=1.25").await;
    ok(app, "/scans?image=nginx").await;
    error(app, "/scans?tag=1.25&limit=-1", StatusCode::BAD_REQUEST).await;
    let all = ok(app, "/scans/all").await;
    assert_eq!(all["Limit"], 100);
    error(app, "/scans/latest", StatusCode::BAD_REQUEST).await;
    error(app, "/scans/latest?image=ghost", StatusCode::NOT_FOUND).await;
    ok(app, "/scans/latest?image=nginx").await;

    let two = json!({"ArtifactName": "vulns:1", "Results": [{"Target": "t", "Vulnerabilities": [
        {"VulnerabilityID": "CVE-1", "PkgName": "openssl", "InstalledVersion": "1.1.1", "Severity": "HIGH"},
        {"VulnerabilityID": "CVE-2", "PkgName": "busybox", "InstalledVersion": "1.35.0", "Severity": "LOW"}]}]});
    let s = app.create("", two.to_string().into_bytes()).await;
    let id = s["ID"].as_str().unwrap();
    let v = ok(
        app,
        &format!("/scans/{id}/vulnerabilities?severity=HIGH&pkg=openssl"),
    )
    .await;
    assert_eq!(v["Count"], 1);
    assert_eq!(v["Items"].as_array().unwrap().len(), 1);
    assert_eq!(v["Items"][0]["Vulnerability"]["PkgVersion"], "1.1.1");
    error(
        app,
        "/scans/01900000-0000-7000-8000-000000000000/vulnerabilities",
        StatusCode::NOT_FOUND,
    )
    .await;

    ok(
        app,
        "/analytics/vulnerabilities/summary?image=nginx&from=2026-04-01T00:00:00Z&to=2026-04-30T23:59:59Z",
    )
    .await;
    error(
        app,
        "/analytics/vulnerabilities/summary?from=not-a-time",
        StatusCode::BAD_REQUEST,
    )
    .await;
    ok(
        app,
        "/analytics/vulnerabilities/trends?image=nginx&interval=day",
    )
    .await;
    let m = error(
        app,
        "/analytics/vulnerabilities/trends?interval=month",
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("interval"), "{m}");
    let top = ok(app, "/analytics/vulnerabilities/top-cves?limit=5").await;
    assert_eq!(top["Limit"], 5);
    let c = ok(app, "/analytics/vulnerabilities/cve/CVE-1/images").await;
    assert_eq!(c["CVEID"], "CVE-1");
    assert_eq!(c["Count"], 1);
    ok(app, "/analytics/vulnerabilities/fixable?image=nginx").await;
}

on_both_backends!(handler_tests, the_handler_tests);

/// The original parser's cases: the image name and tag a report gives.
async fn the_parser_tests(app: &TestApp) {
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    for (report, name, tag) in [
        (
            json!({"ArtifactName": "nginx:1.25", "Metadata": {"ImageID": "sha256:abc123",
                   "RepoTags": ["nginx:1.25"], "RepoDigests": ["nginx@sha256:def456"]}}),
            "nginx",
            "1.25",
        ),
        (
            json!({"ArtifactName": "nginx:1.25",
                   "Metadata": {"RepoTags": ["registry.example.com/nginx:1.25-alpine"]}}),
            "registry.example.com/nginx",
            "1.25-alpine",
        ),
        (json!({"ArtifactName": "alpine:3.19"}), "alpine", "3.19"),
        (
            json!({"ArtifactName": "busybox:latest", "Metadata": {}}),
            "busybox",
            "latest",
        ),
        (json!({"ArtifactName": "myimage"}), "myimage", ""),
        (
            json!({"ArtifactName": "localhost:5000/myapp:v2"}),
            "localhost:5000/myapp",
            "v2",
        ),
        (
            json!({"ArtifactName": format!("nginx@sha256:{a}")}),
            "nginx",
            "",
        ),
        (
            json!({"ArtifactName": format!("nginx:1.25@sha256:{b}")}),
            "nginx",
            "1.25",
        ),
        (
            json!({"ArtifactName": "docker.io/library/nginx:1"}),
            "nginx",
            "1",
        ),
    ] {
        let r = app.post_scan("", report.to_string().into_bytes()).await;
        assert!(
            r.status.is_success(),
            "{report}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let s = r.json();
        assert_eq!(
            (s["ImageName"].as_str(), s["ImageTag"].as_str()),
            (Some(name), Some(tag)),
            "{report}"
        );
    }
}

on_both_backends!(parser_tests, the_parser_tests);

/// Inputs the original accepted that ScanVault once refused, and parameters it read
/// differently.
async fn inputs_and_parameters_as_the_original_read_them(app: &TestApp) {
    // An entry without a VulnerabilityID: the report is stored without it, and the answer
    // says how many entries were left out and why.
    let body = json!({"ArtifactName": "partial:1", "Results": [{"Target": "t", "Vulnerabilities": [
        {"VulnerabilityID": "CVE-5", "PkgName": "p", "InstalledVersion": "1", "Severity": "HIGH"},
        {"PkgName": "q", "InstalledVersion": "2", "Severity": "LOW"},
        {"VulnerabilityID": "", "PkgName": "r", "Severity": "LOW"}]}]});
    let before = app.fingerprint().await;
    let r = app.post_scan("", body.to_string().into_bytes()).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_ne!(app.fingerprint().await, before);
    let s = r.json();
    assert_eq!(s["VulnTotal"], 1);
    assert_eq!(s["Warnings"][0]["Count"], 2);
    assert_eq!(s["Warnings"][0]["Reason"], "no VulnerabilityID");
    assert_eq!(s["Warnings"][0]["FirstAt"], "Results[0].Vulnerabilities[1]");
    let stored = ok(app, &format!("/scans/{}", s["ID"].as_str().unwrap())).await;
    assert!(
        stored.get("Warnings").is_none(),
        "only the ingest answer warns"
    );
    assert_eq!(stored["VulnTotal"], 1);

    // A report that names no image: 400 and nothing stored, unless ?image= names it. A
    // legacy report (a top-level array or `null`) ingests with ?image=.
    for nameless in [
        r#"{"Results":[]}"#,
        "null",
        "[]",
        r#"{"ArtifactName":"  "}"#,
    ] {
        let before = app.fingerprint().await;
        let r = app.post_scan("", nameless.as_bytes().to_vec()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{nameless}");
        assert_eq!(r.error_code(), "image_required");
        assert!(r.json()["error"].as_str().unwrap().contains("?image="));
        assert_eq!(app.fingerprint().await, before, "{nameless}");
    }
    for legacy in ["null", "[]", r#"[{"Target":"x","Vulnerabilities":null}]"#] {
        let r = app
            .post_scan("image=legacy&tag=1", legacy.as_bytes().to_vec())
            .await;
        assert!(r.status.is_success(), "{legacy}");
        assert_eq!(r.json()["ImageName"], "legacy");
    }

    // Short digests stay refused: the OCI digest grammar.
    let r = app
        .post_scan("image=x&digest=sha256:abc", br#"{"Results":[]}"#.to_vec())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("digest"));

    // Upper-case intervals; plain dates for from and to; limits above the maximum capped.
    let dated = json!({"ArtifactName": "dated:1", "CreatedAt": "2025-01-31T23:30:00Z",
        "Results": [{"Target": "t", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-7", "PkgName": "p", "InstalledVersion": "1", "Severity": "CRITICAL"}]}]});
    app.create("", dated.to_string().into_bytes()).await;
    let t = ok(
        app,
        "/analytics/vulnerabilities/trends?image=dated&interval=DAY&from=2025-01-31&to=2025-01-31",
    )
    .await;
    assert_eq!(t["Interval"], "day");
    assert_eq!(t["From"], "2025-01-31T00:00:00Z");
    assert_eq!(t["To"], "2025-01-31T23:59:59.999999Z");
    let critical: Vec<&Value> = t["Points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["Severity"] == "CRITICAL")
        .collect();
    assert_eq!(critical.len(), 1);
    assert_eq!(
        critical[0]["Count"], 1,
        "the scan at 23:30 is inside the day"
    );
    let w = ok(
        app,
        "/analytics/vulnerabilities/trends?image=dated&interval=Week&from=2025-01-27",
    )
    .await;
    assert_eq!(w["Interval"], "week");
    let s = ok(
        app,
        "/analytics/vulnerabilities/summary?image=dated&to=2025-01-30",
    )
    .await;
    assert_eq!(s["TotalScans"], 0, "the scan is after the end of the 30th");
    let s = ok(
        app,
        "/analytics/vulnerabilities/summary?image=dated&to=2025-01-31",
    )
    .await;
    assert_eq!(s["TotalScans"], 1, "…and before the end of the 31st");
    let top = ok(app, "/analytics/vulnerabilities/top-cves?limit=101").await;
    assert_eq!(top["Limit"], 100);
    let top = ok(app, "/analytics/vulnerabilities/top-cves?limit=1000000").await;
    assert_eq!(top["Limit"], 100);
    let list = ok(app, "/scans/all?limit=100000").await;
    assert_eq!(list["Limit"], 500);
    for bad in [
        "/analytics/vulnerabilities/top-cves?limit=-1",
        "/analytics/vulnerabilities/top-cves?limit=ten",
        "/scans/all?limit=-1",
        "/scans/all?offset=x",
        "/analytics/vulnerabilities/trends?from=2025-02-30",
    ] {
        error(app, bad, StatusCode::BAD_REQUEST).await;
    }

    // Trends without `from` start at the first bucket holding a scan of the image.
    let t = ok(
        app,
        "/analytics/vulnerabilities/trends?image=dated&to=2025-02-02T00:00:00Z",
    )
    .await;
    assert_eq!(t["From"], "2025-01-31T00:00:00Z");
    let buckets: Vec<&str> = strings(&t["Buckets"], "Bucket");
    assert_eq!(
        buckets,
        [
            "2025-01-31T00:00:00Z",
            "2025-02-01T00:00:00Z",
            "2025-02-02T00:00:00Z"
        ]
    );
    // More buckets than the maximum: 400, naming `from`.
    let m = error(
        app,
        "/analytics/vulnerabilities/trends?from=2000-01-01&to=2025-01-01",
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("'from'"), "{m}");
    let old =
        json!({"ArtifactName": "ancient:1", "CreatedAt": "2019-01-01T00:00:00Z", "Results": []});
    app.create("", old.to_string().into_bytes()).await;
    let m = error(
        app,
        "/analytics/vulnerabilities/trends?to=2025-01-01",
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        m.contains("'from'"),
        "the default reaches past the maximum: {m}"
    );
    ok(
        app,
        "/analytics/vulnerabilities/trends?interval=week&to=2025-01-01",
    )
    .await;
}

on_both_backends!(
    inputs_and_parameters,
    inputs_and_parameters_as_the_original_read_them
);

/// Every error is `{"error": "<message>", "code": "<code>"}`, the message a string as in the
/// original.
async fn errors_have_the_original_shape(app: &TestApp) {
    let cases: Vec<(StatusCode, axum::http::Method, &str, Vec<u8>)> = vec![
        (
            StatusCode::BAD_REQUEST,
            axum::http::Method::GET,
            "/scans",
            vec![],
        ),
        (
            StatusCode::NOT_FOUND,
            axum::http::Method::GET,
            "/scans/01900000-0000-7000-8000-000000000000",
            vec![],
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::http::Method::POST,
            "/scans",
            br#"{"SchemaVersion":2,"Results":"nope"}"#.to_vec(),
        ),
        (
            StatusCode::NOT_FOUND,
            axum::http::Method::GET,
            "/no/such/path",
            vec![],
        ),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::http::Method::PUT,
            "/scans/all",
            vec![],
        ),
    ];
    for (status, method, uri, body) in cases {
        let r = app.request(method.clone(), uri, body).await;
        assert_eq!(
            r.status,
            status,
            "{method} {uri}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        assert!(v["error"].is_string(), "{method} {uri}: {v}");
        assert!(v["code"].is_string(), "{method} {uri}: {v}");
        assert_eq!(v.as_object().unwrap().len(), 2, "{method} {uri}: {v}");
    }
}

on_both_backends!(error_shape, errors_have_the_original_shape);
