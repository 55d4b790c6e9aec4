//! Compliance policies: stored and validated, each rule's verdict on a report (without
//! storing it), scoping by image globs, the configured default, and `scanvault check`'s
//! exit codes offline and against a server.

use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

async fn put(app: &TestApp, name: &str, body: Value) -> crate::support::Resp {
    app.request(
        Method::PUT,
        &format!("/policies/{name}"),
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

async fn evaluate(app: &TestApp, name: &str, report: &Report) -> Value {
    let r = app
        .request(
            Method::POST,
            &format!("/policies/{name}/evaluate"),
            report.bytes(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

fn rules_of(eval: &Value) -> Vec<(String, String)> {
    eval["Violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["Rule"].as_str().unwrap().to_string(),
                v["VulnerabilityID"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn kev_catalog(cve: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "catalogVersion": "2024.06.01", "dateReleased": "2024-06-01T00:00:00.000Z", "count": 1,
        "vulnerabilities": [{"cveID": cve, "vendorProject": "x", "product": "y",
            "vulnerabilityName": "z", "dateAdded": "2024-05-01", "dueDate": "2024-05-22",
            "knownRansomwareCampaignUse": "Unknown"}]
    }))
    .unwrap()
}

async fn policies_are_stored_validated_and_evaluated(app: &TestApp) {
    // Stored and replaced; the default is listed and cannot be changed.
    let body = json!({"Description": "production", "Images": ["acme/*"],
        "Rules": {"MaxSeverity": "HIGH", "KEV": true}});
    assert_eq!(
        put(app, "prod", body.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(put(app, "prod", body).await.status, StatusCode::OK);
    let list = app.request(Method::GET, "/policies", vec![]).await.json();
    let names: Vec<&str> = list["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "prod"]);
    assert_eq!(
        list["Items"][0]["Rules"]["MaxSeverity"], "HIGH",
        "COMPLIANCE_FAIL_SEVERITY=CRITICAL"
    );
    assert_eq!(list["Items"][0]["Builtin"], true);
    for (name, body, why) in [
        (
            "default",
            json!({"Rules": {"KEV": true}}),
            "COMPLIANCE_FAIL_SEVERITY",
        ),
        ("Bad_Name", json!({"Rules": {"KEV": true}}), "policy name"),
        ("p", json!({"Rules": {}}), "no gate"),
        (
            "p",
            json!({"Rules": {"MaxSeverity": "SEVERE"}}),
            "MaxSeverity",
        ),
        ("p", json!({"Rules": {"MinEPSS": 3}}), "MinEPSS"),
        (
            "p",
            json!({"Rules": {"KEV": true, "Exploited": true}}),
            "Exploited",
        ),
        (
            "p",
            json!({"Images": "acme/*", "Rules": {"KEV": true}}),
            "Images",
        ),
    ] {
        let r = put(app, name, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name} {body}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(text.contains(why), "{text}");
    }

    // Each rule's verdict, with the exploit feed the KEV rule reads.
    let r = app
        .request(Method::POST, "/feeds/kev", kev_catalog("CVE-2024-1111"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let report = Report::image("acme/api:2.0", &digest(7))
        .vuln("CVE-2024-1111", "libx", "1.0", "LOW", Some("1.1"))
        .vuln("CVE-2024-2222", "liby", "2.0", "CRITICAL", None)
        .vuln("CVE-2024-3333", "libz", "3.0", "MEDIUM", None);
    let prod = evaluate(app, "prod", &report).await;
    assert_eq!(prod["Compliant"], false);
    assert_eq!(prod["Applies"], true);
    assert_eq!(prod["Findings"], 3);
    assert_eq!(
        rules_of(&prod),
        [
            ("KEV".to_string(), "CVE-2024-1111".to_string()),
            ("MaxSeverity".to_string(), "CVE-2024-2222".to_string())
        ]
    );
    let default = evaluate(app, "default", &report).await;
    assert_eq!(
        rules_of(&default),
        [("MaxSeverity".to_string(), "CVE-2024-2222".to_string())]
    );
    // FixableOnly: the unfixed CRITICAL no longer counts.
    put(
        app,
        "fixable",
        json!({"Rules": {"MaxSeverity": "HIGH", "KEV": true, "FixableOnly": true}}),
    )
    .await;
    assert_eq!(
        rules_of(&evaluate(app, "fixable", &report).await),
        [("KEV".to_string(), "CVE-2024-1111".to_string())]
    );
    // Another image: prod does not apply.
    let other = Report::image("other/app:1", &digest(8)).vuln(
        "CVE-2024-2222",
        "liby",
        "2.0",
        "CRITICAL",
        None,
    );
    let e = evaluate(app, "prod", &other).await;
    assert_eq!(
        (e["Applies"].clone(), e["Compliant"].clone()),
        (json!(false), json!(true))
    );
    // Nothing was stored by evaluating.
    let all = app.request(Method::GET, "/scans/all", vec![]).await.json();
    assert_eq!(all["Count"], 0, "{all}");

    // A stored scan carries the verdict of every policy that applies to it.
    let stored = app
        .request(Method::POST, "/scans", report.bytes())
        .await
        .json();
    let id = stored["ID"].as_str().unwrap().to_string();
    let fetched = app
        .request(Method::GET, &format!("/scans/{id}"), vec![])
        .await
        .json();
    for view in [&stored, &fetched] {
        assert_eq!(view["Compliant"], false);
        assert_eq!(
            view["IsCompliant"], false,
            "the default policy's stored verdict"
        );
        let mut got: Vec<(String, String, String)> = view["Violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["Policy"].as_str().unwrap().to_string(),
                    v["Rule"].as_str().unwrap().to_string(),
                    v["VulnerabilityID"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        let want: Vec<(String, String, String)> = [
            ("default", "MaxSeverity", "CVE-2024-2222"),
            ("fixable", "KEV", "CVE-2024-1111"),
            ("prod", "KEV", "CVE-2024-1111"),
            ("prod", "MaxSeverity", "CVE-2024-2222"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want, "{view}");
    }
    // A fix first seen now is 0 days old.
    put(app, "fix0", json!({"Rules": {"FixAvailableForDays": 0}})).await;
    put(app, "fix30", json!({"Rules": {"FixAvailableForDays": 30}})).await;
    assert_eq!(
        rules_of(&evaluate(app, "fix0", &report).await),
        [(
            "FixAvailableForDays".to_string(),
            "CVE-2024-1111".to_string()
        )]
    );
    assert_eq!(evaluate(app, "fix30", &report).await["Compliant"], true);
    // The CI gate honours triage: a suppressed finding never violates.
    let sup = app
        .request(
            Method::POST,
            "/suppressions",
            serde_json::to_vec(
                &json!({"VulnerabilityID": "CVE-2024-1111", "State": "not_affected",
                "Reason": "not reachable"}),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(sup.status, StatusCode::CREATED);
    assert_eq!(evaluate(app, "fix0", &report).await["Compliant"], true);
    assert_eq!(
        rules_of(&evaluate(app, "prod", &report).await),
        [("MaxSeverity".to_string(), "CVE-2024-2222".to_string())]
    );

    let r = app
        .request(Method::POST, "/policies/nope/evaluate", report.bytes())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .request(
            Method::POST,
            "/policies/prod/evaluate",
            b"{\"not\": \"a report\"}".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.request(Method::DELETE, "/policies/prod", vec![])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.request(Method::GET, "/policies/prod", vec![])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
on_both_backends!(policy_verdicts, policies_are_stored_validated_and_evaluated);

#[test]
fn scanvault_check_exit_codes_offline_and_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let clean = dir.path().join("clean.json");
    let critical = dir.path().join("critical.json");
    std::fs::write(
        &clean,
        Report::image("acme/api:1", &digest(1))
            .vuln("CVE-2024-1", "a", "1", "HIGH", None)
            .bytes(),
    )
    .unwrap();
    std::fs::write(
        &critical,
        Report::image("acme/api:2", &digest(2))
            .vuln("CVE-2024-2", "b", "1", "CRITICAL", None)
            .bytes(),
    )
    .unwrap();
    let check = |args: &[&str], file: &std::path::Path| {
        let out = crate::cli::bin()
            .arg("check")
            .args(args)
            .arg(file)
            .env("DATA_DIR", &data)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, _) = check(&[], &clean);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("compliant\tacme/api:1\tpolicy default"),
        "{out}"
    );
    let (code, out, _) = check(&[], &critical);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("NOT compliant") && out.contains("MaxSeverity\tCVE-2024-2\tb\t1\tCRITICAL"),
        "{out}"
    );
    let (code, _, err) = check(&["--policy", "missing"], &clean);
    assert_eq!(code, 2);
    assert!(err.contains("no policy"), "{err}");
    let (code, _, err) = check(&[], &dir.path().join("absent.json"));
    assert_eq!(code, 2);
    assert!(err.contains("absent.json"), "{err}");
    let (code, out, _) = check(&["--format", "json"], &critical);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Violations"][0]["Rule"], "MaxSeverity");

    // The same verdicts from a running service.
    let server_dir = tempfile::tempdir().unwrap();
    let mut serve = crate::cli::bin();
    serve
        .arg("serve")
        .env("DATA_DIR", server_dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("AUTH_DISABLED", "true")
        .env("LOG_FORMAT", "json");
    let (mut child, _lines, addr) = crate::traces::start(&mut serve);
    let url = format!("http://{addr}");
    let (c1, out1, e1) = check(&["--server", &url], &clean);
    let (c2, out2, e2) = check(&["--server", &url], &critical);
    let (c3, _, e3) = check(&["--server", &url, "--policy", "missing"], &clean);
    crate::traces::stop(&mut child);
    assert_eq!(c1, 0, "{out1}{e1}");
    assert_eq!(c2, 1, "{out2}{e2}");
    assert!(out2.contains("MaxSeverity\tCVE-2024-2"), "{out2}");
    assert_eq!(c3, 2);
    assert!(e3.contains("404"), "{e3}");
}

/// The compliance report against numbers worked out by hand from a small history: the
/// compliant share now and per week under `default` and a stored policy, violations by rule
/// and image, suppressions that make an image compliant, time to fix per severity (nearest
/// rank), and the CSV and self-contained HTML forms.
async fn the_compliance_report_agrees_with_the_history(app: &TestApp) {
    // Monday 2 November 2026, 01:00 UTC, plus days.
    let at = |d: i64| {
        (chrono::DateTime::parse_from_rfc3339("2026-11-02T01:00:00Z").unwrap()
            + chrono::Duration::days(d))
        .to_rfc3339()
    };
    let reports = [
        Report::image("ghcr.io/acme/a:1", &digest(31))
            .at(&at(0))
            .vuln("CVE-2026-0001", "openssl", "3.0", "CRITICAL", Some("3.1"))
            .vuln("CVE-2026-0002", "zlib", "1.2", "HIGH", None),
        Report::image("ghcr.io/acme/b:1", &digest(41))
            .at(&at(0))
            .vuln("CVE-2026-0003", "curl", "8.0", "CRITICAL", Some("8.1")),
        Report::image("ghcr.io/acme/b:1", &digest(42)).at(&at(4)),
        Report::image("other/c:1", &digest(51))
            .at(&at(5))
            .vuln("CVE-2026-0004", "musl", "1.2", "LOW", None)
            .vuln("CVE-2026-0005", "bash", "5.1", "HIGH", None),
        Report::image("ghcr.io/acme/a:1", &digest(32))
            .at(&at(10))
            .vuln("CVE-2026-0002", "zlib", "1.2", "HIGH", None),
        Report::image("ghcr.io/acme/a:1", &digest(33)).at(&at(20)),
    ];
    for r in &reports {
        let s = app.request(Method::POST, "/scans", r.bytes()).await;
        assert!(
            s.status.is_success(),
            "{}",
            String::from_utf8_lossy(&s.body)
        );
    }
    let body = json!({"Images": ["ghcr.io/acme/*"], "Rules": {"MaxSeverity": "MEDIUM"}});
    assert_eq!(
        put(app, "acme-high", body).await.status,
        StatusCode::CREATED
    );
    let window = "from=2026-11-02&to=2026-11-14";
    let r = app.get_json(&format!("/compliance?{window}")).await;
    assert_eq!(r["Policies"], json!(["default", "acme-high"]));
    assert_eq!(
        r["Now"],
        json!({"Images": 3, "Compliant": 2, "CompliantShare": 66.67}),
        "a:1 shows CVE-2026-0002 (HIGH) against acme-high"
    );
    let weeks: Vec<(String, i64)> = r["Weekly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["Week"].as_str().unwrap()[..10].to_string(),
                w["Compliant"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        weeks,
        vec![("2026-11-02".to_string(), 2), ("2026-11-09".to_string(), 2)],
        "week 1 ends with a:1 at its first scan (CRITICAL), week 2 at its second"
    );
    assert_eq!(
        r["ViolationsByRule"],
        json!([{"Policy": "acme-high", "Rule": "MaxSeverity", "Findings": 1, "Images": 1}])
    );
    let by_image = &r["ViolationsByImage"][0];
    assert_eq!(
        (
            by_image["ImageName"].as_str(),
            by_image["Violations"][0]["VulnerabilityID"].as_str()
        ),
        (Some("ghcr.io/acme/a"), Some("CVE-2026-0002"))
    );
    let fix = |r: &Value, sev: &str| {
        let f = r["TimeToFix"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["Severity"] == sev)
            .unwrap()
            .clone();
        (
            f["Fixed"].as_i64(),
            f["MedianDays"].as_f64(),
            f["P90Days"].as_f64(),
        )
    };
    // CRITICAL: b:1 fixed after 4 days, a:1 after 10.
    assert_eq!(fix(&r, "CRITICAL"), (Some(2), Some(4.0), Some(10.0)));
    assert_eq!(fix(&r, "HIGH"), (Some(0), None, None));
    // Later, a:1's HIGH finding is gone after 20 days.
    let later = app
        .get_json("/compliance?from=2026-11-02&to=2026-11-30")
        .await;
    assert_eq!(fix(&later, "HIGH"), (Some(1), Some(20.0), Some(20.0)));
    assert_eq!(later["Now"]["Compliant"], 3);

    // Listings with their ScanResult carry each scan's verdict too.
    let listed = app.get_json("/scans?image=ghcr.io/acme/a").await;
    let second = listed["Items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ImageDigest"] == digest(32))
        .unwrap();
    assert_eq!(second["Compliant"], false);
    assert_eq!(
        second["Violations"],
        json!([{"Policy": "acme-high", "Rule": "MaxSeverity", "VulnerabilityID": "CVE-2026-0002",
                "Package": "zlib", "InstalledVersion": "1.2", "Severity": "HIGH"}])
    );

    // A suppression: a:1 is compliant now and in the weeks it made the difference.
    let sup = app
        .request(
            Method::POST,
            "/suppressions",
            serde_json::to_vec(
                &json!({"VulnerabilityID": "CVE-2026-0002", "Image": "ghcr.io/acme/*",
                "State": "accepted_risk", "Reason": "internal only"}),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(sup.status, StatusCode::CREATED);
    let r = app.get_json(&format!("/compliance?{window}")).await;
    assert_eq!(r["Now"]["CompliantShare"], 100.0);
    assert_eq!(
        r["Weekly"][0]["Compliant"], 2,
        "a:1's CRITICAL still violates in week 1"
    );
    assert_eq!(r["Suppressions"][0]["Reason"], "internal only");
    let only_c = app
        .get_json(&format!("/compliance?{window}&image=other/c"))
        .await;
    assert_eq!(only_c["Now"]["Images"], 1);
    assert_eq!(
        only_c["Suppressions"],
        json!([]),
        "the suppression is for acme images"
    );

    // CSV: one table with a Section column; HTML: one page, no external assets.
    let csv = app
        .request(
            Method::GET,
            &format!("/compliance?{window}&format=csv"),
            vec![],
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let text = String::from_utf8(csv.body).unwrap();
    let mut rd = ::csv::Reader::from_reader(text.as_bytes());
    let sections: Vec<String> = rd.records().map(|r| r.unwrap()[0].to_string()).collect();
    for s in [
        "now",
        "week",
        "suppression",
        "time_to_fix",
        "time_to_fix_p90",
    ] {
        assert!(sections.iter().any(|x| x == s), "{s} in {sections:?}");
    }
    let page = app
        .request(
            Method::GET,
            &format!("/compliance?{window}&format=html"),
            vec![],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("100 %"));
    for external in ["src=", "href=", "<link", "@import", "url("] {
        assert!(!html.contains(external), "{external} in the page");
    }
    let bad = app
        .request(Method::GET, "/compliance?format=pdf", vec![])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

on_both_backends!(
    compliance_report,
    the_compliance_report_agrees_with_the_history
);
