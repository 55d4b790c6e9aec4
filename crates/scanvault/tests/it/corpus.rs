//! Every Trivy and legacy Trivy file of the shared corpus ingests through `POST /scans`,
//! and the stored counts equal the `findings` block of EXPECTED.json; the image identity is
//! DESIGN.md's; the raw report comes back byte for byte.

use crate::on_both_backends;
use crate::support::{corpus_dir, TestApp};
use axum::http::StatusCode;
use serde_json::Value;

async fn every_corpus_report_is_stored_with_expected_counts(app: &TestApp) {
    let dir = corpus_dir();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("EXPECTED.json")).unwrap()).unwrap();
    let mut stored = 0;
    for (name, facts) in expected["files"].as_object().unwrap() {
        let format = facts["format"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let before = app.fingerprint().await;
        let r = app.post_scan("", bytes.clone()).await;
        if format != "trivy" && format != "trivy-legacy" || facts["shape"] == "trivy-k8s" {
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
            assert_eq!(r.error_code(), "unsupported_format", "{name}");
            assert_eq!(
                app.fingerprint().await,
                before,
                "{name}: a refused report changed the database"
            );
            continue;
        }
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let scan = r.json();
        let f = &facts["findings"];
        let id = scan["ID"].as_str().unwrap();
        for (field, sev) in [
            ("VulnCritical", "CRITICAL"),
            ("VulnHigh", "HIGH"),
            ("VulnMedium", "MEDIUM"),
            ("VulnLow", "LOW"),
            ("VulnUnknown", "UNKNOWN"),
        ] {
            assert_eq!(scan[field], f["severity"][sev], "{name}: {field}");
        }
        assert_eq!(scan["VulnTotal"], f["count"], "{name}: total");
        assert_eq!(scan["FixableCount"], f["fixable"], "{name}: fixable");

        // Identity per DESIGN.md.
        if format == "trivy" {
            let img = &facts["image"];
            let want_name = img["familiar_name"]
                .as_str()
                .or(facts["artifact_name"].as_str())
                .unwrap();
            assert_eq!(scan["ImageName"], want_name, "{name}: name");
            assert_eq!(
                scan["ImageTag"],
                img["tag"].as_str().unwrap_or(""),
                "{name}: tag"
            );
            assert_eq!(
                scan["ImageDigest"],
                img["digest_for_name"].as_str().unwrap_or(""),
                "{name}: digest"
            );
        }

        // The stored findings agree with the counts.
        let v = app.get_json(&format!("/scans/{id}/vulnerabilities")).await;
        assert_eq!(v["Count"], f["count"], "{name}: vulnerabilities endpoint");
        let crit = app
            .get_json(&format!("/scans/{id}/vulnerabilities?severity=critical"))
            .await;
        assert_eq!(
            crit["Count"], f["severity"]["CRITICAL"],
            "{name}: critical filter"
        );

        // Byte for byte.
        let raw = app.get(&format!("/scans/{id}/report")).await;
        assert_eq!(raw.status, StatusCode::OK);
        assert_eq!(raw.body, bytes, "{name}: report not returned byte for byte");

        // Re-ingesting the same report changes nothing and answers 200 when it has an identity.
        let again = app.post_scan("", bytes).await;
        if scan["ImageDigest"] != "" || !img_id_empty(&scan) {
            assert_eq!(again.status, StatusCode::OK, "{name}: re-ingest");
            assert_eq!(again.json()["ID"], scan["ID"], "{name}: re-ingest id");
        }
        stored += 1;
    }
    assert!(stored >= 18, "only {stored} corpus files stored");
}

fn img_id_empty(scan: &Value) -> bool {
    scan["ImageID"].as_str().unwrap_or("").is_empty()
}

on_both_backends!(
    corpus_ingest,
    every_corpus_report_is_stored_with_expected_counts
);
