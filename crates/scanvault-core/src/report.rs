//! The normalised report: what every supported scanner format is parsed into, and what the
//! store persists. A [`Finding`] is one `(vulnerability_id, pkg_name, installed_version)`
//! triple per scan; the same triple listed in several Results or paths is one finding.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Severity of a finding. The order is the order of gravity: `Unknown < Low < … < Critical`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    #[default]
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// All severities, most severe first (the order of every per-severity answer).
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "UNKNOWN",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// Numeric rank stored in the database (0 = UNKNOWN … 4 = CRITICAL).
    pub fn rank(self) -> i64 {
        self as i64
    }

    pub fn from_rank(rank: i64) -> Severity {
        match rank {
            4 => Severity::Critical,
            3 => Severity::High,
            2 => Severity::Medium,
            1 => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    /// Strict parse of a user-supplied severity (query parameters): case-insensitive,
    /// one of the five names.
    pub fn parse_strict(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CRITICAL" => Some(Severity::Critical),
            "HIGH" => Some(Severity::High),
            "MEDIUM" => Some(Severity::Medium),
            "LOW" => Some(Severity::Low),
            "UNKNOWN" => Some(Severity::Unknown),
            _ => None,
        }
    }

    /// Lenient parse of a scanner's label: anything that is not one of the five
    /// (missing, empty, `NEGLIGIBLE`, …) is `UNKNOWN`.
    pub fn from_label(s: Option<&str>) -> Severity {
        s.and_then(Severity::parse_strict)
            .unwrap_or(Severity::Unknown)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-severity counts of findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub critical: i64,
    pub high: i64,
    pub medium: i64,
    pub low: i64,
    pub unknown: i64,
}

impl SeverityCounts {
    pub fn add(&mut self, s: Severity, n: i64) {
        match s {
            Severity::Critical => self.critical += n,
            Severity::High => self.high += n,
            Severity::Medium => self.medium += n,
            Severity::Low => self.low += n,
            Severity::Unknown => self.unknown += n,
        }
    }

    pub fn get(&self, s: Severity) -> i64 {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Unknown => self.unknown,
        }
    }

    pub fn total(&self) -> i64 {
        self.critical + self.high + self.medium + self.low + self.unknown
    }

    /// The risk score: `10·critical + 5·high + 3·medium + 1·low + 5·unknown`.
    /// UNKNOWN weighs like HIGH because an unrated vulnerability has not been shown harmless.
    pub fn risk_score(&self) -> i64 {
        10 * self.critical + 5 * self.high + 3 * self.medium + self.low + 5 * self.unknown
    }

    /// The risk score of findings with their exploitability ([`risk_score`]), in whole
    /// points; without exploit data it equals [`SeverityCounts::risk_score`].
    pub fn risk_with<'a>(findings: impl Iterator<Item = (Severity, f64)> + 'a) -> i64 {
        findings
            .map(|(s, x)| severity_weight(s) * x)
            .sum::<f64>()
            .round() as i64
    }

    /// Highest severity with a non-zero count.
    pub fn highest(&self) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| self.get(*s) > 0)
    }
}

/// The scanner format a report was detected as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportFormat {
    /// Trivy `SchemaVersion: 2` (Trivy 0.20 and later).
    TrivyV2,
    /// Trivy before 0.20: a top-level array of Results, or the literal `null`.
    TrivyLegacy,
    /// One image of a `trivy k8s` cluster report.
    TrivyK8s,
    /// Anchore Grype JSON (`matches[]`).
    Grype,
    /// CycloneDX JSON with `vulnerabilities[]`.
    CycloneDx,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::TrivyV2 => "trivy",
            ReportFormat::TrivyLegacy => "trivy-legacy",
            ReportFormat::TrivyK8s => "trivy-k8s",
            ReportFormat::Grype => "grype",
            ReportFormat::CycloneDx => "cyclonedx",
        }
    }
}

/// Identity of the scanned artifact as the report states it, after applying the
/// rules of DESIGN.md ("Image identity").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIdentity {
    /// Familiar image name (`nginx`, `ghcr.io/org/app`), or the artifact name as given.
    pub name: Option<String>,
    pub tag: Option<String>,
    /// Registry manifest digest (`sha256:…`).
    pub digest: Option<String>,
    /// Image config digest (`Metadata.ImageID`).
    pub image_id: Option<String>,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
}

/// One normalised finding: a unique `(vulnerability_id, pkg_name, installed_version)` triple.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub vulnerability_id: String,
    pub pkg_name: String,
    /// Installed version; empty when the report gives none.
    pub installed_version: String,
    /// A fixed version, if any entry of the triple has one.
    pub fixed_version: Option<String>,
    /// Highest severity of the triple's entries.
    pub severity: Severity,
    /// Trivy `Status` (`fixed`, `affected`, `will_not_fix`, …).
    pub status: Option<String>,
    /// Result `Type` (`alpine`, `npm`, `jar`, …).
    pub pkg_type: Option<String>,
    /// Result `Class` (`os-pkgs`, `lang-pkgs`, …).
    pub class: Option<String>,
    /// Result `Target` of the first entry.
    pub target: Option<String>,
    pub pkg_path: Option<String>,
    pub purl: Option<String>,
    /// Title as the report gives it (also kept in the catalog).
    pub title: Option<String>,
    /// CVSS base score for this finding: the severity source's score when present,
    /// else the highest of any source (v3 preferred, then v4, then v2).
    pub cvss_score: Option<f64>,
    /// What some formats say beyond Trivy's fields.
    #[serde(default, skip_serializing_if = "FindingExtra::is_empty")]
    pub extra: FindingExtra,
}

/// A finding's attributes that only some formats carry, stored together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingExtra {
    /// The scanner's own severity word when it is not one of the five (Grype's
    /// `Negligible`, counted as LOW).
    #[serde(rename = "sev", default, skip_serializing_if = "Option::is_none")]
    pub scanner_severity: Option<String>,
    /// CycloneDX VEX `analysis.state` (`not_affected`, `false_positive`, `resolved`,
    /// `exploitable`, `in_triage`).
    #[serde(rename = "vex", default, skip_serializing_if = "Option::is_none")]
    pub vex_state: Option<String>,
    /// CycloneDX VEX `analysis.justification`.
    #[serde(rename = "just", default, skip_serializing_if = "Option::is_none")]
    pub vex_justification: Option<String>,
    /// EPSS probability (0–1), as Grype writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epss: Option<f64>,
    /// Grype's risk score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<f64>,
}

impl FindingExtra {
    pub fn is_empty(&self) -> bool {
        *self == FindingExtra::default()
    }

    /// As stored: compact JSON, or nothing when empty.
    pub fn to_stored(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// From the stored JSON (an unreadable value reads as empty).
    pub fn from_stored(s: Option<&str>) -> FindingExtra {
        s.and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    }
}

impl Finding {
    pub fn is_fixable(&self) -> bool {
        self.fixed_version
            .as_deref()
            .is_some_and(|v| !v.trim().is_empty())
    }

    /// The de-duplication key.
    pub fn key(&self) -> (&str, &str, &str) {
        (
            &self.vulnerability_id,
            &self.pkg_name,
            &self.installed_version,
        )
    }
}

/// Catalog entry for one vulnerability id (stored once, not once per finding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnerabilityDetail {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Highest severity reported for this id in the report.
    pub severity: Severity,
    pub cvss_score: Option<f64>,
    pub cvss_vector: Option<String>,
    pub primary_url: Option<String>,
    pub references: Vec<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
}

/// A report parsed and normalised, ready to be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParsedReport {
    pub format: ReportFormat,
    pub scanner: String,
    pub scanner_version: Option<String>,
    pub schema_version: Option<i64>,
    pub created_at: Option<DateTime<Utc>>,
    pub artifact_name: Option<String>,
    pub artifact_type: Option<String>,
    pub image: ImageIdentity,
    pub os_family: Option<String>,
    pub os_name: Option<String>,
    /// Unique findings, in report order of first appearance.
    pub findings: Vec<Finding>,
    /// Catalog entries, one per vulnerability id, in report order of first appearance.
    pub vulnerabilities: Vec<VulnerabilityDetail>,
    /// Number of vulnerability entries as listed (before de-duplication).
    pub vulnerability_entries: usize,
    /// Number of Result objects.
    pub results: usize,
    /// Vulnerability entries left out (the rest of the report is stored), by reason.
    pub skipped: Vec<SkippedEntries>,
}

/// Vulnerability entries of a report left out for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedEntries {
    /// Why, e.g. `no VulnerabilityID`.
    pub reason: String,
    pub count: usize,
    /// Where the first one was (`Results[0].Vulnerabilities[3]`).
    pub first_at: String,
}

impl SkippedEntries {
    /// `2 vulnerability entries skipped (no VulnerabilityID), the first at Results[0]…`.
    pub fn message(&self) -> String {
        let entries = if self.count == 1 { "entry" } else { "entries" };
        format!(
            "{} vulnerability {entries} skipped ({}), the first at {}",
            self.count, self.reason, self.first_at
        )
    }
}

impl ParsedReport {
    pub fn counts(&self) -> SeverityCounts {
        let mut c = SeverityCounts::default();
        for f in &self.findings {
            c.add(f.severity, 1);
        }
        c
    }

    pub fn fixable_count(&self) -> i64 {
        self.findings.iter().filter(|f| f.is_fixable()).count() as i64
    }

    /// Highest CVSS base score of any finding.
    pub fn max_cvss(&self) -> Option<f64> {
        self.findings
            .iter()
            .filter_map(|f| f.cvss_score)
            .fold(None, |acc: Option<f64>, s| {
                Some(acc.map_or(s, |a| a.max(s)))
            })
    }

    /// Number of findings per vulnerability id (for diagnostics and tests).
    pub fn findings_per_id(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for f in &self.findings {
            *m.entry(f.vulnerability_id.as_str()).or_insert(0) += 1;
        }
        m
    }
}

impl Finding {
    /// Whether `other` stores the same: every stored attribute equal (the title lives in the
    /// catalog, not on the finding).
    pub fn stores_same(&self, other: &Finding) -> bool {
        self.key() == other.key()
            && self.fixed_version == other.fixed_version
            && self.severity == other.severity
            && self.status == other.status
            && self.pkg_type == other.pkg_type
            && self.class == other.class
            && self.target == other.target
            && self.pkg_path == other.pkg_path
            && self.purl == other.purl
            && self.cvss_score == other.cvss_score
            && self.extra == other.extra
    }
}

/// How one set of findings differs from another, by key `(vulnerability, package, version)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FindingChanges {
    /// Keys only the new set has.
    pub added: usize,
    /// Keys only the old set has.
    pub removed: usize,
    /// Keys both have, stored differently (a fix appeared, the severity changed, …).
    pub changed: usize,
}

impl FindingChanges {
    /// The difference from `old` to `new` (each a set: one finding per key).
    pub fn between(old: &[Finding], new: &[Finding]) -> FindingChanges {
        let old_by_key: std::collections::HashMap<(&str, &str, &str), &Finding> =
            old.iter().map(|f| (f.key(), f)).collect();
        let mut c = FindingChanges::default();
        let mut matched = 0;
        for f in new {
            match old_by_key.get(&f.key()) {
                Some(o) => {
                    matched += 1;
                    if !o.stores_same(f) {
                        c.changed += 1;
                    }
                }
                None => c.added += 1,
            }
        }
        c.removed = old_by_key.len() - matched;
        c
    }

    /// The two sets store the same findings.
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.removed == 0 && self.changed == 0
    }
}

/// What changed from one set of findings to another, finding by finding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingDiff {
    /// Findings only the new set has, in key order.
    pub added: Vec<Finding>,
    /// Findings only the old set has, in key order.
    pub removed: Vec<Finding>,
    /// Findings both have whose severity or fixed version changed: (before, after).
    pub changed: Vec<(Finding, Finding)>,
}

impl FindingDiff {
    /// The difference from `old` to `new`, by key `(vulnerability, package, version)`.
    pub fn between(old: &[Finding], new: &[Finding]) -> FindingDiff {
        let old_by_key: BTreeMap<(&str, &str, &str), &Finding> =
            old.iter().map(|f| (f.key(), f)).collect();
        let new_by_key: BTreeMap<(&str, &str, &str), &Finding> =
            new.iter().map(|f| (f.key(), f)).collect();
        let mut d = FindingDiff::default();
        for (k, f) in &new_by_key {
            match old_by_key.get(k) {
                None => d.added.push((*f).clone()),
                Some(o) if o.severity != f.severity || o.fixed_version != f.fixed_version => {
                    d.changed.push(((*o).clone(), (*f).clone()))
                }
                Some(_) => {}
            }
        }
        d.removed = old_by_key
            .iter()
            .filter(|(k, _)| !new_by_key.contains_key(*k))
            .map(|(_, f)| (*f).clone())
            .collect();
        d
    }
}

#[cfg(test)]
mod changes_tests {
    use super::*;

    fn f(v: &str, fixed: Option<&str>) -> Finding {
        Finding {
            vulnerability_id: v.into(),
            pkg_name: "p".into(),
            installed_version: "1".into(),
            fixed_version: fixed.map(Into::into),
            severity: Severity::High,
            status: None,
            pkg_type: None,
            class: None,
            target: None,
            pkg_path: None,
            purl: None,
            title: None,
            cvss_score: None,
            extra: FindingExtra::default(),
        }
    }

    #[test]
    fn changes_are_counted_by_key_and_stored_attributes() {
        let old = [f("A", None), f("B", None), f("C", None)];
        let mut titled = f("A", None);
        titled.title = Some("a title is not stored on the finding".into());
        let new = [titled, f("B", Some("2")), f("D", None)];
        let c = FindingChanges::between(&old, &new);
        assert_eq!(
            c,
            FindingChanges {
                added: 1,
                removed: 1,
                changed: 1
            }
        );
        assert!(FindingChanges::between(&old, &old).is_empty());
        let d = FindingDiff::between(&old, &new);
        assert_eq!(d.added.len(), c.added);
        assert_eq!(d.removed.len(), c.removed);
        assert_eq!(d.changed.len(), c.changed);
        assert!(FindingDiff::between(&old, &old) == FindingDiff::default());
        assert_eq!(FindingChanges::between(&[], &old).added, 3);
    }
}

/// A finding's weight in the risk score: CRITICAL 10, HIGH 5, MEDIUM 3, LOW 1, UNKNOWN 5.
pub fn severity_weight(s: Severity) -> f64 {
    match s {
        Severity::Critical => 10.0,
        Severity::High => 5.0,
        Severity::Medium => 3.0,
        Severity::Low => 1.0,
        Severity::Unknown => 5.0,
    }
}

/// How much more a finding weighs for what is known of its exploitation:
/// `(1 + 4 · EPSS) · (2 if CISA lists it as known exploited, else 1)`. 1 without exploit
/// data, at most 10 (EPSS 1 and KEV).
///
/// The risk score of a set of findings is the sum of `severity_weight · exploitability`,
/// rounded. Worked example: a CRITICAL finding with EPSS 0.5 listed in KEV weighs
/// 10 · 3 · 2 = 60; two HIGH findings without exploit data 5 each; one LOW with EPSS 0.02
/// weighs 1 · 1.08: 60 + 10 + 1.08 = 71.08, risk score 71.
pub fn exploitability(epss: Option<f64>, kev: bool) -> f64 {
    (1.0 + 4.0 * epss.unwrap_or(0.0).clamp(0.0, 1.0)) * if kev { 2.0 } else { 1.0 }
}

#[cfg(test)]
mod risk_tests {
    use super::*;

    #[test]
    fn the_documented_worked_example() {
        let findings = [
            (Severity::Critical, exploitability(Some(0.5), true)),
            (Severity::High, exploitability(None, false)),
            (Severity::High, exploitability(None, false)),
            (Severity::Low, exploitability(Some(0.02), false)),
        ];
        assert_eq!(SeverityCounts::risk_with(findings.into_iter()), 71);
        let plain = SeverityCounts {
            critical: 1,
            high: 2,
            low: 1,
            ..Default::default()
        };
        let without: Vec<(Severity, f64)> = [
            Severity::Critical,
            Severity::High,
            Severity::High,
            Severity::Low,
        ]
        .into_iter()
        .map(|s| (s, exploitability(None, false)))
        .collect();
        assert_eq!(
            SeverityCounts::risk_with(without.into_iter()),
            plain.risk_score()
        );
    }
}
