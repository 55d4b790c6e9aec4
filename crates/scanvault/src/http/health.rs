//! `/health` (liveness), `/ready` (database reachable), `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics_text))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`, or `unavailable` on /ready when the database cannot be reached.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Why the database cannot be reached: where, and what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// On /ready: scan workers heard from in the last 30 s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// On /ready: why scan jobs cannot run now (the API itself is ready).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = HealthResponse)))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        database: None,
        error: None,
        workers: None,
        warnings: vec![],
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
pub async fn ready(State(app): State<AppState>) -> Response {
    let backend = app.store.backend().as_str().to_string();
    let error =
        match tokio::time::timeout(std::time::Duration::from_secs(10), app.store.admin().ping())
            .await
        {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(crate::redact::redact_error(&e.to_string())),
            Err(_) => Some("the database did not answer within 10 s".into()),
        };
    let status = if error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let (mut workers, mut warnings) = (None, vec![]);
    if error.is_none() {
        let live_since = crate::store::micros(chrono::Utc::now())
            - crate::worker::WORKER_LIVE_FOR.as_micros() as i64;
        if let Ok(rows) = app.store.jobs().workers(live_since).await {
            workers = Some(rows.len());
        }
        warnings = super::workers::scanning_warnings(&app)
            .await
            .unwrap_or_default();
    }
    let body = HealthResponse {
        status: if error.is_none() { "ok" } else { "unavailable" }.into(),
        database: Some(backend),
        error,
        workers,
        warnings,
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics_text(State(app): State<AppState>) -> Response {
    crate::metrics::refresh_gauges(&app.store).await;
    let body = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
