//! The HTTP API: one router per feature, merged here; the router is the OpenAPI document.

pub mod analytics;
pub mod auth;
pub mod compliance;
pub mod error;
pub mod export;
pub mod feeds;
pub mod harbor;
pub mod health;
pub mod history;
pub mod jobs;
pub mod monitor;
pub mod params;
pub mod policies;
pub mod scan_views;
pub mod scans;
pub mod suppressions;
pub mod vulnerabilities;
pub mod webhooks;
pub mod workers;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::ingest::IngestSettings;
use crate::store::Store;
use crate::worker::Signals;
use error::{ApiError, LoggedError};

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ingest: Arc<IngestSettings>,
    pub jobs: Arc<jobs::JobSettings>,
    pub auth: Arc<auth::Auth>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Wakes and cancels this process's scan workers.
    pub signals: Signals,
    /// The stored compliance policies, briefly cached.
    pub policies: crate::compliance::PolicyCache,
    /// The active suppressions and what they leave out of the fleet.
    pub triage: Arc<crate::triage::Triage>,
    /// Whether exploit feeds are imported, briefly cached.
    pub exploit_data: Arc<feeds::ExploitData>,
    /// Lists the tags of `registry/repo:*` schedule entries.
    pub registry: scanvault_registry::RegistryClient,
}

impl AppState {
    /// The state of a service on `store`, sharing `signals` with the process's workers.
    pub fn new(
        store: Store,
        ingest: IngestSettings,
        jobs: jobs::JobSettings,
        auth: auth::AuthSettings,
        signals: Signals,
    ) -> AppState {
        AppState {
            store,
            ingest: Arc::new(ingest),
            jobs: Arc::new(jobs),
            auth: Arc::new(auth::Auth::new(auth)),
            metrics: Some(crate::metrics::install()),
            signals,
            policies: Default::default(),
            triage: Default::default(),
            exploit_data: Default::default(),
            registry: scanvault_registry::RegistryClient::new(Default::default())
                .expect("a registry client without an auth file"),
        }
    }
}

/// HTTP settings of the router.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_size: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// Served over TLS (the dashboard's cookies are then `Secure`).
    pub tls: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body_size: 32 << 20,
            read_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(15),
            tls: false,
        }
    }
}

/// JSON body extractor whose rejection is our JSON error (400/413/415).
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

/// Who is calling: the API key id once authentication has run, else nobody.
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<String>);

impl Caller {
    pub fn id(&self) -> Option<String> {
        self.0.clone()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ScanVault",
        description = "Store, analyse and run container vulnerability scans. Errors are always \
            `{\"error\": \"message\", \"code\": \"stable_code\"}`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(scans::ClusterIngestView)),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    tags(
        (name = "scans", description = "Ingest and query scan results"),
        (name = "scan-jobs", description = "Request scans of images and follow them through the worker's state machine"),
        (name = "analytics", description = "Fleet analytics over the latest scan of every image reference"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "admin", description = "API key management (admin role)"),
        (name = "feeds", description = "Exploit feeds: CISA KEV and FIRST EPSS (import: admin role)"),
        (name = "policies", description = "Compliance policies and the CI gate's verdict on a report"),
        (name = "triage", description = "Suppressions: triage decisions that survive rebuilds (triager or admin role to change)"),
        (name = "webhooks", description = "Event notifications to your URLs, signed, retried, with a delivery log (admin role)"),
        (name = "monitoring", description = "Package inventories, re-matching them against newer vulnerability data, scan schedules and their batches"),
        (name = "harbor", description = "Harbor pluggable scanner API v1.1: register ScanVault in Harbor as a scanner"),
    )
)]
pub struct ApiDoc;

/// Declares the `Authorization: Bearer <API key>` scheme in the OpenAPI document.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `svk_<id>_<secret>`"))
                    .build(),
            ),
        );
    }
}

/// The API routes and the OpenAPI document they make.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(scans::router())
        .merge(history::router())
        .merge(export::router())
        .merge(analytics::router())
        .merge(vulnerabilities::router())
        .merge(jobs::router())
        .merge(workers::router())
        .merge(auth::router())
        .merge(health::router())
        .merge(webhooks::router())
        .merge(compliance::router())
        .merge(feeds::router())
        .merge(policies::router())
        .merge(suppressions::router())
        .merge(monitor::router())
        .merge(harbor::router())
        .split_for_parts()
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    api().1.to_pretty_json().unwrap_or_else(|_| "{}".into())
}

/// The whole application: API, Swagger UI, middleware.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let (api, doc) = api();
    let request_id = HeaderName::from_static("x-request-id");
    let write_timeout = settings.write_timeout;
    // The dashboard reads and changes everything through the API, authenticated as the
    // signed-in key: the same routes behind the same authentication.
    let for_dashboard: Router = api
        .clone()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .with_state(state.clone());
    api.route_layer(middleware::from_fn(track_metrics))
        .merge(
            crate::ui::router(for_dashboard, settings.tls)
                .route_layer(middleware::from_fn(track_metrics)),
        )
        .merge(utoipa_swagger_ui::SwaggerUi::new("/swagger").url("/swagger/openapi.json", doc))
        .route("/", axum::routing::get(root))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(settings.max_body_size))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            settings.read_timeout,
        ))
        .layer(middleware::from_fn(move |req, next| {
            response_timeout(write_timeout, req, next)
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn(reject_invalid_query))
        .layer(middleware::from_fn(log_server_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(|res: &Response, _: Duration, span: &tracing::Span| {
                    span.record("http.response.status_code", res.status().as_u16());
                    if res.status().is_server_error() {
                        span.record("otel.status_code", "ERROR");
                    }
                }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// A request's span: the root of its trace (or a child of the caller's, named by a W3C
/// `traceparent` header), named `METHOD route` as OpenTelemetry's HTTP conventions do.
/// Every log line of the request carries its `trace_id`.
fn request_span(req: &Request) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = format!(
        "{} {}",
        req.method(),
        if route.is_empty() {
            "unmatched"
        } else {
            &route
        }
    );
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        uri = %req.uri().path(),
        route,
        request_id = id,
        trace_id = tracing::field::Empty,
        otel.name = name,
        otel.kind = "server",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = crate::telemetry::remote_context(req.headers());
    let _ = span.set_parent(parent.clone());
    if let Some(trace_id) = crate::telemetry::trace_id(&span, &parent) {
        span.record("trace_id", trace_id);
    }
    span
}

/// `GET /`: the API's documentation, where a browser pointed at the service lands.
async fn root() -> axum::response::Redirect {
    axum::response::Redirect::temporary("/swagger/")
}

async fn not_found() -> ApiError {
    ApiError::not_found("route", "route_not_found")
}

async fn method_not_allowed() -> Response {
    let mut r = ApiError::BadRequest("method not allowed on this path".into()).into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// A request that takes longer than HTTP_WRITE_TIMEOUT gets a 503.
async fn response_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Request counts and latency per route and status.
async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let elapsed = start.elapsed().as_secs_f64();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("scanvault_http_requests_total", &labels).increment(1);
    metrics::histogram!("scanvault_http_request_duration_seconds", &labels).record(elapsed);
    resp
}

/// A query string must decode to UTF-8 (axum would otherwise replace bad bytes silently).
async fn reject_invalid_query(req: Request, next: Next) -> Response {
    if req.uri().query().is_some_and(|q| !decodes_to_utf8(q)) {
        return ApiError::BadRequest(
            "the query string is not valid UTF-8 once percent-decoded".into(),
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether a query string is UTF-8 once its `%XX` escapes are decoded. A `+` stands for a
/// space in a query string; both are ASCII, so it needs no decoding for this question.
/// An escape that is not one (`%zz`, a lone `%`) stays as written, as axum's decoder leaves it.
fn decodes_to_utf8(query: &str) -> bool {
    percent_encoding::percent_decode_str(query)
        .decode_utf8()
        .is_ok()
}

/// Logs 5xx errors once, with their full chain (never sent to the client).
async fn log_server_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if let Some(LoggedError(detail)) = resp.extensions().get::<LoggedError>() {
        tracing::error!(status = resp.status().as_u16(), error = %detail, "request failed");
    }
    resp
}

/// Used by handlers that need the state outside extractors.
pub async fn state_of(State(s): State<AppState>) -> AppState {
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_must_decode_to_utf8() {
        for ok in [
            "a=b",
            "q=caf%C3%A9",
            "q=caf%c3%a9+au+lait",
            "q=%zz&r=%",
            "q=100%25",
        ] {
            assert!(decodes_to_utf8(ok), "{ok}");
        }
        for bad in ["q=%FF", "q=caf%C3", "q=%C3%28", "a=b&q=%80"] {
            assert!(!decodes_to_utf8(bad), "{bad}");
        }
    }
}
