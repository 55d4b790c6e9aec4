//! The answers of `/scans`, in the original service's PascalCase shapes, and the
//! `ScanResult` rebuilt from findings.

use chrono::{DateTime, Utc};
use scanvault_core::report::{Finding, Severity};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::scans::{FindingRow, ScanRow};

/// One stored scan.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ScanView {
    #[serde(rename = "ID")]
    pub id: String,
    pub image_name: String,
    /// The tag the scan was first stored under ("" when none).
    pub image_tag: String,
    /// Registry manifest digest ("" when unknown).
    pub image_digest: String,
    /// Image config digest (`Metadata.ImageID`; "" when unknown).
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// Every tag this scan's content was stored under.
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// When the scanner ran (the report's `CreatedAt`, else the time of ingest).
    pub scanned_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub vuln_critical: i64,
    pub vuln_high: i64,
    pub vuln_medium: i64,
    pub vuln_low: i64,
    pub vuln_unknown: i64,
    /// Number of findings (unique vulnerability/package/version triples).
    pub vuln_total: i64,
    pub fixable_count: i64,
    /// Σ severity weight × exploitability over the findings counted (README, "Risk
    /// score"): 10·critical + 5·high + 3·medium + 1·low + 5·unknown when no exploit feed
    /// is imported.
    pub risk_score: i64,
    /// Highest CVSS base score of any finding.
    #[serde(rename = "CVSSScore", skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    /// No finding at or above COMPLIANCE_FAIL_SEVERITY.
    pub is_compliant: bool,
    #[serde(rename = "OSFamily", skip_serializing_if = "Option::is_none")]
    pub os_family: Option<String>,
    #[serde(rename = "OSName", skip_serializing_if = "Option::is_none")]
    pub os_name: Option<String>,
    pub scanner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanner_version: Option<String>,
    /// The format of the report: `trivy`, `trivy-legacy`, `trivy-k8s`, `grype`, `cyclonedx`.
    pub report_format: String,
    /// The Kubernetes workloads that run the image, from cluster reports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadView>,
    /// `ingest` (POSTed) or `job` (scanned by a worker).
    pub source: String,
    /// Id of the API key that stored the scan (none with AUTH_DISABLED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_result: Option<ScanResultView>,
    /// Only in the answer to `POST /scans`: parts of the report that were not stored
    /// (vulnerability entries without a `VulnerabilityID`), with how many and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<IngestWarning>,
    /// Compliant with every policy that applies to the image (`default` and the stored
    /// policies whose `Images` match it), findings active suppressions cover left out. In
    /// answers about one scan and in listings with `ScanResult` (`include=summary` leaves
    /// both out; `IsCompliant` is the `default` policy's verdict).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliant: Option<bool>,
    /// Each rule a finding fails, per policy (with `Compliant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<super::policies::ViolationView>>,
    /// Findings active suppressions cover: left out of the counts above (`Vuln*`,
    /// `FixableCount`, `RiskScore`, `IsCompliant`) unless `suppressed=include`; with
    /// `suppressed=only` the counts are these findings.
    pub suppressed: i64,
}

/// A workload of a cluster that runs an image.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WorkloadView {
    pub cluster: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

impl WorkloadView {
    pub fn of(w: &scanvault_core::k8s::Workload) -> WorkloadView {
        WorkloadView {
            cluster: w.cluster.clone(),
            namespace: w.namespace.clone(),
            kind: w.kind.clone(),
            name: w.name.clone(),
        }
    }
}

/// Entries of a report left out of the stored scan, for one reason.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct IngestWarning {
    /// E.g. `no VulnerabilityID`.
    pub reason: String,
    pub count: usize,
    /// The first such entry, e.g. `Results[0].Vulnerabilities[3]`.
    pub first_at: String,
    pub message: String,
}

impl IngestWarning {
    pub fn of(s: &scanvault_core::report::SkippedEntries) -> IngestWarning {
        IngestWarning {
            reason: s.reason.clone(),
            count: s.count,
            first_at: s.first_at.clone(),
            message: s.message(),
        }
    }
}

/// The answer to a cluster report: the scans it created or updated, one per image.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterIngestView {
    pub cluster_name: String,
    pub created: usize,
    pub updated: usize,
    /// Each image's scan (without `ScanResult`), with the workloads that run it.
    pub scans: Vec<ScanView>,
    /// What was left out: configuration findings, resources with an `Error`, findings of
    /// images the report does not name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<IngestWarning>,
}

impl ScanView {
    pub fn from_row(s: &ScanRow, scan_result: Option<ScanResultView>) -> ScanView {
        let counts = s.counts();
        ScanView {
            id: s.id.clone(),
            image_name: s.image_name.clone(),
            image_tag: s.image_tag.clone(),
            image_digest: s.image_digest.clone(),
            image_id: s.image_id.clone(),
            tags: s.tags.clone(),
            created_at: s.created_at(),
            scanned_at: s.scanned_at(),
            updated_at: s.updated_at(),
            vuln_critical: counts.critical,
            vuln_high: counts.high,
            vuln_medium: counts.medium,
            vuln_low: counts.low,
            vuln_unknown: counts.unknown,
            vuln_total: counts.total(),
            fixable_count: s.fixable_count,
            risk_score: s.risk_score,
            cvss_score: s.cvss_score,
            is_compliant: s.is_compliant != 0,
            os_family: s.os_family.clone(),
            os_name: s.os_name.clone(),
            scanner: s.scanner.clone(),
            scanner_version: s.scanner_version.clone(),
            report_format: s.report_format.clone(),
            workloads: s.workloads.iter().map(WorkloadView::of).collect(),
            source: s.source.clone(),
            created_by: s.created_by.clone(),
            scan_result,
            warnings: vec![],
            compliant: None,
            violations: None,
            suppressed: 0,
        }
    }

    /// The counts with what suppressions cover (`left_out`, [`scanvault_core::fleet::Counts`])
    /// left out, or only that, by `mode`; `IsCompliant` follows the counts left (the
    /// `default` policy fails on `fail_on` and above).
    pub fn apply_suppressed(
        &mut self,
        left_out: &scanvault_core::fleet::Counts,
        mode: crate::store::analytics::SuppressedMode,
        fail_on: Severity,
    ) {
        use crate::store::analytics::SuppressedMode;
        use scanvault_core::fleet::{sev_index, FIXABLE};
        let by = |s: Severity| left_out[sev_index(s.rank())];
        let mut counts = scanvault_core::report::SeverityCounts {
            critical: self.vuln_critical,
            high: self.vuln_high,
            medium: self.vuln_medium,
            low: self.vuln_low,
            unknown: self.vuln_unknown,
        };
        self.suppressed = left_out[2..].iter().sum();
        match mode {
            SuppressedMode::Include => return,
            SuppressedMode::Exclude => {
                counts.critical -= by(Severity::Critical);
                counts.high -= by(Severity::High);
                counts.medium -= by(Severity::Medium);
                counts.low -= by(Severity::Low);
                counts.unknown -= by(Severity::Unknown);
                self.fixable_count -= left_out[FIXABLE];
            }
            SuppressedMode::Only => {
                counts = scanvault_core::report::SeverityCounts {
                    critical: by(Severity::Critical),
                    high: by(Severity::High),
                    medium: by(Severity::Medium),
                    low: by(Severity::Low),
                    unknown: by(Severity::Unknown),
                };
                self.fixable_count = left_out[FIXABLE];
            }
        }
        self.vuln_critical = counts.critical;
        self.vuln_high = counts.high;
        self.vuln_medium = counts.medium;
        self.vuln_low = counts.low;
        self.vuln_unknown = counts.unknown;
        self.vuln_total = counts.total();
        self.risk_score = counts.risk_score();
        self.is_compliant = Severity::ALL
            .iter()
            .filter(|s| s.rank() >= fail_on.rank())
            .all(|s| counts.get(*s) == 0);
    }
}

/// The report in the original service's `ScanResult` shape, rebuilt from the stored findings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ScanResultView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub metadata: ScanMetadataView,
    pub results: Vec<ResultView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ScanMetadataView {
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ResultView {
    pub target: String,
    pub class: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub vulnerabilities: Vec<ResultVulnerabilityView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ResultVulnerabilityView {
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    pub pkg_name: String,
    pub pkg_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// One finding as `ScanResult` shows it.
pub(super) struct ResultEntry<'a> {
    target: Option<&'a str>,
    class: Option<&'a str>,
    kind: Option<&'a str>,
    vulnerability_id: &'a str,
    pkg_name: &'a str,
    pkg_version: &'a str,
    fixed_version: Option<&'a str>,
    severity: Severity,
    title: Option<&'a str>,
}

impl<'a> ResultEntry<'a> {
    pub(super) fn of_stored(f: &'a FindingRow) -> ResultEntry<'a> {
        ResultEntry {
            target: f.target.as_deref(),
            class: f.class.as_deref(),
            kind: f.pkg_type.as_deref(),
            vulnerability_id: &f.vulnerability_id,
            pkg_name: &f.pkg_name,
            pkg_version: &f.pkg_version,
            fixed_version: f.fixed_version.as_deref(),
            severity: Severity::from_rank(f.severity),
            title: f.title.as_deref(),
        }
    }

    pub(super) fn of_report(f: &'a Finding) -> ResultEntry<'a> {
        ResultEntry {
            target: f.target.as_deref(),
            class: f.class.as_deref(),
            kind: f.pkg_type.as_deref(),
            vulnerability_id: &f.vulnerability_id,
            pkg_name: &f.pkg_name,
            pkg_version: &f.installed_version,
            fixed_version: f.fixed_version.as_deref(),
            severity: f.severity,
            title: f.title.as_deref(),
        }
    }
}

/// `ScanResult` of a scan with these findings: grouped by (Target, Class, Type) in the order
/// each group first appears.
pub(super) fn scan_result_view<'a>(
    s: &ScanRow,
    findings: impl IntoIterator<Item = ResultEntry<'a>>,
) -> ScanResultView {
    let mut results: Vec<ResultView> = vec![];
    for f in findings {
        let target = f.target.unwrap_or_default();
        let class = f.class.unwrap_or_default();
        let kind = f.kind.unwrap_or_default();
        let pos = results
            .iter()
            .position(|r| r.target == target && r.class == class && r.kind == kind);
        let i = match pos {
            Some(i) => i,
            None => {
                results.push(ResultView {
                    target: target.to_string(),
                    class: class.to_string(),
                    kind: kind.to_string(),
                    vulnerabilities: vec![],
                });
                results.len() - 1
            }
        };
        results[i].vulnerabilities.push(ResultVulnerabilityView {
            vulnerability_id: f.vulnerability_id.to_string(),
            pkg_name: f.pkg_name.to_string(),
            pkg_version: f.pkg_version.to_string(),
            fixed_version: f.fixed_version.map(str::to_string),
            severity: f.severity.to_string(),
            title: f.title.map(str::to_string),
        });
    }
    ScanResultView {
        artifact_name: s.artifact_name.clone(),
        artifact_type: s.artifact_type.clone(),
        metadata: ScanMetadataView {
            image_id: s.image_id.clone(),
            repo_tags: s.repo_tags(),
            repo_digests: s.repo_digests(),
        },
        results,
    }
}

/// `ScanResult` of a stored scan, from its findings as stored.
pub(super) fn stored_result(s: &ScanRow, findings: &[FindingRow]) -> ScanResultView {
    scan_result_view(s, findings.iter().map(ResultEntry::of_stored))
}

/// A page of scans.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ScanListResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Number of scans matching the query (all pages).
    pub count: i64,
    pub limit: i64,
    pub offset: i64,
    /// Whether another page follows.
    pub has_more: bool,
    pub items: Vec<ScanView>,
}

/// One observation of a scan: a report of its content, at the report's scan time.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ObservationView {
    #[serde(rename = "ID")]
    pub id: i64,
    /// The tag the report was stored under ("" when none).
    pub image_tag: String,
    /// When the scanner ran.
    pub scanned_at: DateTime<Utc>,
    /// When the report was stored.
    pub observed_at: DateTime<Utc>,
    /// `ingest` or `job`.
    pub source: String,
    /// The version of the scan's findings it had: observations with the same version had
    /// the same findings.
    pub findings_version: i64,
    pub vuln_critical: i64,
    pub vuln_high: i64,
    pub vuln_medium: i64,
    pub vuln_low: i64,
    pub vuln_unknown: i64,
    pub vuln_total: i64,
    pub fixable_count: i64,
    /// Findings it has that the observation before it did not (changed ones included).
    pub findings_added: i64,
    /// Findings the observation before it had that it does not (changed ones included).
    pub findings_removed: i64,
}

/// The history of one scan.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ObservationsResponse {
    #[serde(rename = "ScanID")]
    pub scan_id: String,
    pub count: usize,
    /// Oldest first.
    pub items: Vec<ObservationView>,
}

/// Findings of one scan.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ScanVulnerabilitiesResponse {
    #[serde(rename = "ScanID")]
    pub scan_id: String,
    pub image_name: String,
    pub image_tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkg: Option<String>,
    /// Findings matching the query (all pages).
    pub count: i64,
    pub limit: i64,
    pub offset: i64,
    pub has_more: bool,
    pub items: Vec<ScanVulnerabilityItem>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ScanVulnerabilityItem {
    pub target: String,
    pub class: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub vulnerability: ScanVulnerabilityDetail,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ScanVulnerabilityDetail {
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    pub pkg_name: String,
    pub pkg_version: String,
    pub current_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "CVSSScore", skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    #[serde(rename = "PrimaryURL", skip_serializing_if = "Option::is_none")]
    pub primary_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkg_path: Option<String>,
    #[serde(rename = "PURL", skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// The scanner's own severity word, where the format has one (Grype's `Negligible` is
    /// stored as `LOW`; CycloneDX's `info` and `none` as `UNKNOWN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanner_severity: Option<String>,
    /// CycloneDX VEX `analysis.state` (`not_affected`, `false_positive`, `resolved`, …).
    #[serde(rename = "VEXState", skip_serializing_if = "Option::is_none")]
    pub vex_state: Option<String>,
    /// CycloneDX VEX `analysis.justification`.
    #[serde(rename = "VEXJustification", skip_serializing_if = "Option::is_none")]
    pub vex_justification: Option<String>,
    /// EPSS probability of exploitation in the next 30 days: from the imported EPSS feed,
    /// else as the scanner reported it (Grype 0.9x).
    #[serde(rename = "EPSS", skip_serializing_if = "Option::is_none")]
    pub epss: Option<f64>,
    /// Its EPSS percentile (from the imported feed).
    #[serde(rename = "EPSSPercentile", skip_serializing_if = "Option::is_none")]
    pub epss_percentile: Option<f64>,
    /// Listed as known exploited (CISA KEV), from the imported catalog.
    #[serde(rename = "KEV", skip_serializing_if = "Option::is_none")]
    pub kev: Option<super::feeds::KevView>,
    /// The suppression that applies to this finding now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression: Option<super::suppressions::SuppressionView>,
    /// The scanner's risk score (Grype 0.9x).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<f64>,
}
