//! `GET /scans/{id}/diff` and `GET /images/history` against a recomputation from the
//! reports the test posts: a sequence of reports of one image reference (re-scans of a
//! digest, rebuilds under new digests, posted out of order), each finding set random.

use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use axum::http::StatusCode;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A finding of the model: key (id, package, version) → (severity, fixed version).
type Findings = BTreeMap<(String, String, String), (String, Option<String>)>;

struct Posted {
    time: String,
    digest: u32,
    findings: Findings,
}

fn report(p: &Posted) -> Report {
    let mut r = Report::image("shop/app:1", &digest(p.digest)).at(&p.time);
    for ((id, pkg, ver), (sev, fixed)) in &p.findings {
        r = r.vuln(id, pkg, ver, sev, fixed.as_deref());
    }
    r
}

/// (added, removed, changed) keys from `old` to `new`.
fn model_diff(
    old: &Findings,
    new: &Findings,
) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let key = |k: &(String, String, String)| format!("{}|{}|{}", k.0, k.1, k.2);
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .map(key)
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(key)
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| key(k))
        .collect();
    (added, removed, changed)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let ver = f["InstalledVersion"].as_str().unwrap();
            format!(
                "{}|{}|{ver}",
                f["VulnerabilityID"].as_str().unwrap(),
                f["PkgName"].as_str().unwrap()
            )
        })
        .collect()
}

async fn diff_and_history_match_the_reports(app: &TestApp) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let mut posted: Vec<Posted> = (0..12)
        .map(|i| {
            let mut findings = Findings::new();
            for v in 0..8 {
                if rng.gen_bool(0.5) {
                    let sev = if rng.gen_bool(0.5) { "HIGH" } else { "MEDIUM" };
                    let fixed = rng.gen_bool(0.5).then(|| "2".to_string());
                    findings.insert(
                        (format!("CVE-2026-{v:04}"), format!("pkg{v}"), "1".into()),
                        (sev.to_string(), fixed),
                    );
                }
            }
            Posted {
                time: format!("2026-03-01T{:02}:00:00Z", i),
                digest: 1 + rng.gen_range(0..3),
                findings,
            }
        })
        .collect();
    // Posted out of order: late reports are observations in the past.
    let mut order: Vec<usize> = (0..posted.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    let mut scan_of: BTreeMap<u32, String> = BTreeMap::new();
    for &i in &order {
        let r = app.post_scan("", report(&posted[i]).bytes()).await;
        assert!(
            r.status.is_success(),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        scan_of.insert(
            posted[i].digest,
            r.json()["ID"].as_str().unwrap().to_string(),
        );
    }
    posted.sort_by(|a, b| a.time.cmp(&b.time));

    // History: newest first, each with what it added and removed since the one before.
    let h = app
        .get_json("/images/history?image=shop/app&tag=1&limit=500")
        .await;
    assert_eq!(h["Count"], posted.len());
    let items = h["Items"].as_array().unwrap();
    assert_eq!(items.len(), posted.len());
    for (n, item) in items.iter().enumerate() {
        let i = posted.len() - 1 - n;
        let p = &posted[i];
        assert_eq!(item["ScanID"].as_str().unwrap(), scan_of[&p.digest]);
        assert_eq!(item["ImageDigest"], digest(p.digest));
        assert_eq!(item["ScannedAt"], p.time);
        let empty = Findings::new();
        let before = if i == 0 {
            &empty
        } else {
            &posted[i - 1].findings
        };
        let (added, removed, _) = model_diff(before, &p.findings);
        assert_eq!(item["Added"], added.len(), "item {n}");
        assert_eq!(item["Removed"], removed.len(), "item {n}");
        let high = p.findings.values().filter(|(s, _)| s == "HIGH").count();
        assert_eq!(item["VulnHigh"], high, "item {n}");
    }
    // Pages of 5 read the same items.
    let mut paged = vec![];
    for offset in (0..posted.len()).step_by(5) {
        let page = app
            .get_json(&format!(
                "/images/history?image=shop/app&tag=1&limit=5&offset={offset}"
            ))
            .await;
        assert_eq!(page["HasMore"], offset + 5 < posted.len());
        paged.extend(page["Items"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(&paged, items);
    // Without a tag: the image's every tag (here one).
    let all = app
        .get_json("/images/history?image=shop/app&limit=500")
        .await;
    assert_eq!(all["Items"], h["Items"]);

    // Diff of each scan against the observation before its latest one.
    let mut changes_seen = 0;
    for (d, id) in &scan_of {
        let i = posted.iter().rposition(|p| p.digest == *d).unwrap();
        let r = app.get(&format!("/scans/{id}/diff?against=previous")).await;
        if i == 0 {
            assert_eq!(r.status, StatusCode::NOT_FOUND);
            r.error_code();
            continue;
        }
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        let prev = &posted[i - 1];
        assert_eq!(v["AgainstID"].as_str().unwrap(), scan_of[&prev.digest]);
        assert_eq!(v["AgainstScannedAt"], prev.time);
        let (added, removed, changed) = model_diff(&prev.findings, &posted[i].findings);
        assert_eq!(keys(&v["Added"]), added);
        assert_eq!(keys(&v["Removed"]), removed);
        let got_changed: BTreeSet<String> = v["Changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let key = (
                    (c["VulnerabilityID"].as_str().unwrap().to_string()),
                    c["PkgName"].as_str().unwrap().to_string(),
                    c["InstalledVersion"].as_str().unwrap().to_string(),
                );
                let (sev, fixed) = &posted[i].findings[&key];
                assert_eq!(c["After"]["Severity"], *sev);
                assert_eq!(c["After"]["FixedVersion"].as_str(), fixed.as_deref());
                let (sev, fixed) = &prev.findings[&key];
                assert_eq!(c["Before"]["Severity"], *sev);
                assert_eq!(c["Before"]["FixedVersion"].as_str(), fixed.as_deref());
                format!("{}|{}|{}", key.0, key.1, key.2)
            })
            .collect();
        assert_eq!(got_changed, changed);
        changes_seen += added.len() * removed.len() * changed.len();
        // The default is `previous`.
        assert_eq!(app.get_json(&format!("/scans/{id}/diff")).await, v);
    }

    assert!(
        changes_seen > 0,
        "the sequence exercises additions, removals and changes"
    );
    assert_eq!(scan_of.len(), 3, "three digests");

    // Against another scan: its findings as it has them now.
    let ids: Vec<&String> = scan_of.values().collect();
    if ids.len() >= 2 {
        let v = app
            .get_json(&format!("/scans/{}/diff?against={}", ids[0], ids[1]))
            .await;
        let latest = |id: &str| {
            let d = scan_of.iter().find(|(_, s)| *s == id).unwrap().0;
            &posted[posted.iter().rposition(|p| p.digest == *d).unwrap()].findings
        };
        let (added, removed, _) = model_diff(latest(ids[1]), latest(ids[0]));
        assert_eq!(keys(&v["Added"]), added);
        assert_eq!(keys(&v["Removed"]), removed);
    }
    // Bad input.
    let id = ids[0];
    for (uri, status) in [
        (
            format!("/scans/{id}/diff?against=yesterday"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/scans/{id}/diff?against=00000000-0000-7000-8000-000000000000"),
            StatusCode::NOT_FOUND,
        ),
        (
            "/scans/00000000-0000-7000-8000-000000000000/diff".to_string(),
            StatusCode::NOT_FOUND,
        ),
        ("/images/history".to_string(), StatusCode::BAD_REQUEST),
        (
            "/images/history?image=shop/app&limit=-1".to_string(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = app.get(&uri).await;
        assert_eq!(r.status, status, "{uri}");
        r.error_code();
    }
    let none = app.get_json("/images/history?image=nothing").await;
    assert_eq!(none["Count"], 0);
}

on_both_backends!(diff_and_history, diff_and_history_match_the_reports);
