//! `/scans`: ingest and query stored scans. Response names are PascalCase, as the original
//! service's (and Trivy's); see DESIGN.md "API compatibility".

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use scanvault_core::image::familiar_name;
use scanvault_core::report::{Finding, FindingExtra, Severity};
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{body_rejection, ApiError, ErrorBody};
use super::params::{
    int_param, is_digest, parse_scan_id, severity_param, suppressed_param, text_param, ApiPath,
    ApiQuery,
};
use super::{AppState, Caller};
use crate::ingest::{self, IngestOverrides};
use crate::store::analytics::SuppressedMode;
use crate::store::from_micros;
use crate::store::scans::{FindingFilter, FindingRow, ScanFilter, ScanOrder, ScanRow, ScanSource};
use crate::triage;

pub use super::scan_views::*;
use super::scan_views::{scan_result_view, stored_result, ResultEntry};

/// Default page size of scan lists.
pub const DEFAULT_LIMIT: i64 = 100;
/// Largest page size of scan lists.
pub const MAX_LIMIT: i64 = 500;
/// Largest offset accepted.
pub const MAX_OFFSET: i64 = 1_000_000_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_scan, list_scans))
        .routes(routes!(list_all_scans))
        .routes(routes!(latest_scan))
        .routes(routes!(get_scan, delete_scan))
        .routes(routes!(get_scan_vulnerabilities))
        .routes(routes!(get_scan_report))
        .routes(routes!(get_scan_observations))
}

// ------------------------------------------------------------------------------ params

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestParams {
    /// Image name, overriding the report's.
    pub image: Option<String>,
    /// Image tag, overriding the report's.
    pub tag: Option<String>,
    /// Manifest digest (`sha256:…`), overriding the report's.
    pub digest: Option<String>,
}

impl IngestParams {
    /// The overrides, checked: a familiar image name, a tag, a well-formed digest.
    pub fn overrides(&self) -> Result<IngestOverrides, ApiError> {
        let overrides = IngestOverrides {
            image: text_param("image", &self.image)?.map(|s| familiar_name(&s)),
            tag: text_param("tag", &self.tag)?,
            digest: text_param("digest", &self.digest)?,
        };
        if let Some(d) = &overrides.digest {
            if !is_digest(d) {
                return Err(ApiError::bad_param("digest", "must look like sha256:<hex>"));
            }
        }
        Ok(overrides)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Image name (familiar form, e.g. `nginx`, `ghcr.io/org/app`).
    pub image: Option<String>,
    pub tag: Option<String>,
    /// Only scans with at least one finding of this severity (with `image`).
    pub severity: Option<String>,
    /// Page size, 0–500 (default 100; more is capped to 500).
    pub limit: Option<String>,
    /// Items to skip (default 0).
    pub offset: Option<String>,
    /// `summary` leaves each scan's `ScanResult` out (a light list); by default, as in the
    /// original service, every item has it (`result`).
    pub include: Option<String>,
    /// `exclude` (default): counts leave out findings active suppressions cover;
    /// `include`: count everything; `only`: count only them.
    pub suppressed: Option<String>,
    /// `newest` (default: newest scan first), `name` (image name, then tag), `critical`
    /// (most critical findings first, then high, medium) or `risk` (highest risk score
    /// first). The sort uses the counts stored with each scan, before suppressions.
    pub sort: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LatestParams {
    pub image: Option<String>,
    pub tag: Option<String>,
    /// `exclude` (default), `include` or `only` (findings active suppressions cover).
    pub suppressed: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScanParams {
    /// `exclude` (default), `include` or `only` (findings active suppressions cover).
    pub suppressed: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VulnParams {
    /// Only findings of this severity.
    pub severity: Option<String>,
    /// Only findings of this package (case-insensitive).
    pub pkg: Option<String>,
    /// Page size, 1–100000 (default: all findings).
    pub limit: Option<String>,
    pub offset: Option<String>,
}

// ------------------------------------------------------------------------------ handlers

/// Ingest a report: Trivy JSON, a `trivy k8s` cluster report, Grype JSON or CycloneDX JSON
/// with vulnerabilities, detected from the content.
///
/// Accepts Trivy `SchemaVersion: 2` and the legacy top-level array (even `null`), with or
/// without a UTF-8 BOM. A report for content already stored under the same image name
/// (same manifest digest, else image id, else the same tag and findings) updates that scan
/// in place (200); anything new is created (201). A cluster report stores one scan per
/// image it names, with the workloads that run it, and answers with the list
/// (`ClusterIngestView`: 201 when any scan is new).
#[utoipa::path(post, path = "/scans", tag = "scans", params(IngestParams),
    request_body(content = String, description = "A Trivy, trivy k8s, Grype or CycloneDX JSON report", content_type = "application/json"),
    responses(
        (status = 201, description = "New scan stored (a cluster report: `ClusterIngestView`)", body = ScanView),
        (status = 200, description = "Stored scan updated in place", body = ScanView),
        (status = 400, description = "Not JSON, empty, not UTF-8, or bad parameters", body = ErrorBody),
        (status = 413, description = "Body larger than HTTP_MAX_BODY_SIZE", body = ErrorBody),
        (status = 409, description = "Lost to concurrent writes of the same data on four attempts in a row (rare; the request can be sent again)", body = ErrorBody),
        (status = 422, description = "JSON that is not a supported report", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn create_scan(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<IngestParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_rejection)?;
    let overrides = params.overrides()?;
    let ingested = ingest::ingest_body(
        &app.store,
        &app.ingest,
        body,
        overrides,
        ScanSource::Ingest,
        caller.id(),
    )
    .await?;
    let ingest::Ingested { outcome, report } = match ingested {
        ingest::IngestedBody::One(one) => *one,
        ingest::IngestedBody::Cluster {
            cluster,
            images,
            skipped,
        } => {
            app.triage.fleet_changed();
            return Ok(cluster_answer(cluster, images, &skipped));
        }
    };
    if report.findings.iter().any(|f| f.extra.vex_state.is_some()) {
        // The report's VEX analysis may have changed suppressions.
        app.triage.forget();
    } else {
        app.triage.fleet_changed();
    }
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let scan = &outcome.scan;
    tracing::info!(
        scan = %scan.id,
        image = %scan.image_name,
        tag = %scan.image_tag,
        created = outcome.created,
        findings_added = outcome.findings_added,
        findings_removed = outcome.findings_removed,
        "report stored"
    );
    // The scan as stored: its findings are the report's, unless the report was older than
    // the scan's latest observation (then the scan is as that one left it).
    let mut stored_rows = None;
    let result = if outcome.stale {
        let findings = app
            .store
            .scans()
            .findings(&scan.id, &FindingFilter::all())
            .await?;
        let result = stored_result(scan, &findings);
        stored_rows = Some(findings);
        result
    } else {
        let mut findings: Vec<&Finding> = report.findings.iter().collect();
        findings.sort_unstable_by(|a, b| {
            (
                b.severity,
                &a.vulnerability_id,
                &a.pkg_name,
                &a.installed_version,
            )
                .cmp(&(
                    a.severity,
                    &b.vulnerability_id,
                    &b.pkg_name,
                    &b.installed_version,
                ))
        });
        scan_result_view(scan, findings.into_iter().map(ResultEntry::of_report))
    };
    let mut view = ScanView::from_row(scan, Some(result));
    view.warnings = report.skipped.iter().map(IngestWarning::of).collect();
    let view = match &stored_rows {
        Some(rows) => stored_verdict(&app, view, rows, SuppressedMode::Exclude).await?,
        None => {
            let findings: Vec<&Finding> = report.findings.iter().collect();
            with_verdict(&app, view, &findings, SuppressedMode::Exclude).await?
        }
    };
    let location = format!("/scans/{}", scan.id);
    Ok((status, [(header::LOCATION, location)], Json(view)).into_response())
}

/// The answer to a cluster report: 201 when it created a scan, else 200.
fn cluster_answer(
    cluster: String,
    images: Vec<(ingest::Ingested, Vec<scanvault_core::k8s::Workload>)>,
    skipped: &[scanvault_core::report::SkippedEntries],
) -> Response {
    let created = images.iter().filter(|(i, _)| i.outcome.created).count();
    tracing::info!(cluster = %cluster, images = images.len(), created, "cluster report stored");
    let answer = ClusterIngestView {
        cluster_name: cluster,
        created,
        updated: images.len() - created,
        scans: images
            .iter()
            .map(|(i, _)| ScanView::from_row(&i.outcome.scan, None))
            .collect(),
        warnings: skipped.iter().map(IngestWarning::of).collect(),
    };
    let status = if created > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(answer)).into_response()
}

/// Scans of a tag (`?tag=`) or of an image (`?image=[&severity=]`), newest first.
#[utoipa::path(get, path = "/scans", tag = "scans", params(ListParams),
    responses(
        (status = 200, body = ScanListResponse),
        (status = 400, description = "Neither image nor tag given, or a bad parameter", body = ErrorBody),
    ))]
pub async fn list_scans(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ScanListResponse>, ApiError> {
    let image = text_param("image", &p.image)?.map(|s| familiar_name(&s));
    let tag = text_param("tag", &p.tag)?;
    if image.is_none() && tag.is_none() {
        return Err(ApiError::BadRequest(
            "query parameter 'tag' or 'image' is required".into(),
        ));
    }
    let severity = severity_param(&p.severity)?;
    if severity.is_some() && image.is_none() {
        return Err(ApiError::BadRequest(
            "query parameter 'severity' needs 'image'".into(),
        ));
    }
    // `?image=` lists the image (all tags), `?tag=` the tag; both narrows to the reference.
    list(&app, image, tag, severity, &p).await
}

/// Every scan, optionally narrowed to an image and tag, newest first.
#[utoipa::path(get, path = "/scans/all", tag = "scans", params(ListParams),
    responses((status = 200, body = ScanListResponse), (status = 400, body = ErrorBody)))]
pub async fn list_all_scans(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ScanListResponse>, ApiError> {
    let image = text_param("image", &p.image)?.map(|s| familiar_name(&s));
    let tag = text_param("tag", &p.tag)?;
    let severity = severity_param(&p.severity)?;
    list(&app, image, tag, severity, &p).await
}

async fn list(
    app: &AppState,
    image: Option<String>,
    tag: Option<String>,
    severity: Option<Severity>,
    p: &ListParams,
) -> Result<Json<ScanListResponse>, ApiError> {
    let limit = int_param("limit", &p.limit, DEFAULT_LIMIT, 0, MAX_LIMIT)?;
    let offset = int_param("offset", &p.offset, 0, 0, MAX_OFFSET)?;
    let include_result = match text_param("include", &p.include)?.as_deref() {
        None | Some("result") => true,
        Some("summary") => false,
        Some(_) => {
            return Err(ApiError::bad_param(
                "include",
                "must be 'summary' (no ScanResult) or 'result'",
            ))
        }
    };
    let order = match text_param("sort", &p.sort)? {
        None => ScanOrder::Newest,
        Some(s) => ScanOrder::parse(&s)
            .ok_or_else(|| ApiError::bad_param("sort", "must be newest, name, critical or risk"))?,
    };
    let filter = ScanFilter {
        image: image.clone(),
        tag: tag.clone(),
        severity,
        order,
        limit,
        offset,
    };
    let mut rows = app.store.scans().list(&filter).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let count = if offset == 0 && !has_more {
        rows.len() as i64
    } else {
        app.store.scans().count(&filter).await?
    };
    let mode = suppressed_param(&p.suppressed)?;
    let active = app.triage.active(&app.store).await?;
    let exploit_data = has_exploit_data(app).await?;
    let mut findings: HashMap<String, Vec<FindingRow>> = HashMap::new();
    if include_result || !active.is_empty() || exploit_data {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        for (scan, f) in app.store.scans().findings_of(&ids).await? {
            findings.entry(scan).or_default().push(f);
        }
    }
    let exploits = if exploit_data {
        super::feeds::exploits(
            app,
            findings
                .values()
                .flatten()
                .map(|f| f.vulnerability_id.clone()),
        )
        .await?
    } else {
        HashMap::new()
    };
    let items = rows
        .iter()
        .map(|r| {
            let rows = findings.get(&r.id).map_or(&[][..], Vec::as_slice);
            let result = include_result.then(|| stored_result(r, rows));
            let mut view = ScanView::from_row(r, result);
            if !active.is_empty() || exploit_data {
                let all: Vec<Finding> = rows.iter().map(crate::compliance::finding_of).collect();
                if !active.is_empty() {
                    let left_out = triage::suppressed_counts(&active, &r.image_name, all.iter());
                    view.apply_suppressed(&left_out, mode, app.ingest.compliance_fail_on);
                }
                if exploit_data {
                    let all: Vec<&Finding> = all.iter().collect();
                    view.risk_score =
                        risk_of(&shown(&active, &r.image_name, &all, mode), &exploits);
                }
            }
            view
        })
        .collect::<Vec<ScanView>>();
    // Each scan's verdict under every policy that applies, from the findings at hand.
    let mut items = items;
    if include_result {
        let stored = app
            .policies
            .get(&app.store)
            .await
            .map_err(ApiError::Internal)?;
        let all: Vec<Vec<Finding>> = rows
            .iter()
            .map(|r| {
                findings
                    .get(&r.id)
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .map(crate::compliance::finding_of)
                    .collect()
            })
            .collect();
        let per_scan: Vec<(&str, Vec<&Finding>)> = rows
            .iter()
            .zip(&all)
            .map(|(r, f)| {
                let f: Vec<&Finding> = f.iter().collect();
                (
                    r.image_name.as_str(),
                    shown(&active, &r.image_name, &f, SuppressedMode::Exclude),
                )
            })
            .collect();
        let verdicts = crate::compliance::violations_of_many(
            &app.store,
            app.ingest.compliance_fail_on,
            &stored,
            &per_scan,
        )
        .await
        .map_err(ApiError::Internal)?;
        for (view, v) in items.iter_mut().zip(verdicts) {
            view.compliant = Some(v.is_empty());
            view.violations = Some(v.into_iter().map(Into::into).collect());
        }
    }
    Ok(Json(ScanListResponse {
        image,
        tag,
        severity: severity.map(|s| s.to_string()),
        count,
        limit,
        offset,
        has_more,
        items,
    }))
}

/// The newest scan of an image (and tag).
#[utoipa::path(get, path = "/scans/latest", tag = "scans", params(LatestParams),
    responses((status = 200, body = ScanView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn latest_scan(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<LatestParams>,
) -> Result<Json<ScanView>, ApiError> {
    let image = text_param("image", &p.image)?
        .map(|s| familiar_name(&s))
        .ok_or_else(|| ApiError::BadRequest("query parameter 'image' is required".into()))?;
    let tag = text_param("tag", &p.tag)?;
    let scan = app
        .store
        .scans()
        .latest(&image, tag.as_deref())
        .await?
        .ok_or_else(|| {
            let what = match &tag {
                Some(t) => format!("scan of image {image}:{t}"),
                None => format!("scan of image {image}"),
            };
            ApiError::not_found(what, "scan_not_found")
        })?;
    let findings = app
        .store
        .scans()
        .findings(&scan.id, &FindingFilter::all())
        .await?;
    let result = stored_result(&scan, &findings);
    let view = ScanView::from_row(&scan, Some(result));
    let mode = suppressed_param(&p.suppressed)?;
    Ok(Json(stored_verdict(&app, view, &findings, mode).await?))
}

/// One scan with its `ScanResult`.
#[utoipa::path(get, path = "/scans/{id}", tag = "scans",
    params(("id" = String, Path, description = "Scan id (UUID)"), ScanParams),
    responses((status = 200, body = ScanView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_scan(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<ScanParams>,
) -> Result<Json<ScanView>, ApiError> {
    let id = parse_scan_id(&id)?;
    let scan = find(&app, &id).await?;
    let findings = app
        .store
        .scans()
        .findings(&scan.id, &FindingFilter::all())
        .await?;
    let result = stored_result(&scan, &findings);
    let view = ScanView::from_row(&scan, Some(result));
    let mode = suppressed_param(&p.suppressed)?;
    Ok(Json(stored_verdict(&app, view, &findings, mode).await?))
}

/// Whether any exploit feed has been imported (else the risk score is the counts' one).
async fn has_exploit_data(app: &AppState) -> Result<bool, ApiError> {
    app.exploit_data.present(&app.store).await
}

/// The findings a view counts in `mode`.
fn shown<'a>(
    active: &triage::Active,
    image: &str,
    findings: &[&'a Finding],
    mode: SuppressedMode,
) -> Vec<&'a Finding> {
    findings
        .iter()
        .copied()
        .filter(|f| {
            let covered = active
                .covering(&f.vulnerability_id, &f.pkg_name, image)
                .is_some();
            match mode {
                SuppressedMode::Include => true,
                SuppressedMode::Exclude => !covered,
                SuppressedMode::Only => covered,
            }
        })
        .collect()
}

/// The risk score of `findings` with their exploitability (README, "Risk score").
fn risk_of(findings: &[&Finding], exploits: &HashMap<String, crate::store::feeds::Exploit>) -> i64 {
    scanvault_core::report::SeverityCounts::risk_with(findings.iter().map(|f| {
        let e = exploits.get(&f.vulnerability_id);
        let epss = e
            .and_then(|e| e.epss.as_ref())
            .map(|x| x.score)
            .or(f.extra.epss);
        let kev = e.is_some_and(|e| e.kev.is_some());
        (
            f.severity,
            scanvault_core::report::exploitability(epss, kev),
        )
    }))
}

/// `view` with the verdict of every policy that applies to its image, its counts in `mode`
/// and its risk score with exploitability.
async fn with_verdict(
    app: &AppState,
    mut view: ScanView,
    findings: &[&scanvault_core::report::Finding],
    mode: SuppressedMode,
) -> Result<ScanView, ApiError> {
    let active = app.triage.active(&app.store).await?;
    if !active.is_empty() {
        let left_out =
            triage::suppressed_counts(&active, &view.image_name, findings.iter().copied());
        view.apply_suppressed(&left_out, mode, app.ingest.compliance_fail_on);
    }
    if has_exploit_data(app).await? {
        let shown = shown(&active, &view.image_name, findings, mode);
        let exploits =
            super::feeds::exploits(app, shown.iter().map(|f| f.vulnerability_id.clone())).await?;
        view.risk_score = risk_of(&shown, &exploits);
    }
    // Findings active suppressions cover never violate.
    let kept = shown(&active, &view.image_name, findings, SuppressedMode::Exclude);
    let findings = &kept;
    let stored = app
        .policies
        .get(&app.store)
        .await
        .map_err(ApiError::Internal)?;
    let violations = crate::compliance::violations(
        &app.store,
        app.ingest.compliance_fail_on,
        &stored,
        &view.image_name,
        findings,
    )
    .await
    .map_err(ApiError::Internal)?;
    view.compliant = Some(violations.is_empty());
    view.violations = Some(violations.into_iter().map(Into::into).collect());
    Ok(view)
}

async fn stored_verdict(
    app: &AppState,
    view: ScanView,
    rows: &[crate::store::scans::FindingRow],
    mode: SuppressedMode,
) -> Result<ScanView, ApiError> {
    let findings: Vec<scanvault_core::report::Finding> =
        rows.iter().map(crate::compliance::finding_of).collect();
    let refs: Vec<&scanvault_core::report::Finding> = findings.iter().collect();
    with_verdict(app, view, &refs, mode).await
}

pub(super) async fn find(app: &AppState, id: &str) -> Result<ScanRow, ApiError> {
    app.store
        .scans()
        .find(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("scan {id}"), "scan_not_found"))
}

/// Delete a scan with its findings and report.
#[utoipa::path(delete, path = "/scans/{id}", tag = "scans", params(("id" = String, Path, description = "Scan id (UUID)")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_scan(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_scan_id(&id)?;
    let store = app.store.clone();
    let deleted = tokio::spawn(async move { store.scans().delete(&[id]).await })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("delete task failed: {e}")))??;
    if deleted > 0 {
        app.triage.fleet_changed();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("scan", "scan_not_found"))
    }
}

/// Findings of a scan, from the normalised findings with vulnerability details.
#[utoipa::path(get, path = "/scans/{id}/vulnerabilities", tag = "scans",
    params(("id" = String, Path, description = "Scan id (UUID)"), VulnParams),
    responses((status = 200, body = ScanVulnerabilitiesResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_scan_vulnerabilities(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<VulnParams>,
) -> Result<Json<ScanVulnerabilitiesResponse>, ApiError> {
    let id = parse_scan_id(&id)?;
    let severity = severity_param(&p.severity)?;
    let pkg = text_param("pkg", &p.pkg)?;
    let limit = int_param("limit", &p.limit, 100_000, 1, 100_000)?;
    let offset = int_param("offset", &p.offset, 0, 0, MAX_OFFSET)?;
    let scan = find(&app, &id).await?;
    let filter = FindingFilter {
        severity,
        pkg: pkg.clone(),
        limit: limit + 1,
        offset,
    };
    let mut rows = app.store.scans().findings(&id, &filter).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let count = if offset == 0 && !has_more {
        rows.len() as i64
    } else {
        app.store.scans().count_findings(&id, &filter).await?
    };
    let now = crate::store::micros(chrono::Utc::now());
    let mut vulns: Vec<String> = rows.iter().map(|f| f.vulnerability_id.clone()).collect();
    vulns.sort_unstable();
    vulns.dedup();
    let exploits = app.store.feeds().exploits(&vulns).await?;
    let suppressions = app
        .store
        .suppressions()
        .active_suppressions(&vulns, now)
        .await?;
    let items: Vec<ScanVulnerabilityItem> = rows
        .into_iter()
        .map(|f| {
            let extra = FindingExtra::from_stored(f.extra.as_deref());
            let (kev, epss, epss_percentile) =
                super::feeds::exploit_views(exploits.get(&f.vulnerability_id));
            let suppression = suppressions
                .iter()
                .find(|s| s.matches(&f.vulnerability_id, &f.pkg_name, &scan.image_name))
                .map(|s| super::suppressions::SuppressionView::of(s, now));
            ScanVulnerabilityItem {
                target: f.target.unwrap_or_default(),
                class: f.class.unwrap_or_default(),
                kind: f.pkg_type.unwrap_or_default(),
                vulnerability: ScanVulnerabilityDetail {
                    vulnerability_id: f.vulnerability_id,
                    pkg_name: f.pkg_name,
                    pkg_version: f.pkg_version.clone(),
                    current_version: f.pkg_version,
                    fixed_version: f.fixed_version,
                    severity: Severity::from_rank(f.severity).to_string(),
                    title: f.title,
                    description: f.description,
                    status: f.status,
                    cvss_score: f.cvss_score,
                    primary_url: f.primary_url,
                    pkg_path: f.pkg_path,
                    purl: f.purl,
                    scanner_severity: extra.scanner_severity,
                    vex_state: extra.vex_state,
                    vex_justification: extra.vex_justification,
                    epss: epss.or(extra.epss),
                    epss_percentile,
                    kev,
                    suppression,
                    risk: extra.risk,
                },
            }
        })
        .collect();
    Ok(Json(ScanVulnerabilitiesResponse {
        scan_id: scan.id,
        image_name: scan.image_name,
        image_tag: scan.image_tag,
        severity: severity.map(|s| s.to_string()),
        pkg,
        count,
        limit,
        offset,
        has_more,
        items,
    }))
}

/// The raw report exactly as it was received.
#[utoipa::path(get, path = "/scans/{id}/report", tag = "scans", params(("id" = String, Path, description = "Scan id (UUID)")),
    responses((status = 200, description = "The report, byte for byte. A report received with a UTF-8 byte-order \
        mark is served as application/octet-stream (a BOM is not allowed in JSON on the wire), the bytes unchanged.",
        content((serde_json::Value = "application/json"), (Vec<u8> = "application/octet-stream"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_scan_report(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    _headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_scan_id(&id)?;
    let body = app
        .store
        .scans()
        .report(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("report of scan {id}"), "scan_not_found"))?;
    let content_type = if body.starts_with(b"\xEF\xBB\xBF") {
        "application/octet-stream"
    } else {
        "application/json"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The scan's observations: every report of its content, oldest first. A report that
/// updated the scan in place, and one that arrived late, are each an observation.
#[utoipa::path(get, path = "/scans/{id}/observations", tag = "scans", params(("id" = String, Path, description = "Scan id (UUID)")),
    responses((status = 200, body = ObservationsResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_scan_observations(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ObservationsResponse>, ApiError> {
    let id = parse_scan_id(&id)?;
    let scan = find(&app, &id).await?;
    let items: Vec<ObservationView> = app
        .store
        .scans()
        .observations(&scan.id)
        .await?
        .into_iter()
        .map(|o| ObservationView {
            id: o.id,
            image_tag: o.image_tag,
            scanned_at: from_micros(o.scanned_at),
            observed_at: from_micros(o.observed_at),
            source: o.source,
            findings_version: o.version,
            vuln_critical: o.n_critical,
            vuln_high: o.n_high,
            vuln_medium: o.n_medium,
            vuln_low: o.n_low,
            vuln_unknown: o.n_unknown,
            vuln_total: o.n_critical + o.n_high + o.n_medium + o.n_low + o.n_unknown,
            fixable_count: o.fixable,
            findings_added: o.findings_added,
            findings_removed: o.findings_removed,
        })
        .collect();
    Ok(Json(ObservationsResponse {
        scan_id: scan.id,
        count: items.len(),
        items,
    }))
}
