//! The one ingest pipeline, used by `POST /scans`, `scanvault ingest` and the scan worker:
//! parse and check the report, compress it, store it (one transaction, retried on
//! conflicts; a worker's also completes its job), count it. A scanned image and an uploaded
//! report are stored identically.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use scanvault_core::report::{ParsedReport, Severity};
use scanvault_core::trivy::{self, ParseError};

use crate::store::jobs::{JobCompletion, JobError};
use crate::store::scans::{IngestOutcome, NewScan, ScanSource};
use crate::store::{Store, StoreError, StoredBody};

#[derive(Debug, Clone, Default)]
pub struct IngestOverrides {
    pub image: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub compliance_fail_on: Severity,
    pub max_findings: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("the report has {found} findings; at most {max} are accepted per report (MAX_FINDINGS_PER_REPORT)")]
    TooManyFindings { found: usize, max: usize },
    /// Neither the report (`ArtifactName`, `Metadata.RepoTags`, a legacy report's first
    /// `Target`) nor the request names the image. The original service's message.
    #[error("could not determine image_name from payload; provide ?image=<name> query param")]
    NoImage,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The report completes a scan job, and the job is no longer this attempt's.
    #[error(transparent)]
    Job(#[from] JobError),
    /// A task of the pipeline did not finish (a panic).
    #[error("ingest failed: {0}")]
    Failed(String),
}

impl From<crate::store::scans::IngestError> for IngestError {
    fn from(e: crate::store::scans::IngestError) -> Self {
        match e {
            crate::store::scans::IngestError::Store(e) => IngestError::Store(e),
            crate::store::scans::IngestError::Job(e) => IngestError::Job(e),
        }
    }
}

/// Parse `raw` and resolve the image identity (query parameters win over the report).
pub fn build_new_scan(
    raw: impl Into<Bytes>,
    overrides: &IngestOverrides,
    settings: &IngestSettings,
    source: ScanSource,
    now: DateTime<Utc>,
) -> Result<NewScan, IngestError> {
    let raw = raw.into();
    let report = trivy::parse(&raw)?;
    if report.findings.len() > settings.max_findings {
        return Err(IngestError::TooManyFindings {
            found: report.findings.len(),
            max: settings.max_findings,
        });
    }
    let image_name = overrides
        .image
        .clone()
        .or_else(|| report.image.name.clone())
        .ok_or(IngestError::NoImage)?;
    let image_tag = overrides
        .tag
        .clone()
        .or_else(|| report.image.tag.clone())
        .unwrap_or_default();
    let image_digest = overrides
        .digest
        .clone()
        .or_else(|| report.image.digest.clone())
        .unwrap_or_default();
    let image_id = report.image.image_id.clone().unwrap_or_default();
    let scanned_at = report.created_at.unwrap_or(now);
    let fingerprint = if image_digest.is_empty() && image_id.is_empty() {
        crate::store::scans::content_fingerprint(&image_name, &image_tag, &report.findings)
    } else {
        String::new()
    };
    Ok(NewScan {
        fingerprint,
        report,
        raw,
        image_name,
        image_tag,
        image_digest,
        image_id,
        source,
        scanned_at,
        now,
        compliance_fail_on: settings.compliance_fail_on,
        created_by: None,
    })
}

/// A stored report: what the store did, and the report as parsed.
#[derive(Debug)]
pub struct Ingested {
    pub outcome: IngestOutcome,
    pub report: ParsedReport,
}

/// Store one report: parse and compress it (CPU work, off the async threads and side by
/// side: a large report is ready in about half the time on two cores), then store it in a
/// task of its own, which runs to completion even if the caller goes away.
pub async fn ingest(
    store: &Store,
    settings: &IngestSettings,
    raw: Bytes,
    overrides: IngestOverrides,
    source: ScanSource,
    created_by: Option<String>,
    job: Option<JobCompletion>,
) -> Result<Ingested, IngestError> {
    let settings = settings.clone();
    let body = raw.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        build_new_scan(raw, &overrides, &settings, source, Utc::now())
    });
    let stored = tokio::task::spawn_blocking(move || StoredBody::of(&body));
    let (parsed, stored) = tokio::join!(parsed, stored);
    let failed = |e: tokio::task::JoinError| IngestError::Failed(e.to_string());
    let mut new = parsed.map_err(failed)??;
    let body = stored.map_err(failed)??;
    new.created_by = created_by;
    let store = store.clone();
    let (outcome, report) = tokio::spawn(async move {
        let outcome = store.scans().ingest(&new, &body, job.as_ref()).await;
        (outcome, new.report)
    })
    .await
    .map_err(failed)?;
    let outcome = outcome?;
    let result = if outcome.created {
        "created"
    } else {
        "updated"
    };
    metrics::counter!("scanvault_ingest_scans_total", "result" => result, "source" => source.as_str())
        .increment(1);
    metrics::counter!("scanvault_ingest_findings_written_total")
        .increment((outcome.findings_added + outcome.findings_removed) as u64);
    Ok(Ingested { outcome, report })
}
