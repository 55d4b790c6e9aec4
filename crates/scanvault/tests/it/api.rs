//! The scan API: every endpoint and its error paths, on both backends.

use crate::on_both_backends;
use crate::support::{digest, Db, Report, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::Value;

async fn ingest_creates_then_updates_in_place(app: &TestApp) {
    let r1 = Report::image("nginx:1.25", &digest(1))
        .at("2025-01-01T00:00:00Z")
        .vuln("CVE-1", "openssl", "3.0.1", "CRITICAL", Some("3.0.2"))
        .vuln("CVE-2", "zlib", "1.2", "LOW", None);
    let first = app.post_scan("", r1.bytes()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let s1 = first.json();
    assert_eq!(
        first.headers["location"],
        format!("/scans/{}", s1["ID"].as_str().unwrap())
    );
    assert_eq!(s1["ImageName"], "nginx");
    assert_eq!(s1["ImageTag"], "1.25");
    assert_eq!(s1["ImageDigest"], digest(1));
    assert_eq!(s1["VulnCritical"], 1);
    assert_eq!(s1["VulnLow"], 1);
    assert_eq!(s1["FixableCount"], 1);
    assert_eq!(s1["RiskScore"], 11);
    assert_eq!(s1["IsCompliant"], false);
    assert_eq!(s1["CVSSScore"], 5.0);
    assert_eq!(s1["Source"], "ingest");
    assert_eq!(s1["ScannedAt"], "2025-01-01T00:00:00Z");

    // Same digest, a day later: CVE-1 fixed away, CVE-3 new → 200, same id, diff written.
    let r2 = Report::image("nginx:1.25", &digest(1))
        .at("2025-01-02T00:00:00Z")
        .vuln("CVE-2", "zlib", "1.2", "LOW", None)
        .vuln("CVE-3", "curl", "8.0", "HIGH", Some("8.1"));
    let second = app.post_scan("", r2.bytes()).await;
    assert_eq!(second.status, StatusCode::OK);
    let s2 = second.json();
    assert_eq!(s2["ID"], s1["ID"]);
    assert_eq!(s2["VulnCritical"], 0);
    assert_eq!(s2["VulnHigh"], 1);
    assert_eq!(s2["IsCompliant"], true);
    assert_eq!(s2["ScannedAt"], "2025-01-02T00:00:00Z");
    assert_eq!(s2["CreatedAt"], s1["CreatedAt"]);
    let ids: Vec<String> = findings(app, s2["ID"].as_str().unwrap()).await;
    assert_eq!(ids, vec!["CVE-3", "CVE-2"]);

    // An older report of the same digest arriving late does not roll the findings back.
    let late = app.post_scan("", r1.bytes()).await;
    assert_eq!(late.status, StatusCode::OK);
    assert_eq!(late.json()["VulnHigh"], 1);
    assert_eq!(
        findings(app, s2["ID"].as_str().unwrap()).await,
        vec!["CVE-3", "CVE-2"]
    );

    // CVE-1 left the scan, not its history (the first observation, and the late one, had
    // it): the catalog keeps it. Only a deletion can leave an entry no finding references.
    assert_eq!(app.rows("vulnerabilities").await, 3);
    assert!(!app.store.admin().sweep_mark().is_due());
    assert_eq!(app.store.admin().sweep_catalog().await.unwrap(), 0);
    let r3 = Report::image("nginx:1.25", &digest(1))
        .at("2025-01-03T00:00:00Z")
        .vuln("CVE-2", "zlib", "1.2", "LOW", None)
        .vuln("CVE-3", "curl", "8.0", "HIGH", Some("8.1"))
        .vuln("CVE-4", "curl", "8.0", "LOW", None);
    assert_eq!(app.post_scan("", r3.bytes()).await.status, StatusCode::OK);
    assert!(!app.store.admin().sweep_mark().is_due());
    assert_eq!(app.rows("vulnerabilities").await, 4);

    // Everything fixed: the scan has no finding now; its history keeps the catalog.
    let id = s2["ID"].as_str().unwrap();
    let clean = Report::image("nginx:1.25", &digest(1)).at("2025-01-04T00:00:00Z");
    let r = app.post_scan("", clean.bytes()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["VulnHigh"], 0);
    assert!(findings(app, id).await.is_empty());
    assert_eq!(app.store.admin().sweep_catalog().await.unwrap(), 0);
    // Four observations: the late report was the first one again, which adds nothing.
    let o = app.get_json(&format!("/scans/{id}/observations")).await;
    let times: Vec<&str> = o["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ScannedAt"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2025-01-01T00:00:00Z",
            "2025-01-02T00:00:00Z",
            "2025-01-03T00:00:00Z",
            "2025-01-04T00:00:00Z"
        ],
        "{o}"
    );
    // A finding again after none.
    let again = Report::image("nginx:1.25", &digest(1))
        .at("2025-01-05T00:00:00Z")
        .vuln("CVE-5", "bash", "5.2", "MEDIUM", None);
    assert_eq!(
        app.post_scan("", again.bytes()).await.status,
        StatusCode::OK
    );
    assert_eq!(findings(app, id).await, vec!["CVE-5"]);
}

async fn findings(app: &TestApp, id: &str) -> Vec<String> {
    let v = app.get_json(&format!("/scans/{id}/vulnerabilities")).await;
    v["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["Vulnerability"]["VulnerabilityID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// A scan as `GET /scans/{id}` answers it (to compare with the answer of `POST /scans`).
async fn stored_scan(app: &TestApp, id: &Value) -> Value {
    app.get_json(&format!("/scans/{}", id.as_str().unwrap()))
        .await
}

async fn a_new_tag_for_a_digest_is_recorded_without_rewriting_history(app: &TestApp) {
    let r = Report::image("app:1.0", &digest(7))
        .at("2025-03-01T00:00:00Z")
        .vuln("CVE-9", "p", "1", "HIGH", None);
    let s1 = app.ingest("", r.bytes()).await;
    assert_eq!(s1["Tags"], serde_json::json!(["1.0"]));
    // A new scan is answered as it is stored, ScanResult included.
    assert_eq!(stored_scan(app, &s1["ID"]).await, s1);
    let retag = app.post_scan("tag=latest", r.bytes()).await;
    assert_eq!(retag.status, StatusCode::OK);
    let s2 = retag.json();
    assert_eq!(s2["ID"], s1["ID"]);
    assert_eq!(s2["ImageTag"], "1.0", "the scan keeps its first tag");
    assert_eq!(s2["CreatedAt"], s1["CreatedAt"]);
    assert_eq!(s2["Tags"], serde_json::json!(["1.0", "latest"]));
    // So is an updated one.
    assert_eq!(stored_scan(app, &s2["ID"]).await, s2);
    // Both tags find it.
    for tag in ["1.0", "latest"] {
        let l = app.get_json(&format!("/scans?tag={tag}")).await;
        assert_eq!(l["Count"], 1, "{tag}");
        assert_eq!(l["Items"][0]["ID"], s1["ID"]);
    }
    let latest = app.get_json("/scans/latest?image=app&tag=latest").await;
    assert_eq!(latest["ID"], s1["ID"]);
}

async fn query_parameters_override_the_report(app: &TestApp) {
    let r = Report::image("nginx:1.25", &digest(2));
    let s = app
        .ingest(
            &format!("image=docker.io/library/web&tag=prod&digest={}", digest(3)),
            r.bytes(),
        )
        .await;
    assert_eq!(s["ImageName"], "web");
    assert_eq!(s["ImageTag"], "prod");
    assert_eq!(s["ImageDigest"], digest(3));
    let bad = app.post_scan("digest=nope", r.bytes()).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "bad_request");
}

async fn reports_without_identity_are_known_by_their_content(app: &TestApp) {
    let mut r = Report::image("tool:1", &digest(4))
        .at("2025-03-01T00:00:00Z")
        .vuln("CVE-1", "p", "1", "HIGH", Some("2"));
    r.repo_digests.clear();
    r.image_id = None;
    let a = app.post_scan("", r.bytes()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let id = a.json()["ID"].clone();
    // The same bytes again: the stored scan, not a duplicate.
    let b = app.post_scan("", r.bytes()).await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(b.json()["ID"], id);
    // The same findings under the same name and tag, scanned later: the same scan, observed
    // again.
    let later = r.clone().at("2025-03-02T00:00:00Z");
    let c = app.post_scan("", later.bytes()).await;
    assert_eq!(c.status, StatusCode::OK);
    assert_eq!(c.json()["ID"], id);
    assert_eq!(c.json()["ScannedAt"], "2025-03-02T00:00:00Z");
    let obs = app
        .get_json(&format!("/scans/{}/observations", id.as_str().unwrap()))
        .await;
    assert_eq!(obs["Count"], 2);
    // Another tag, other findings, another fixed version: other scans.
    for (query, other) in [
        ("tag=2", r.clone()),
        ("", r.clone().vuln("CVE-2", "q", "1", "LOW", None)),
        ("", {
            let mut o = Report::image("tool:1", &digest(4))
                .at("2025-03-01T00:00:00Z")
                .vuln("CVE-1", "p", "1", "HIGH", Some("3"));
            o.repo_digests.clear();
            o.image_id = None;
            o
        }),
    ] {
        let d = app.post_scan(query, other.bytes()).await;
        assert_eq!(d.status, StatusCode::CREATED, "{query}");
        assert_ne!(d.json()["ID"], id);
    }
    assert_eq!(app.get_json("/scans?image=tool").await["Count"], 4);
}

async fn legacy_null_and_bom_crlf_are_accepted(app: &TestApp) {
    let n = app.create("image=legacy&tag=1", b"null".to_vec()).await;
    assert_eq!(n["VulnTotal"], 0);
    // A report that names no image needs `?image=`, as in the original service.
    let before = app.fingerprint().await;
    for body in [
        &b"null"[..],
        b"[]",
        br#"{"SchemaVersion": 2, "Results": []}"#,
    ] {
        let unnamed = app.post_scan("", body.to_vec()).await;
        assert_eq!(unnamed.status, StatusCode::BAD_REQUEST);
        assert_eq!(unnamed.error_code(), "image_required");
        assert!(
            unnamed.json()["error"]
                .as_str()
                .unwrap()
                .contains("provide ?image=<name>"),
            "{}",
            unnamed.json()
        );
    }
    assert_eq!(app.fingerprint().await, before);
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend(
        String::from_utf8(
            Report::image("bom:1", &digest(5))
                .vuln("CVE-5", "p", "1", "LOW", None)
                .bytes(),
        )
        .unwrap()
        .replace(',', ",\r\n")
        .into_bytes(),
    );
    let b = app.create("", body.clone()).await;
    let id = b["ID"].as_str().unwrap().to_string();
    assert_eq!(app.get(&format!("/scans/{id}/report")).await.body, body);
}

async fn bad_bodies_get_clear_errors_and_change_nothing(app: &TestApp) {
    app.ingest(
        "",
        Report::image("keep:1", &digest(6))
            .vuln("CVE-6", "p", "1", "LOW", None)
            .bytes(),
    )
    .await;
    let before = app.fingerprint().await;
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"".to_vec(), StatusCode::BAD_REQUEST, "empty_body"),
        (b"   ".to_vec(), StatusCode::BAD_REQUEST, "empty_body"),
        (b"{\"SchemaVersion\": 2, \"Results\": [".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        (b"not json".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        (b"{\"SchemaVersion\": 2, \"Results\": []} trailing".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        (b"{\"A\":\"\xff\xfe\"}".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        (b"{\"SchemaVersion\": 2, \"Results\": 7}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_report"),
        (b"{\"SchemaVersion\": \"2\"}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_report"),
        (b"{\"hello\": \"world\"}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_report"),
        (b"42".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_report"),
        ("[".repeat(5000).into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_report"),
        (format!("{{\"SchemaVersion\":2,\"X\":{}", "[".repeat(5000)).into_bytes(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_report"),
        (
            format!("{{\"SchemaVersion\":2,\"Results\":[{{\"Vulnerabilities\":{}}}]}}", "[".repeat(3000)).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_report",
        ),
        (
            br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"a\u0000b"}]}]}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_report",
        ),
        // A Grype report of nothing it can name.
        (br#"{"matches":[],"source":{},"descriptor":{}}"#.to_vec(), StatusCode::BAD_REQUEST, "image_required"),
        (br#"{"matches":7,"source":{},"descriptor":{}}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_report"),
        (
            br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_format",
        ),
        (br#"{"ClusterName":"c","Resources":{}}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_report"),
    ];
    for (body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let r = app.post_scan("", body).await;
        assert_eq!(
            r.status,
            status,
            "{shown}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.error_code(), code, "{shown}");
    }
    assert_eq!(app.fingerprint().await, before);
}

async fn oversized_bodies_are_413(app: &TestApp) {
    let before = app.fingerprint().await;
    let big = vec![b' '; (32 << 20) + 10];
    let r = app.post_scan("", big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "payload_too_large");
    assert_eq!(app.fingerprint().await, before);
}

async fn lists_are_newest_first_paginated_and_validated(app: &TestApp) {
    for i in 1..=5u32 {
        let r = Report::image(&format!("svc:{i}"), &digest(100 + i))
            .at(&format!("2025-02-0{i}T00:00:00Z"))
            .vuln(
                "CVE-A",
                "p",
                "1",
                if i % 2 == 0 { "HIGH" } else { "LOW" },
                None,
            );
        app.ingest("", r.bytes()).await;
    }
    let all = app.get_json("/scans?image=svc").await;
    assert_eq!(all["Count"], 5);
    assert_eq!(all["Limit"], 100);
    // Every item carries its ScanResult by default, as the original's did.
    for item in all["Items"].as_array().unwrap() {
        assert_eq!(
            item["ScanResult"]["Results"][0]["Vulnerabilities"][0]["VulnerabilityID"],
            "CVE-A"
        );
    }
    let light = app.get_json("/scans?image=svc&include=summary").await;
    assert_eq!(light["Count"], 5);
    assert!(
        light["Items"][0].get("ScanResult").is_none(),
        "include=summary leaves the ScanResult out"
    );
    let tags: Vec<&str> = all["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ImageTag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, vec!["5", "4", "3", "2", "1"]);
    // `Count` is every match; the page is told by Limit, Offset and HasMore.
    let page = app.get_json("/scans/all?image=svc&limit=2&offset=1").await;
    assert_eq!(page["Count"], 5);
    assert_eq!(page["Items"].as_array().unwrap().len(), 2);
    assert_eq!(page["HasMore"], true);
    assert_eq!(page["Items"][0]["ImageTag"], "4");
    let last = app.get_json("/scans/all?image=svc&limit=2&offset=4").await;
    assert_eq!(last["Count"], 5);
    assert_eq!(last["HasMore"], false);
    let beyond = app.get_json("/scans?image=svc&offset=10").await;
    assert_eq!(beyond["Count"], 5);
    assert_eq!(beyond["Items"], serde_json::json!([]));
    // Above the maximum page size: capped.
    let capped = app.get_json("/scans?image=svc&limit=501").await;
    assert_eq!(capped["Limit"], 500);
    assert_eq!(capped["Count"], 5);
    let high = app.get_json("/scans?image=svc&severity=high&limit=1").await;
    assert_eq!(high["Count"], 2);
    assert_eq!(high["HasMore"], true);
    let with_result = app
        .get_json("/scans/all?image=svc&limit=1&include=result")
        .await;
    assert_eq!(
        with_result["Items"][0]["ScanResult"]["Results"][0]["Vulnerabilities"][0]
            ["VulnerabilityID"],
        "CVE-A"
    );
    let by_tag = app.get_json("/scans?tag=3").await;
    assert_eq!(by_tag["Count"], 1);

    for bad in [
        "/scans",
        "/scans?limit=10",
        "/scans?image=svc&limit=-1",
        "/scans?image=svc&limit=abc",
        "/scans?image=svc&offset=-5",
        "/scans?image=svc&offset=99999999999999999999",
        "/scans?image=svc&severity=catastrophic",
        "/scans/all?include=everything",
        "/scans/latest",
        "/scans/not-a-uuid",
        "/scans/not-a-uuid/vulnerabilities",
        "/scans/not-a-uuid/report",
        "/scans/00000000-0000-0000-0000-000000000000/vulnerabilities?severity=x",
    ] {
        let r = app.get(bad).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.error_code();
    }
    let sqlish = app
        .get_json("/scans?image=svc%27%20OR%20%271%27%3D%271")
        .await;
    assert_eq!(sqlish["Count"], 0);
}

async fn get_latest_vulnerabilities_report_and_delete(app: &TestApp) {
    let old = Report::image("db:15", &digest(200))
        .at("2025-01-01T00:00:00Z")
        .vuln("CVE-X", "libpq", "15.1", "MEDIUM", None);
    let new = Report::image("db:15", &digest(201))
        .at("2025-01-03T00:00:00Z")
        .vuln("CVE-Y", "libpq", "15.2", "CRITICAL", Some("15.3"))
        .vuln("CVE-Z", "zlib", "1", "LOW", None);
    let a = app.ingest("", old.bytes()).await;
    let b = app.ingest("", new.bytes()).await;
    let latest = app.get_json("/scans/latest?image=db").await;
    assert_eq!(latest["ID"], b["ID"]);
    assert_eq!(
        latest["ScanResult"]["Metadata"]["RepoDigests"][0],
        format!("db@{}", digest(201))
    );
    let one = app
        .get_json(&format!("/scans/{}", a["ID"].as_str().unwrap()))
        .await;
    assert_eq!(
        one["ScanResult"]["Results"][0]["Vulnerabilities"][0]["PkgVersion"],
        "15.1"
    );
    assert_eq!(one["ScanResult"]["Results"][0]["Class"], "os-pkgs");

    let bid = b["ID"].as_str().unwrap();
    let v = app
        .get_json(&format!("/scans/{bid}/vulnerabilities?pkg=LIBPQ"))
        .await;
    assert_eq!(v["Count"], 1);
    let item = &v["Items"][0];
    assert_eq!(item["Target"], "db:15 (alpine 3.19.1)");
    assert_eq!(item["Vulnerability"]["CurrentVersion"], "15.2");
    assert_eq!(item["Vulnerability"]["FixedVersion"], "15.3");
    assert_eq!(item["Vulnerability"]["Severity"], "CRITICAL");
    assert_eq!(item["Vulnerability"]["Title"], "CVE-Y in libpq");
    let none = app
        .get_json(&format!("/scans/{bid}/vulnerabilities?severity=HIGH"))
        .await;
    assert_eq!(none["Count"], 0);
    assert_eq!(none["Items"], Value::Array(vec![]));

    let missing = "00000000-0000-7000-8000-000000000000";
    for uri in [
        format!("/scans/{missing}"),
        format!("/scans/{missing}/vulnerabilities"),
        format!("/scans/{missing}/report"),
        "/scans/latest?image=nothing-here".to_string(),
    ] {
        let r = app.get(&uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.error_code(), "scan_not_found");
    }

    assert_eq!(
        app.delete(&format!("/scans/{bid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/scans/{bid}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete("/scans/xyz").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get(&format!("/scans/{bid}/report")).await.status,
        StatusCode::NOT_FOUND
    );
    let latest = app.get_json("/scans/latest?image=db").await;
    assert_eq!(latest["ID"], a["ID"]);
    // CVE-Y and CVE-Z went with the deleted scan; their catalog entries stay until the
    // catalog sweep the deletion marked due.
    assert_eq!(app.rows("vulnerabilities").await, 3);
    assert!(app.store.admin().sweep_mark().is_due());
    assert_eq!(app.store.admin().sweep_catalog_if_due().await.unwrap(), 2);
    assert!(!app.store.admin().sweep_mark().is_due());
    assert_eq!(app.rows("vulnerabilities").await, 1);
    // The entry still referenced is shown with the scan that remains.
    let v = app
        .get_json(&format!(
            "/scans/{}/vulnerabilities",
            a["ID"].as_str().unwrap()
        ))
        .await;
    assert!(v["Items"][0]["Vulnerability"]["Title"].is_string(), "{v}");
}

async fn health_ready_metrics_and_openapi(app: &TestApp) {
    assert_eq!(app.get_json("/health").await["status"], "ok");
    assert_eq!(app.get_json("/ready").await["status"], "ok");
    app.ingest("", Report::image("m:1", &digest(300)).bytes())
        .await;
    let m = app.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("scanvault_http_requests_total"), "{text}");
    assert!(
        text.contains("scanvault_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("scanvault_ingest_scans_total"), "{text}");
    let doc = app.get_json("/swagger/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/scans",
        "/scans/{id}",
        "/scans/{id}/report",
        "/scans/latest",
        "/scans/all",
        "/health",
        "/ready",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from the OpenAPI document"
        );
    }
    let ui = app.get("/swagger/").await;
    assert_eq!(ui.status, StatusCode::OK);
    assert!(
        String::from_utf8_lossy(&ui.body).contains("swagger"),
        "Swagger UI page"
    );
    let unknown = app.get("/nope").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    unknown.error_code();
    let wrong_method = app.request(Method::PUT, "/scans", vec![]).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    wrong_method.error_code();
}

on_both_backends!(ingest_update_in_place, ingest_creates_then_updates_in_place);
on_both_backends!(
    ingest_new_tag,
    a_new_tag_for_a_digest_is_recorded_without_rewriting_history
);
on_both_backends!(ingest_overrides, query_parameters_override_the_report);
on_both_backends!(
    ingest_no_identity,
    reports_without_identity_are_known_by_their_content
);
on_both_backends!(ingest_legacy_bom, legacy_null_and_bom_crlf_are_accepted);
on_both_backends!(
    ingest_bad_bodies,
    bad_bodies_get_clear_errors_and_change_nothing
);
on_both_backends!(ingest_oversized, oversized_bodies_are_413);
on_both_backends!(scan_lists, lists_are_newest_first_paginated_and_validated);
on_both_backends!(
    scan_get_delete,
    get_latest_vulnerabilities_report_and_delete
);
on_both_backends!(health_metrics_openapi, health_ready_metrics_and_openapi);

/// `POST /scans` on a clone of the app's router, for requests sent from spawned tasks.
async fn post_on(router: axum::Router, body: Vec<u8>) -> axum::response::Response {
    use tower::ServiceExt;
    let req = axum::http::Request::post("/scans")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    router.oneshot(req).await.unwrap()
}

/// An ingest that PostgreSQL picks as the victim of a deadlock is run again, and the
/// client gets its 201, not a 409. The deadlock is made on purpose: another transaction
/// holds the image reference the ingest will lock, waits until the ingest is blocked on
/// it, then inserts the catalog entry the ingest has already inserted. The ingest waited
/// first, so its deadlock check (1 s) fires first (the other side's is set to 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_chosen_as_deadlock_victim_is_retried_postgres() {
    use sqlx::{Connection, PgConnection};
    let Some(app) = TestApp::try_new(Db::Postgres).await else {
        return;
    };
    let url = app.pg_url().unwrap().to_string();
    let mut other = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "SET deadlock_timeout = '30s'; BEGIN; \
         INSERT INTO fleet_refs (image_name, image_tag) VALUES ('deadlock/app', '1')",
    )
    .execute(&mut other)
    .await
    .unwrap();
    let body = Report::image("deadlock/app:1", &digest(950))
        .at("2025-05-01T00:00:00Z")
        .vuln("CVE-2031-0001", "p", "1", "HIGH", Some("2"))
        .bytes();
    let ingest = tokio::spawn(post_on(app.router.clone(), body));
    // Wait until the ingest waits for the reference's lock.
    let mut watch = PgConnection::connect(&url).await.unwrap();
    let mut waited = 0;
    loop {
        let blocked: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO fleet_refs%'",
        )
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if blocked > 0 {
            break;
        }
        waited += 1;
        assert!(
            waited < 400,
            "the ingest never waited for the reference lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    // Closes the cycle; returns once PostgreSQL has aborted the ingest's transaction.
    sqlx::query(
        "INSERT INTO vulnerabilities (id, severity, updated_at) VALUES ('CVE-2031-0001', 0, 0)",
    )
    .execute(&mut other)
    .await
    .expect("the other side is not the victim");
    // The ingest's retry now waits for the reference again; let it go.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    let resp = ingest.await.unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&bytes));
    let images = app
        .get_json("/analytics/vulnerabilities/cve/CVE-2031-0001/images")
        .await;
    assert_eq!(images["ImageCount"], 1, "{images}");
    other.close().await.unwrap();
    watch.close().await.unwrap();
    app.finish().await;
}

/// Many clients posting the same digest at once produce exactly one scan and no 5xx.
async fn concurrent_ingests_of_one_digest_make_one_scan(app: &TestApp) {
    let report = Report::image("race:1", &digest(900))
        .at("2025-05-01T00:00:00Z")
        .vuln("CVE-R1", "p", "1", "HIGH", Some("2"))
        .vuln("CVE-R2", "q", "1", "LOW", None);
    let mut tasks = vec![];
    for i in 0..24 {
        let router = app.router.clone();
        let body = if i % 3 == 0 {
            // some clients report another tag of the same digest
            let mut r = Report::image("race:latest", &digest(900)).at("2025-05-01T00:00:00Z");
            r.vulns = report.vulns.clone();
            r.bytes()
        } else {
            report.bytes()
        };
        tasks.push(tokio::spawn(
            async move { post_on(router, body).await.status() },
        ));
    }
    let mut created = 0;
    for t in tasks {
        let status = t.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}"
        );
        if status == StatusCode::CREATED {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one request creates the scan");
    let all = app.get_json("/scans/all").await;
    assert_eq!(all["Count"], 1);
    let mut tags: Vec<&str> = all["Items"][0]["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        vec!["1", "latest"],
        "tags are recorded in arrival order"
    );
    assert_eq!(app.findings_total().await, 2);
    assert_eq!(app.rows("vulnerabilities").await, 2);
}

on_both_backends!(
    ingest_concurrent_same_digest,
    concurrent_ingests_of_one_digest_make_one_scan
);

/// Concurrent ingests of different images that bring the same new vulnerability ids, listed
/// in different orders, all succeed: catalog rows are written in one order (by id), so two
/// ingests never wait on each other's new rows in a cycle (PostgreSQL: deadlock, 409).
async fn concurrent_new_catalog_entries_do_not_deadlock(app: &TestApp) {
    let ids: Vec<String> = (0..300).map(|i| format!("CVE-2031-{i:05}")).collect();
    for round in 0..4u32 {
        let mut tasks = vec![];
        for client in 0..8u32 {
            // Each client lists the round's ids rotated by a different amount, half of
            // them reversed: every pair of reports orders some ids differently.
            let mut order: Vec<&String> = ids.iter().collect();
            order.rotate_left((client as usize * 37) % ids.len());
            if client % 2 == 1 {
                order.reverse();
            }
            let mut report = Report::image(
                &format!("deadlock-{round}-{client}:1"),
                &digest(1000 + round * 10 + client),
            );
            for id in order {
                report = report.vuln(&format!("{id}-{round}"), "p", "1", "HIGH", Some("2"));
            }
            let router = app.router.clone();
            let body = report.bytes();
            tasks.push(tokio::spawn(async move {
                let resp = post_on(router, body).await;
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }));
        }
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "round {round}: {body}");
        }
    }
    assert_eq!(app.rows("vulnerabilities").await, 4 * 300);
    assert_eq!(app.findings_total().await, 4 * 8 * 300);
}

on_both_backends!(
    ingest_concurrent_new_catalog_entries,
    concurrent_new_catalog_entries_do_not_deadlock
);

/// The README's table of list limits, as rows of (paths, default, maximum).
fn documented_limits() -> Vec<(Vec<String>, i64, i64)> {
    let readme = include_str!("../../../../README.md");
    let table = readme
        .split("| list | default `limit` | maximum |")
        .nth(1)
        .expect("the README has a table of list limits");
    let number = |cell: &str| -> i64 {
        let digits: String = cell
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no number in {cell:?}"))
    };
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let paths = cells[1]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(|p| p.trim_start_matches("GET ").to_string())
                .collect();
            (paths, number(cells[2]), number(cells[3]))
        })
        .collect()
}

async fn documented_limits_are_the_limits(app: &TestApp) {
    let s = app
        .create(
            "",
            Report::image("limits:1", &digest(900))
                .vuln("CVE-L", "p", "1", "HIGH", Some("2"))
                .bytes(),
        )
        .await;
    let id = s["ID"].as_str().unwrap();
    let rows = documented_limits();
    assert_eq!(rows.len(), 5, "{rows:?}");
    for (paths, default, max) in rows {
        for path in paths {
            let mut path = path.replace("{id}", if path.contains("/cve/") { "CVE-L" } else { id });
            if path.ends_with('=') {
                path.push_str("limits");
            }
            let sep = if path.contains('?') { "&" } else { "?" };
            let plain = app.get_json(&path).await;
            assert_eq!(plain["Limit"], default, "{path}: default");
            let huge = app.get_json(&format!("{path}{sep}limit=999999999")).await;
            assert_eq!(huge["Limit"], max, "{path}: maximum");
            let r = app.get(&format!("{path}{sep}limit=-1")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: negative");
        }
    }
}

on_both_backends!(documented_limits, documented_limits_are_the_limits);
