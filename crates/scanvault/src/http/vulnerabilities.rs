//! A vulnerability as the catalog describes it: `GET /vulnerabilities/{id}`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use scanvault_core::report::Severity;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::feeds::KevView;
use super::params::{text_param, ApiPath};
use super::AppState;
use crate::store::from_micros;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_vulnerability))
}

/// A vulnerability id's description, scores and exploit data.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct VulnerabilityView {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The severity the newest report describing it gave.
    pub severity: String,
    #[serde(rename = "CVSSScore", skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    #[serde(rename = "CVSSVector", skip_serializing_if = "Option::is_none")]
    pub cvss_vector: Option<String>,
    #[serde(rename = "PrimaryURL", skip_serializing_if = "Option::is_none")]
    pub primary_url: Option<String>,
    pub references: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified_at: Option<DateTime<Utc>>,
    /// Listed as known exploited (CISA KEV, from the imported catalog).
    #[serde(rename = "KEV", skip_serializing_if = "Option::is_none")]
    pub kev: Option<KevView>,
    /// EPSS probability (from the imported feed).
    #[serde(rename = "EPSS", skip_serializing_if = "Option::is_none")]
    pub epss: Option<f64>,
    #[serde(rename = "EPSSPercentile", skip_serializing_if = "Option::is_none")]
    pub epss_percentile: Option<f64>,
}

/// A vulnerability as the stored reports describe it (the newest description wins), with
/// KEV and EPSS from the imported feeds. Which images carry it:
/// `/analytics/vulnerabilities/cve/{id}/images`.
#[utoipa::path(get, path = "/vulnerabilities/{id}", tag = "analytics",
    params(("id" = String, Path, description = "Vulnerability id (CVE, GHSA, …)")),
    responses(
        (status = 200, body = VulnerabilityView),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No stored report names it", body = ErrorBody),
    ))]
pub async fn get_vulnerability(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<VulnerabilityView>, ApiError> {
    let id = text_param("id", &Some(id))?
        .ok_or_else(|| ApiError::BadRequest("the vulnerability id is empty".into()))?;
    let row = app.store.scans().vulnerability(&id).await?.ok_or_else(|| {
        ApiError::not_found(format!("vulnerability {id}"), "vulnerability_not_found")
    })?;
    let exploits = super::feeds::exploits(&app, [id.clone()]).await?;
    let (kev, epss, epss_percentile) = super::feeds::exploit_views(exploits.get(&id));
    Ok(Json(VulnerabilityView {
        id: row.id,
        title: row.title.filter(|t| !t.is_empty()),
        description: row.description.filter(|t| !t.is_empty()),
        severity: Severity::from_rank(row.severity).as_str().to_string(),
        cvss_score: row.cvss_score,
        cvss_vector: row.cvss_vector.filter(|t| !t.is_empty()),
        primary_url: row.primary_url.filter(|t| !t.is_empty()),
        references: serde_json::from_str(&row.refs).unwrap_or_default(),
        published_at: row.published_at.map(from_micros),
        last_modified_at: row.modified_at.map(from_micros),
        kev,
        epss,
        epss_percentile,
    }))
}
