//! History is append-only: a later report never rewrites what an earlier day shows.

use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// A re-scan of an unchanged digest on a later day is a new observation: the days before it
/// keep showing the image as it was then. A late report of the same digest under another
/// tag adds that reference from its own time on, and an observation in the past: the days
/// before it do not change, and the scan itself stays as its newest report left it.
async fn a_rescan_never_rewrites_the_past(app: &TestApp) {
    let report = |day: u32, tag: &str| {
        Report::image(&format!("hist/app:{tag}"), &digest(900))
            .at(&format!("2025-01-{day:02}T12:00:00Z"))
    };
    let trends = "/analytics/vulnerabilities/trends?interval=day&from=2025-01-06T00:00:00Z&to=2025-01-10T23:59:59Z";
    let buckets = |v: &Value| -> Vec<(i64, i64)> {
        v["Buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["Images"].as_i64().unwrap(), b["Total"].as_i64().unwrap()))
            .collect()
    };
    let first = app
        .create(
            "",
            report(6, "1.0")
                .vuln("CVE-2025-0100", "openssl", "1.0", "HIGH", None)
                .bytes(),
        )
        .await;
    assert_eq!(
        buckets(&app.get_json(trends).await),
        [(1, 1), (1, 1), (1, 1), (1, 1), (1, 1)]
    );
    // Day 8: the same digest again, one finding more; stored in place (200).
    let r = app
        .post_scan(
            "",
            report(8, "1.0")
                .vuln("CVE-2025-0100", "openssl", "1.0", "HIGH", None)
                .vuln("CVE-2025-0101", "zlib", "1.2", "CRITICAL", Some("1.3"))
                .bytes(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["ID"], first["ID"]);
    assert_eq!(
        buckets(&app.get_json(trends).await),
        [(1, 1), (1, 1), (1, 2), (1, 2), (1, 2)],
        "days 6 and 7 still show the day-6 observation"
    );
    let day7 = app
        .get_json("/analytics/vulnerabilities/summary?to=2025-01-07T23:59:59Z")
        .await;
    assert_eq!(day7["TotalScans"], 1);
    assert_eq!(day7["TotalVulnerabilities"], 1);
    let fix7 = app
        .get_json("/analytics/vulnerabilities/fixable?to=2025-01-07T23:59:59Z")
        .await;
    assert_eq!(fix7["Fixable"], 0, "the fix was only seen on day 8: {fix7}");

    // A late report: day 7, under another tag, with three findings.
    let r = app
        .post_scan(
            "",
            report(7, "stable")
                .vuln("CVE-2025-0100", "openssl", "1.0", "HIGH", None)
                .vuln("CVE-2025-0102", "musl", "1.1", "LOW", None)
                .vuln("CVE-2025-0103", "musl", "1.1", "LOW", None)
                .bytes(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        buckets(&app.get_json(trends).await),
        [(1, 1), (2, 6), (2, 4), (2, 4), (2, 4)],
        "day 6 as before; day 7 both references at the late observation; day 8 on at the newest"
    );
    let top7 = app
        .get_json("/analytics/vulnerabilities/top-cves?to=2025-01-07T23:59:59Z&limit=10")
        .await;
    let ids: Vec<&str> = top7["CVEs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CVEID"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["CVE-2025-0100", "CVE-2025-0102", "CVE-2025-0103"],
        "{top7}"
    );
    assert_eq!(top7["CVEs"][0]["ImageCount"], 2);
    // The scan is as its newest report left it.
    let scan = app
        .get_json(&format!("/scans/{}", first["ID"].as_str().unwrap()))
        .await;
    assert_eq!(scan["ScannedAt"], "2025-01-08T12:00:00Z");
    assert_eq!(scan["VulnTotal"], 2);
    assert_eq!(scan["Tags"], json!(["1.0", "stable"]));
    let now = app.get_json("/analytics/vulnerabilities/summary").await;
    assert_eq!(now["TotalScans"], 2);
    assert_eq!(now["TotalVulnerabilities"], 4);
}

on_both_backends!(
    a_rescan_never_rewrites_the_past_on,
    a_rescan_never_rewrites_the_past
);

/// The fleet generator's reports (40 images, 4 scans each, most of them re-scans of an
/// unchanged digest), ingested day by day in the order they were made. Once a day's reports
/// are in, later days' reports must not change the trend of that day or any before it.
async fn a_generated_fleet_keeps_its_history(app: &TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let generator = crate::support::corpus_dir().join("../bench/gen_fleet.py");
    let out = std::process::Command::new("python3")
        .arg(&generator)
        .args([
            "--images",
            "40",
            "--scans-per-image",
            "4",
            "--seed",
            "11",
            "--compact",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("python3 runs the fleet generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reports: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let body = std::fs::read(e.unwrap().path()).unwrap();
            let at: Value = serde_json::from_slice(&body).unwrap();
            (at["CreatedAt"].as_str().unwrap().to_string(), body)
        })
        .collect();
    assert_eq!(reports.len(), 160);
    reports.sort_by(|a, b| a.0.cmp(&b.0));
    let trends = "/analytics/vulnerabilities/trends?interval=day&from=2025-01-06T00:00:00Z&to=2025-01-10T23:59:59Z";
    let mut settled: Vec<Value> = vec![];
    let mut i = 0;
    while i < reports.len() {
        let day = reports[i].0[..10].to_string();
        while i < reports.len() && reports[i].0.starts_with(&day) {
            app.ingest("", reports[i].1.clone()).await;
            i += 1;
        }
        let t = app.get_json(trends).await;
        let buckets = t["Buckets"].as_array().unwrap();
        for (b, was) in settled.iter().enumerate() {
            assert_eq!(
                &buckets[b], was,
                "the point of an earlier day changed after {day}"
            );
        }
        let today = buckets
            .iter()
            .position(|b| b["Bucket"].as_str().unwrap().starts_with(&day))
            .expect("the day is in the range");
        assert_eq!(today, settled.len(), "one day after the other");
        assert!(buckets[today]["Images"].as_i64().unwrap() > 0);
        settled.push(buckets[today].clone());
    }
    assert!(settled.len() >= 4, "the reports span at least four days");
}

on_both_backends!(
    a_generated_fleet_keeps_its_history_on,
    a_generated_fleet_keeps_its_history
);
