//! Webhooks (admin): `POST /webhooks`, `GET /webhooks`, `GET /webhooks/{id}`,
//! `DELETE /webhooks/{id}`, `GET /webhooks/{id}/deliveries`. The secret is write-only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::params::{int_param, ApiPath, ApiQuery};
use super::{AppJson, AppState, Caller};
use crate::store::from_micros;
use crate::store::webhooks::{AttemptRow, DeliveryRow, WebhookRow, EVENTS};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where deliveries are posted (`http://` or `https://`).
    #[serde(rename = "URL")]
    pub url: String,
    /// Events to deliver: `scan.noncompliant`, `fleet.new_critical`, `job.failed`,
    /// `suppression.expired`.
    #[serde(rename = "Events")]
    pub events: Vec<String>,
    /// Signs every delivery (`X-ScanVault-Signature`); 16 to 256 characters. Never shown
    /// again.
    #[serde(rename = "Secret")]
    pub secret: String,
}

/// A webhook (its secret is never shown).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookView {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "URL")]
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

impl WebhookView {
    fn of(w: &WebhookRow) -> WebhookView {
        WebhookView {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.event_names(),
            created_at: from_micros(w.created_at),
            created_by: w.created_by.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookList {
    pub count: usize,
    pub items: Vec<WebhookView>,
}

/// One attempt to deliver.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AttemptView {
    pub attempt: i64,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    /// Why the attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// An event sent (or being sent) to a webhook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeliveryView {
    /// The `X-ScanVault-Delivery` header: the same at every attempt.
    #[serde(rename = "ID")]
    pub id: String,
    pub event: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// When a pending delivery is attempted next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The event's data, as posted under `Data`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub attempts: Vec<AttemptView>,
}

impl DeliveryView {
    fn of(d: DeliveryRow, attempts: Vec<AttemptRow>) -> DeliveryView {
        DeliveryView {
            next_attempt_at: (d.status == "pending").then(|| from_micros(d.next_attempt_at)),
            finished_at: d.finished_at.map(from_micros),
            data: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
            created_at: from_micros(d.created_at),
            id: d.id,
            event: d.event,
            status: d.status,
            attempts: attempts
                .into_iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    at: from_micros(a.at),
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeliveryList {
    /// Deliveries over all pages.
    pub count: i64,
    pub limit: i64,
    pub offset: i64,
    pub has_more: bool,
    /// Newest first.
    pub items: Vec<DeliveryView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// 1–500 (default 100).
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// Subscribe a URL to events. Deliveries are JSON POSTs signed with the secret.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = CreateWebhookRequest, responses(
    (status = 201, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 415, description = "The body is not JSON", body = ErrorBody)))]
pub async fn create_webhook(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let url = url::Url::parse(req.url.trim())
        .map_err(|e| ApiError::BadRequest(format!("URL is not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ApiError::BadRequest(
            "URL must be an http:// or https:// URL with a host".into(),
        ));
    }
    let mut events = req.events.clone();
    events.sort_unstable();
    events.dedup();
    if events.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "Events must name at least one of {}",
            EVENTS.join(", ")
        )));
    }
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unknown event {bad:?}: events are {}",
            EVENTS.join(", ")
        )));
    }
    let n = req.secret.chars().count();
    if !(16..=256).contains(&n) || req.secret.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "Secret must be 16 to 256 characters without control characters".into(),
        ));
    }
    let row = WebhookRow {
        id: uuid::Uuid::now_v7().to_string(),
        url: url.to_string(),
        events: serde_json::to_string(&events).unwrap_or_default(),
        secret: req.secret,
        created_at: crate::store::micros(Utc::now()),
        created_by: caller.id(),
    };
    app.store.webhooks().create_webhook(&row).await?;
    tracing::info!(webhook = %row.id, events = %row.events, by = ?row.created_by, "webhook created");
    let location = format!("/webhooks/{}", row.id);
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        Json(WebhookView::of(&row)),
    )
        .into_response())
}

/// Every webhook.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", responses(
    (status = 200, body = WebhookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_webhooks(State(app): State<AppState>) -> Result<Json<WebhookList>, ApiError> {
    let items: Vec<WebhookView> = app
        .store
        .webhooks()
        .webhooks()
        .await?
        .iter()
        .map(WebhookView::of)
        .collect();
    Ok(Json(WebhookList {
        count: items.len(),
        items,
    }))
}

async fn find(app: &AppState, id: &str) -> Result<WebhookRow, ApiError> {
    app.store
        .webhooks()
        .webhook(id.trim())
        .await?
        .ok_or_else(|| ApiError::not_found("webhook", "webhook_not_found"))
}

/// One webhook.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
pub async fn get_webhook(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(WebhookView::of(&find(&app, &id).await?)))
}

/// Delete a webhook and its deliveries (pending ones are not sent).
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.webhooks().delete_webhook(id.trim()).await? {
        tracing::info!(webhook = %id.trim(), by = ?caller.id(), "webhook deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook", "webhook_not_found"))
    }
}

/// A webhook's deliveries, newest first, with every attempt and its outcome.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), DeliveryParams),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = int_param("limit", &p.limit, 100, 1, 500)?;
    let offset = int_param("offset", &p.offset, 0, 0, 1_000_000)?;
    let hook = find(&app, &id).await?;
    let (rows, count) = app
        .store
        .webhooks()
        .deliveries(&hook.id, limit, offset)
        .await?;
    let items: Vec<DeliveryView> = rows
        .into_iter()
        .map(|(d, a)| DeliveryView::of(d, a))
        .collect();
    Ok(Json(DeliveryList {
        count,
        limit,
        offset,
        has_more: offset + (items.len() as i64) < count,
        items,
    }))
}
