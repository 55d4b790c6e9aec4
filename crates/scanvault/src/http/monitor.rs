//! Continuous monitoring over HTTP: inventories in (`POST /sboms`) and out
//! (`GET /scans/{id}/sbom`), re-matches (`POST /rematch`), scan schedules and the batches
//! their rounds make.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use scanvault_core::image::familiar_name;
use scanvault_core::sbom::SbomFormat;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{body_rejection, ApiError, ErrorBody};
use super::params::{text_param, ApiPath, ApiQuery};
use super::scans::IngestParams;
use super::{AppJson, AppState, Caller};
use crate::inventory::{self, InventoryError};
use crate::monitor::{self, Problem};
use crate::store::jobs::Lane;
use crate::store::monitor::{BatchRow, InventorySource, ScheduleRow};
use crate::store::{from_micros, micros};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_sbom))
        .routes(routes!(scan_sbom))
        .routes(routes!(rematch))
        .routes(routes!(create_schedule, list_schedules))
        .routes(routes!(get_schedule, delete_schedule))
        .routes(routes!(get_batch))
}

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::Invalid(e) => ApiError::UnsupportedFormat(e.to_string()),
            e @ InventoryError::NoImage => ApiError::ImageRequired(e.to_string()),
            e @ (InventoryError::NoDigest | InventoryError::BadOverride(_)) => {
                ApiError::BadRequest(e.to_string())
            }
            InventoryError::Store(s) => s.into(),
        }
    }
}

/// A stored inventory.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct InventoryView {
    pub image_name: String,
    pub image_tag: String,
    pub image_digest: String,
    /// `cyclonedx` or `spdx`: the format it was received in.
    pub format: String,
    pub spec_version: String,
    /// Packages (components) it lists.
    pub packages: usize,
    /// Stored now; `false` when the worker's own inventory of the digest was kept.
    pub stored: bool,
    /// The re-match job queued for it: its vulnerabilities become a scan of the image.
    #[serde(rename = "JobID")]
    pub job_id: Option<String>,
}

/// Store a package inventory (SBOM) of an image: CycloneDX JSON (1.4–1.7) without
/// `vulnerabilities`, or SPDX 2.3 JSON. It names the image (CycloneDX `metadata.component`,
/// SPDX's CONTAINER package) unless `?image=`/`?digest=` are given; a document with
/// vulnerabilities is a report (`POST /scans`). A re-match job is queued so that the image's
/// vulnerabilities are found without pulling it.
#[utoipa::path(post, path = "/sboms", tag = "monitoring", params(IngestParams),
    request_body(content = String, description = "A CycloneDX or SPDX 2.3 JSON document", content_type = "application/json"),
    responses(
        (status = 201, description = "Stored; a re-match is queued", body = InventoryView),
        (status = 400, description = "Bad parameters, or no digest known", body = ErrorBody),
        (status = 413, description = "Body larger than HTTP_MAX_BODY_SIZE", body = ErrorBody),
        (status = 422, description = "Not a CycloneDX/SPDX inventory, or no image named", body = ErrorBody),
    ))]
pub async fn create_sbom(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<IngestParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_rejection)?;
    let o = params.overrides()?;
    let stored = inventory::store(
        &app.store,
        &body,
        o.image.as_deref().unwrap_or_default(),
        o.tag.as_deref().unwrap_or_default(),
        o.digest.as_deref().unwrap_or_default(),
        InventorySource::Ingest,
    )
    .await?;
    let job_id = queue_rematch(&app, &caller, &stored).await?;
    Ok((
        StatusCode::CREATED,
        Json(InventoryView {
            image_name: stored.image_name,
            image_tag: stored.image_tag,
            image_digest: stored.image_digest,
            format: stored.inventory.format.as_str().into(),
            spec_version: stored.inventory.spec_version,
            packages: stored.inventory.components.len(),
            stored: stored.written,
            job_id,
        }),
    )
        .into_response())
}

/// The re-match of a stored inventory, in the ad-hoc lane (someone asked).
async fn queue_rematch(
    app: &AppState,
    caller: &Caller,
    stored: &inventory::Stored,
) -> Result<Option<String>, ApiError> {
    let queued =
        inventory::queue_rematch(&app.store, stored, caller.id(), app.jobs.max_attempts).await?;
    if let Some((_, true)) = queued {
        app.signals.job_queued();
    }
    Ok(queued.map(|(id, _)| id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SbomFormatParams {
    /// `cyclonedx` (default: CycloneDX 1.6 JSON) or `spdx` (SPDX 2.3 JSON).
    pub format: Option<String>,
}

/// The package inventory of a scan's digest, as CycloneDX 1.6 or SPDX 2.3 JSON. 404 when
/// none is stored (only digests the worker scanned, and `POST /sboms`, have one).
#[utoipa::path(get, path = "/scans/{id}/sbom", tag = "monitoring",
    params(("id" = String, Path, description = "Scan id"), SbomFormatParams),
    responses(
        (status = 200, description = "The inventory", content_type = "application/json", body = String),
        (status = 400, body = ErrorBody),
        (status = 404, description = "No such scan, or no inventory of its digest", body = ErrorBody),
    ))]
pub async fn scan_sbom(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<SbomFormatParams>,
) -> Result<Response, ApiError> {
    let wanted = match text_param("format", &params.format)? {
        None => SbomFormat::CycloneDx,
        Some(f) => f
            .parse::<SbomFormat>()
            .map_err(|_| ApiError::bad_param("format", "must be cyclonedx or spdx"))?,
    };
    let scan = app
        .store
        .scans()
        .find(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("scan {id}"), "scan_not_found"))?;
    let (row, document) = app
        .store
        .monitor()
        .inventory_document(&scan.image_digest)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                format!("an inventory of {} (scan {id})", scan.image_digest),
                "inventory_not_found",
            )
        })?;
    let out = inventory::render(&document, &row.format, &row.spec_version, wanted)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("the stored inventory: {e}")))?;
    let content_type = match wanted {
        SbomFormat::CycloneDx => "application/vnd.cyclonedx+json",
        SbomFormat::Spdx => "application/spdx+json",
    };
    Ok(([(header::CONTENT_TYPE, content_type)], out).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RematchParams {
    /// Only this image (`name` or `name:tag`); default: every image of the current fleet
    /// with a stored inventory.
    pub image: Option<String>,
}

/// A batch as queued.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RoundView {
    #[serde(rename = "BatchID")]
    pub batch_id: String,
    /// Jobs in the batch.
    pub jobs: usize,
    /// What could not be queued, and why.
    pub problems: Vec<Problem>,
}

impl From<monitor::Round> for RoundView {
    fn from(r: monitor::Round) -> Self {
        RoundView {
            batch_id: r.batch_id,
            jobs: r.jobs,
            problems: r.problems,
        }
    }
}

/// Re-match stored inventories against the current vulnerability database now: every
/// image of the current fleet whose digest has an inventory (or only `?image=`), as
/// re-match jobs (no registry access) in one batch. The batch says when there was nothing
/// to re-match.
#[utoipa::path(post, path = "/rematch", tag = "monitoring", params(RematchParams),
    responses(
        (status = 202, description = "Queued (follow `GET /scan-batches/{BatchID}`)", body = RoundView),
        (status = 400, body = ErrorBody),
    ))]
pub async fn rematch(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<RematchParams>,
) -> Result<Response, ApiError> {
    let (image, tag) = match text_param("image", &params.image)? {
        None => (String::new(), String::new()),
        Some(i) => split_image(&i),
    };
    let round = monitor::rematch_round(
        &app.store,
        &image,
        &tag,
        caller.id(),
        Lane::Rematch,
        app.jobs.max_attempts,
    )
    .await?;
    if round.jobs > 0 {
        app.signals.job_queued();
    }
    let location = format!("/scan-batches/{}", round.batch_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(RoundView::from(round)),
    )
        .into_response())
}

/// `name[:tag]` → (familiar name, tag); a `:` inside the registry's port is not a tag.
fn split_image(s: &str) -> (String, String) {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (familiar_name(&s[..i]), s[i + 1..].to_string()),
        _ => (familiar_name(s), String::new()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct CreateScheduleRequest {
    /// References (`registry/repo:tag`) and repository patterns (`registry/repo:*`: every
    /// tag the registry lists).
    pub images: Vec<String>,
    /// How often a round runs, e.g. `24h`, `30m` (at least 1m).
    pub interval: String,
}

/// A scan schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleView {
    #[serde(rename = "ID")]
    pub id: String,
    pub images: Vec<String>,
    pub interval: String,
    pub next_run_at: DateTime<Utc>,
    /// The batch of the latest round.
    #[serde(rename = "BatchID")]
    pub batch_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    /// Only in the answer to `POST /scan-schedules`: the first round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<RoundView>,
}

impl From<ScheduleRow> for ScheduleView {
    fn from(s: ScheduleRow) -> Self {
        ScheduleView {
            id: s.id,
            images: serde_json::from_str(&s.images).unwrap_or_default(),
            interval: humantime::format_duration(std::time::Duration::from_secs(
                s.interval_seconds.max(0) as u64,
            ))
            .to_string(),
            next_run_at: from_micros(s.next_run_at),
            batch_id: s.last_batch_id,
            created_at: from_micros(s.created_at),
            created_by: s.created_by,
            round: None,
        }
    }
}

/// Most entries a schedule may have.
const MAX_SCHEDULE_ENTRIES: usize = 1000;

/// Scan images on a schedule, in the scheduled lane (requests through `POST /scan-jobs` are
/// always claimed first). The first round starts now; the answer carries its `BatchID`.
/// An entry `registry/repo:*` scans every tag the registry lists at each round.
#[utoipa::path(post, path = "/scan-schedules", tag = "monitoring",
    request_body = CreateScheduleRequest,
    responses(
        (status = 201, description = "Created; the first round is queued", body = ScheduleView),
        (status = 400, description = "Malformed body, entry or interval", body = ErrorBody),
        (status = 415, body = ErrorBody),
    ))]
pub async fn create_schedule(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CreateScheduleRequest>,
) -> Result<Response, ApiError> {
    let interval = scanvault_scanner::parse_duration(&req.interval)
        .map_err(|e| ApiError::BadRequest(format!("Interval: {e}")))?;
    if interval < std::time::Duration::from_secs(60) {
        return Err(ApiError::BadRequest("Interval must be at least 1m".into()));
    }
    if req.images.is_empty() || req.images.len() > MAX_SCHEDULE_ENTRIES {
        return Err(ApiError::BadRequest(format!(
            "Images must list 1 to {MAX_SCHEDULE_ENTRIES} references or patterns"
        )));
    }
    for entry in &req.images {
        let checked = scanvault_registry::parse_repository_pattern(entry)
            .map(|_| ())
            .and_then(|()| match entry.ends_with(":*") {
                true => Ok(()),
                false => scanvault_registry::Reference::parse(entry).map(|_| ()),
            });
        if let Err(e) = checked {
            return Err(ApiError::BadRequest(format!("Images: {e}")));
        }
    }
    let now = micros(Utc::now());
    let seconds = interval.as_secs() as i64;
    let row = ScheduleRow {
        id: uuid::Uuid::now_v7().to_string(),
        images: serde_json::to_string(&req.images).unwrap_or_else(|_| "[]".into()),
        interval_seconds: seconds,
        next_run_at: now + seconds * 1_000_000,
        last_batch_id: None,
        created_at: now,
        created_by: caller.id(),
    };
    app.store.monitor().insert_schedule(&row).await?;
    let round =
        monitor::schedule_round(&app.store, &app.registry, &row, app.jobs.max_attempts).await?;
    if round.jobs > 0 {
        app.signals.job_queued();
    }
    let mut view = ScheduleView::from(ScheduleRow {
        last_batch_id: Some(round.batch_id.clone()),
        ..row
    });
    view.round = Some(round.into());
    let location = format!("/scan-schedules/{}", view.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// Every scan schedule, oldest first.
#[utoipa::path(get, path = "/scan-schedules", tag = "monitoring",
    responses((status = 200, body = Vec<ScheduleView>)))]
pub async fn list_schedules(
    State(app): State<AppState>,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    Ok(Json(
        app.store
            .monitor()
            .schedules()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

/// One scan schedule.
#[utoipa::path(get, path = "/scan-schedules/{id}", tag = "monitoring",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody)))]
pub async fn get_schedule(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    app.store
        .monitor()
        .schedule(&id)
        .await?
        .map(|s| Json(s.into()))
        .ok_or_else(|| ApiError::not_found(format!("scan schedule {id}"), "schedule_not_found"))
}

/// Stop a schedule (jobs already queued stay queued).
#[utoipa::path(delete, path = "/scan-schedules/{id}", tag = "monitoring",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_schedule(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.monitor().delete_schedule(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            format!("scan schedule {id}"),
            "schedule_not_found",
        ))
    }
}

/// A batch and its jobs, counted by state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct BatchView {
    #[serde(rename = "ID")]
    pub id: String,
    /// `schedule` or `rematch`.
    pub kind: String,
    #[serde(rename = "ScheduleID")]
    pub schedule_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    /// `empty` (nothing to scan: see `Problems`), `running` (jobs queued or running),
    /// `completed` (every job completed, from a scan or the cache), `failed` (every job
    /// ended, some failed or were cancelled).
    pub state: String,
    pub total: i64,
    pub queued: i64,
    pub running: i64,
    pub completed: i64,
    /// Completed from a fresh scan of the same digest (SCAN_CACHE_MAX_AGE), not rescanned.
    pub cached: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// What could not be queued, and why (an entry whose tags could not be listed, …).
    pub problems: Vec<Problem>,
}

impl From<BatchRow> for BatchView {
    fn from(b: BatchRow) -> Self {
        let total = b.queued + b.running + b.completed + b.cached + b.failed + b.cancelled;
        let state = if total == 0 {
            "empty"
        } else if b.queued + b.running > 0 {
            "running"
        } else if b.failed + b.cancelled > 0 {
            "failed"
        } else {
            "completed"
        };
        let problems: Vec<Problem> = serde_json::from_str(&b.problems).unwrap_or_default();
        BatchView {
            id: b.id,
            kind: b.kind,
            schedule_id: b.schedule_id,
            created_at: from_micros(b.created_at),
            created_by: b.created_by,
            state: state.into(),
            total,
            queued: b.queued,
            running: b.running,
            completed: b.completed,
            cached: b.cached,
            failed: b.failed,
            cancelled: b.cancelled,
            problems,
        }
    }
}

/// A batch (a schedule's round or a re-match round): its jobs counted by state, exactly
/// (each job in one count). A batch with nothing to scan is `empty`, never `completed`.
#[utoipa::path(get, path = "/scan-batches/{id}", tag = "monitoring",
    params(("id" = String, Path, description = "Batch id")),
    responses((status = 200, body = BatchView), (status = 404, body = ErrorBody)))]
pub async fn get_batch(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BatchView>, ApiError> {
    app.store
        .monitor()
        .batch(&id)
        .await?
        .map(|b| Json(b.into()))
        .ok_or_else(|| ApiError::not_found(format!("scan batch {id}"), "batch_not_found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_and_tag() {
        assert_eq!(split_image("nginx"), ("nginx".into(), String::new()));
        assert_eq!(split_image("nginx:1.25"), ("nginx".into(), "1.25".into()));
        assert_eq!(
            split_image("reg:5000/app"),
            ("reg:5000/app".into(), String::new())
        );
        assert_eq!(
            split_image("reg:5000/app:2"),
            ("reg:5000/app".into(), "2".into())
        );
    }

    #[test]
    fn a_batch_with_nothing_is_empty_not_completed() {
        let b = BatchView::from(BatchRow {
            problems: r#"[{"Entry":"reg/x:*","Error":"no tags"}]"#.into(),
            ..Default::default()
        });
        assert_eq!(b.state, "empty");
        assert_eq!(b.total, 0);
        assert_eq!(b.problems[0].entry, "reg/x:*");
        let done = BatchView::from(BatchRow {
            completed: 2,
            cached: 1,
            ..Default::default()
        });
        assert_eq!((done.state.as_str(), done.total), ("completed", 3));
        let failed = BatchView::from(BatchRow {
            completed: 2,
            failed: 1,
            ..Default::default()
        });
        assert_eq!(failed.state, "failed");
    }
}
