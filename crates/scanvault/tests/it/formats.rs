//! Grype, CycloneDX and `trivy k8s` reports over HTTP: what each keeps beyond Trivy's
//! fields, the workloads of a cluster report and the `workload` filter of the listings,
//! and a cluster report with an image override refused without a write.

use crate::on_both_backends;
use crate::support::{corpus_file, TestApp};
use axum::http::StatusCode;
use serde_json::Value;
use std::collections::BTreeSet;

async fn items(app: &TestApp, scan: &Value) -> Vec<Value> {
    let id = scan["ID"].as_str().unwrap();
    let v = app.get_json(&format!("/scans/{id}/vulnerabilities")).await;
    v["Items"].as_array().unwrap().clone()
}

async fn each_format_keeps_what_it_says(app: &TestApp) {
    // Grype 0.7: Negligible is LOW, and the word is kept.
    let scan = app
        .create(
            "",
            corpus_file("grype/python-3.6-debian-10_grype-0.7.0_large.json"),
        )
        .await;
    assert_eq!(scan["ReportFormat"], "grype");
    assert_eq!(scan["Scanner"], "grype");
    let all = items(app, &scan).await;
    let negligible: Vec<&Value> = all
        .iter()
        .filter(|i| i["Vulnerability"]["ScannerSeverity"] == "Negligible")
        .collect();
    assert_eq!(negligible.len(), 681);
    assert!(negligible
        .iter()
        .all(|i| i["Vulnerability"]["Severity"] == "LOW"));

    // Grype 0.94: EPSS and risk.
    let scan = app
        .create(
            "",
            corpus_file("grype/busybox-1.32.1_epss_grype-0.94.0.json"),
        )
        .await;
    let all = items(app, &scan).await;
    assert!(all.iter().any(|i| i["Vulnerability"]["EPSS"].is_f64()));
    assert!(all.iter().any(|i| i["Vulnerability"]["Risk"].is_f64()));

    // CycloneDX with VEX analysis: the state and justification are on the finding, and
    // nothing is left out of the counts for it.
    let file = "cyclonedx/log4j-core_grype-0.41.0_cdx-1.4_vex-analysis.json";
    let scan = app.create("", corpus_file(file)).await;
    assert_eq!(scan["ReportFormat"], "cyclonedx");
    let doc: Value = serde_json::from_slice(&corpus_file(file)).unwrap();
    let with_state: BTreeSet<(String, String)> = doc["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            let state = v["analysis"]["state"].as_str()?;
            Some((v["id"].as_str().unwrap().to_string(), state.to_string()))
        })
        .collect();
    assert!(!with_state.is_empty());
    let all = items(app, &scan).await;
    let got: BTreeSet<(String, String)> = all
        .iter()
        .filter_map(|i| {
            let v = &i["Vulnerability"];
            Some((
                v["VulnerabilityID"].as_str()?.to_string(),
                v["VEXState"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert_eq!(got, with_state);
    assert_eq!(scan["VulnTotal"], all.len());
}

on_both_backends!(formats_keep_their_fields, each_format_keeps_what_it_says);

async fn workloads_answer_which_workloads_run_what(app: &TestApp) {
    let body = corpus_file("trivy/k8s-cluster_local_resources.json");
    // With an image override it is refused and nothing is written.
    let before = app.fingerprint().await;
    let r = app.post_scan("image=x", body.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.fingerprint().await, before);

    let answer = app.create("", body).await;
    let scans = answer["Scans"].as_array().unwrap();
    // The namespace of the first workload; the scans run there.
    let ns = scans[0]["Workloads"][0]["Namespace"].as_str().unwrap();
    let running: BTreeSet<&str> = scans
        .iter()
        .filter(|s| {
            s["Workloads"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["Namespace"] == ns)
        })
        .map(|s| s["ID"].as_str().unwrap())
        .collect();
    let glob = format!("*/{ns}/*");

    // Every finding of those scans, recomputed from their findings.
    let mut want_rows: BTreeSet<(String, String, String, String)> = BTreeSet::new();
    let mut want_fixable = 0;
    for id in &running {
        let v = app.get_json(&format!("/scans/{id}/vulnerabilities")).await;
        for i in v["Items"].as_array().unwrap() {
            let f = &i["Vulnerability"];
            want_rows.insert((
                id.to_string(),
                f["VulnerabilityID"].as_str().unwrap().into(),
                f["PkgName"].as_str().unwrap().into(),
                f["PkgVersion"].as_str().unwrap().into(),
            ));
            want_fixable += i64::from(f["FixedVersion"].is_string());
        }
    }
    let fixable = app
        .get_json(&format!(
            "/analytics/vulnerabilities/fixable?workload={glob}&limit=1000"
        ))
        .await;
    assert_eq!(fixable["Fixable"], want_fixable, "{fixable}");
    assert_eq!(fixable["TotalVulns"], want_rows.len());
    for item in fixable["FixableItems"].as_array().unwrap() {
        assert!(running.contains(item["ScanID"].as_str().unwrap()));
    }

    // One CVE of those scans: its images under the filter are those of the scans.
    let (_, cve, _, _) = want_rows.iter().next().unwrap().clone();
    let images = app
        .get_json(&format!(
            "/analytics/vulnerabilities/cve/{cve}/images?workload={glob}"
        ))
        .await;
    let want: BTreeSet<&str> = want_rows
        .iter()
        .filter(|r| r.1 == cve)
        .map(|r| r.0.as_str())
        .collect();
    let got: BTreeSet<&str> = images["Images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ScanID"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    assert_eq!(images["ImageCount"], want.len());
    // A workload nobody runs matches nothing; a filter on the past is refused.
    let none = app
        .get_json(&format!(
            "/analytics/vulnerabilities/cve/{cve}/images?workload=nowhere/*"
        ))
        .await;
    assert_eq!(none["Count"], 0);
    let r = app
        .get("/analytics/vulnerabilities/fixable?workload=*&to=2020-01-01")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

on_both_backends!(workload_filter, workloads_answer_which_workloads_run_what);
