//! `/scan-jobs`: request scans of images, follow them, cancel and retry them.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use scanvault_core::job::JobStatus;
use scanvault_registry::Reference;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::params::{int_param, text_param, ApiPath, ApiQuery};
use super::scans::MAX_OFFSET;
use super::{AppJson, AppState, Caller};
use crate::store::from_micros;
use crate::store::jobs::{Actor, AuditRow, JobError, JobRow, NewJob};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(job_counts))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(retry_job))
        .routes(routes!(job_events))
}

/// Settings the job API needs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub max_attempts: i64,
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::NotFound(id) => {
                ApiError::not_found(format!("scan job {id}"), "job_not_found")
            }
            JobError::InvalidTransition(t) => ApiError::Conflict(t.to_string()),
            JobError::Lost => ApiError::Conflict(
                "the job changed while the request was handled; try again".into(),
            ),
            JobError::Store(s) => s.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJobRequest {
    /// Image reference: `registry/name:tag` or `name@sha256:…` (Docker Hub when no registry).
    pub image: String,
    /// Rescan even if a fresh scan of the same digest exists.
    #[serde(default)]
    pub force: bool,
    /// Higher runs first (-1000…1000).
    #[serde(default)]
    pub priority: i64,
}

/// A scan job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct JobView {
    #[serde(rename = "ID")]
    pub id: String,
    /// Canonical image reference.
    pub image: String,
    pub image_name: String,
    /// queued, pulling, scanning, completed, failed or cancelled.
    pub status: String,
    pub force: bool,
    pub priority: i64,
    /// `adhoc` (requested through the API), `scheduled` or `rematch`: workers claim the
    /// ad-hoc lane first, then scheduled scans, then re-matches.
    pub lane: String,
    /// `scan` (resolve in the registry and scan) or `rematch` (match the digest's stored
    /// inventory against the current vulnerability database, without the registry).
    pub kind: String,
    /// Attempts started so far.
    pub attempts: i64,
    pub max_attempts: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Not claimed before this time (backoff after a transient error).
    pub run_after: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Manifest digest the reference resolved to.
    pub resolved_digest: Option<String>,
    pub error_message: Option<String>,
    /// `transient` or `permanent`.
    pub error_class: Option<String>,
    /// The resulting scan, once completed.
    #[serde(rename = "ScanID")]
    pub scan_id: Option<String>,
    pub vuln_critical: Option<i64>,
    pub vuln_high: Option<i64>,
    pub vuln_medium: Option<i64>,
    pub vuln_low: Option<i64>,
    pub vuln_unknown: Option<i64>,
    pub requested_by: Option<String>,
    /// Only in the answer to `POST /scan-jobs`: why the job cannot run now, if it cannot
    /// (no live worker, or none whose Trivy runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl From<JobRow> for JobView {
    fn from(j: JobRow) -> Self {
        let completed = j.status == "completed";
        let when_done = |v: Option<i64>| if completed { v } else { None };
        JobView {
            id: j.id,
            image: j.image_ref,
            image_name: j.image_name,
            status: j.status,
            force: j.force != 0,
            priority: j.priority,
            lane: crate::store::jobs::Lane::of_stored(j.lane)
                .as_str()
                .to_string(),
            kind: j.kind,
            attempts: j.attempt,
            max_attempts: j.max_attempts,
            created_at: from_micros(j.created_at),
            updated_at: from_micros(j.updated_at),
            run_after: from_micros(j.run_after),
            started_at: j.started_at.map(from_micros),
            completed_at: j.completed_at.map(from_micros),
            lease_owner: j.lease_owner,
            lease_expires_at: j.lease_expires_at.map(from_micros),
            resolved_digest: j.resolved_digest,
            error_message: j.error_message,
            error_class: j.error_class,
            scan_id: j.scan_id,
            vuln_critical: when_done(j.vuln_critical),
            vuln_high: when_done(j.vuln_high),
            vuln_medium: when_done(j.vuln_medium),
            vuln_low: when_done(j.vuln_low),
            vuln_unknown: when_done(j.vuln_unknown),
            requested_by: j.requested_by,
            warnings: vec![],
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct JobListResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub count: usize,
    pub limit: i64,
    pub offset: i64,
    pub has_more: bool,
    pub items: Vec<JobView>,
}

/// One audit-log entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct JobEventView {
    #[serde(rename = "ID")]
    pub id: i64,
    pub attempt: i64,
    pub old_status: Option<String>,
    pub new_status: String,
    /// `worker:<id>`, `api[:<key id>]` or `system`.
    pub changed_by: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<AuditRow> for JobEventView {
    fn from(a: AuditRow) -> Self {
        JobEventView {
            id: a.id,
            attempt: a.attempt,
            old_status: a.old_status,
            new_status: a.new_status,
            changed_by: a.changed_by,
            reason: a.reason,
            at: from_micros(a.at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct JobEventsResponse {
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub count: usize,
    pub items: Vec<JobEventView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListParams {
    /// queued, pulling, scanning, completed, failed or cancelled.
    pub status: Option<String>,
    /// Image name or reference.
    pub image: Option<String>,
    /// Page size, 0–500 (default 100).
    pub limit: Option<String>,
    pub offset: Option<String>,
}

fn parse_job_id(raw: &str) -> Result<String, ApiError> {
    super::params::parse_uuid("job", raw)
}

fn job_response(status: StatusCode, job: JobRow) -> Response {
    let location = format!("/scan-jobs/{}", job.id);
    (
        status,
        [(header::LOCATION, location)],
        Json(JobView::from(job)),
    )
        .into_response()
}

/// Request a scan of an image. Answers 202 with the job; when a job for the same image is
/// already queued or running, that job is returned instead of queueing a second one.
#[utoipa::path(post, path = "/scan-jobs", tag = "scan-jobs", request_body = CreateJobRequest,
    responses(
        (status = 202, description = "Queued (or the active job for this image)", body = JobView,
            headers(("Location" = String, description = "URL of the job"))),
        (status = 400, description = "Malformed reference or body", body = ErrorBody),
        (status = 415, body = ErrorBody),
    ))]
pub async fn create_job(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CreateJobRequest>,
) -> Result<Response, ApiError> {
    let reference =
        Reference::parse(&req.image).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !(-1000..=1000).contains(&req.priority) {
        return Err(ApiError::BadRequest(
            "priority must be between -1000 and 1000".into(),
        ));
    }
    let (job, created) = app
        .store
        .jobs()
        .create(NewJob {
            force: req.force,
            priority: req.priority,
            max_attempts: app.jobs.max_attempts,
            requested_by: caller.id(),
            ..NewJob::scan(
                reference.to_string(),
                reference.familiar_name(),
                crate::store::jobs::Lane::Adhoc,
                Utc::now(),
            )
        })
        .await?;
    if created {
        app.signals.job_queued();
    }
    let mut view = JobView::from(job);
    view.warnings = super::workers::scanning_warnings(&app).await?;
    for w in &view.warnings {
        tracing::warn!(job = %view.id, "{w}");
    }
    let location = format!("/scan-jobs/{}", view.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// One scan job.
#[utoipa::path(get, path = "/scan-jobs/{id}", tag = "scan-jobs", params(("id" = String, Path, description = "Job id (UUID)")),
    responses((status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = app
        .store
        .jobs()
        .find(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("scan job {id}"), "job_not_found"))?;
    Ok(Json(job.into()))
}

/// Scan jobs, newest first.
#[utoipa::path(get, path = "/scan-jobs", tag = "scan-jobs", params(JobListParams),
    responses((status = 200, body = JobListResponse), (status = 400, body = ErrorBody)))]
pub async fn list_jobs(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<JobListParams>,
) -> Result<Json<JobListResponse>, ApiError> {
    let status = match text_param("status", &p.status)? {
        None => None,
        Some(s) => Some(JobStatus::parse(&s).ok_or_else(|| {
            ApiError::bad_param(
                "status",
                "must be one of queued, pulling, scanning, completed, failed, cancelled",
            )
        })?),
    };
    let image = text_param("image", &p.image)?;
    let limit = int_param("limit", &p.limit, 100, 0, 500)?;
    let offset = int_param("offset", &p.offset, 0, 0, MAX_OFFSET)?;
    let mut rows = app
        .store
        .jobs()
        .list(status, image.as_deref(), limit, offset)
        .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let items: Vec<JobView> = rows.into_iter().map(JobView::from).collect();
    Ok(Json(JobListResponse {
        status: status.map(|s| s.to_string()),
        image,
        count: items.len(),
        limit,
        offset,
        has_more,
        items,
    }))
}

/// The number of jobs in one state and lane.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct JobCountView {
    pub status: String,
    pub lane: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct JobCountsResponse {
    /// Jobs of every state and lane (those with none left out).
    pub total: i64,
    pub items: Vec<JobCountView>,
}

/// The queue at a glance: how many jobs are in each state and lane.
#[utoipa::path(get, path = "/scan-jobs/counts", tag = "scan-jobs",
    responses((status = 200, body = JobCountsResponse), (status = 401, body = ErrorBody)))]
pub async fn job_counts(State(app): State<AppState>) -> Result<Json<JobCountsResponse>, ApiError> {
    let rows = app.store.jobs().counts().await?;
    let items: Vec<JobCountView> = rows
        .into_iter()
        .map(|(status, lane, count)| JobCountView {
            status,
            lane: crate::store::jobs::Lane::of_stored(lane)
                .as_str()
                .to_string(),
            count,
        })
        .collect();
    Ok(Json(JobCountsResponse {
        total: items.iter().map(|i| i.count).sum(),
        items,
    }))
}

/// Cancel a queued or running job; a running Trivy process is killed.
#[utoipa::path(post, path = "/scan-jobs/{id}/cancel", tag = "scan-jobs", params(("id" = String, Path, description = "Job id (UUID)")),
    responses((status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The job is already finished", body = ErrorBody)))]
pub async fn cancel_job(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_job_id(&id)?;
    let (job, was_running) = app
        .store
        .jobs()
        .cancel(&id, Actor::Api(caller.id()), Utc::now())
        .await?;
    if was_running {
        app.signals.cancel(&id);
    }
    // Registry credentials given with the request are kept only while the job may run.
    app.store.monitor().forget_job_credentials(&id).await?;
    Ok(Json(job.into()))
}

/// Queue a failed or cancelled job again, with a fresh attempt budget.
#[utoipa::path(post, path = "/scan-jobs/{id}/retry", tag = "scan-jobs", params(("id" = String, Path, description = "Job id (UUID)")),
    responses((status = 202, body = JobView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The job is not failed or cancelled", body = ErrorBody)))]
pub async fn retry_job(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&id)?;
    let job = app
        .store
        .jobs()
        .retry(
            &id,
            Actor::Api(caller.id()),
            app.jobs.max_attempts,
            Utc::now(),
        )
        .await?;
    app.signals.job_queued();
    Ok(job_response(StatusCode::ACCEPTED, job))
}

/// The job's audit log: every status change, who made it and why.
#[utoipa::path(get, path = "/scan-jobs/{id}/events", tag = "scan-jobs", params(("id" = String, Path, description = "Job id (UUID)")),
    responses((status = 200, body = JobEventsResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn job_events(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobEventsResponse>, ApiError> {
    let id = parse_job_id(&id)?;
    if app.store.jobs().find(&id).await?.is_none() {
        return Err(ApiError::not_found(
            format!("scan job {id}"),
            "job_not_found",
        ));
    }
    let items: Vec<JobEventView> = app
        .store
        .jobs()
        .events(&id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(JobEventsResponse {
        job_id: id,
        count: items.len(),
        items,
    }))
}
