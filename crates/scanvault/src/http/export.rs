//! Exports: a scan as CSV, SARIF 2.1.0 or CycloneDX 1.6 (`GET /scans/{id}/export`), and the
//! fleet listings as CSV streamed page by page.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::params::{parse_scan_id, text_param, ApiPath, ApiQuery};
use super::AppState;
use crate::export::{self, ExportFormat};
use crate::store::analytics::FleetFinding;
use crate::store::scans::FindingFilter;
use crate::store::StoreError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export_scan))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv`, `sarif` or `cyclonedx`; without it, the `Accept` header chooses (`text/csv`,
    /// `application/sarif+json`, `application/vnd.cyclonedx+json`).
    pub format: Option<String>,
}

/// The format asked for by `format`, else by `Accept`.
pub fn export_format(
    format: &Option<String>,
    headers: &HeaderMap,
) -> Result<ExportFormat, ApiError> {
    if let Some(f) = text_param("format", format)? {
        return ExportFormat::parse(&f).ok_or_else(|| {
            ApiError::bad_param("format", format!("must be {}", ExportFormat::NAMES))
        });
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(ExportFormat::from_accept)
        .ok_or_else(|| {
            ApiError::bad_param(
                "format",
                format!(
                    "is required (or an Accept header naming one): {}",
                    ExportFormat::NAMES
                ),
            )
        })
}

/// A scan's findings for other tools: CSV (a header row, one row per finding), SARIF 2.1.0
/// (one rule per vulnerability id, one result per finding) or CycloneDX 1.6 JSON with
/// `vulnerabilities[]` and VEX `analysis` where a report gave it.
#[utoipa::path(get, path = "/scans/{id}/export", tag = "scans",
    params(("id" = String, Path, description = "Scan id (UUID)"), ExportParams),
    responses(
        (status = 200, description = "The export", content_type = "text/csv"),
        (status = 400, description = "No format, or a bad one", body = ErrorBody),
        (status = 404, description = "No such scan", body = ErrorBody),
    ))]
pub async fn export_scan(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<ExportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_scan_id(&id)?;
    let format = export_format(&p.format, &headers)?;
    let scan = super::scans::find(&app, &id).await?;
    let findings = app
        .store
        .scans()
        .findings(&id, &FindingFilter::all())
        .await?;
    let body = match format {
        ExportFormat::Csv => export::scan_csv(&scan, &findings),
        ExportFormat::Sarif => json_bytes(&export::scan_sarif(&scan, &findings)),
        ExportFormat::CycloneDx => json_bytes(&export::scan_cyclonedx(
            &scan,
            &findings,
            chrono::Utc::now(),
        )),
    };
    let file = format!("scan-{id}.{}", format.extension());
    Ok(download(format.content_type(), &file, Body::from(body)))
}

fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

fn download(content_type: &'static str, file: &str, body: Body) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// Rows fetched per query while a listing streams.
pub const STREAM_PAGE: i64 = 1000;

/// Fetches up to `limit + 1` rows of a listing from `offset`.
pub type PageFetch = Box<
    dyn Fn(i64, i64) -> BoxFuture<'static, Result<Vec<FleetFinding>, StoreError>> + Send + Sync,
>;

/// A listing as CSV, streamed: the header, then the rows of each page as it is read (from
/// `offset`, at most `limit` rows when given). A 100,000-row answer is never in memory.
pub fn csv_stream(
    file: &str,
    header: &'static [&'static str],
    row: fn(FleetFinding) -> Vec<String>,
    fetch: PageFetch,
    offset: i64,
    limit: Option<i64>,
) -> Response {
    struct State {
        fetch: PageFetch,
        offset: i64,
        left: Option<i64>,
        started: bool,
        done: bool,
    }
    let state = State {
        fetch,
        offset,
        left: limit,
        started: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, move |mut s| async move {
        if !s.started {
            s.started = true;
            let head = export::csv_bytes([header.iter().map(|h| h.to_string())]);
            return Some((Ok::<_, StoreError>(bytes::Bytes::from(head)), s));
        }
        if s.done {
            return None;
        }
        let page = s.left.map_or(STREAM_PAGE, |l| l.min(STREAM_PAGE));
        if page <= 0 {
            return None;
        }
        match (s.fetch)(s.offset, page).await {
            Ok(mut rows) => {
                let more = rows.len() as i64 > page;
                rows.truncate(page as usize);
                s.offset += rows.len() as i64;
                s.left = s.left.map(|l| l - rows.len() as i64);
                s.done = !more;
                Some((
                    Ok(bytes::Bytes::from(export::csv_bytes(
                        rows.into_iter().map(row),
                    ))),
                    s,
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "a streamed CSV listing stopped");
                s.done = true;
                Some((Err(e), s))
            }
        }
    });
    download(
        ExportFormat::Csv.content_type(),
        file,
        Body::from_stream(stream),
    )
}
