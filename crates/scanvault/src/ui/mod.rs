//! The dashboard at `/ui/`: server-rendered pages (maud), no script, no external assets.
//!
//! Every page reads its data through the HTTP API itself: the page's handler sends
//! in-process requests to the API router, with the signed-in key as their bearer token, so
//! the API's authentication, roles and validation apply to the dashboard exactly as they
//! do to any client (ADR 0028). The key is kept in an `HttpOnly`, `SameSite=Strict` session
//! cookie (`Secure` over TLS); every form carries a CSRF token derived from it.

mod chart;
mod pages;
mod view;

use axum::body::Body;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::html;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt as _;

use crate::http::auth::{required_role, verify_key, KeyCheck};
use crate::http::AppState;
use crate::store::keys::Role;

/// The session cookie: the API key the user signed in with.
const SESSION_COOKIE: &str = "scanvault_session";
/// The sign-in form's own CSRF cookie (double submit: there is no session yet).
const LOGIN_COOKIE: &str = "scanvault_login";
/// The largest API answer a page reads (a page of 500 findings is far below it).
const MAX_API_BODY: usize = 16 << 20;

/// What the dashboard's handlers share.
pub struct Ui {
    /// The API router with its authentication: where pages get their data.
    api: Router,
    /// Served over TLS: cookies are `Secure`.
    tls: bool,
    /// Signs CSRF tokens when authentication is disabled (there is no key to sign with).
    anonymous_secret: String,
    /// Compliance reports by their parameters, made in the background.
    pub compliance: Arc<Slow<crate::http::compliance::ComplianceReport>>,
    /// API answers that rank the whole fleet (top CVEs by risk), made in the background.
    pub rankings: Arc<Slow<Value>>,
}

/// Answers too slow to make while a page waits (a report over the fleet's whole history, a
/// ranking of every vulnerability): the last one made for a key, at most a given age, while
/// a newer one is made in the background, one at a time per key. A page waits for a new one
/// at most [`SLOW_WAIT`], so quick ones (a small fleet) are shown at once.
pub struct Slow<V> {
    entries: std::sync::Mutex<HashMap<String, SlowEntry<V>>>,
}

struct SlowEntry<V> {
    /// The value and when it was made.
    value: Option<(Arc<V>, chrono::DateTime<chrono::Utc>)>,
    made_at: Option<std::time::Instant>,
    making: bool,
    used_at: std::time::Instant,
}

/// How long a page waits for a value being made before it shows the last one (or none).
const SLOW_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// Keys kept per cache (the least recently used one goes first).
const SLOW_KEYS: usize = 32;

impl<V: Send + Sync + 'static> Default for Slow<V> {
    fn default() -> Self {
        Slow {
            entries: Default::default(),
        }
    }
}

impl<V: Send + Sync + 'static> Slow<V> {
    /// The value of `key` (and when it was made); when there is none or it is older than
    /// `ttl`, `make` makes a new one in the background.
    pub async fn get<F>(
        self: &Arc<Self>,
        key: &str,
        ttl: std::time::Duration,
        make: F,
    ) -> Option<(Arc<V>, chrono::DateTime<chrono::Utc>)>
    where
        F: std::future::Future<Output = Option<V>> + Send + 'static,
    {
        let (value, start) = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            if !entries.contains_key(key) && entries.len() >= SLOW_KEYS {
                let oldest = entries
                    .iter()
                    .filter(|(_, e)| !e.making)
                    .min_by_key(|(_, e)| e.used_at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
            let e = entries.entry(key.to_string()).or_insert(SlowEntry {
                value: None,
                made_at: None,
                making: false,
                used_at: now,
            });
            e.used_at = now;
            let start = !e.making && e.made_at.is_none_or(|t| t.elapsed() > ttl);
            e.making |= start;
            (e.value.clone(), start)
        };
        if !start {
            return value;
        }
        let (this, k) = (self.clone(), key.to_string());
        let task = tokio::spawn(async move {
            let made = make.await;
            let mut entries = this.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = entries.get_mut(&k) {
                e.making = false;
                e.made_at = Some(std::time::Instant::now());
                if let Some(v) = made {
                    e.value = Some((Arc::new(v), chrono::Utc::now()));
                }
            }
        });
        if tokio::time::timeout(SLOW_WAIT, task).await.is_ok() {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            return entries.get(key).and_then(|e| e.value.clone());
        }
        value
    }
}

/// The dashboard's routes; `api` answers its in-process requests.
pub fn router(api: Router, tls: bool) -> Router<AppState> {
    let ui = Arc::new(Ui {
        api,
        tls,
        anonymous_secret: format!("{:032x}", rand::random::<u128>()),
        compliance: Default::default(),
        rankings: Default::default(),
    });
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(pages::fleet))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/search", get(pages::search))
        .route("/ui/images", get(pages::images))
        .route("/ui/image", get(pages::image))
        .route("/ui/cve/{id}", get(pages::cve))
        .route("/ui/jobs", get(pages::jobs).post(pages::request_scan))
        .route("/ui/jobs/{id}", get(pages::job))
        .route("/ui/jobs/{id}/{action}", post(pages::job_action))
        .route(
            "/ui/suppressions",
            get(pages::suppressions).post(pages::create_suppression),
        )
        .route(
            "/ui/suppressions/{id}/delete",
            post(pages::delete_suppression),
        )
        .route("/ui/policies", get(pages::policies).post(pages::put_policy))
        .route("/ui/policies/{name}/delete", post(pages::delete_policy))
        .route("/ui/compliance", get(pages::compliance))
        .route("/ui/download/scans/{id}/{what}", get(pages::download))
        .route("/ui/download/compliance", get(pages::download_compliance))
        .route("/ui/assets/ui.css", get(stylesheet))
        .route("/ui/assets/icon.svg", get(icon))
        .layer(axum::middleware::map_response(security_headers))
        .layer(Extension(ui))
}

/// Whether a path is the dashboard's (it authenticates with its session, not a header).
pub fn is_ui_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("ui.css"),
    )
        .into_response()
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("icon.svg"),
    )
        .into_response()
}

/// No script, nothing from elsewhere, never framed, never cached.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

// ----------------------------------------------------------------------------- sessions

/// A signed-in user (or anybody, when authentication is disabled).
#[derive(Clone)]
pub struct Session {
    ui: Arc<Ui>,
    /// The API key; `None` when authentication is disabled.
    key: Option<String>,
    pub role: Role,
    /// The key's name, to show who is signed in.
    pub who: String,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let ui = parts
            .extensions
            .get::<Arc<Ui>>()
            .cloned()
            .expect("the dashboard's routes carry their state");
        if !app.auth.settings.enabled {
            let csrf = csrf_token(&ui.anonymous_secret);
            return Ok(Session {
                ui,
                key: None,
                role: Role::Admin,
                who: "authentication disabled".into(),
                csrf,
            });
        }
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/ui/");
            let next = if parts.method == Method::GET {
                next
            } else {
                "/ui/"
            };
            Redirect::to(&format!("/ui/login?next={}", urlencode(next))).into_response()
        };
        let Some(key) = cookie_value(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        match verify_key(app, &key).await {
            KeyCheck::Valid(row) => Ok(Session {
                csrf: csrf_token(&key),
                role: row.role(),
                who: if row.name.is_empty() {
                    row.id.clone()
                } else {
                    row.name.clone()
                },
                key: Some(key),
                ui,
            }),
            KeyCheck::Invalid => Err(to_login()),
            KeyCheck::Failed(e) => Err(e.into_response()),
        }
    }
}

impl Session {
    /// Whether this session's role may make this API request.
    pub fn may(&self, method: Method, path: &str) -> bool {
        self.role.allows(required_role(&method, path))
    }

    /// Checks a form's CSRF token.
    pub fn check_csrf(&self, token: &str) -> Result<(), PageError> {
        if crate::store::keys::constant_time_eq(token.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "The form has expired or did not come from this dashboard. Reload the page and try again.",
            ))
        }
    }

    /// An in-process API request as this session's key; the answer as the API made it (its
    /// body not read yet: downloads pass it on as it comes).
    pub async fn respond(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, PageError> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(key) = &self.key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .map_err(|e| PageError::internal(format!("building a request to {path}: {e}")))?;
        self.ui
            .api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| PageError::internal(format!("{path}: {e}")))
    }

    /// An in-process API request as this session's key; the answer's status and body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), PageError> {
        let (parts, body) = self.respond(method, path, body).await?.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_API_BODY)
            .await
            .map_err(|e| PageError::internal(format!("reading {path}: {e}")))?;
        Ok((parts.status, parts.headers, bytes))
    }

    /// A download: the API's answer to `GET path` passed on as it comes (never held whole
    /// in memory), saved by the browser as `filename`; an API error is the page's error.
    pub async fn download(&self, path: &str, filename: &str) -> Result<Response, PageError> {
        let res = self.respond(Method::GET, path, None).await?;
        if !res.status().is_success() {
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), MAX_API_BODY)
                .await
                .unwrap_or_default();
            return Err(json_answer(status, &bytes)
                .err()
                .unwrap_or_else(|| PageError::new(status, "the download failed")));
        }
        let (mut parts, body) = res.into_parts();
        let keep = parts.headers.get(header::CONTENT_TYPE).cloned();
        parts.headers.clear();
        if let Some(ct) = keep {
            parts.headers.insert(header::CONTENT_TYPE, ct);
        }
        let safe: String = filename
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            parts.headers.insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(Response::from_parts(parts, body))
    }

    /// `GET path` as JSON; an API error becomes the page's error.
    pub async fn get(&self, path: &str) -> Result<Value, PageError> {
        self.send(Method::GET, path, None).await
    }

    /// A change through the API (POST, PUT, DELETE); an API error becomes the page's error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PageError> {
        let (status, _, body) = self.call(method, path, body).await?;
        json_answer(status, &body)
    }
}

fn json_answer(status: StatusCode, body: &[u8]) -> Result<Value, PageError> {
    let value: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    };
    if status.is_success() {
        return Ok(value);
    }
    let message = value
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("the request failed")
        .to_string();
    Err(PageError::new(status, message))
}

/// The CSRF token of a session: the HMAC-SHA256 of a fixed text under its key (as webhooks
/// sign their bodies).
fn csrf_token(key: &str) -> String {
    crate::webhooks::signature(key, b"scanvault-ui:csrf")
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(::cookie::Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: a browser-session cookie (no expiry) for the dashboard's paths.
fn set_cookie(ui: &Ui, headers: &HeaderMap, name: &str, value: &str, remove: bool) -> String {
    let mut c = ::cookie::Cookie::build((name.to_string(), value.to_string()))
        .path("/ui")
        .http_only(true)
        .same_site(::cookie::SameSite::Strict)
        .secure(ui.tls || forwarded_https(headers));
    if remove {
        c = c.max_age(::cookie::time::Duration::ZERO);
    }
    c.build().encoded().to_string()
}

/// Behind a TLS-terminating proxy that says so.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Everything but RFC 3986's unreserved characters is escaped (in a path segment or a query
/// value alike).
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, ESCAPED).to_string()
}

/// Where to go after signing in: only a dashboard path of this service.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if is_ui_path(n) && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/ui/".to_string(),
    }
}

// ------------------------------------------------------------------------ sign in, out

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

async fn login_form(
    Extension(ui): Extension<Arc<Ui>>,
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextParam>,
) -> Response {
    if !app.auth.settings.enabled {
        return Redirect::to("/ui/").into_response();
    }
    login_page(&ui, &headers, q.next.as_deref(), None, StatusCode::OK)
}

fn login_page(
    ui: &Ui,
    headers: &HeaderMap,
    next: Option<&str>,
    problem: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = format!("{:032x}", rand::random::<u128>());
    let body = view::bare(
        "Sign in",
        html! {
            main.signin {
                h1 { "ScanVault" }
                form method="post" action="/ui/login" {
                    @if let Some(p) = problem { p.error role="alert" { (p) } }
                    input type="hidden" name="csrf" value=(nonce);
                    input type="hidden" name="next" value=(safe_next(next));
                    label for="key" { "API key" }
                    input #key type="password" name="key" autocomplete="current-password"
                        required placeholder="svk_…" autofocus;
                    button type="submit" { "Sign in" }
                }
                p.muted { "Any API key signs in; what you can see and do follows its role." }
            }
        },
    );
    let mut res = (status, body).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(ui, headers, LOGIN_COOKIE, &nonce, false)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
    csrf: String,
    next: Option<String>,
}

async fn login(
    Extension(ui): Extension<Arc<Ui>>,
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty()
        || !crate::store::keys::constant_time_eq(expected.as_bytes(), f.csrf.as_bytes())
    {
        return login_page(
            &ui,
            &headers,
            f.next.as_deref(),
            Some("The form expired. Sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let key = f.key.trim();
    match verify_key(&app, key).await {
        KeyCheck::Valid(_) => {
            let mut res = Redirect::to(&safe_next(f.next.as_deref())).into_response();
            for c in [
                set_cookie(&ui, &headers, SESSION_COOKIE, key, false),
                set_cookie(&ui, &headers, LOGIN_COOKIE, "", true),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
        KeyCheck::Invalid => login_page(
            &ui,
            &headers,
            f.next.as_deref(),
            Some("That key is not valid (unknown, expired or revoked)."),
            StatusCode::UNAUTHORIZED,
        ),
        KeyCheck::Failed(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

async fn logout(
    Extension(ui): Extension<Arc<Ui>>,
    headers: HeaderMap,
    session: Session,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = session.check_csrf(&f.csrf) {
        return e.into_response();
    }
    let mut res = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&ui, &headers, SESSION_COOKIE, "", true)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

// ------------------------------------------------------------------------------- errors

/// A page that could not be shown: its status and what to tell the user.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    fn internal(detail: String) -> PageError {
        tracing::error!(error = %detail, "dashboard request failed");
        PageError::new(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.")
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/ui/login").into_response();
        }
        let title = match self.status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            s if s.is_client_error() => "Cannot do that",
            _ => "Error",
        };
        let body = view::bare(
            title,
            html! {
                main.signin {
                    h1 { (title) }
                    p.error role="alert" { (self.message) }
                    p { a href="/ui/" { "Back to the fleet" } }
                }
            },
        );
        (self.status, body).into_response()
    }
}

/// A page or its error.
pub type PageResult = Result<axum::response::Html<String>, PageError>;
