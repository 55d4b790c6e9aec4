//! What changed: a scan's findings against the observation before it (or another scan),
//! and an image reference's observations over time with what each added and removed.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use scanvault_core::image::{familiar_name, name_and_tag};
use scanvault_core::report::{Finding, FindingDiff};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::params::{int_param, parse_scan_id, text_param, ApiPath, ApiQuery};
use super::scans::{DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
use super::AppState;
use crate::store::from_micros;
use crate::store::scans::ReferenceObservation;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_scan_diff))
        .routes(routes!(get_image_history))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffParams {
    /// `previous` (default): the observation of the same image reference before this
    /// scan's latest one (an earlier report of the same digest counts); or a scan id.
    pub against: Option<String>,
}

/// A finding as the diff shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DiffFinding {
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    pub pkg_name: String,
    pub installed_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl DiffFinding {
    fn of(f: &Finding) -> DiffFinding {
        DiffFinding {
            vulnerability_id: f.vulnerability_id.clone(),
            pkg_name: f.pkg_name.clone(),
            installed_version: f.installed_version.clone(),
            fixed_version: f.fixed_version.clone(),
            severity: f.severity.as_str().to_string(),
            target: f.target.clone(),
        }
    }
}

/// A finding's severity and fixed version at one side of a diff.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FindingState {
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
}

/// A finding both sides have whose severity or fixed version changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ChangedFinding {
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    pub pkg_name: String,
    pub installed_version: String,
    pub before: FindingState,
    pub after: FindingState,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DiffResponse {
    #[serde(rename = "ScanID")]
    pub scan_id: String,
    /// The scan compared against (the same scan when `previous` is an earlier report of
    /// the same digest).
    #[serde(rename = "AgainstID")]
    pub against_id: String,
    /// This scan's latest observation.
    pub scanned_at: DateTime<Utc>,
    /// The observation compared against.
    pub against_scanned_at: DateTime<Utc>,
    /// Findings this scan has that the other had not, in key order.
    pub added: Vec<DiffFinding>,
    /// Findings the other had that this scan has not.
    pub removed: Vec<DiffFinding>,
    /// Findings whose severity or fixed version changed.
    pub changed: Vec<ChangedFinding>,
}

/// What changed in a scan: findings added, removed, and changed (severity or fixed
/// version) since the observation before it, or against another scan.
#[utoipa::path(get, path = "/scans/{id}/diff", tag = "scans",
    params(("id" = String, Path, description = "Scan id (UUID)"), DiffParams),
    responses(
        (status = 200, body = DiffResponse),
        (status = 400, description = "A bad id or `against`", body = ErrorBody),
        (status = 404, description = "No such scan, or nothing before it", body = ErrorBody),
    ))]
pub async fn get_scan_diff(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<DiffParams>,
) -> Result<Json<DiffResponse>, ApiError> {
    let id = parse_scan_id(&id)?;
    let against = text_param("against", &p.against)?;
    let scans = app.store.scans();
    // Three statements: the scan's newest observations, the one before in its reference's
    // chain, and both findings versions.
    let newest = scans.newest_observations(&id).await?;
    let latest = newest
        .first()
        .ok_or_else(|| ApiError::not_found(format!("scan {id}"), "scan_not_found"))?;
    let name = latest.image_name.clone();
    let latest = latest.observation.clone();
    let (against_id, against_version, against_at) = match against.as_deref() {
        None | Some("previous") => {
            let before = scans
                .observation_before(&name, &latest.image_tag, latest.scanned_at, latest.id)
                .await?
                .or_else(|| newest.get(1).cloned())
                .ok_or_else(|| {
                    let reference = name_and_tag(&name, &latest.image_tag);
                    ApiError::not_found(
                        format!("an observation of {reference} before scan {id}"),
                        "no_previous_observation",
                    )
                })?
                .observation;
            (before.scan_id, before.version, before.scanned_at)
        }
        Some(other) => {
            let other = parse_scan_id(other)
                .map_err(|_| ApiError::bad_param("against", "must be `previous` or a scan id"))?;
            let o = scans
                .newest_observations(&other)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::not_found(format!("scan {other}"), "scan_not_found"))?
                .observation;
            (o.scan_id, o.version, o.scanned_at)
        }
    };
    let this = (id.clone(), latest.version);
    let other = (against_id.clone(), against_version);
    let versions = scans.version_keys(&[this.clone(), other.clone()]).await?;
    let d = FindingDiff::between(&versions[&other], &versions[&this]);
    Ok(Json(DiffResponse {
        scan_id: id,
        against_id,
        scanned_at: from_micros(latest.scanned_at),
        against_scanned_at: from_micros(against_at),
        added: d.added.iter().map(DiffFinding::of).collect(),
        removed: d.removed.iter().map(DiffFinding::of).collect(),
        changed: d
            .changed
            .iter()
            .map(|(b, a)| ChangedFinding {
                vulnerability_id: a.vulnerability_id.clone(),
                pkg_name: a.pkg_name.clone(),
                installed_version: a.installed_version.clone(),
                before: FindingState {
                    severity: b.severity.as_str().to_string(),
                    fixed_version: b.fixed_version.clone(),
                },
                after: FindingState {
                    severity: a.severity.as_str().to_string(),
                    fixed_version: a.fixed_version.clone(),
                },
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Image name (familiar form).
    pub image: Option<String>,
    /// The tag; without it, the observations of every tag of the image.
    pub tag: Option<String>,
    /// Page size, 0–500 (default 100; more is capped to 500).
    pub limit: Option<String>,
    /// Items to skip (default 0).
    pub offset: Option<String>,
}

/// One observation of an image reference.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    #[serde(rename = "ScanID")]
    pub scan_id: String,
    pub image_digest: String,
    /// The tag the report was stored under.
    pub image_tag: String,
    pub scanned_at: DateTime<Utc>,
    /// `ingest` or `job`.
    pub source: String,
    pub vuln_critical: i64,
    pub vuln_high: i64,
    pub vuln_medium: i64,
    pub vuln_low: i64,
    pub vuln_unknown: i64,
    pub fixable_count: i64,
    /// Findings it has that the observation before it (in this history) had not.
    pub added: i64,
    /// Findings the observation before it had that it has not.
    pub removed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryResponse {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Observations over all pages.
    pub count: i64,
    pub limit: i64,
    pub offset: i64,
    pub has_more: bool,
    /// Newest first.
    pub items: Vec<HistoryItem>,
}

/// An image reference's observations over time, newest first, each with the findings it
/// added and removed since the one before.
#[utoipa::path(get, path = "/images/history", tag = "scans", params(HistoryParams),
    responses(
        (status = 200, body = HistoryResponse),
        (status = 400, description = "No image, or a bad parameter", body = ErrorBody),
    ))]
pub async fn get_image_history(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<HistoryParams>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let image = text_param("image", &p.image)?
        .map(|s| familiar_name(&s))
        .ok_or_else(|| ApiError::bad_param("image", "is required"))?;
    let tag = text_param("tag", &p.tag)?;
    let limit = int_param("limit", &p.limit, DEFAULT_LIMIT, 0, MAX_LIMIT)?;
    let offset = int_param("offset", &p.offset, 0, 0, MAX_OFFSET)?;
    let scans = app.store.scans();
    // One row more to tell whether a page follows, and one more: the last item's
    // predecessor.
    let rows = scans
        .history(&image, tag.as_deref(), limit + 2, offset)
        .await?;
    let has_more = rows.len() as i64 > limit;
    let count = if offset == 0 && !has_more {
        rows.len() as i64
    } else {
        scans.count_history(&image, tag.as_deref()).await?
    };
    // Every findings version the page and the last item's predecessor had: one statement.
    let mut pairs: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.observation.scan_id.clone(), r.observation.version))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let versions: HashMap<(String, i64), Vec<Finding>> = scans.version_keys(&pairs).await?;
    let of = |o: &crate::store::scans::ObservationRow| -> &[Finding] {
        versions
            .get(&(o.scan_id.clone(), o.version))
            .map_or(&[], Vec::as_slice)
    };
    let shown = (limit as usize).min(rows.len());
    let mut items = Vec::with_capacity(shown);
    for i in 0..shown {
        let o = &rows[i].observation;
        let findings = of(o);
        let (added, removed) = match rows.get(i + 1) {
            Some(prev)
                if (&prev.observation.scan_id, prev.observation.version)
                    == (&o.scan_id, o.version) =>
            {
                (0, 0)
            }
            Some(prev) => {
                let d = FindingDiff::between(of(&prev.observation), findings);
                (d.added.len() as i64, d.removed.len() as i64)
            }
            // The first observation of the history: everything it has is new.
            None => (findings.len() as i64, 0),
        };
        items.push(history_item(&rows[i], added, removed));
    }
    Ok(Json(HistoryResponse {
        image,
        tag,
        count,
        limit,
        offset,
        has_more,
        items,
    }))
}

fn history_item(r: &ReferenceObservation, added: i64, removed: i64) -> HistoryItem {
    let o = &r.observation;
    HistoryItem {
        scan_id: o.scan_id.clone(),
        image_digest: r.image_digest.clone(),
        image_tag: o.image_tag.clone(),
        scanned_at: from_micros(o.scanned_at),
        source: o.source.clone(),
        vuln_critical: o.n_critical,
        vuln_high: o.n_high,
        vuln_medium: o.n_medium,
        vuln_low: o.n_low,
        vuln_unknown: o.n_unknown,
        fixable_count: o.fixable,
        added,
        removed,
    }
}
