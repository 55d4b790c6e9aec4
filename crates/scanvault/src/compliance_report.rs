//! The compliance report (`GET /compliance`): what an auditor asks for, computed on request
//! from each image reference's observations.
//!
//! - Compliant: a reference's observation violates no rule of any policy that applies to its
//!   image (`default` and the stored policies whose `Images` match), findings that active
//!   suppressions cover left out. The share now (as of `to`) and at the end of each week.
//! - Violations now, per reference and tallied by policy and rule.
//! - Active suppressions with their reasons, owners and expiry.
//! - Time to fix per severity: per reference, from the first observation that had a finding
//!   (vulnerability, package) to the first later one without it; the fixes made within
//!   [`from`, `to`], median and 90th percentile (nearest rank), in days.
//!
//! Each distinct (scan, findings version) is read once; a report over the whole history of
//! a large fleet reads every observation's findings.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use scanvault_core::fleet::{ChainObs, DAY_US};
use scanvault_core::policy::{default_policy, Policy, Violation};
use scanvault_core::report::{Finding, Severity};

use crate::compliance::{StoreKnowledge, DEFAULT_POLICY};
use crate::store::suppressions::SuppressionRow;
use crate::store::Store;
use crate::triage::Active;

/// What the report covers.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub image: Option<String>,
    /// Microseconds.
    pub from: i64,
    pub to: i64,
}

/// Images and how many of them are compliant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    pub images: i64,
    pub compliant: i64,
}

impl Share {
    /// The compliant share in percent, two decimals (100 for no image).
    pub fn percent(&self) -> f64 {
        if self.images == 0 {
            return 100.0;
        }
        (self.compliant as f64 * 10_000.0 / self.images as f64).round() / 100.0
    }
}

/// A reference's violations now.
#[derive(Debug, Clone)]
pub struct ReferenceViolations {
    pub image_name: String,
    pub image_tag: String,
    pub scan_id: String,
    pub violations: Vec<Violation>,
}

/// Violations of one rule of one policy, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTally {
    pub policy: String,
    pub rule: String,
    pub findings: i64,
    pub images: i64,
}

/// Fixes of one severity within the report's window.
#[derive(Debug, Clone, PartialEq)]
pub struct FixTally {
    pub severity: Severity,
    pub fixed: usize,
    pub median_days: Option<f64>,
    pub p90_days: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub query: ReportQuery,
    pub policies: Vec<String>,
    pub now: Share,
    /// (week start, share at the week's end or at `to`).
    pub weekly: Vec<(i64, Share)>,
    pub violations: Vec<ReferenceViolations>,
    pub by_rule: Vec<RuleTally>,
    pub suppressions: Vec<SuppressionRow>,
    pub time_to_fix: Vec<FixTally>,
}

/// A week's start (Monday, UTC) holding `t`.
pub fn week_start(t: i64) -> i64 {
    scanvault_core::fleet::Interval::Week.bucket_start(t)
}

/// Each reference's latest observation at or before `t`.
fn latest_at(chain: &[ChainObs], t: i64) -> Option<&ChainObs> {
    chain
        .iter()
        .filter(|o| o.scanned_at <= t)
        .max_by_key(|o| (o.scanned_at, o.id))
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// How many findings versions one statement reads.
const VERSIONS_PER_READ: usize = 500;

/// Build the report.
pub async fn build(
    store: &Store,
    fail_on: Severity,
    stored: &[(String, Policy)],
    q: ReportQuery,
) -> Result<Report, anyhow::Error> {
    let mut chains = store
        .analytics()
        .reference_chains(q.image.as_deref())
        .await?;
    for chain in chains.values_mut() {
        chain.retain(|o| o.scanned_at <= q.to);
        chain.sort_by_key(|o| (o.scanned_at, o.id));
    }
    chains.retain(|_, c| !c.is_empty());

    // Every (scan, version) once, read a batch of versions per statement.
    let mut pairs: Vec<(String, i64)> = chains
        .values()
        .flatten()
        .map(|o| (o.scan_id.clone(), o.version))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut findings: HashMap<(String, i64), Arc<Vec<Finding>>> =
        HashMap::with_capacity(pairs.len());
    for batch in pairs.chunks(VERSIONS_PER_READ) {
        for (k, v) in store.scans().versions(batch).await? {
            findings.insert(k, Arc::new(v));
        }
    }
    let now_us = crate::store::micros(chrono::Utc::now());
    // The active suppressions: applied to the verdicts, and listed in the report.
    let live = store.suppressions().suppressions(Some(now_us)).await?;
    let active = Active::new(live.clone(), now_us);
    let mut policies: Vec<(String, Policy)> =
        vec![(DEFAULT_POLICY.to_string(), default_policy(fail_on))];
    policies.extend(stored.iter().cloned());
    let all: Vec<&Finding> = findings.values().flat_map(|v| v.iter()).collect();
    let refs: Vec<&Policy> = policies.iter().map(|(_, p)| p).collect();
    let know = StoreKnowledge::of(store, &all, &refs).await?;

    // Verdicts per (scan, version, image name).
    let mut verdicts: HashMap<(String, i64, String), Arc<Vec<Violation>>> = HashMap::new();
    let mut verdict = |o: &ChainObs, image: &str| -> Arc<Vec<Violation>> {
        let key = (o.scan_id.clone(), o.version, image.to_string());
        verdicts
            .entry(key)
            .or_insert_with(|| {
                let kept: Vec<&Finding> = findings[&(o.scan_id.clone(), o.version)]
                    .iter()
                    .filter(|f| {
                        active
                            .covering(&f.vulnerability_id, &f.pkg_name, image)
                            .is_none()
                    })
                    .collect();
                Arc::new(
                    policies
                        .iter()
                        .flat_map(|(name, p)| p.evaluate(name, image, &kept, &know))
                        .collect(),
                )
            })
            .clone()
    };

    let mut keys: Vec<&(String, String)> = chains.keys().collect();
    keys.sort();
    let mut now = Share::default();
    let mut violations = vec![];
    let mut tallies: BTreeMap<(String, String), (i64, std::collections::BTreeSet<usize>)> =
        BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let Some(o) = latest_at(&chains[*k], q.to) else {
            continue;
        };
        let v = verdict(o, &k.0);
        now.images += 1;
        if v.is_empty() {
            now.compliant += 1;
            continue;
        }
        for x in v.iter() {
            let t = tallies
                .entry((x.policy.clone(), x.rule.clone()))
                .or_default();
            t.0 += 1;
            t.1.insert(i);
        }
        violations.push(ReferenceViolations {
            image_name: k.0.clone(),
            image_tag: k.1.clone(),
            scan_id: o.scan_id.clone(),
            violations: v.as_ref().clone(),
        });
    }
    let by_rule = tallies
        .into_iter()
        .map(|((policy, rule), (findings, images))| RuleTally {
            policy,
            rule,
            findings,
            images: images.len() as i64,
        })
        .collect();

    let mut weekly = vec![];
    let mut week = week_start(q.from);
    while week <= q.to {
        let end = (week + 7 * DAY_US - 1).min(q.to);
        let mut share = Share::default();
        for k in &keys {
            if let Some(o) = latest_at(&chains[*k], end) {
                share.images += 1;
                if verdict(o, &k.0).is_empty() {
                    share.compliant += 1;
                }
            }
        }
        weekly.push((week, share));
        week += 7 * DAY_US;
    }

    // Time to fix: per reference, (vulnerability, package) → (first seen, severity).
    let mut fixes: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for k in &keys {
        let mut open: HashMap<(&str, &str), (i64, Severity)> = HashMap::new();
        for o in &chains[*k] {
            let fs = &findings[&(o.scan_id.clone(), o.version)];
            let present: HashMap<(&str, &str), Severity> = fs
                .iter()
                .map(|f| {
                    (
                        (f.vulnerability_id.as_str(), f.pkg_name.as_str()),
                        f.severity,
                    )
                })
                .collect();
            open.retain(|key, (since, sev)| {
                if present.contains_key(key) {
                    return true;
                }
                if o.scanned_at >= q.from {
                    fixes
                        .entry(sev.rank())
                        .or_default()
                        .push((o.scanned_at - *since) as f64 / DAY_US as f64);
                }
                false
            });
            for (key, sev) in present {
                open.entry(key).or_insert((o.scanned_at, sev));
            }
        }
    }
    let time_to_fix = Severity::ALL
        .iter()
        .map(|s| {
            let mut d = fixes.remove(&s.rank()).unwrap_or_default();
            d.sort_by(f64::total_cmp);
            let round = |x: f64| (x * 10.0).round() / 10.0;
            FixTally {
                severity: *s,
                fixed: d.len(),
                median_days: percentile(&d, 50.0).map(round),
                p90_days: percentile(&d, 90.0).map(round),
            }
        })
        .collect();

    let mut suppressions: Vec<SuppressionRow> = live;
    if let Some(img) = &q.image {
        suppressions.retain(|s| {
            s.image
                .as_deref()
                .is_none_or(|g| wildmatch::WildMatch::new(g).matches(img))
        });
    }
    Ok(Report {
        policies: policies.into_iter().map(|(n, _)| n).collect(),
        query: q,
        now,
        weekly,
        violations,
        by_rule,
        suppressions,
        time_to_fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&[4.0], 90.0), Some(4.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(
            Share {
                images: 3,
                compliant: 2
            }
            .percent(),
            66.67
        );
    }
}
