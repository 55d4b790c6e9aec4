//! Exploit feeds: CISA's KEV catalog and FIRST's EPSS scores, in their published formats
//! (written here as those formats are documented), imported over the API and the CLI, and
//! shown on findings, top CVEs and the CVE page; a bad feed changes nothing.

use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;

fn kev(entries: &[(&str, &str)]) -> Vec<u8> {
    let vulns: Vec<Value> = entries
        .iter()
        .map(|(cve, added)| {
            json!({
                "cveID": cve, "vendorProject": "Apache", "product": "Log4j2",
                "vulnerabilityName": format!("{cve} vulnerability"), "dateAdded": added,
                "shortDescription": "…", "requiredAction": "Apply updates per vendor instructions.",
                "dueDate": "2021-12-24", "knownRansomwareCampaignUse": "Known", "notes": "",
                "cwes": ["CWE-20"]
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "title": "CISA Catalog of Known Exploited Vulnerabilities",
        "catalogVersion": "2024.06.01",
        "dateReleased": "2024-06-01T15:00:00.000Z",
        "count": vulns.len(),
        "vulnerabilities": vulns
    }))
    .unwrap()
}

fn epss_gz(rows: &[(&str, f64, f64)]) -> Vec<u8> {
    let mut csv = String::from(
        "#model_version:v2023.03.01,score_date:2024-06-01T00:00:00+0000\ncve,epss,percentile\n",
    );
    for (cve, score, pct) in rows {
        csv.push_str(&format!("{cve},{score:.5},{pct:.5}\n"));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv.as_bytes()).unwrap();
    gz.finish().unwrap()
}

async fn post(app: &TestApp, path: &str, body: Vec<u8>) -> crate::support::Resp {
    app.request(Method::POST, path, body).await
}

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app.request(Method::GET, path, vec![]).await;
    assert_eq!(r.status, StatusCode::OK, "{path}");
    r.json()
}

async fn feeds_are_imported_and_shown(app: &TestApp) {
    let report = Report::image("acme/api:1.0", &digest(1))
        .vuln(
            "CVE-2021-44228",
            "log4j-core",
            "2.14.1",
            "CRITICAL",
            Some("2.15.0"),
        )
        .vuln("CVE-2022-0001", "zlib", "1.2", "LOW", None);
    let scan = app
        .request(Method::POST, "/scans", report.bytes())
        .await
        .json();
    let id = scan["ID"].as_str().unwrap();

    let r = post(
        app,
        "/feeds/kev",
        kev(&[
            ("CVE-2021-44228", "2021-12-10"),
            ("CVE-2014-0160", "2022-05-04"),
        ]),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["Entries"], 2);
    let r = post(
        app,
        "/feeds/epss",
        epss_gz(&[
            ("CVE-2021-44228", 0.97565, 0.99996),
            ("CVE-2022-0001", 0.00043, 0.0811),
        ]),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let feeds = get(app, "/feeds").await;
    let names: Vec<&str> = feeds["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["Feed"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["epss", "kev"]);
    assert_eq!(feeds["Items"][0]["Version"], "v2023.03.01");
    assert_eq!(feeds["Items"][1]["Version"], "2024.06.01");

    let vulns = get(app, &format!("/scans/{id}/vulnerabilities")).await;
    let find = |v: &Value, cve: &str| -> Value {
        v["Items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["Vulnerability"]["VulnerabilityID"] == cve)
            .unwrap()["Vulnerability"]
            .clone()
    };
    let log4j = find(&vulns, "CVE-2021-44228");
    assert_eq!(log4j["KEV"]["DateAdded"], "2021-12-10");
    assert_eq!(log4j["KEV"]["KnownRansomwareCampaignUse"], "Known");
    assert_eq!(log4j["EPSS"], 0.97565);
    assert_eq!(log4j["EPSSPercentile"], 0.99996);
    let zlib = find(&vulns, "CVE-2022-0001");
    assert!(zlib.get("KEV").is_none());
    assert_eq!(zlib["EPSS"], 0.00043);

    let top = get(app, "/analytics/vulnerabilities/top-cves?limit=10").await;
    let t = top["CVEs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["CVEID"] == "CVE-2021-44228")
        .unwrap()
        .clone();
    assert_eq!(t["KEV"]["DateAdded"], "2021-12-10");
    assert_eq!(t["EPSS"], 0.97565);
    let page = get(app, "/analytics/vulnerabilities/cve/CVE-2021-44228/images").await;
    assert_eq!(page["KEV"]["DueDate"], "2021-12-24");
    assert_eq!(page["EPSSPercentile"], 0.99996);

    // A damaged feed is refused with what is wrong, and the imported one stays.
    let mut bad = kev(&[("CVE-2021-44228", "2021-12-10")]);
    bad.truncate(bad.len() / 2);
    let r = post(app, "/feeds/kev", bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_code(), "invalid_feed");
    let r = post(
        app,
        "/feeds/epss",
        b"cve,epss,percentile\nCVE-2021-44228,2.0,0.5\n".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&r.body).contains("line 2"));
    assert_eq!(get(app, "/feeds").await, feeds);
    assert_eq!(
        find(
            &get(app, &format!("/scans/{id}/vulnerabilities")).await,
            "CVE-2021-44228"
        )["KEV"]["DateAdded"],
        "2021-12-10"
    );

    // A new catalog replaces the old one whole.
    let r = post(app, "/feeds/kev", kev(&[("CVE-2014-0160", "2022-05-04")])).await;
    assert_eq!(r.status, StatusCode::OK);
    let log4j = find(
        &get(app, &format!("/scans/{id}/vulnerabilities")).await,
        "CVE-2021-44228",
    );
    assert!(log4j.get("KEV").is_none(), "{log4j}");
    assert_eq!(log4j["EPSS"], 0.97565);
}
on_both_backends!(feeds_import, feeds_are_imported_and_shown);

#[test]
fn the_cli_imports_both_feeds_offline() {
    let dir = tempfile::tempdir().unwrap();
    let kev_file = dir.path().join("known_exploited_vulnerabilities.json");
    std::fs::write(&kev_file, kev(&[("CVE-2021-44228", "2021-12-10")])).unwrap();
    let epss_file = dir.path().join("epss_scores-2024-06-01.csv.gz");
    std::fs::write(&epss_file, epss_gz(&[("CVE-2021-44228", 0.9, 0.99)])).unwrap();
    let data = dir.path().join("data");
    let out = crate::cli::bin()
        .args(["feeds", "import", "--kev"])
        .arg(&kev_file)
        .arg("--epss")
        .arg(&epss_file)
        .env("DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kev\t1 entries"), "{stdout}");
    assert!(stdout.contains("epss\t1 entries"), "{stdout}");
    // A bad file: exit code 1, the file named, nothing written.
    std::fs::write(
        &kev_file,
        b"{\"vulnerabilities\": [{\"cveID\": \"nope\", \"dateAdded\": \"2021-01-01\"}]}",
    )
    .unwrap();
    let out = crate::cli::bin()
        .args(["feeds", "import", "--kev"])
        .arg(&kev_file)
        .env("DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("known_exploited_vulnerabilities.json") && err.contains("not a CVE id"),
        "{err}"
    );
}

async fn feeds_are_downloaded_when_due(app: &TestApp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = axum::Router::new()
        .route(
            "/kev.json",
            axum::routing::get(|| async { kev(&[("CVE-2021-44228", "2021-12-10")]) }),
        )
        .route(
            "/epss.csv.gz",
            axum::routing::get(|| async { epss_gz(&[("CVE-2021-44228", 0.9, 0.99)]) }),
        )
        .route(
            "/broken.json",
            axum::routing::get(|| async { (StatusCode::BAD_GATEWAY, "upstream down") }),
        );
    tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });
    let client = reqwest::Client::new();
    let sources = scanvault::feeds::FeedSources {
        kev_url: Some(format!("http://{addr}/kev.json")),
        epss_url: Some(format!("http://{addr}/epss.csv.gz")),
        interval: std::time::Duration::from_secs(3600),
    };
    let done = scanvault::feeds::refresh_once(&app.store, &client, &sources)
        .await
        .unwrap();
    assert_eq!(done, ["kev", "epss"]);
    let feeds = get(app, "/feeds").await;
    assert_eq!(feeds["Items"][1]["ImportedBy"], "KEV_URL");
    // Imported less than FEEDS_INTERVAL ago: not downloaded again.
    let again = scanvault::feeds::refresh_once(&app.store, &client, &sources)
        .await
        .unwrap();
    assert!(again.is_empty());
    // Due, but the source fails: an error, and the imported feed stays.
    let broken = scanvault::feeds::FeedSources {
        kev_url: Some(format!("http://{addr}/broken.json")),
        epss_url: None,
        interval: std::time::Duration::ZERO,
    };
    assert!(scanvault::feeds::refresh_once(&app.store, &client, &broken)
        .await
        .is_err());
    assert_eq!(get(app, "/feeds").await, feeds);
}
on_both_backends!(feeds_download, feeds_are_downloaded_when_due);

/// The risk score gains exploitability: a scan's `RiskScore` is Σ severity weight ×
/// (1 + 4·EPSS) × (2 when in KEV), the documented worked example; top CVEs ordered by risk
/// put an exploited vulnerability in fewer images ahead of a common one.
async fn risk_scores_weigh_exploitability(app: &TestApp) {
    // The README's worked example: CRITICAL with EPSS 0.5 in KEV, two HIGH without data, LOW
    // with EPSS 0.02.
    let example = Report::image("acme/risk:1", &digest(61))
        .vuln("CVE-2030-0001", "openssl", "1", "CRITICAL", None)
        .vuln("CVE-2030-0002", "zlib", "1", "HIGH", None)
        .vuln("CVE-2030-0003", "curl", "1", "HIGH", None)
        .vuln("CVE-2030-0004", "bash", "1", "LOW", None);
    let id = app
        .request(Method::POST, "/scans", example.bytes())
        .await
        .json()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(app, &format!("/scans/{id}")).await["RiskScore"],
        10 + 5 + 5 + 1
    );
    // The LOW one in two more images: most images, least risk.
    for (i, d) in [62, 63].into_iter().enumerate() {
        let r = Report::image(&format!("acme/other{i}:1"), &digest(d)).vuln(
            "CVE-2030-0004",
            "bash",
            "1",
            "LOW",
            None,
        );
        app.request(Method::POST, "/scans", r.bytes()).await;
    }
    assert_eq!(
        post(app, "/feeds/kev", kev(&[("CVE-2030-0001", "2030-01-02")]))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(
            app,
            "/feeds/epss",
            epss_gz(&[("CVE-2030-0001", 0.5, 0.99), ("CVE-2030-0004", 0.02, 0.4)])
        )
        .await
        .status,
        StatusCode::OK
    );
    let scan = get(app, &format!("/scans/{id}")).await;
    assert_eq!(scan["RiskScore"], 71, "60 + 5 + 5 + 1.08, rounded");
    let listed = get(app, "/scans?image=acme/risk&include=summary").await;
    assert_eq!(listed["Items"][0]["RiskScore"], 71);
    let by_images = get(app, "/analytics/vulnerabilities/top-cves?limit=2").await;
    assert_eq!(by_images["CVEs"][0]["CVEID"], "CVE-2030-0004");
    let by_risk = get(
        app,
        "/analytics/vulnerabilities/top-cves?limit=2&order=risk",
    )
    .await;
    let ids: Vec<&str> = by_risk["CVEs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CVEID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["CVE-2030-0001", "CVE-2030-0002"]);
    assert_eq!(by_risk["CVEs"][0]["RiskScore"], 60.0);
    assert_eq!(by_risk["CVEs"][0]["Title"], "CVE-2030-0001 in openssl");
    let bad = app
        .request(
            Method::GET,
            "/analytics/vulnerabilities/top-cves?order=fun",
            vec![],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

on_both_backends!(risk_scores, risk_scores_weigh_exploitability);
