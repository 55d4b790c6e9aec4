//! Hostile and malformed input on every endpoint: each answer is a 4xx with a JSON error,
//! and the database is byte-for-byte what it was (row counts and a checksum of every table).

use crate::on_both_backends;
use crate::support::{corpus_file, digest, Report, TestApp};
use axum::http::{Method, StatusCode};
use rand::{Rng, SeedableRng};

const BAD_ID: &str = "1%3BDROP%20TABLE%20scans";
const MISSING: &str = "00000000-0000-7000-8000-000000000000";

/// (method, uri, body) that must each get a 4xx and change nothing.
fn hostile_requests(scan: &str, job: &str) -> Vec<(Method, String, Vec<u8>)> {
    let long = "x".repeat(5000);
    let sql = "%27%3B%20DROP%20TABLE%20scans%3B--";
    let mut v: Vec<(Method, String, Vec<u8>)> = vec![];
    let get = |u: String| (Method::GET, u, vec![]);
    // POST /scans: bodies.
    for body in [
        b"".to_vec(),
        b"{".to_vec(),
        b"nul\x00l".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        b"{\"SchemaVersion\":2,\"Results\":{}}".to_vec(),
        b"{\"SchemaVersion\":2,\"Results\":[{\"Vulnerabilities\":[{\"VulnerabilityID\":\"CVE-1\",\"Title\":\"\\u0000\"}]}]}".to_vec(),
        format!("{{\"SchemaVersion\":2,\"Results\":[{{\"Vulnerabilities\":[{{\"VulnerabilityID\":\"{}\"}}]}}]}}", "C".repeat(100_000)).into_bytes(),
        format!("[{}]", vec!["1"; 200_000].join(",")).into_bytes(),
        format!("{}{}", "{\"a\":".repeat(10_000), "1").into_bytes(),
        b"true".to_vec(),
        b"\"a string\"".to_vec(),
        b"{\"SchemaVersion\": 99}".to_vec(),
        b"{\"SchemaVersion\": -1.5}".to_vec(),
        b"{\"SchemaVersion\": 2, \"CreatedAt\": 12}".to_vec(),
        // Grype: a NUL in a stored field, an oversized id, a wrong type.
        br#"{"matches":[{"vulnerability":{"id":"CVE-1","severity":"High"},"artifact":{"name":"a\u0000b","version":"1"}}],"source":{"type":"image","target":{"userInput":"x:1"}},"descriptor":{"name":"grype"}}"#.to_vec(),
        format!(r#"{{"matches":[{{"vulnerability":{{"id":"{}"}},"artifact":{{"name":"a","version":"1"}}}}],"source":{{"type":"image","target":{{"userInput":"x:1"}}}}}}"#, "C".repeat(100_000)).into_bytes(),
        br#"{"matches":[{"vulnerability":"CVE-1"}],"source":{"type":"image","target":{"userInput":"x:1"}}}"#.to_vec(),
        // CycloneDX: vulnerabilities of the wrong type, a NUL, no image named.
        br#"{"bomFormat":"CycloneDX","specVersion":"1.6","vulnerabilities":"x"}"#.to_vec(),
        br#"{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{"component":{"type":"container","name":"x:1"}},"components":[{"bom-ref":"c","name":"a\u0000","version":"1"}],"vulnerabilities":[{"id":"CVE-1","affects":[{"ref":"c"}]}]}"#.to_vec(),
        br#"{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"bom-ref":"c","name":"a","version":"1"}],"vulnerabilities":[{"id":"CVE-1","affects":[{"ref":"c"}]}]}"#.to_vec(),
        // trivy k8s: resources of the wrong type, a NUL in a finding.
        br#"{"ClusterName":"c","Resources":{}}"#.to_vec(),
        br#"{"ClusterName":"c","Resources":[{"Namespace":"n","Kind":"Deployment","Name":"w","Results":[{"Target":"img:1 (alpine 3.1)","Class":"os-pkgs","Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"\u0000"}]}]}]}"#.to_vec(),
    ] {
        v.push((Method::POST, "/scans".into(), body));
    }
    // A cluster report names its images itself.
    let cluster = br#"{"ClusterName":"c","Resources":[{"Namespace":"n","Kind":"Deployment","Name":"w","Results":[{"Target":"img:1 (alpine 3.1)","Class":"os-pkgs","Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"p","InstalledVersion":"1"}]}]}]}"#;
    for q in ["image=x", "tag=1", "digest=sha256:aa"] {
        v.push((Method::POST, format!("/scans?{q}"), cluster.to_vec()));
    }
    let valid = Report::image("hostile:1", &digest(77)).bytes();
    for q in [
        "digest=%00".to_string(),
        format!("image={long}"),
        "tag=a%0Ab".to_string(),
        "digest=sha256:xyz".to_string(),
        format!("digest={sql}"),
        "image=%FF".to_string(),
    ] {
        v.push((Method::POST, format!("/scans?{q}"), valid.clone()));
    }
    // Scan queries.
    for q in [
        "".to_string(),
        "limit=-1&image=a".into(),
        "image=a&limit=99999999999999999999".into(),
        "image=a&offset=-3".into(),
        "image=a&offset=1e9".into(),
        "image=a&severity=DROP".into(),
        format!("tag={long}"),
        "image=%00".into(),
        "image=a&limit=1&limit=2".into(),
    ] {
        v.push(get(format!("/scans?{q}")));
    }
    for u in [
        "/scans/all?limit=abc".to_string(),
        "/scans/all?include=all".into(),
        format!("/scans/all?severity={sql}"),
        "/scans/latest".into(),
        format!("/scans/latest?image={long}"),
        format!("/scans/{BAD_ID}"),
        format!("/scans/{BAD_ID}/vulnerabilities"),
        format!("/scans/{BAD_ID}/report"),
        format!("/scans/{scan}/vulnerabilities?severity=HIGHEST"),
        format!("/scans/{scan}/vulnerabilities?limit=0"),
        format!("/scans/{scan}/vulnerabilities?offset=-1"),
        format!("/scans/{MISSING}"),
        format!("/scans/{MISSING}/report"),
        format!("/scans/{BAD_ID}/diff"),
        format!("/scans/{scan}/diff"),
        format!("/scans/{scan}/diff?against={sql}"),
        format!("/scans/{scan}/diff?against={MISSING}"),
        format!("/scans/{MISSING}/diff?against=previous"),
        format!("/scans/{scan}/export"),
        format!("/scans/{scan}/export?format=xlsx"),
        format!("/scans/{BAD_ID}/export?format=csv"),
        format!("/scans/{MISSING}/export?format=sarif"),
        "/analytics/vulnerabilities/fixable?format=csv&workload=*&image=a".into(),
        "/analytics/vulnerabilities/cve/CVE-1/images?format=yaml".into(),
        "/images/history".into(),
        "/images/history?image=%00".into(),
        format!("/images/history?image={long}"),
        "/images/history?image=a&limit=abc".into(),
        "/images/history?image=a&offset=-1".into(),
    ] {
        v.push(get(u));
    }
    v.push((Method::DELETE, format!("/scans/{BAD_ID}"), vec![]));
    v.push((Method::DELETE, format!("/scans/{MISSING}"), vec![]));
    v.push((Method::PUT, format!("/scans/{scan}"), b"{}".to_vec()));
    v.push((Method::PATCH, "/scans".into(), b"{}".to_vec()));
    // Scan jobs.
    for body in [
        b"".to_vec(),
        b"[]".to_vec(),
        b"{\"image\": null}".to_vec(),
        b"{\"image\": \"\"}".to_vec(),
        format!("{{\"image\": \"{long}\"}}").into_bytes(),
        b"{\"image\": \"a\\u0000b\"}".to_vec(),
        b"{\"image\": \"UPPER/Case\"}".to_vec(),
        format!("{{\"image\": \"nginx{sql}\"}}").into_bytes(),
        b"{\"image\": \"nginx\", \"priority\": 1e300}".to_vec(),
        b"{\"image\": \"nginx\", \"priority\": -9999999}".to_vec(),
        b"{\"image\": \"nginx\", \"force\": \"yes\"}".to_vec(),
        b"{\"image\": \"nginx\", \"extra\": 1}".to_vec(),
    ] {
        v.push((Method::POST, "/scan-jobs".into(), body));
    }
    for u in [
        "/scan-jobs?status=running".to_string(),
        "/scan-jobs?limit=-1".into(),
        "/scan-jobs?offset=abc".into(),
        format!("/scan-jobs/{BAD_ID}"),
        format!("/scan-jobs/{BAD_ID}/events"),
        format!("/scan-jobs/{MISSING}"),
        format!("/scan-jobs/{MISSING}/events"),
    ] {
        v.push(get(u));
    }
    for u in [
        format!("/scan-jobs/{BAD_ID}/cancel"),
        format!("/scan-jobs/{MISSING}/retry"),
        format!("/scan-jobs/{job}/retry"),
    ] {
        v.push((Method::POST, u, vec![]));
    }
    // Analytics.
    for u in [
        "/analytics/vulnerabilities/summary?from=yesterday",
        "/analytics/vulnerabilities/summary?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        "/analytics/vulnerabilities/trends?interval=hour",
        "/analytics/vulnerabilities/trends?from=0001-01-01T00:00:00Z&to=9999-01-01T00:00:00Z",
        "/analytics/vulnerabilities/top-cves?limit=-5",
        "/analytics/vulnerabilities/top-cves?limit=abc",
        "/analytics/vulnerabilities/top-cves?severity=SEVERE",
        "/analytics/vulnerabilities/cve/CVE-1/images?limit=-1",
        "/analytics/vulnerabilities/cve/CVE-1/images?offset=x",
        "/analytics/vulnerabilities/fixable?limit=-1",
        "/analytics/vulnerabilities/fixable?to=%00",
    ] {
        v.push(get(u.to_string()));
    }
    v
}

async fn every_endpoint_refuses_bad_input_without_changing_data(app: &TestApp) {
    // Some data to protect: a scan, a finished job, a queued job.
    let scan = app
        .ingest("", corpus_file("trivy/alpine-3.10_trivy-dev-head.json"))
        .await;
    let scan_id = scan["ID"].as_str().unwrap().to_string();
    let job = crate::jobs::post_job(app, serde_json::json!({"image": "alpine:3.19"}))
        .await
        .json();
    let job_id = job["ID"].as_str().unwrap().to_string();
    let before = app.fingerprint().await;

    for (method, uri, body) in hostile_requests(&scan_id, &job_id) {
        let shown = format!(
            "{method} {} ({} bytes)",
            &uri[..uri.len().min(120)],
            body.len()
        );
        let r = app.request(method, &uri, body).await;
        assert!(
            r.status.is_client_error(),
            "{shown}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
        );
        r.error_code();
    }
    // Truncations of real reports of each format at random points are all refused.
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for file in [
        "grype/busybox-1.32.1_epss_grype-0.94.0.json",
        "cyclonedx/ubuntu-22.04_trivy-0.48.1_cdx-1.5.json",
        "trivy/k8s-cluster_local_resources.json",
        "trivy/ubuntu-18.04_trivy-dev-head.json",
    ] {
        let report = corpus_file(file);
        for _ in 0..15 {
            let cut = rng.gen_range(1..report.len() - 2);
            let r = app.post_scan("", report[..cut].to_vec()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{file} cut at {cut}");
            assert_eq!(r.error_code(), "invalid_json");
        }
    }
    let report = corpus_file("trivy/ubuntu-18.04_trivy-dev-head.json");
    assert_eq!(
        app.fingerprint().await,
        before,
        "bad input changed stored data"
    );
    // Byte flips: whatever is answered, it is never a server error.
    for _ in 0..40 {
        let mut b = report.clone();
        for _ in 0..3 {
            let i = rng.gen_range(0..b.len());
            b[i] = rng.gen();
        }
        let r = app.post_scan("image=flipped", b).await;
        assert!(
            !r.status.is_server_error(),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

on_both_backends!(
    hostile_input,
    every_endpoint_refuses_bad_input_without_changing_data
);
