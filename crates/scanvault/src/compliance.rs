//! Evaluating findings against a policy with what the store knows (KEV, EPSS, when fixes
//! were first seen). Used by `POST /policies/{name}/evaluate` and `scanvault check`.

use std::collections::HashMap;

use scanvault_core::policy::{default_policy, Knowledge, Policy, Violation};
use scanvault_core::report::{Finding, Severity};

use crate::store::feeds::Exploit;
use crate::store::{micros, Store, StoreError};

/// The name of the policy `COMPLIANCE_FAIL_SEVERITY` makes.
pub const DEFAULT_POLICY: &str = "default";

/// The findings' vulnerability ids, sorted, once each.
fn vulnerability_ids(findings: &[&Finding]) -> Vec<String> {
    let mut ids: Vec<String> = findings
        .iter()
        .map(|f| f.vulnerability_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What the store knows about the findings' vulnerabilities, as of `now`.
pub struct StoreKnowledge {
    exploits: HashMap<String, Exploit>,
    fixes: HashMap<(String, String), i64>,
    now: i64,
}

impl StoreKnowledge {
    /// What `policies` need to know about `findings`: exploit data only for `KEV` or
    /// `MinEPSS` rules (or a scanner-reported EPSS is enough), fix ages only for
    /// `FixAvailableForDays` (the common `MaxSeverity`-only policy reads nothing).
    pub async fn of(
        store: &Store,
        findings: &[&Finding],
        policies: &[&Policy],
    ) -> Result<StoreKnowledge, StoreError> {
        let exploits_needed = policies
            .iter()
            .any(|p| p.rules.kev || p.rules.min_epss.is_some());
        let fixes_needed = policies
            .iter()
            .any(|p| p.rules.fix_available_for_days.is_some());
        let ids = vulnerability_ids(findings);
        Ok(StoreKnowledge {
            exploits: if exploits_needed {
                store.feeds().exploits(&ids).await?
            } else {
                HashMap::new()
            },
            fixes: if fixes_needed {
                store.policies().fixes_first_seen(&ids).await?
            } else {
                HashMap::new()
            },
            now: micros(chrono::Utc::now()),
        })
    }
}

impl Knowledge for StoreKnowledge {
    fn in_kev(&self, id: &str) -> bool {
        self.exploits.get(id).is_some_and(|e| e.kev.is_some())
    }

    fn epss(&self, id: &str) -> Option<f64> {
        self.exploits
            .get(id)
            .and_then(|e| e.epss.as_ref())
            .map(|e| e.score)
    }

    fn fix_age_days(&self, id: &str, pkg: &str) -> Option<i64> {
        self.fixes
            .get(&(id.to_string(), pkg.to_string()))
            .map(|first| (self.now - first) / 86_400_000_000)
    }
}

/// The policy called `name`: `default` is COMPLIANCE_FAIL_SEVERITY's; others are stored.
/// `Ok(None)` when there is no such policy; an error when a stored body does not parse.
pub async fn policy(
    store: &Store,
    name: &str,
    fail_on: Severity,
) -> Result<Option<Policy>, anyhow::Error> {
    if name == DEFAULT_POLICY {
        return Ok(Some(default_policy(fail_on)));
    }
    store
        .policies()
        .policy(name)
        .await?
        .map(|row| row.policy())
        .transpose()
}

/// The verdict of one policy on one image's findings.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub policy: String,
    /// Whether the policy applies to the image at all.
    pub applies: bool,
    pub violations: Vec<Violation>,
}

impl Verdict {
    pub fn compliant(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Evaluate `findings` of the image `image` against `policy` (named `name`); findings the
/// active suppressions cover never violate.
pub async fn evaluate(
    store: &Store,
    name: &str,
    policy: &Policy,
    image: &str,
    findings: &[&Finding],
) -> Result<Verdict, StoreError> {
    let now = micros(chrono::Utc::now());
    let ids = vulnerability_ids(findings);
    let active = crate::triage::Active::new(
        store.suppressions().active_suppressions(&ids, now).await?,
        now,
    );
    let kept: Vec<&Finding> = findings
        .iter()
        .copied()
        .filter(|f| {
            active
                .covering(&f.vulnerability_id, &f.pkg_name, image)
                .is_none()
        })
        .collect();
    let know = StoreKnowledge::of(store, &kept, &[policy]).await?;
    Ok(Verdict {
        policy: name.to_string(),
        applies: policy.applies_to(image),
        violations: policy.evaluate(name, image, &kept, &know),
    })
}

/// A policy name: 1–64 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a letter or
/// digit.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// A stored finding as the policy reads it.
pub fn finding_of(f: &crate::store::scans::FindingRow) -> Finding {
    Finding {
        vulnerability_id: f.vulnerability_id.clone(),
        pkg_name: f.pkg_name.clone(),
        installed_version: f.pkg_version.clone(),
        fixed_version: f.fixed_version.clone(),
        severity: Severity::from_rank(f.severity),
        status: f.status.clone(),
        pkg_type: f.pkg_type.clone(),
        class: f.class.clone(),
        target: f.target.clone(),
        pkg_path: f.pkg_path.clone(),
        purl: f.purl.clone(),
        title: f.title.clone(),
        cvss_score: f.cvss_score,
        extra: scanvault_core::report::FindingExtra::from_stored(f.extra.as_deref()),
    }
}

/// The stored policies, read at most every [`POLICIES_TTL`] by a process (a change through
/// this process is seen at once: [`PolicyCache::forget`]): answers about one scan evaluate
/// them all, and reading them per request cost 7% of ingest throughput on PostgreSQL.
#[derive(Clone)]
pub struct PolicyCache(moka::sync::Cache<(), std::sync::Arc<Vec<(String, Policy)>>>);

/// How long another process's policy change may take to show in scan answers.
pub const POLICIES_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Default for PolicyCache {
    fn default() -> Self {
        PolicyCache(
            moka::sync::Cache::builder()
                .max_capacity(1)
                .time_to_live(POLICIES_TTL)
                .build(),
        )
    }
}

impl PolicyCache {
    pub async fn get(
        &self,
        store: &Store,
    ) -> Result<std::sync::Arc<Vec<(String, Policy)>>, anyhow::Error> {
        if let Some(p) = self.0.get(&()) {
            return Ok(p);
        }
        let mut out = vec![];
        for row in store.policies().policies().await? {
            out.push((row.name.clone(), row.policy()?));
        }
        let out = std::sync::Arc::new(out);
        self.0.insert((), out.clone());
        Ok(out)
    }

    pub fn forget(&self) {
        self.0.invalidate_all();
    }
}

/// The violations of an image's findings under every policy that applies to it: `default`
/// and each stored policy (`stored`) whose `Images` match. Empty: compliant with all.
pub async fn violations(
    store: &Store,
    fail_on: Severity,
    stored: &[(String, Policy)],
    image: &str,
    findings: &[&Finding],
) -> Result<Vec<Violation>, anyhow::Error> {
    let mut all = violations_of_many(store, fail_on, stored, &[(image, findings.to_vec())]).await?;
    Ok(all.pop().unwrap_or_default())
}

/// [`violations`] of several images' findings at once: what the store knows is read once
/// for all of them. One answer per `(image, findings)`, in order.
pub async fn violations_of_many(
    store: &Store,
    fail_on: Severity,
    stored: &[(String, Policy)],
    images: &[(&str, Vec<&Finding>)],
) -> Result<Vec<Vec<Violation>>, anyhow::Error> {
    // `default` and the stored policies that apply to any of the images: what the store
    // knows is read only for the rules of those.
    let mut policies = vec![(DEFAULT_POLICY.to_string(), default_policy(fail_on))];
    policies.extend(
        stored
            .iter()
            .filter(|(_, p)| images.iter().any(|(image, _)| p.applies_to(image)))
            .cloned(),
    );
    let all: Vec<&Finding> = images.iter().flat_map(|(_, f)| f.iter().copied()).collect();
    let every: Vec<&Policy> = policies.iter().map(|(_, p)| p).collect();
    let know = StoreKnowledge::of(store, &all, &every).await?;
    Ok(images
        .iter()
        .map(|(image, findings)| {
            policies
                .iter()
                .flat_map(|(name, p)| p.evaluate(name, image, findings, &know))
                .collect()
        })
        .collect())
}
