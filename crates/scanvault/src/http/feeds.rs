//! Exploit feeds: `POST /feeds/kev` (CISA's KEV catalog JSON), `POST /feeds/epss` (FIRST's
//! EPSS CSV), plain or gzip, admin; `GET /feeds` tells what was imported when. The views
//! findings and CVE listings carry (`KEV`, `EPSS`) are here too.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::{AppState, Caller};
use crate::store::feeds::{Exploit, FeedRow};
use crate::store::{from_micros, micros};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_kev))
        .routes(routes!(import_epss))
        .routes(routes!(list_feeds))
}

/// Listed in CISA's Known Exploited Vulnerabilities catalog.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct KevView {
    /// When CISA added it (`YYYY-MM-DD`).
    pub date_added: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    /// `Known` when it is used in ransomware campaigns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_ransomware_campaign_use: Option<String>,
}

/// The `KEV`, `EPSS` and `EPSSPercentile` of a vulnerability from the imported feeds.
pub fn exploit_views(e: Option<&Exploit>) -> (Option<KevView>, Option<f64>, Option<f64>) {
    let Some(e) = e else {
        return (None, None, None);
    };
    (
        e.kev.as_ref().map(|k| KevView {
            date_added: k.date_added.clone(),
            due_date: k.due_date.clone(),
            known_ransomware_campaign_use: k.known_ransomware.clone(),
        }),
        e.epss.as_ref().map(|s| s.score),
        e.epss.as_ref().map(|s| s.percentile),
    )
}

/// The exploit data of `ids`.
pub async fn exploits(
    app: &AppState,
    ids: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, Exploit>, ApiError> {
    let mut ids: Vec<String> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(app.store.feeds().exploits(&ids).await?)
}

/// A feed's last import.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FeedView {
    /// `kev` or `epss`.
    pub feed: String,
    /// The KEV catalog's version, or the EPSS model's.
    pub version: String,
    /// When the publisher released it (the KEV catalog's `dateReleased`, EPSS's score date).
    pub released: String,
    pub entries: i64,
    pub imported_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_by: Option<String>,
}

impl FeedView {
    fn of(f: FeedRow) -> FeedView {
        FeedView {
            feed: f.feed,
            version: f.version,
            released: f.released,
            entries: f.entries,
            imported_at: from_micros(f.imported_at),
            imported_by: f.imported_by,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FeedList {
    pub items: Vec<FeedView>,
}

/// Parse a feed body off the async threads (the EPSS file is 10 MB of CSV).
async fn parse_off_thread<T: Send + 'static>(
    body: Bytes,
    parse: fn(&[u8]) -> Result<T, scanvault_core::feeds::FeedError>,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || parse(&body))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("parsing task failed: {e}")))?
        .map_err(|e| ApiError::InvalidFeed(e.to_string()))
}

/// Whether any exploit feed holds entries (else risk scores are the counts' own), read at
/// most every [`EXPLOIT_DATA_TTL`]: scan answers ask it, `POST /scans` among them. An import
/// through this process is seen at once.
pub struct ExploitData(moka::sync::Cache<(), bool>);

/// How long another process's first feed import may take to change risk scores here.
pub const EXPLOIT_DATA_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Default for ExploitData {
    fn default() -> Self {
        ExploitData(
            moka::sync::Cache::builder()
                .max_capacity(1)
                .time_to_live(EXPLOIT_DATA_TTL)
                .build(),
        )
    }
}

impl ExploitData {
    pub async fn present(&self, store: &crate::store::Store) -> Result<bool, ApiError> {
        if let Some(p) = self.0.get(&()) {
            return Ok(p);
        }
        let p = store.feeds().feeds().await?.iter().any(|f| f.entries > 0);
        self.0.insert((), p);
        Ok(p)
    }

    pub fn forget(&self) {
        self.0.invalidate_all();
    }
}

async fn imported(app: &AppState, feed: &str) -> Result<Json<FeedView>, ApiError> {
    app.exploit_data.forget();
    app.store
        .feeds()
        .feeds()
        .await?
        .into_iter()
        .find(|f| f.feed == feed)
        .map(|f| Json(FeedView::of(f)))
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the {feed} import was not recorded")))
}

/// Replace the KEV catalog with CISA's `known_exploited_vulnerabilities.json` (or its gzip).
#[utoipa::path(post, path = "/feeds/kev", tag = "feeds",
    request_body(content = String, content_type = "application/json", description = "CISA's KEV catalog JSON, plain or gzip"),
    responses((status = 200, body = FeedView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 413, body = ErrorBody), (status = 422, description = "Not a KEV catalog: what is wrong", body = ErrorBody)))]
pub async fn import_kev(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<FeedView>, ApiError> {
    let catalog = parse_off_thread(body, scanvault_core::feeds::parse_kev).await?;
    app.store
        .feeds()
        .replace_kev(&catalog, micros(Utc::now()), caller.id().as_deref())
        .await?;
    tracing::info!(entries = catalog.entries.len(), version = %catalog.catalog_version, "KEV catalog imported");
    imported(&app, "kev").await
}

/// Replace the EPSS scores with FIRST's `epss_scores-YYYY-MM-DD.csv` (or `.csv.gz`).
#[utoipa::path(post, path = "/feeds/epss", tag = "feeds",
    request_body(content = String, content_type = "text/csv", description = "FIRST's EPSS CSV, plain or gzip"),
    responses((status = 200, body = FeedView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 413, body = ErrorBody), (status = 422, description = "Not an EPSS file: what is wrong", body = ErrorBody)))]
pub async fn import_epss(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<FeedView>, ApiError> {
    let feed = parse_off_thread(body, scanvault_core::feeds::parse_epss).await?;
    app.store
        .feeds()
        .replace_epss(&feed, micros(Utc::now()), caller.id().as_deref())
        .await?;
    tracing::info!(entries = feed.entries.len(), model = %feed.model_version, "EPSS scores imported");
    imported(&app, "epss").await
}

/// The feeds imported, with their versions and when.
#[utoipa::path(get, path = "/feeds", tag = "feeds",
    responses((status = 200, body = FeedList), (status = 401, body = ErrorBody)))]
pub async fn list_feeds(State(app): State<AppState>) -> Result<Json<FeedList>, ApiError> {
    let items = app
        .store
        .feeds()
        .feeds()
        .await?
        .into_iter()
        .map(FeedView::of)
        .collect();
    Ok(Json(FeedList { items }))
}
