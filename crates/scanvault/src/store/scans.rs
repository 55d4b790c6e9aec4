//! Scans: what is stored of every report, and the capability to store and read them.
//!
//! A scan is one stored content (an image name and its manifest digest, else image id);
//! every report of it is an observation at the report's scan time (see
//! `scanvault_core::fleet`), and the scan row shows its latest observation. Each distinct
//! set of findings a scan had is a *version* of its findings; observations name the version
//! they had, so the findings of any moment can be read back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scanvault_core::k8s::Workload;
use scanvault_core::report::{Finding, ParsedReport, Severity, SeverityCounts};
use std::collections::HashMap;

use super::jobs::{JobCompletion, JobError};
use super::{from_micros, StoreError, StoredBody};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanSource {
    /// A report POSTed or given to `scanvault ingest`.
    Ingest,
    /// A report of ScanVault's own worker.
    Job,
    /// The worker's match of a stored inventory against a newer vulnerability database.
    Rematch,
}

impl ScanSource {
    /// The observation's source.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanSource::Ingest => "ingest",
            ScanSource::Job => "job",
            ScanSource::Rematch => "rematch",
        }
    }

    /// Who made a new scan's row: the worker for its re-matches too.
    pub fn scan_origin(self) -> &'static str {
        match self {
            ScanSource::Ingest => "ingest",
            ScanSource::Job | ScanSource::Rematch => "job",
        }
    }
}

/// A parsed report with its identity resolved, ready to store.
#[derive(Debug, Clone)]
pub struct NewScan {
    pub report: ParsedReport,
    /// The body exactly as received (kept compressed, served byte-for-byte). Shared, not
    /// copied, with the HTTP request that carried it.
    pub raw: bytes::Bytes,
    pub image_name: String,
    pub image_tag: String,
    pub image_digest: String,
    pub image_id: String,
    pub source: ScanSource,
    pub scanned_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The lowest severity that makes a scan non-compliant.
    pub compliance_fail_on: Severity,
    pub created_by: Option<String>,
    /// For a report with neither: `content:<sha256>` of its name, tag and findings
    /// ([`content_fingerprint`]).
    pub fingerprint: String,
}

impl NewScan {
    /// Content identity used for de-duplication: the manifest digest, else the image id,
    /// else the content fingerprint.
    pub fn identity(&self) -> Option<&str> {
        [
            self.image_digest.as_str(),
            self.image_id.as_str(),
            self.fingerprint.as_str(),
        ]
        .into_iter()
        .find(|s| !s.is_empty())
    }
}

/// The identity of a report that names neither a manifest digest nor an image id (a legacy
/// report, a scan of a filesystem): the SHA-256 of its image name, tag and findings (each
/// finding's key and stored attributes, in key order). The same report posted again, or
/// another with the same findings under the same name and tag, is then the same scan.
pub fn content_fingerprint(name: &str, tag: &str, findings: &[Finding]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    let mut h = Sha256::new();
    // Each field with its length (absent: u64::MAX), so that no two lists hash alike.
    let field = |h: &mut Sha256, s: Option<&str>| match s {
        Some(s) => {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        None => h.update(u64::MAX.to_le_bytes()),
    };
    field(&mut h, Some(name));
    field(&mut h, Some(tag));
    for f in sorted {
        let cvss = f.cvss_score.map(|c| c.to_string());
        for v in [
            Some(f.vulnerability_id.as_str()),
            Some(f.pkg_name.as_str()),
            Some(f.installed_version.as_str()),
            f.fixed_version.as_deref(),
            Some(f.severity.as_str()),
            f.status.as_deref(),
            f.pkg_type.as_deref(),
            f.class.as_deref(),
            f.target.as_deref(),
            f.pkg_path.as_deref(),
            f.purl.as_deref(),
            cvss.as_deref(),
        ] {
            field(&mut h, v);
        }
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("content:{hex}")
}

/// What an ingest did.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub scan: ScanRow,
    /// A new scan (201) rather than a report of stored content (200).
    pub created: bool,
    /// The observation this report became (`None`: the same report as the scan's latest
    /// observation again, which adds nothing but maybe its tag).
    pub observation: Option<i64>,
    /// Findings the report has that the observation before it (in scan time) did not.
    pub findings_added: usize,
    /// Findings the observation before it had that the report does not.
    pub findings_removed: usize,
    /// The report is older than the scan's latest observation: it was recorded in the
    /// past (its tag and an observation) and the scan stays as its newest report left it.
    pub stale: bool,
    /// For a newer report of a stored scan: the vulnerabilities it carries that the scan's
    /// findings did not (sorted, distinct).
    pub new_vulnerabilities: Vec<String>,
}

/// One stored scan (summary, no findings): its latest observation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScanRow {
    pub id: String,
    pub image_name: String,
    pub image_tag: String,
    pub image_digest: String,
    pub image_id: String,
    pub repo_tags: String,
    pub repo_digests: String,
    pub artifact_name: Option<String>,
    pub artifact_type: Option<String>,
    pub os_family: Option<String>,
    pub os_name: Option<String>,
    pub scanner: String,
    pub scanner_version: Option<String>,
    pub report_format: String,
    pub source: String,
    pub created_at: i64,
    pub scanned_at: i64,
    pub updated_at: i64,
    pub vuln_critical: i64,
    pub vuln_high: i64,
    pub vuln_medium: i64,
    pub vuln_low: i64,
    pub vuln_unknown: i64,
    pub fixable_count: i64,
    pub risk_score: i64,
    pub cvss_score: Option<f64>,
    pub is_compliant: i64,
    pub created_by: Option<String>,
    /// The version of the findings the scan has now.
    pub findings_version: i64,
    #[sqlx(skip)]
    pub tags: Vec<String>,
    /// The Kubernetes workloads that run its image, by cluster, namespace, kind and name.
    #[sqlx(skip)]
    pub workloads: Vec<Workload>,
}

impl ScanRow {
    pub fn counts(&self) -> SeverityCounts {
        SeverityCounts {
            critical: self.vuln_critical,
            high: self.vuln_high,
            medium: self.vuln_medium,
            low: self.vuln_low,
            unknown: self.vuln_unknown,
        }
    }
    pub fn created_at(&self) -> DateTime<Utc> {
        from_micros(self.created_at)
    }
    pub fn scanned_at(&self) -> DateTime<Utc> {
        from_micros(self.scanned_at)
    }
    pub fn updated_at(&self) -> DateTime<Utc> {
        from_micros(self.updated_at)
    }
    pub fn repo_tags(&self) -> Vec<String> {
        serde_json::from_str(&self.repo_tags).unwrap_or_default()
    }
    pub fn repo_digests(&self) -> Vec<String> {
        serde_json::from_str(&self.repo_digests).unwrap_or_default()
    }
}

/// A stored finding with its catalog details.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FindingRow {
    pub vulnerability_id: String,
    pub pkg_name: String,
    pub pkg_version: String,
    pub fixed_version: Option<String>,
    pub severity: i64,
    pub status: Option<String>,
    pub pkg_type: Option<String>,
    pub class: Option<String>,
    pub target: Option<String>,
    pub pkg_path: Option<String>,
    pub purl: Option<String>,
    pub cvss_score: Option<f64>,
    /// [`scanvault_core::report::FindingExtra`] as stored (JSON), when there is any.
    pub extra: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub primary_url: Option<String>,
}

/// One observation of a scan: a report of its content at a scan time.
/// A vulnerability as the catalog describes it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CatalogRow {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: i64,
    pub cvss_score: Option<f64>,
    pub cvss_vector: Option<String>,
    pub primary_url: Option<String>,
    /// A JSON array of reference URLs.
    pub refs: String,
    pub published_at: Option<i64>,
    pub modified_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ObservationRow {
    pub id: i64,
    pub scan_id: String,
    /// The tag the report was stored under.
    pub image_tag: String,
    pub scanned_at: i64,
    /// When the report was stored.
    pub observed_at: i64,
    /// `ingest`, `job` (later also `rematch`).
    pub source: String,
    /// The version of the scan's findings it had.
    pub version: i64,
    pub fixable: i64,
    pub n_critical: i64,
    pub n_high: i64,
    pub n_medium: i64,
    pub n_low: i64,
    pub n_unknown: i64,
    /// Findings it has that the observation before it (in scan time) did not.
    pub findings_added: i64,
    /// Findings the observation before it had that it does not.
    pub findings_removed: i64,
}

/// An observation as an image reference sees it, with the digest of its scan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReferenceObservation {
    #[sqlx(flatten)]
    pub observation: ObservationRow,
    pub image_name: String,
    pub image_digest: String,
}

/// Filters of the scan lists.
#[derive(Debug, Clone, Default)]
pub struct ScanFilter {
    pub image: Option<String>,
    pub tag: Option<String>,
    /// Only scans with at least one finding of this severity.
    pub severity: Option<Severity>,
    pub order: ScanOrder,
    pub limit: i64,
    pub offset: i64,
}

/// The order of a scan listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScanOrder {
    /// Newest scan first (the original service's order).
    #[default]
    Newest,
    /// By image name, then tag.
    Name,
    /// Most critical findings first, then most high, medium.
    Critical,
    /// Highest risk score first.
    Risk,
}

impl ScanOrder {
    pub fn parse(s: &str) -> Option<ScanOrder> {
        match s {
            "newest" => Some(ScanOrder::Newest),
            "name" => Some(ScanOrder::Name),
            "critical" => Some(ScanOrder::Critical),
            "risk" => Some(ScanOrder::Risk),
            _ => None,
        }
    }

    /// A listing statement of `sql.rs` in this order. Every variant ends with the newest
    /// first so the order is total (pages never overlap).
    pub fn apply(self, statement: &'static str) -> std::borrow::Cow<'static, str> {
        const NEWEST: &str = "ORDER BY scanned_at DESC, created_at DESC, id DESC";
        let order = match self {
            ScanOrder::Newest => return statement.into(),
            ScanOrder::Name => {
                "ORDER BY image_name, image_tag, scanned_at DESC, created_at DESC, id DESC"
            }
            ScanOrder::Critical => {
                "ORDER BY vuln_critical DESC, vuln_high DESC, vuln_medium DESC, \
                scanned_at DESC, created_at DESC, id DESC"
            }
            ScanOrder::Risk => {
                "ORDER BY risk_score DESC, scanned_at DESC, created_at DESC, id DESC"
            }
        };
        debug_assert!(statement.contains(NEWEST));
        statement.replacen(NEWEST, order, 1).into()
    }
}

/// Filters of a scan's findings.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub severity: Option<Severity>,
    /// Package name, compared case-insensitively.
    pub pkg: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

impl FindingFilter {
    /// Every finding.
    pub fn all() -> FindingFilter {
        FindingFilter {
            limit: i64::MAX / 2,
            ..Default::default()
        }
    }
}

/// Why an ingest was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The report completes a scan job, and the job is no longer this attempt's.
    #[error(transparent)]
    Job(#[from] JobError),
}

#[async_trait]
pub trait ScanStore: Send + Sync {
    /// Store a report: one transaction, run again (up to four attempts) when it loses to a
    /// concurrent write. A report of content already stored under its image name is an
    /// observation of that scan: newer than the scan's latest, it updates the scan in
    /// place; older, it is recorded in the past. With `job`, the same transaction checks
    /// that the job is still this attempt's and completes it.
    async fn ingest(
        &self,
        new: &NewScan,
        body: &StoredBody,
        job: Option<&JobCompletion>,
    ) -> Result<IngestOutcome, IngestError>;

    /// One scan with its tags.
    async fn find(&self, id: &str) -> Result<Option<ScanRow>, StoreError>;

    /// Scans matching a filter, newest first, with their tags. Fetches `limit + 1` rows so
    /// the caller can tell whether there is another page.
    async fn list(&self, filter: &ScanFilter) -> Result<Vec<ScanRow>, StoreError>;

    /// How many scans match a filter (its limit and cursor aside).
    async fn count(&self, filter: &ScanFilter) -> Result<i64, StoreError>;

    /// The findings of several scans as each has them now, most severe first within a
    /// scan: one query for a page of scans.
    async fn findings_of(
        &self,
        scan_ids: &[String],
    ) -> Result<Vec<(String, FindingRow)>, StoreError>;

    /// The newest scan of an image (and tag, when given), by scan time.
    async fn latest(&self, image: &str, tag: Option<&str>) -> Result<Option<ScanRow>, StoreError> {
        let mut rows = self
            .list(&ScanFilter {
                image: Some(image.to_string()),
                tag: tag.map(str::to_string),
                limit: 1,
                ..Default::default()
            })
            .await?;
        rows.truncate(1);
        Ok(rows.pop())
    }

    /// The scan's findings as it has them now, with catalog details, most severe first.
    async fn findings(
        &self,
        scan_id: &str,
        filter: &FindingFilter,
    ) -> Result<Vec<FindingRow>, StoreError>;

    /// How many findings [`ScanStore::findings`] has over all pages.
    async fn count_findings(
        &self,
        scan_id: &str,
        filter: &FindingFilter,
    ) -> Result<i64, StoreError>;

    /// The findings of one version of a scan's findings, in key order.
    async fn version(&self, scan_id: &str, version: i64) -> Result<Vec<Finding>, StoreError>;

    /// Several versions of scans' findings in one statement, each in key order (a pair
    /// with no findings stored maps to none).
    async fn versions(
        &self,
        pairs: &[(String, i64)],
    ) -> Result<HashMap<(String, i64), Vec<Finding>>, StoreError>;

    /// As [`ScanStore::versions`], with only what a diff compares and shows filled in:
    /// each finding's key, severity, fixed version and target.
    async fn version_keys(
        &self,
        pairs: &[(String, i64)],
    ) -> Result<HashMap<(String, i64), Vec<Finding>>, StoreError> {
        self.versions(pairs).await
    }

    /// The raw report of the scan's latest observation, as received.
    async fn report(&self, scan_id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// A vulnerability's catalog entry (as the newest report describing it wrote it).
    async fn vulnerability(&self, id: &str) -> Result<Option<CatalogRow>, StoreError>;

    /// The workloads that run each of these scans' images (scans without any left out).
    async fn workloads_of(
        &self,
        scan_ids: &[String],
    ) -> Result<HashMap<String, Vec<Workload>>, StoreError>;

    /// The scan's observations, oldest first.
    async fn observations(&self, scan_id: &str) -> Result<Vec<ObservationRow>, StoreError>;

    /// Delete scans with their observations, findings, tags and reports, keeping every
    /// aggregate consistent; returns how many existed. Catalog entries only they referenced
    /// go at the next catalog sweep, marked due here.
    async fn delete(&self, ids: &[String]) -> Result<u64, StoreError>;

    /// The observations of the image reference `(image, tag)` (every tag of `image` when
    /// `tag` is `None`), newest first: a page of up to `limit` rows.
    async fn history(
        &self,
        image: &str,
        tag: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ReferenceObservation>, StoreError>;

    /// The scan's newest two observations, newest first (none: no such scan).
    async fn newest_observations(
        &self,
        scan_id: &str,
    ) -> Result<Vec<ReferenceObservation>, StoreError>;

    /// How many observations [`ScanStore::history`] has over all pages.
    async fn count_history(&self, image: &str, tag: Option<&str>) -> Result<i64, StoreError>;

    /// The observation the reference `(image, tag)` saw before `(scanned_at, id)`.
    async fn observation_before(
        &self,
        image: &str,
        tag: &str,
        scanned_at: i64,
        id: i64,
    ) -> Result<Option<ReferenceObservation>, StoreError>;

    /// Record the workloads of `cluster` that run each scan's image (`runs`: scan id and
    /// workload), as a cluster report at `seen_at` says: for each namespace `runs` covers,
    /// they replace what was recorded of that cluster and namespace. One transaction.
    async fn record_workloads(
        &self,
        cluster: &str,
        runs: &[(String, Workload)],
        seen_at: i64,
    ) -> Result<(), StoreError>;

    /// A scan of `digest` for `image_name` observed at or after `since`: its id and time.
    async fn fresh(
        &self,
        image_name: &str,
        digest: &str,
        since: i64,
    ) -> Result<Option<(String, i64)>, StoreError>;
}

/// What a report says about its scan: derived once, written by the insert and the update.
#[derive(Debug, Clone)]
pub(crate) struct ScanValues {
    pub counts: SeverityCounts,
    pub fixable: i64,
    pub cvss: Option<f64>,
    pub compliant: i64,
    pub repo_tags: String,
    pub repo_digests: String,
}

impl ScanValues {
    pub fn of(new: &NewScan) -> ScanValues {
        let r = &new.report;
        let compliant = !r
            .findings
            .iter()
            .any(|f| f.severity >= new.compliance_fail_on);
        ScanValues {
            counts: r.counts(),
            fixable: r.fixable_count(),
            cvss: r.max_cvss(),
            compliant: i64::from(compliant),
            repo_tags: serde_json::to_string(&r.image.repo_tags).unwrap_or_else(|_| "[]".into()),
            repo_digests: serde_json::to_string(&r.image.repo_digests)
                .unwrap_or_else(|_| "[]".into()),
        }
    }
}

/// Rows `(scan id, tag, first seen)` as each scan's tags, in the order first seen.
pub(crate) fn set_tags(scans: &mut [ScanRow], rows: Vec<(String, String, i64)>) {
    let mut by_id: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    for (scan, tag, first_seen) in rows {
        by_id.entry(scan).or_default().push((first_seen, tag));
    }
    for s in scans.iter_mut() {
        let mut tags = by_id.remove(&s.id).unwrap_or_default();
        tags.sort();
        s.tags = tags
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| !t.is_empty())
            .collect();
    }
}

/// A row of `scan_workloads`: scan id, cluster, namespace, kind, name.
pub(crate) type WorkloadRow = (String, String, String, String, String);

/// Rows of `scan_workloads` as each scan's workloads, sorted.
pub(crate) fn workloads_by_scan(rows: Vec<WorkloadRow>) -> HashMap<String, Vec<Workload>> {
    let mut by_id: HashMap<String, Vec<Workload>> = HashMap::new();
    for (scan, cluster, namespace, kind, name) in rows {
        by_id.entry(scan).or_default().push(Workload {
            cluster,
            namespace,
            kind,
            name,
        });
    }
    for w in by_id.values_mut() {
        w.sort();
    }
    by_id
}

/// Rows of `scan_workloads` as each scan's workloads, sorted.
pub(crate) fn set_workloads(scans: &mut [ScanRow], rows: Vec<WorkloadRow>) {
    let mut by_id = workloads_by_scan(rows);
    for s in scans.iter_mut() {
        s.workloads = by_id.remove(&s.id).unwrap_or_default();
    }
}

/// The namespaces `(cluster, namespace)` a set of runs covers, each once.
pub(crate) fn namespaces_of<'a>(
    cluster: &'a str,
    runs: &'a [(String, Workload)],
) -> Vec<(&'a str, &'a str)> {
    let mut ns: Vec<(&str, &str)> = runs
        .iter()
        .map(|(_, w)| (cluster, w.namespace.as_str()))
        .collect();
    ns.sort_unstable();
    ns.dedup();
    ns
}
