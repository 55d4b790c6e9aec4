//! The one ingest pipeline, used by `POST /scans`, `scanvault ingest` and the scan worker:
//! parse and check the report, compress it, store it (one transaction, retried on
//! conflicts; a worker's also completes its job), count it. A scanned image and an uploaded
//! report are stored identically.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use scanvault_core::k8s::Workload;
use scanvault_core::parse::{self, Parsed};
use scanvault_core::report::{ParsedReport, Severity, SkippedEntries};
use scanvault_core::trivy::ParseError;

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
    /// `image`, `tag` or `digest` given with a cluster report, which names many images.
    #[error(
        "a cluster report names its images itself; image, tag and digest cannot be given with it"
    )]
    OverrideOnCluster,
    /// A cluster report where only one report is accepted (a scan job's).
    #[error("a cluster report cannot complete a scan job")]
    ClusterNotAccepted,
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

/// A body parsed, with its image identities resolved, ready to store.
#[derive(Debug)]
pub enum Prepared {
    One(Box<NewScan>),
    /// A cluster report: each image with the workloads that run it.
    Cluster {
        cluster: String,
        images: Vec<(NewScan, Vec<Workload>)>,
        skipped: Vec<SkippedEntries>,
    },
}

impl IngestOverrides {
    fn is_empty(&self) -> bool {
        self.image.is_none() && self.tag.is_none() && self.digest.is_none()
    }
}

/// Parse `raw` (any supported format) and resolve the image identities (query parameters
/// win over a single report's). A cluster report's images are each stored with their
/// findings written as a Trivy report of that image, since the body covers many.
pub fn prepare(
    raw: impl Into<Bytes>,
    overrides: &IngestOverrides,
    settings: &IngestSettings,
    source: ScanSource,
    now: DateTime<Utc>,
) -> Result<Prepared, IngestError> {
    let raw = raw.into();
    match parse::parse(&raw)? {
        Parsed::Report(report) => new_scan(*report, raw, overrides, settings, source, now)
            .map(|n| Prepared::One(Box::new(n))),
        Parsed::Cluster(cluster) => {
            if !overrides.is_empty() {
                return Err(IngestError::OverrideOnCluster);
            }
            let images = cluster
                .images
                .into_iter()
                .map(|image| {
                    let body = Bytes::from(scanvault_core::render::trivy_json(&image.report));
                    let new = new_scan(image.report, body, overrides, settings, source, now)?;
                    Ok((new, image.workloads))
                })
                .collect::<Result<_, IngestError>>()?;
            Ok(Prepared::Cluster {
                cluster: cluster.cluster,
                images,
                skipped: cluster.skipped,
            })
        }
    }
}

/// Parse one report (not a cluster report) and resolve its image identity.
pub fn build_new_scan(
    raw: impl Into<Bytes>,
    overrides: &IngestOverrides,
    settings: &IngestSettings,
    source: ScanSource,
    now: DateTime<Utc>,
) -> Result<NewScan, IngestError> {
    match prepare(raw, overrides, settings, source, now)? {
        Prepared::One(new) => Ok(*new),
        Prepared::Cluster { .. } => Err(IngestError::ClusterNotAccepted),
    }
}

fn new_scan(
    report: ParsedReport,
    raw: Bytes,
    overrides: &IngestOverrides,
    settings: &IngestSettings,
    source: ScanSource,
    now: DateTime<Utc>,
) -> Result<NewScan, IngestError> {
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

/// What a body became once stored.
#[derive(Debug)]
pub enum IngestedBody {
    One(Box<Ingested>),
    /// A cluster report: each image's scan with the workloads that run it.
    Cluster {
        cluster: String,
        images: Vec<(Ingested, Vec<Workload>)>,
        skipped: Vec<SkippedEntries>,
    },
}

/// Store one report: parse and compress it (CPU work, off the async threads and side by
/// side: a large report is ready in about half the time on two cores), then store it in a
/// task of its own, which runs to completion even if the caller goes away. A cluster report
/// is refused ([`ingest_body`] takes any body).
pub async fn ingest(
    store: &Store,
    settings: &IngestSettings,
    raw: Bytes,
    overrides: IngestOverrides,
    source: ScanSource,
    created_by: Option<String>,
    job: Option<JobCompletion>,
) -> Result<Ingested, IngestError> {
    match ingest_any(store, settings, raw, overrides, source, created_by, job).await? {
        IngestedBody::One(i) => Ok(*i),
        IngestedBody::Cluster { .. } => Err(IngestError::ClusterNotAccepted),
    }
}

/// Store a body of any supported format: one report, or each image of a cluster report (in
/// a transaction of its own, then the workloads that run them).
pub async fn ingest_body(
    store: &Store,
    settings: &IngestSettings,
    raw: Bytes,
    overrides: IngestOverrides,
    source: ScanSource,
    created_by: Option<String>,
) -> Result<IngestedBody, IngestError> {
    ingest_any(store, settings, raw, overrides, source, created_by, None).await
}

async fn ingest_any(
    store: &Store,
    settings: &IngestSettings,
    raw: Bytes,
    overrides: IngestOverrides,
    source: ScanSource,
    created_by: Option<String>,
    job: Option<JobCompletion>,
) -> Result<IngestedBody, IngestError> {
    let failed = |e: tokio::task::JoinError| IngestError::Failed(e.to_string());
    let settings = settings.clone();
    let body = raw.clone();
    let parse = tracing::info_span!("parse", bytes = raw.len());
    let parsed = tokio::task::spawn_blocking(move || {
        parse.in_scope(|| prepare(raw, &overrides, &settings, source, Utc::now()))
    });
    let compress = tracing::info_span!("compress", bytes = body.len());
    let stored = tokio::task::spawn_blocking(move || compress.in_scope(|| StoredBody::of(&body)));
    let (parsed, stored) = tokio::join!(parsed, stored);
    match parsed.map_err(failed)?? {
        Prepared::One(mut new) => {
            let body = stored.map_err(failed)??;
            new.created_by = created_by;
            store_one(store, *new, body, job)
                .await
                .map(|i| IngestedBody::One(Box::new(i)))
        }
        Prepared::Cluster {
            cluster,
            images,
            skipped,
        } => {
            if job.is_some() {
                return Err(IngestError::ClusterNotAccepted);
            }
            let seen_at = crate::store::micros(Utc::now());
            let mut done = Vec::with_capacity(images.len());
            for (mut new, workloads) in images {
                let raw = new.raw.clone();
                let compress = tracing::info_span!("compress", bytes = raw.len());
                let body =
                    tokio::task::spawn_blocking(move || compress.in_scope(|| StoredBody::of(&raw)))
                        .await
                        .map_err(failed)??;
                new.created_by = created_by.clone();
                done.push((store_one(store, new, body, None).await?, workloads));
            }
            let runs: Vec<(String, Workload)> = done
                .iter()
                .flat_map(|(i, ws)| ws.iter().map(|w| (i.outcome.scan.id.clone(), w.clone())))
                .collect();
            store
                .scans()
                .record_workloads(&cluster, &runs, seen_at)
                .await?;
            for (i, ws) in &mut done {
                let mut ws = ws.clone();
                ws.sort();
                i.outcome.scan.workloads = ws;
            }
            Ok(IngestedBody::Cluster {
                cluster,
                images: done,
                skipped,
            })
        }
    }
}

/// Store one prepared report in a task of its own, and count it.
async fn store_one(
    store: &Store,
    new: NewScan,
    body: StoredBody,
    job: Option<JobCompletion>,
) -> Result<Ingested, IngestError> {
    let source = new.source;
    metrics::histogram!("scanvault_ingest_report_bytes", "source" => source.as_str())
        .record(new.raw.len() as f64);
    metrics::histogram!("scanvault_ingest_report_findings", "source" => source.as_str())
        .record(new.report.findings.len() as f64);
    let store_handle = store.clone();
    let store = store.clone();
    let span =
        tracing::info_span!("store", image = %new.image_name, findings = new.report.findings.len());
    let (outcome, report) = tokio::spawn(tracing::Instrument::instrument(
        async move {
            let outcome = store.scans().ingest(&new, &body, job.as_ref()).await;
            (outcome, new.report)
        },
        span,
    ))
    .await
    .map_err(|e| IngestError::Failed(e.to_string()))?;
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
    if report.findings.iter().any(|f| f.extra.vex_state.is_some()) {
        // VEX in the report (CycloneDX `analysis`): suppressions for the image it names.
        let applied = crate::vex::apply_findings(
            &store_handle,
            &outcome.scan.image_name,
            &report.findings,
            outcome.scan.created_by.clone(),
        )
        .await?;
        if !applied.created.is_empty() || applied.lifted > 0 {
            tracing::info!(scan = %outcome.scan.id, created = applied.created.len(),
                replaced = applied.replaced, lifted = applied.lifted, "VEX analysis applied");
        }
    }
    Ok(Ingested { outcome, report })
}
