//! A generated fleet history and the model of what the fleet is, from DESIGN.md's definition
//! and nothing of the database: the recomputation `analytics.rs` compares every endpoint to.

use crate::support::{digest, Report};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) const SEVERITIES: [&str; 5] = ["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"];

/// Deterministic xorshift, so a failure reproduces.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone)]
pub(crate) struct GenFinding {
    pub(crate) cve: String,
    pub(crate) pkg: String,
    pub(crate) ver: String,
    pub(crate) sev: usize,
    pub(crate) fixed: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct GenReport {
    pub(crate) image: String,
    pub(crate) tag: String,
    pub(crate) digest: String,
    pub(crate) at: DateTime<Utc>,
    pub(crate) findings: Vec<GenFinding>,
}

impl GenReport {
    pub(crate) fn bytes(&self) -> Vec<u8> {
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

pub(crate) fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 0, 0, 0).unwrap()
}

/// A fleet history: 6 images, 1–3 digests each, 1–3 reports per digest on different days,
/// a moving `latest` tag, and findings that come and go.
pub(crate) fn generate(seed: u64) -> Vec<GenReport> {
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
pub(crate) struct Observation {
    pub(crate) at: DateTime<Utc>,
    /// Ingest order, which breaks ties between observations at the same time.
    pub(crate) seq: usize,
    pub(crate) findings: Vec<GenFinding>,
}

/// What the reports say about one stored content (image name and digest): every tag any of
/// its reports was stored under, with the time of the earliest report under it (a reference
/// exists from the first report that names it), and every observation of the content.
#[derive(Debug, Clone)]
pub(crate) struct ModelScan {
    pub(crate) image: String,
    pub(crate) tags: BTreeMap<String, DateTime<Utc>>,
    pub(crate) observations: Vec<Observation>,
}

impl ModelScan {
    /// The latest observation (by time, then ingest order): the scan as it is now.
    pub(crate) fn latest(&self) -> &Observation {
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
pub(crate) struct Model {
    /// By (image, digest).
    pub(crate) scans: BTreeMap<(String, String), ModelScan>,
    pub(crate) ingested: usize,
    /// Active suppressions: (vulnerability, package, image glob), whose findings the
    /// answers leave out.
    pub(crate) suppress: Vec<(String, Option<String>, Option<String>)>,
}

/// `*` any text, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

impl Model {
    /// Whether an active suppression covers a finding of `image`.
    pub(crate) fn suppressed(&self, image: &str, f: &GenFinding) -> bool {
        self.suppress.iter().any(|(v, p, g)| {
            *v == f.cve
                && p.as_ref().is_none_or(|p| *p == f.pkg)
                && g.as_ref().is_none_or(|g| glob(g, image))
        })
    }

    /// [`expect`] of the findings the suppressions leave (`only`: of the ones they cover).
    pub(crate) fn expect(
        &self,
        fleet: &BTreeMap<(String, String), &Observation>,
        only: bool,
    ) -> Expected {
        let kept: Vec<((String, String), Observation)> = fleet
            .iter()
            .map(|(k, o)| {
                let mut o = (*o).clone();
                o.findings.retain(|f| self.suppressed(&k.0, f) == only);
                (k.clone(), o)
            })
            .collect();
        let refs: BTreeMap<(String, String), &Observation> =
            kept.iter().map(|(k, o)| (k.clone(), o)).collect();
        let mut e = expect(&refs);
        if only {
            e.images = kept.iter().filter(|(_, o)| !o.findings.is_empty()).count() as i64;
        }
        e
    }

    pub(crate) fn add(&mut self, r: &GenReport) {
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
    pub(crate) fn fleet(
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
pub(crate) type Row = (
    usize,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);
/// (references, highest severity, findings, fixable findings) of one CVE
pub(crate) type CveTally = (BTreeSet<(String, String)>, usize, i64, i64);

pub(crate) struct Expected {
    pub(crate) images: i64,
    pub(crate) by_sev: [i64; 5],
    pub(crate) fixable: i64,
    /// (cve, images, max severity, findings, fixable findings)
    pub(crate) cves: Vec<(String, i64, usize, i64, i64)>,
    /// (sev, cve, image, tag, pkg, ver, fixed)
    pub(crate) rows: Vec<Row>,
}

pub(crate) fn expect(fleet: &BTreeMap<(String, String), &Observation>) -> Expected {
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
