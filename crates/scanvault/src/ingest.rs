//! From request bytes to a [`NewScan`]: parse, apply the query-parameter overrides, derive
//! the scan time. Shared by `POST /scans`, `scanvault ingest` and the scan worker, so a
//! scanned image and an uploaded report are stored identically.

use chrono::{DateTime, Utc};
use scanvault_core::report::Severity;
use scanvault_core::trivy::{self, ParseError};

use crate::store::scans::{NewScan, ScanSource};

/// Image name used when neither the report nor the request names the image.
pub const UNNAMED_IMAGE: &str = "unknown";

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
}

impl From<IngestError> for crate::http::error::ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Parse(p) => p.into(),
            e @ IngestError::TooManyFindings { .. } => {
                crate::http::error::ApiError::InvalidReport(e.to_string())
            }
        }
    }
}

/// Parse `raw` and resolve the image identity (query parameters win over the report).
pub fn build_new_scan(
    raw: impl Into<bytes::Bytes>,
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
        .unwrap_or_else(|| UNNAMED_IMAGE.to_string());
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
    Ok(NewScan {
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
