//! Fleet analytics against a plain recomputation from the reports the test generated.
//!
//! The test builds a fleet history (images re-scanned on different days, rebuilds with new
//! digests, extra tags on a digest, findings fixed and new, reports arriving out of order,
//! some older than what is stored), ingests it through the API, and compares every
//! endpoint, with and without `image`, `from` and `to`, to what the reports say: the model
//! below knows nothing of the database. Every report is an observation at its time, also
//! when it updates a stored scan in place, and a later observation never rewrites what an
//! earlier time shows. Deleting scans (API and retention) must keep every answer equal to
//! the model's.

use crate::on_both_backends;
use crate::support::{digest, Db, Report, TestApp};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, TimeZone, Utc};
use scanvault::store::admin::RetentionPolicy;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const SEVERITIES: [&str; 5] = ["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone)]
struct GenFinding {
    cve: String,
    pkg: String,
    ver: String,
    sev: usize,
    fixed: Option<String>,
}

#[derive(Debug, Clone)]
struct GenReport {
    image: String,
    tag: String,
    digest: String,
    at: DateTime<Utc>,
    findings: Vec<GenFinding>,
}

impl GenReport {
    fn bytes(&self) -> Vec<u8> {
        let mut r = Report::image(&format!("{}:{}", self.image, self.tag), &self.digest)
            .at(&self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        for f in &self.findings {
            r = r.vuln(
                &f.cve,
                &f.pkg,
                &f.ver,
                SEVERITIES[f.sev],
                f.fixed.as_deref(),
            );
        }
        r.bytes()
    }
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 0, 0, 0).unwrap()
}

/// A fleet history: 6 images, 1–3 digests each, 1–3 reports per digest on different days,
/// a moving `latest` tag, and findings that come and go.
fn generate(seed: u64) -> Vec<GenReport> {
    let mut rng = Rng(seed);
    // Mixed case and punctuation, as real package names and tags have: byte order and a
    // language's order differ on them (see `fresh_pg_database`).
    let pkgs = ["openssl", "zlib", "PyYAML", "glibc", "Django", "musl-utils"];
    let mut reports = vec![];
    let mut minute = 0i64;
    let mut n_digest = 100u32;
    for i in 0..6 {
        let image = format!("svc{i}");
        let digests = 1 + rng.below(3) as usize;
        let mut day = rng.below(4) as i64;
        for d in 0..digests {
            n_digest += 1;
            let dg = digest(n_digest + 1000 * seed as u32);
            let tag = if d % 2 == 0 {
                format!("v{d}")
            } else {
                format!("V{d}-RC")
            };
            let scans = 1 + rng.below(3) as usize;
            // The findings of this digest drift from scan to scan.
            let mut current: Vec<GenFinding> = vec![];
            for _ in 0..(rng.below(7) as usize) {
                let k = rng.below(14);
                let pkg = pkgs[rng.below(pkgs.len() as u64) as usize].to_string();
                let ver = format!("1.{}", rng.below(2));
                if current
                    .iter()
                    .any(|f| f.cve == format!("CVE-2025-{k:04}") && f.pkg == pkg && f.ver == ver)
                {
                    continue;
                }
                current.push(GenFinding {
                    cve: format!("CVE-2025-{k:04}"),
                    pkg,
                    ver,
                    sev: rng.below(5) as usize,
                    fixed: (rng.below(2) == 0).then(|| "9.9".to_string()),
                });
            }
            for s in 0..scans {
                if s > 0 {
                    // A fix ships, a finding goes, a new one appears.
                    if !current.is_empty() && rng.below(2) == 0 {
                        let j = rng.below(current.len() as u64) as usize;
                        current.remove(j);
                    }
                    if !current.is_empty() && rng.below(2) == 0 {
                        let j = rng.below(current.len() as u64) as usize;
                        current[j].fixed = Some("9.8".into());
                    }
                    if rng.below(2) == 0 {
                        let k = 14 + rng.below(4);
                        let f = GenFinding {
                            cve: format!("CVE-2025-{k:04}"),
                            pkg: pkgs[rng.below(pkgs.len() as u64) as usize].to_string(),
                            ver: "2.0".into(),
                            sev: rng.below(5) as usize,
                            fixed: None,
                        };
                        if !current
                            .iter()
                            .any(|g| g.cve == f.cve && g.pkg == f.pkg && g.ver == f.ver)
                        {
                            current.push(f);
                        }
                    }
                }
                minute += 7;
                let at = base() + Duration::days(day) + Duration::minutes(minute);
                // The newest digest is also `latest`; one older report carries an extra tag.
                let tags: Vec<String> = if d + 1 == digests {
                    vec![tag.clone(), "latest".into()]
                } else if s == 0 && rng.below(3) == 0 {
                    vec![tag.clone(), "stable".into()]
                } else {
                    vec![tag.clone()]
                };
                for t in tags {
                    reports.push(GenReport {
                        image: image.clone(),
                        tag: t,
                        digest: dg.clone(),
                        at,
                        findings: current.clone(),
                    });
                }
                day += 1 + rng.below(3) as i64;
            }
        }
    }
    // Out of order: a deterministic shuffle.
    for i in (1..reports.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        reports.swap(i, j);
    }
    reports
}

/// One ingest of a report: an observation of its content at the report's time, with the
/// findings the report had. Observations are never rewritten by later ones.
#[derive(Debug, Clone)]
struct Observation {
    at: DateTime<Utc>,
    /// Ingest order, which breaks ties between observations at the same time.
    seq: usize,
    findings: Vec<GenFinding>,
}

/// What the reports say about one stored content (image name and digest): every tag any of
/// its reports was stored under, with the time of the earliest report under it (a reference
/// exists from the first report that names it), and every observation of the content.
#[derive(Debug, Clone)]
struct ModelScan {
    image: String,
    tags: BTreeMap<String, DateTime<Utc>>,
    observations: Vec<Observation>,
}

impl ModelScan {
    /// The latest observation (by time, then ingest order): the scan as it is now.
    fn latest(&self) -> &Observation {
        self.observations
            .iter()
            .max_by_key(|o| (o.at, o.seq))
            .expect("a scan has an observation")
    }
}

/// The DESIGN.md definition, and nothing of the database: the fleet as of T takes each image
/// reference's latest observation at or before T, with the findings that observation had. A
/// reference's observations are those of every content stored under it, from the time of
/// the first report that named it on.
#[derive(Debug, Default)]
struct Model {
    /// By (image, digest).
    scans: BTreeMap<(String, String), ModelScan>,
    ingested: usize,
}

impl Model {
    fn add(&mut self, r: &GenReport) {
        let e = self
            .scans
            .entry((r.image.clone(), r.digest.clone()))
            .or_insert_with(|| ModelScan {
                image: r.image.clone(),
                tags: BTreeMap::new(),
                observations: vec![],
            });
        let since = e.tags.entry(r.tag.clone()).or_insert(r.at);
        *since = (*since).min(r.at);
        e.observations.push(Observation {
            at: r.at,
            seq: self.ingested,
            findings: r.findings.clone(),
        });
        self.ingested += 1;
    }

    /// Each reference's latest observation at or before `to`, leaving out references whose
    /// latest observation is older than `from`.
    fn fleet(
        &self,
        image: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> BTreeMap<(String, String), &Observation> {
        let mut out: BTreeMap<(String, String), &Observation> = BTreeMap::new();
        for s in self.scans.values() {
            if image.is_some_and(|i| i != s.image) {
                continue;
            }
            for o in &s.observations {
                if to.is_some_and(|t| o.at > t) {
                    continue;
                }
                for (t, since) in &s.tags {
                    if o.at < *since {
                        continue;
                    }
                    let key = (s.image.clone(), t.clone());
                    match out.get(&key) {
                        Some(held) if (held.at, held.seq) >= (o.at, o.seq) => {}
                        _ => {
                            out.insert(key, o);
                        }
                    }
                }
            }
        }
        out.retain(|_, o| from.is_none_or(|f| o.at >= f));
        out
    }
}

/// (severity, cve, image, tag, package, version, fixed version)
type Row = (
    usize,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);
/// (references, highest severity, findings, fixable findings) of one CVE
type CveTally = (BTreeSet<(String, String)>, usize, i64, i64);

struct Expected {
    images: i64,
    by_sev: [i64; 5],
    fixable: i64,
    /// (cve, images, max severity, findings, fixable findings)
    cves: Vec<(String, i64, usize, i64, i64)>,
    /// (sev, cve, image, tag, pkg, ver, fixed)
    rows: Vec<Row>,
}

fn expect(fleet: &BTreeMap<(String, String), &Observation>) -> Expected {
    let mut e = Expected {
        images: fleet.len() as i64,
        by_sev: [0; 5],
        fixable: 0,
        cves: vec![],
        rows: vec![],
    };
    let mut cves: BTreeMap<String, CveTally> = BTreeMap::new();
    for ((img, tag), s) in fleet {
        for f in &s.findings {
            e.by_sev[f.sev] += 1;
            e.fixable += i64::from(f.fixed.is_some());
            let c = cves.entry(f.cve.clone()).or_default();
            c.0.insert((img.clone(), tag.clone()));
            c.1 = c.1.max(f.sev);
            c.2 += 1;
            c.3 += i64::from(f.fixed.is_some());
            e.rows.push((
                f.sev,
                f.cve.clone(),
                img.clone(),
                tag.clone(),
                f.pkg.clone(),
                f.ver.clone(),
                f.fixed.clone(),
            ));
        }
    }
    e.cves = cves
        .into_iter()
        .map(|(id, (refs, sev, n, fx))| (id, refs.len() as i64, sev, n, fx))
        .collect();
    e.cves
        .sort_by(|a, b| (b.1, b.2, &a.0).cmp(&(a.1, a.2, &b.0)));
    e
}

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
    let e = expect(&fleet);
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
    let e = expect(&fleet);
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
            let e = expect(&model.fleet(image, None, Some(end)));
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

async fn check_all(app: &TestApp, model: &Model) {
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
        "/analytics/vulnerabilities/top-cves?limit=101",
        "/analytics/vulnerabilities/top-cves?severity=SEVERE",
        "/analytics/vulnerabilities/cve/CVE-1/images?limit=-1",
        "/analytics/vulnerabilities/cve/CVE-1/images?offset=x",
        "/analytics/vulnerabilities/fixable?limit=100000",
        "/analytics/vulnerabilities/fixable?offset=-3",
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
        .get_json("/analytics/vulnerabilities/trends?interval=week&to=2025-01-10T00:00:00Z")
        .await;
    assert_eq!(w["From"], "2024-10-18T00:00:00Z");
    assert_eq!(
        w["Points"][0]["Bucket"], "2024-10-14T00:00:00Z",
        "weeks start on Monday"
    );
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
/// A burst of ingest grows the delta tables; the compactor empties them but their pages
/// stay, and every summary, top-CVEs and CVE-images answer would read them all. Once a
/// compaction finds nothing to fold (ingest quiet), the shrink the compaction loop then
/// starts truncates them: their pages go, and every answer is the same as before. Ingest
/// afterwards counts as it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_compaction_gives_the_delta_pages_back_postgres() {
    use scanvault::store::analytics::SHRINK_PAGES;
    let Some(app) = TestApp::try_new(Db::Postgres).await else {
        return;
    };
    ingest_burst(&app).await;
    let folded = app.store.analytics().compact().await.unwrap();
    assert!(
        folded > 2000,
        "one per-CVE delta row per CVE and report, and more: {folded}"
    );
    let burst = app.store.analytics().delta_pages().await.unwrap();
    assert!(
        burst.iter().any(|(_, p)| *p > SHRINK_PAGES),
        "2,000 per-CVE delta rows, folded, leave their pages: {burst:?}"
    );
    let uris = [
        "/analytics/vulnerabilities/summary",
        "/analytics/vulnerabilities/top-cves?limit=5",
        "/analytics/vulnerabilities/cve/CVE-2025-0007/images",
        "/analytics/vulnerabilities/fixable?limit=5",
    ];
    let mut before = vec![];
    for uri in uris {
        before.push(app.get_json(uri).await);
    }
    assert_eq!(before[0]["TotalScans"], 20);
    assert_eq!(app.store.analytics().compact().await.unwrap(), 0);
    assert!(app.store.analytics().shrink_quiet_deltas().await.unwrap());
    let after = app.store.analytics().delta_pages().await.unwrap();
    for (table, was) in &burst {
        let now = after.iter().find(|(t, _)| t == table).map(|(_, p)| *p);
        if *was > SHRINK_PAGES {
            assert_eq!(now, Some(0), "the shrink truncates {table}: {after:?}");
        } else {
            assert_eq!(now, Some(*was), "a small table is left alone: {after:?}");
        }
    }
    assert!(
        !app.store.analytics().shrink_quiet_deltas().await.unwrap(),
        "nothing left to shrink"
    );
    for (uri, was) in uris.iter().zip(&before) {
        assert_eq!(&app.get_json(uri).await, was, "{uri}");
    }
    let r = app.post_scan("", burst_report(21).bytes()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let s = app.get_json(uris[0]).await;
    assert_eq!(s["TotalScans"], 21);
    assert_eq!(s["TotalVulnerabilities"], 2100);
    assert_eq!(s["Fixable"], 2100);
    app.store.analytics().compact().await.unwrap();
    let c = app.get_json(uris[2]).await;
    assert_eq!(c["ImageCount"], 21, "{c}");
    app.finish().await;
}

/// Image `i` of a burst: 100 fixable HIGH findings, the same 100 CVEs in every image.
fn burst_report(i: u32) -> Report {
    let mut r = Report::image(&format!("burst/app-{i}:1"), &digest(i)).at("2025-01-01T00:00:00Z");
    for j in 0..100 {
        r = r.vuln(
            &format!("CVE-2025-{j:04}"),
            "pkg",
            "1.0",
            "HIGH",
            Some("1.1"),
        );
    }
    r
}

/// 20 new images: 2,000 per-CVE delta rows, more than [`SHRINK_PAGES`] of them.
async fn ingest_burst(app: &TestApp) {
    for i in 1..=20 {
        let r = app.post_scan("", burst_report(i).bytes()).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

/// The background loop as the server runs it: it folds the burst's deltas, and in the first
/// round after that with nothing to fold it starts the shrink, which truncates the tables
/// the burst grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compaction_loop_shrinks_the_deltas_once_ingest_is_quiet_postgres() {
    use scanvault::store::analytics::{compaction_loop, SHRINK_PAGES};
    let Some(app) = TestApp::try_new(Db::Postgres).await else {
        return;
    };
    ingest_burst(&app).await;
    let grown = app.store.analytics().delta_pages().await.unwrap();
    assert!(
        grown.iter().any(|(_, p)| *p > SHRINK_PAGES),
        "the burst grew a delta table: {grown:?}"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let looping = tokio::spawn(compaction_loop(app.store.clone(), stop.clone()));
    // Two rounds (COMPACTION_INTERVAL apart) and the shrink: well within 30 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut now = app.store.analytics().delta_pages().await.unwrap();
    while now.iter().any(|(_, p)| *p > SHRINK_PAGES) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        now = app.store.analytics().delta_pages().await.unwrap();
    }
    stop.cancel();
    looping.await.unwrap();
    assert!(
        now.iter().all(|(_, p)| *p <= SHRINK_PAGES),
        "the loop shrank the delta tables: {grown:?} -> {now:?}"
    );
    let s = app.get_json("/analytics/vulnerabilities/summary").await;
    assert_eq!(s["TotalScans"], 20);
    assert_eq!(s["TotalVulnerabilities"], 2000);
    app.finish().await;
}

on_both_backends!(
    analytics_parameters_are_validated_on,
    analytics_parameters_are_validated
);

// ------------------------------------------------------------------ statements per ingest

/// Counts the statements sqlx logs (target `sqlx::query`).
struct StatementCounter(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StatementCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The statements one direct `store.ingest` issues, counted on this thread.
async fn count_statements(app: &TestApp, report: &GenReport, tag_override: Option<&str>) -> usize {
    use tracing_subscriber::layer::SubscriberExt;
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry()
        .with(StatementCounter(n.clone()))
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let new = scanvault::ingest::build_new_scan(
        report.bytes(),
        &scanvault::ingest::IngestOverrides {
            image: None,
            tag: tag_override.map(str::to_string),
            digest: None,
        },
        &scanvault::ingest::IngestSettings {
            compliance_fail_on: scanvault_core::report::Severity::Critical,
            max_findings: 100_000,
        },
        scanvault::store::scans::ScanSource::Ingest,
        Utc::now(),
    )
    .unwrap();
    let body = scanvault::store::StoredBody::of(&new.raw).unwrap();
    let _guard = tracing::subscriber::set_default(subscriber);
    app.store.scans().ingest(&new, &body, None).await.unwrap();
    n.load(std::sync::atomic::Ordering::Relaxed)
}

fn big_report(n_findings: usize, digest_n: u32, day: i64) -> GenReport {
    GenReport {
        image: "counted".into(),
        tag: "1.0".into(),
        digest: digest(digest_n),
        at: base() + Duration::days(day),
        findings: (0..n_findings)
            .map(|i| GenFinding {
                cve: format!("CVE-2024-{:05}", i),
                pkg: format!("pkg{}", i % 37),
                ver: "1.0".into(),
                sev: i % 5,
                fixed: (i % 2 == 0).then(|| "2.0".to_string()),
            })
            .collect(),
    }
}

/// An N+1 regression (a statement per finding, per CVE, per tag…) fails here. Run on a
/// current-thread runtime so every statement is logged on this thread. PostgreSQL only:
/// sqlx runs (and logs) SQLite statements on a worker thread per connection, which a
/// thread-local subscriber does not see. SQLite runs the same statements, except that the
/// writes PostgreSQL sends as one (`store::batch`) go one by one.
fn statements_per_ingest_are_pinned_on(db: Db) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Some(app) = TestApp::try_new(db).await else {
            return;
        };
        // Warm up (connections, catalog, callsite registration).
        count_statements(&app, &big_report(10, 9, 0), Some("warm")).await;
        // A new image with 150 findings.
        let first = count_statements(&app, &big_report(150, 1, 0), None).await;
        // 1,200 findings: the same statements (a row set's parameters do not grow with it).
        let bigger = count_statements(&app, &big_report(1200, 2, 1), Some("2.0")).await;
        // A re-scan of the first digest a day later with a few findings changed.
        let mut rescan = big_report(150, 1, 2);
        rescan.findings.truncate(140);
        let update = count_statements(&app, &rescan, None).await;
        // The same report again: nothing changes.
        let same = count_statements(&app, &rescan, None).await;
        app.finish().await;
        // Pinned: raise these only on purpose (and say why in the commit).
        assert_eq!(
            (first, bigger, update, same),
            (PINNED_NEW, PINNED_NEW_1200, PINNED_UPDATE, PINNED_SAME),
            "statements per ingest on {db:?}: (new, new with 1,200 findings, update, unchanged)"
        );
    });
}

// On PostgreSQL a new scan's row, its tag and its first observation are one statement, and
// the writes nobody reads back (its findings, report, reference pointers, current-fleet rows
// and deltas) one more (`store/postgres/ingest.rs`, `FINISH`). An update is the scan's row
// with its observation, its tag, its current findings (read for the difference), the catalog,
// the references, the old current-fleet rows out, and the same final statement. The same
// report again reads what it needs to know it is the same, and writes nothing.
const PINNED_NEW: usize = 7;
const PINNED_NEW_1200: usize = 7;
const PINNED_UPDATE: usize = 9;
const PINNED_SAME: usize = 4;

#[test]
fn statements_per_ingest_are_pinned_postgres() {
    statements_per_ingest_are_pinned_on(Db::Postgres);
}

// ------------------------------------------------------------------ history is append-only

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
