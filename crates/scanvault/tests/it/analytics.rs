//! Fleet analytics against a plain recomputation from the reports the test generated.
//!
//! The test builds a fleet history (images re-scanned on different days, rebuilds with new
//! digests, extra tags on a digest, findings fixed and new, reports arriving out of order,
//! some older than what is stored), ingests it through the API, and compares every
//! endpoint, with and without `image`, `from` and `to`, to what the reports say
//! (`fleet_model.rs`). Every report is an observation at its time, also when it updates a
//! stored scan in place, and a later observation never rewrites what an earlier time shows.
//! Deleting scans (API and retention) must keep every answer equal to the model's.

use crate::fleet_model::{base, expect, generate, Model, SEVERITIES};
use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use scanvault::store::admin::RetentionPolicy;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn query(image: Option<&str>, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> String {
    let mut q = vec![];
    if let Some(i) = image {
        q.push(format!("image={i}"));
    }
    if let Some(f) = from {
        q.push(format!("from={}", rfc(f)));
    }
    if let Some(t) = to {
        q.push(format!("to={}", rfc(t)));
    }
    q.join("&")
}

fn top_json(cves: &[(String, i64, usize, i64, i64)]) -> Vec<Value> {
    cves.iter()
        .map(|(id, n, sev, f, fx)| {
            json!({"CVEID": id, "ImageCount": n, "Severity": SEVERITIES[*sev], "FindingCount": f,
                   "FixableCount": fx, "Fixable": *fx > 0})
        })
        .collect()
}

fn strip_top(v: &Value) -> Vec<Value> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!({"CVEID": c["CVEID"], "ImageCount": c["ImageCount"], "Severity": c["Severity"],
                   "FindingCount": c["FindingCount"], "FixableCount": c["FixableCount"], "Fixable": c["Fixable"]})
        })
        .collect()
}

/// Every endpoint for one scope against the model.
async fn check_scope(
    app: &TestApp,
    model: &Model,
    image: Option<&str>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) {
    let fleet = model.fleet(image, from, to);
    let e = model.expect(&fleet, false);
    let q = query(image, from, to);
    let ctx = format!("scope {q:?} on {:?}", app.db);

    // summary
    let s = app
        .get_json(&format!("/analytics/vulnerabilities/summary?{q}"))
        .await;
    assert_eq!(s["TotalScans"], e.images, "{ctx}: {s}");
    let total: i64 = e.by_sev.iter().sum();
    assert_eq!(s["TotalVulnerabilities"], total, "{ctx}");
    let sev_counts: Vec<Value> = (0..5)
        .rev()
        .map(|i| json!({"Severity": SEVERITIES[i], "Count": e.by_sev[i]}))
        .collect();
    assert_eq!(s["SeverityCounts"], json!(sev_counts), "{ctx}");
    assert_eq!(s["Fixable"], e.fixable, "{ctx}");
    assert_eq!(s["NotFixable"], total - e.fixable, "{ctx}");
    let top10: Vec<_> = e.cves.iter().take(10).cloned().collect();
    assert_eq!(
        strip_top(&s["TopCVEs"]),
        top_json(&top10),
        "{ctx}: summary top"
    );

    // top-cves: all, a small limit, a severity
    for (extra, want) in [
        ("limit=100".to_string(), e.cves.clone()),
        (
            "limit=3".to_string(),
            e.cves.iter().take(3).cloned().collect(),
        ),
        (
            "severity=high&limit=100".to_string(),
            e.cves.iter().filter(|c| c.2 == 3).cloned().collect(),
        ),
    ] {
        let sep = if q.is_empty() { "" } else { "&" };
        let t = app
            .get_json(&format!(
                "/analytics/vulnerabilities/top-cves?{q}{sep}{extra}"
            ))
            .await;
        assert_eq!(
            strip_top(&t["CVEs"]),
            top_json(&want),
            "{ctx}: top-cves {extra}"
        );
        assert_eq!(t["Count"], want.len(), "{ctx}");
    }

    // fixable: totals and every page
    let mut want_items: Vec<_> = e.rows.iter().filter(|r| r.6.is_some()).cloned().collect();
    want_items.sort_by(|a, b| {
        (b.0, &a.1, &a.2, &a.3, &a.4, &a.5).cmp(&(a.0, &b.1, &b.2, &b.3, &b.4, &b.5))
    });
    let want_json: Vec<Value> = want_items
        .iter()
        .map(|r| {
            json!({"CVEID": r.1, "ImageName": r.2, "ImageTag": r.3, "PkgName": r.4, "PkgVersion": r.5,
                   "FixedVersion": r.6, "Severity": SEVERITIES[r.0]})
        })
        .collect();
    let mut got = vec![];
    let mut offset = 0;
    loop {
        let sep = if q.is_empty() { "" } else { "&" };
        let f = app
            .get_json(&format!(
                "/analytics/vulnerabilities/fixable?{q}{sep}limit=4&offset={offset}"
            ))
            .await;
        assert_eq!(f["TotalVulns"], total, "{ctx}");
        assert_eq!(f["Fixable"], e.fixable, "{ctx}");
        assert_eq!(f["NotFixable"], total - e.fixable, "{ctx}");
        for it in f["FixableItems"].as_array().unwrap() {
            got.push(json!({"CVEID": it["CVEID"], "ImageName": it["ImageName"], "ImageTag": it["ImageTag"],
                "PkgName": it["PkgName"], "PkgVersion": it["PkgVersion"], "FixedVersion": it["FixedVersion"],
                "Severity": it["Severity"]}));
        }
        if f["HasMore"] != true {
            break;
        }
        offset += 4;
    }
    if q.is_empty() {
        // The current fleet: within a vulnerability, references in the order they joined
        // the fleet (their number), which the model does not know. The rows are the same;
        // each (severity, CVE) group holds each reference's rows together, by package and
        // version, and every group orders the references one and the same way.
        let key = |v: &Value| {
            let sev = SEVERITIES.iter().position(|x| *x == v["Severity"]).unwrap();
            (
                std::cmp::Reverse(sev),
                v["CVEID"].as_str().unwrap().to_string(),
            )
        };
        assert!(
            got.windows(2).all(|w| key(&w[0]) <= key(&w[1])),
            "{ctx}: fixable items most severe first, then by CVE"
        );
        let mut groups: BTreeMap<_, Vec<Value>> = BTreeMap::new();
        for v in &got {
            groups.entry(key(v)).or_default().push(v.clone());
        }
        check_reference_order(&groups.into_values().collect::<Vec<_>>(), &ctx);
        assert_eq!(sorted(got), sorted(want_json), "{ctx}: fixable items");
    } else {
        assert_eq!(got, want_json, "{ctx}: fixable items");
    }
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

/// The rows of each group (a page-through of one listing, in the order it answered) hold
/// each reference's rows together, by package and version, and no two groups order two
/// references differently: the references follow one order throughout.
fn check_reference_order(groups: &[Vec<Value>], ctx: &str) {
    let reference = |v: &Value| format!("{}:{}", v["ImageName"], v["ImageTag"]);
    let mut before: BTreeSet<(String, String)> = BTreeSet::new();
    for rows in groups {
        let mut seen: Vec<String> = vec![];
        for w in rows.windows(2) {
            if reference(&w[0]) == reference(&w[1]) {
                let pkg = |v: &Value| {
                    (
                        v["PkgName"].as_str().unwrap().to_string(),
                        v["PkgVersion"].as_str().unwrap().to_string(),
                    )
                };
                assert!(
                    pkg(&w[0]) < pkg(&w[1]),
                    "{ctx}: by package within a reference"
                );
            }
        }
        for v in rows {
            let r = reference(v);
            if seen.last() != Some(&r) {
                assert!(!seen.contains(&r), "{ctx}: rows of {r} apart");
                seen.push(r);
            }
        }
        for (i, a) in seen.iter().enumerate() {
            for b in &seen[i + 1..] {
                assert!(
                    !before.contains(&(b.clone(), a.clone())),
                    "{ctx}: {a} and {b} in both orders"
                );
                before.insert((a.clone(), b.clone()));
            }
        }
    }
}

/// cve/{id}/images (the current fleet only) for every CVE, paging by 2.
async fn check_cve_images(app: &TestApp, model: &Model) {
    let fleet = model.fleet(None, None, None);
    let e = model.expect(&fleet, false);
    let mut ids: BTreeSet<String> = e.cves.iter().map(|c| c.0.clone()).collect();
    ids.insert("CVE-1999-0001".into());
    let mut all: Vec<Vec<Value>> = vec![];
    for id in ids {
        let mut want: Vec<_> = e.rows.iter().filter(|r| r.1 == id).cloned().collect();
        want.sort_by(|a, b| (&a.2, &a.3, &a.4, &a.5).cmp(&(&b.2, &b.3, &b.4, &b.5)));
        let want: Vec<Value> = want
            .iter()
            .map(|r| {
                json!({"ImageName": r.2, "ImageTag": r.3, "PkgName": r.4, "PkgVersion": r.5,
                       "FixedVersion": r.6})
            })
            .collect();
        let refs: BTreeSet<(String, String)> = e
            .rows
            .iter()
            .filter(|r| r.1 == id)
            .map(|r| (r.2.clone(), r.3.clone()))
            .collect();
        let mut got = vec![];
        let mut offset = 0;
        loop {
            let v = app
                .get_json(&format!(
                    "/analytics/vulnerabilities/cve/{id}/images?limit=2&offset={offset}"
                ))
                .await;
            assert_eq!(v["CVEID"], id.as_str());
            assert_eq!(v["ImageCount"], refs.len(), "{id} on {:?}", app.db);
            for it in v["Images"].as_array().unwrap() {
                let (img, tag) = (
                    it["ImageName"].as_str().unwrap(),
                    it["ImageTag"].as_str().unwrap(),
                );
                let scan = fleet[&(img.to_string(), tag.to_string())];
                assert_eq!(it["ScannedAt"], rfc(scan.at), "{id}");
                got.push(
                    json!({"ImageName": img, "ImageTag": tag, "PkgName": it["PkgName"],
                    "PkgVersion": it["PkgVersion"], "FixedVersion": it["FixedVersion"]}),
                );
            }
            if v["HasMore"] != true {
                break;
            }
            offset += 2;
        }
        let ctx = format!("cve images of {id} on {:?}", app.db);
        check_reference_order(std::slice::from_ref(&got), &ctx);
        all.push(got.clone());
        assert_eq!(sorted(got), sorted(want), "{ctx}");
    }
    check_reference_order(&all, "cve images");
}

/// Trends by day and by week, with and without an image, against the model as of the end
/// of every bucket.
async fn check_trends(app: &TestApp, model: &Model, image: Option<&str>) {
    let from = base() - Duration::days(2);
    let to = base() + Duration::days(45);
    for (interval, days) in [("day", 1i64), ("week", 7)] {
        let mut q = format!("interval={interval}&from={}&to={}", rfc(from), rfc(to));
        if let Some(i) = image {
            q.push_str(&format!("&image={i}"));
        }
        let v = app
            .get_json(&format!("/analytics/vulnerabilities/trends?{q}"))
            .await;
        let points = v["Points"].as_array().unwrap();
        let buckets = v["Buckets"].as_array().unwrap();
        let mut start = from.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
        if days == 7 {
            use chrono::Datelike;
            start -= Duration::days(start.weekday().num_days_from_monday() as i64);
        }
        let mut i = 0;
        while start <= to {
            let end = start + Duration::days(days) - Duration::microseconds(1);
            // The fleet's points leave out what was recorded suppressed on their day (none
            // before today); an image's, what the suppressions active now cover.
            let fleet = model.fleet(image, None, Some(end));
            let e = if image.is_none() && end < Utc::now() {
                expect(&fleet)
            } else {
                model.expect(&fleet, false)
            };
            let b = &buckets[i];
            assert_eq!(b["Bucket"], rfc(start), "{q} bucket {i}");
            assert_eq!(b["Images"], e.images, "{q} {} on {:?}", rfc(start), app.db);
            assert_eq!(b["Fixable"], e.fixable, "{q} {}", rfc(start));
            for (k, sev) in (0..5).rev().enumerate() {
                let p = &points[i * 5 + k];
                assert_eq!(p["Bucket"], rfc(start));
                assert_eq!(p["Severity"], SEVERITIES[sev]);
                assert_eq!(
                    p["Count"],
                    e.by_sev[sev],
                    "{q} {} {}",
                    rfc(start),
                    SEVERITIES[sev]
                );
            }
            i += 1;
            start += Duration::days(days);
        }
        assert_eq!(buckets.len(), i, "{q}: no gaps, no extra buckets");
        assert_eq!(v["Count"], points.len());
    }
}

pub(crate) async fn check_all(app: &TestApp, model: &Model) {
    let mid = base() + Duration::days(9);
    let late = base() + Duration::days(16);
    for image in [None, Some("svc1"), Some("svc4"), Some("nope")] {
        check_scope(app, model, image, None, None).await;
        check_scope(app, model, image, None, Some(mid)).await;
        check_scope(app, model, image, Some(mid), None).await;
        check_scope(app, model, image, Some(mid), Some(late)).await;
        check_scope(app, model, image, None, Some(base() - Duration::days(1))).await;
    }
    check_cve_images(app, model).await;
    check_trends(app, model, None).await;
    check_trends(app, model, Some("svc2")).await;
}

async fn analytics_agree_with_a_recomputation_from_the_reports(app: &TestApp) {
    let reports = generate(7);
    let mut model = Model::default();
    let mut ids: HashMap<(String, String), String> = HashMap::new();
    let half = reports.len() / 2;
    for (n, r) in reports.iter().enumerate() {
        let s = app.ingest(&format!("tag={}", r.tag), r.bytes()).await;
        ids.insert(
            (r.image.clone(), r.digest.clone()),
            s["ID"].as_str().unwrap().to_string(),
        );
        model.add(r);
        if n + 1 == half {
            // Half-way, with every delta still pending; then compacted, so that the second
            // half replaces references whose deltas were already folded.
            check_all(app, &model).await;
            app.store.analytics().compact().await.unwrap();
        }
    }
    check_all(app, &model).await;
    app.store.analytics().compact().await.unwrap();
    check_all(app, &model).await;

    // Delete two scans through the API: one a reference's latest, one an older scan.
    let mut keys: Vec<_> = model.scans.keys().cloned().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(model.scans[k].latest().at));
    for k in [keys[0].clone(), keys[keys.len() / 2].clone()] {
        let r = app.delete(&format!("/scans/{}", ids[&k])).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "delete {k:?}");
        model.scans.remove(&k);
    }
    check_all(app, &model).await;

    // Retention: as of day 12, scans older than 3 days go.
    let deleted = scanvault::store::admin::apply_retention(
        &app.store,
        RetentionPolicy {
            max_age: std::time::Duration::from_secs(3 * 86_400),
            keep_per_image: 0,
        },
        base() + Duration::days(12),
    )
    .await
    .unwrap();
    assert!(deleted > 0, "the history has older scans to retire");
    let left = app.get_json("/scans/all?limit=500").await;
    let left: BTreeSet<String> = left["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ID"].as_str().unwrap().to_string())
        .collect();
    model.scans.retain(|k, _| left.contains(&ids[k]));
    check_all(app, &model).await;
    app.store.analytics().compact().await.unwrap();
    check_all(app, &model).await;
}

/// Compactors running all the time while reports arrive four at a time, in an order the
/// store has to sort out (references replaced while their deltas are being folded): every
/// answer still agrees with the recomputation, before and after the last compaction.
async fn compaction_during_concurrent_ingest(app: &TestApp) {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let reports = generate(13);
    let mut model = Model::default();
    for r in &reports {
        model.add(r);
    }
    let done = AtomicBool::new(false);
    let rounds = AtomicU32::new(0);
    let compactors = async {
        while !done.load(Ordering::Relaxed) {
            let (a, b) = tokio::join!(
                app.store.analytics().compact(),
                app.store.analytics().compact()
            );
            a.unwrap();
            b.unwrap();
            rounds.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
    };
    let ingests =
        async {
            for chunk in reports.chunks(4) {
                // Each chunk overlaps a round of compaction that began before it ended.
                let seen = rounds.load(Ordering::Relaxed);
                futures::future::join_all(chunk.iter().map(|r| async move {
                    app.ingest(&format!("tag={}", r.tag), r.bytes()).await
                }))
                .await;
                while rounds.load(Ordering::Relaxed) == seen {
                    tokio::task::yield_now().await;
                }
            }
            done.store(true, Ordering::Relaxed);
        };
    tokio::join!(compactors, ingests);
    check_all(app, &model).await;
    app.store.analytics().compact().await.unwrap();
    assert_eq!(app.store.analytics().compact().await.unwrap(), 0);
    check_all(app, &model).await;
}

/// Two compactors at once (two API replicas) fold every pending delta exactly once: the
/// answers, read from the compacted tables afterwards, still agree with the recomputation,
/// and nothing is left to fold.
async fn concurrent_compactors_fold_each_delta_once(app: &TestApp) {
    let mut model = Model::default();
    for r in generate(11) {
        app.ingest(&format!("tag={}", r.tag), r.bytes()).await;
        model.add(&r);
    }
    let (a, b) = tokio::join!(
        app.store.analytics().compact(),
        app.store.analytics().compact()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a + b > 0, "the ingests left deltas to fold");
    assert_eq!(
        app.store.analytics().compact().await.unwrap(),
        0,
        "no delta is left once both compactors are done"
    );
    check_all(app, &model).await;
}

async fn analytics_parameters_are_validated(app: &TestApp) {
    for uri in [
        "/analytics/vulnerabilities/summary?from=yesterday",
        "/analytics/vulnerabilities/summary?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        "/analytics/vulnerabilities/trends?interval=month",
        "/analytics/vulnerabilities/trends?interval=day&from=2000-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        "/analytics/vulnerabilities/trends?to=nope",
        "/analytics/vulnerabilities/top-cves?limit=0",
        "/analytics/vulnerabilities/top-cves?limit=x",
        "/analytics/vulnerabilities/top-cves?severity=SEVERE",
        "/analytics/vulnerabilities/cve/CVE-1/images?limit=-1",
        "/analytics/vulnerabilities/cve/CVE-1/images?offset=x",
        "/analytics/vulnerabilities/fixable?limit=-5",
        "/analytics/vulnerabilities/fixable?offset=-3",
        "/analytics/vulnerabilities/summary?to=2025-13-01",
    ] {
        let r = app.get(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.error_code(), "bad_request", "{uri}");
    }
    // An empty fleet: zeros, all five severities, every bucket.
    let s = app.get_json("/analytics/vulnerabilities/summary").await;
    assert_eq!(s["TotalScans"], 0);
    assert_eq!(s["SeverityCounts"].as_array().unwrap().len(), 5);
    let t = app
        .get_json(
            "/analytics/vulnerabilities/trends?from=2025-01-01T12:00:00Z&to=2025-01-10T00:00:00Z",
        )
        .await;
    assert_eq!(t["Count"], 50);
    assert_eq!(t["Points"][0]["Bucket"], "2025-01-01T00:00:00Z");
    let w = app
        .get_json("/analytics/vulnerabilities/trends?interval=week&from=2024-10-18&to=2025-01-10")
        .await;
    assert_eq!(w["From"], "2024-10-18T00:00:00Z");
    assert_eq!(
        w["Points"][0]["Bucket"], "2024-10-14T00:00:00Z",
        "weeks start on Monday"
    );
    // Without `from` and with nothing stored: the bucket of `to` alone.
    let t = app
        .get_json("/analytics/vulnerabilities/trends?to=2025-01-10T00:00:00Z")
        .await;
    assert_eq!(t["From"], "2025-01-10T00:00:00Z");
    assert_eq!(t["Count"], 5);
    let f = app.get_json("/analytics/vulnerabilities/fixable").await;
    assert_eq!(f["FixablePct"], 0.0);
    assert_eq!(f["FixableItems"], json!([]));
}

/// Top CVEs while pending deltas take the leaders out of the ranking: the ranked rows read
/// first are not enough, and the answer comes from further down the compacted ranking.
async fn top_cves_when_pending_deltas_sink_the_leaders(app: &TestApp) {
    let post = |r: Report| async move {
        let resp = app.post_scan("", r.bytes()).await;
        assert_eq!(
            resp.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&resp.body)
        );
    };
    // Compacted ranking: CVE-2025-0001 in 3 images, -0002 in 2, -0003 in 1.
    for (i, cves) in [
        (1, &["CVE-2025-0001", "CVE-2025-0002"][..]),
        (2, &["CVE-2025-0001", "CVE-2025-0002"][..]),
        (3, &["CVE-2025-0001"][..]),
        (4, &["CVE-2025-0003"][..]),
    ] {
        let mut r =
            Report::image(&format!("sink/app-{i}:1"), &digest(500 + i)).at("2025-01-01T00:00:00Z");
        for c in cves {
            r = r.vuln(c, "pkg", "1.0", "HIGH", None);
        }
        post(r).await;
    }
    app.store.analytics().compact().await.unwrap();
    // Newer builds of the first three images have no findings: the first two CVEs are down
    // to no image, in deltas not folded yet.
    for i in 1..=3 {
        post(
            Report::image(&format!("sink/app-{i}:1"), &digest(600 + i)).at("2025-01-02T00:00:00Z"),
        )
        .await;
    }
    let only_the_third = |t: &Value, ctx: &str| {
        let ids: Vec<&str> = t["CVEs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["CVEID"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["CVE-2025-0003"], "{ctx}: {t}");
        assert_eq!(t["CVEs"][0]["ImageCount"], 1, "{ctx}");
    };
    for round in ["pending", "compacted"] {
        for q in ["limit=1", "severity=high&limit=1", "limit=10"] {
            let t = app
                .get_json(&format!("/analytics/vulnerabilities/top-cves?{q}"))
                .await;
            only_the_third(&t, &format!("{round}, {q}"));
        }
        app.store.analytics().compact().await.unwrap();
    }
}

on_both_backends!(
    top_cves_when_pending_deltas_sink_the_leaders_on,
    top_cves_when_pending_deltas_sink_the_leaders
);
on_both_backends!(
    analytics_agree_with_a_recomputation,
    analytics_agree_with_a_recomputation_from_the_reports
);
on_both_backends!(
    concurrent_compactors_fold_each_delta_once_on,
    concurrent_compactors_fold_each_delta_once
);
on_both_backends!(
    compaction_during_concurrent_ingest_on,
    compaction_during_concurrent_ingest
);

on_both_backends!(
    analytics_parameters_are_validated_on,
    analytics_parameters_are_validated
);
