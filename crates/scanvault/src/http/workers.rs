//! `GET /workers`: the scan workers heard from, and whether any can scan now (also told by
//! `GET /ready` and the answer to `POST /scan-jobs`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::store::jobs::WorkerRow;
use crate::store::{from_micros, micros, StoreError};
use crate::worker::WORKER_LIVE_FOR;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_workers))
}

/// A scan worker as it last said.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerView {
    #[serde(rename = "ID")]
    pub id: String,
    /// ScanVault's version there.
    pub version: String,
    /// Its Trivy's version, once checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trivy_version: Option<String>,
    /// Why its Trivy cannot run (it takes no job meanwhile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trivy_error: Option<String>,
    /// Scans at once.
    pub concurrency: i64,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Heard from in the last 30 s (heartbeats come every 10 s).
    pub live: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WorkersResponse {
    pub count: usize,
    /// Live workers whose Trivy runs.
    pub can_scan: usize,
    /// Why scan jobs cannot run now, if they cannot.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Workers heard from in the last day, oldest first.
    pub items: Vec<WorkerView>,
}

/// Scan workers heard from in the last day, and whether any can scan now.
#[utoipa::path(get, path = "/workers", tag = "scan-jobs",
    responses((status = 200, body = WorkersResponse), (status = 503, body = ErrorBody)))]
pub async fn list_workers(State(app): State<AppState>) -> Result<Json<WorkersResponse>, ApiError> {
    let now = micros(Utc::now());
    let rows = app.store.jobs().workers(now - 86_400_000_000).await?;
    let warnings = warnings(&rows, now);
    let live_since = now - WORKER_LIVE_FOR.as_micros() as i64;
    let items: Vec<WorkerView> = rows
        .into_iter()
        .map(|w| WorkerView {
            live: w.heartbeat_at >= live_since,
            id: w.id,
            version: w.version,
            trivy_version: w.trivy_version,
            trivy_error: w.trivy_error,
            concurrency: w.concurrency,
            started_at: from_micros(w.started_at),
            heartbeat_at: from_micros(w.heartbeat_at),
        })
        .collect();
    Ok(Json(WorkersResponse {
        count: items.len(),
        can_scan: items
            .iter()
            .filter(|w| w.live && w.trivy_error.is_none())
            .count(),
        warnings,
        items,
    }))
}

/// Why scan jobs cannot run now (empty when a live worker can run Trivy).
pub async fn scanning_warnings(app: &AppState) -> Result<Vec<String>, StoreError> {
    let now = micros(Utc::now());
    let live_since = now - WORKER_LIVE_FOR.as_micros() as i64;
    let rows = app.store.jobs().workers(live_since).await?;
    Ok(warnings(&rows, now))
}

fn warnings(rows: &[WorkerRow], now: i64) -> Vec<String> {
    let live_since = now - WORKER_LIVE_FOR.as_micros() as i64;
    let live: Vec<&WorkerRow> = rows
        .iter()
        .filter(|w| w.heartbeat_at >= live_since)
        .collect();
    if live.is_empty() {
        return vec![
            "no scan worker is running: scan jobs wait in the queue until one starts \
             (`scanvault worker`, or `scanvault serve` with WORKER_CONCURRENCY above 0)"
                .into(),
        ];
    }
    if live.iter().any(|w| w.trivy_error.is_none()) {
        return vec![];
    }
    let why: Vec<String> = live
        .iter()
        .map(|w| {
            format!(
                "worker {}: {}",
                w.id,
                w.trivy_error.as_deref().unwrap_or_default()
            )
        })
        .collect();
    vec![format!(
        "no running worker can run Trivy, so scan jobs wait in the queue: {}",
        why.join("; ")
    )]
}
