//! Every file of the shared corpus ingests through `POST /scans`: each Trivy, legacy Trivy,
//! Grype and CycloneDX report is one scan whose stored counts equal the `findings` block of
//! EXPECTED.json (Grype's `NEGLIGIBLE` counted as `LOW`, CycloneDX's `INFO`/`NONE` as
//! `UNKNOWN`); the image identity is DESIGN.md's; the raw report comes back byte for byte.
//! The `trivy k8s` cluster report is one scan per image it names, each with its workloads.

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
        if facts["shape"] == "trivy-k8s" {
            assert_eq!(r.status, StatusCode::CREATED, "{name}");
            cluster_report(app, name, &r.json()).await;
            // The same report again: every scan is updated, none created.
            let again = app.post_scan("", bytes.clone()).await;
            assert_eq!(again.status, StatusCode::OK, "{name}: again");
            assert_eq!(again.json()["Created"], 0, "{name}: again");
            stored += 1;
            continue;
        }
        let _ = before;
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
            let mut want = f["severity"][sev].as_i64().unwrap_or(0);
            let also: &[&str] = match sev {
                "LOW" => &["NEGLIGIBLE"],
                "UNKNOWN" => &["INFO", "NONE"],
                _ => &[],
            };
            want += also
                .iter()
                .map(|s| f["severity"][s].as_i64().unwrap_or(0))
                .sum::<i64>();
            assert_eq!(scan[field], want, "{name}: {field}");
        }
        let formats = [("trivy", "trivy"), ("trivy-legacy", "trivy-legacy")];
        let want_format = formats
            .iter()
            .find(|(f, _)| *f == format)
            .map_or(format, |(_, w)| w);
        assert_eq!(scan["ReportFormat"], want_format, "{name}: format");
        assert_eq!(scan["VulnTotal"], f["count"], "{name}: total");
        assert_eq!(scan["FixableCount"], f["fixable"], "{name}: fixable");

        // Identity per DESIGN.md.
        if format == "trivy"
            || format != "trivy-legacy" && facts["image"]["familiar_name"].is_string()
        {
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
            // Grype's manifest digest stands in when no repository digest names the image.
            let mut want_digest = img["digest_for_name"].as_str();
            if format == "grype" {
                want_digest = want_digest.or(img["manifest_digest"].as_str());
            }
            assert_eq!(
                scan["ImageDigest"],
                want_digest.unwrap_or(""),
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
            crit["Count"], scan["VulnCritical"],
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
    assert_eq!(
        stored,
        expected["files"].as_object().unwrap().len(),
        "every corpus file is stored"
    );
}

/// The answer to the corpus's cluster report: one scan per image the report names in an
/// `os-pkgs` Result, each with the workloads that run it, which `GET /scans/{id}` shows too.
async fn cluster_report(app: &TestApp, name: &str, answer: &Value) {
    let doc: Value = serde_json::from_slice(&crate::support::corpus_file(name)).unwrap();
    let mut named: Vec<String> = vec![];
    let mut runs: Vec<(String, String)> = vec![];
    for res in doc["Resources"].as_array().unwrap() {
        for r in res["Results"].as_array().into_iter().flatten() {
            if r["Class"] == "os-pkgs" {
                let image = r["Target"].as_str().unwrap().split(" (").next().unwrap();
                named.push(image.to_string());
                let workload = format!(
                    "{}/{}/{}",
                    res["Namespace"].as_str().unwrap(),
                    res["Kind"].as_str().unwrap(),
                    res["Name"].as_str().unwrap()
                );
                runs.push((image.to_string(), workload));
            }
        }
    }
    named.sort();
    named.dedup();
    runs.sort();
    runs.dedup();
    let scans = answer["Scans"].as_array().unwrap();
    assert_eq!(scans.len(), named.len(), "{name}: one scan per image");
    assert_eq!(answer["Created"], named.len(), "{name}");
    assert!(
        answer["Warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["Reason"].as_str().unwrap().contains("configuration")),
        "{name}: {answer}"
    );
    let mut got_runs = vec![];
    for scan in scans {
        let id = scan["ID"].as_str().unwrap();
        let stored = app.get_json(&format!("/scans/{id}")).await;
        assert_eq!(stored["Workloads"], scan["Workloads"], "{name}: {id}");
        assert_eq!(stored["ReportFormat"], "trivy-k8s");
        let image = match stored["ImageTag"].as_str().unwrap() {
            "" => stored["ImageName"].as_str().unwrap().to_string(),
            tag => format!("{}:{tag}", stored["ImageName"].as_str().unwrap()),
        };
        for w in scan["Workloads"].as_array().unwrap() {
            assert_eq!(w["Cluster"], doc["ClusterName"]);
            let workload = format!(
                "{}/{}/{}",
                w["Namespace"].as_str().unwrap(),
                w["Kind"].as_str().unwrap(),
                w["Name"].as_str().unwrap()
            );
            got_runs.push((image.clone(), workload));
        }
        // The stored report reads back as this image's findings.
        let raw = app.get(&format!("/scans/{id}/report")).await;
        assert_eq!(raw.status, StatusCode::OK);
        let again = app.post_scan("", raw.body).await;
        assert_eq!(again.status, StatusCode::OK, "{name}: {id} re-posted");
        assert_eq!(again.json()["VulnTotal"], stored["VulnTotal"]);
    }
    got_runs.sort();
    // Images are named in the familiar form (`docker.io/library/x` → `x`).
    let familiar = |s: &str| {
        s.trim_start_matches("docker.io/")
            .trim_start_matches("index.docker.io/")
            .trim_start_matches("library/")
            .to_string()
    };
    let want: Vec<(String, String)> = runs.into_iter().map(|(i, w)| (familiar(&i), w)).collect();
    let mut want = want;
    want.sort();
    assert_eq!(got_runs, want, "{name}: workloads");
}

fn img_id_empty(scan: &Value) -> bool {
    scan["ImageID"].as_str().unwrap_or("").is_empty()
}

on_both_backends!(
    corpus_ingest,
    every_corpus_report_is_stored_with_expected_counts
);
