//! Authentication (API keys as `Authorization: Bearer …`), authorisation by role, rate
//! limiting per key, and the key-management API under `/admin/api-keys`.
//!
//! Roles: `reader` may GET everything; `ingester` may also POST reports and request or
//! retry scans; `admin` may also delete scans, cancel jobs and manage keys. `/health`,
//! `/ready` and the Swagger UI/OpenAPI document stay open. A 401 never says whether a key
//! exists: unknown, malformed, expired and revoked keys all get the same answer.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::params::{text_param, ApiPath};
use super::{AppJson, AppState, Caller};
use crate::store::keys::{split_key, KeyRow, NewKey, Role};
use crate::store::{from_micros, micros, Store, StoreError};

/// How long a verified key is trusted without asking the database again. Revocations
/// through this process take effect at once; through another replica within this time.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Most verified keys kept at once (past it, moka evicts those least likely to be used).
const KEY_CACHE_CAPACITY: u64 = 10_000;

/// How often keys whose rate-limit bucket is full again are dropped from the limiter. Such
/// a key is indistinguishable from one never seen, so dropping it changes no answer; it
/// only bounds the memory to the keys active in the last interval.
const RATE_LIMIT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The longest span a bucket may cover (one request's period times the burst). governor
/// counts time in u64 nanoseconds (584 years), so absurd settings (one request a century)
/// are clamped to this rather than overflow.
const RATE_LIMIT_MAX_WINDOW: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub enabled: bool,
    /// Sustained requests per second per key (0 disables rate limiting).
    pub rate_per_second: f64,
    pub burst: f64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: false,
            rate_per_second: 0.0,
            burst: 0.0,
        }
    }
}

impl AuthSettings {
    /// The settings as a governor quota, or `None` when rate limiting is off (rate 0).
    ///
    /// The rate may be fractional (`0.5` is a request every 2 s), so the quota is built
    /// from its period: one request is replenished every `1 / rate` seconds, at least 1 ns.
    /// The burst is how many requests a key may make at once from a full bucket: its whole
    /// part, at least 1 (a bucket of 2.5 tokens also served 2 requests before waiting).
    /// Period × burst is kept within ten years, so absurd settings cannot overflow.
    pub fn quota(&self) -> Option<Quota> {
        let rate = self.rate_per_second;
        if rate.is_nan() || rate <= 0.0 {
            return None;
        }
        let period = Duration::try_from_secs_f64(rate.recip())
            .unwrap_or(RATE_LIMIT_MAX_WINDOW)
            .clamp(Duration::from_nanos(1), RATE_LIMIT_MAX_WINDOW);
        let most = RATE_LIMIT_MAX_WINDOW.as_nanos() / period.as_nanos();
        let burst = (self.burst.floor().max(1.0) as u128).min(most);
        let burst =
            NonZeroU32::new(u32::try_from(burst).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(period).map(|q| q.allow_burst(burst))
    }
}

/// Process-local authentication state.
pub struct Auth {
    pub settings: AuthSettings,
    /// Verified keys by id, each trusted for [`KEY_CACHE_TTL`].
    keys: moka::sync::Cache<String, KeyRow>,
    /// One GCRA bucket per key id; `None` when rate limiting is off.
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// When idle keys were last dropped from `limiter`.
    swept_at: Mutex<Instant>,
}

impl Auth {
    pub fn new(settings: AuthSettings) -> Auth {
        Auth {
            limiter: settings.quota().map(RateLimiter::keyed),
            settings,
            keys: moka::sync::Cache::builder()
                .max_capacity(KEY_CACHE_CAPACITY)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
            swept_at: Mutex::new(Instant::now()),
        }
    }

    /// Stop trusting a cached key at once (it was revoked).
    fn forget(&self, id: &str) {
        self.keys.invalidate(id);
    }

    async fn key(&self, store: &Store, id: &str) -> Result<Option<KeyRow>, StoreError> {
        if let Some(row) = self.keys.get(id) {
            return Ok(Some(row));
        }
        let row = store.keys().find(id).await?;
        if let Some(r) = &row {
            self.keys.insert(id.to_string(), r.clone());
        }
        Ok(row)
    }

    /// Take one request from the key's bucket; `Err(seconds)` to wait when empty (whole
    /// seconds, at least 1, for `Retry-After`).
    fn take(&self, who: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.sweep_if_due(limiter);
        limiter.check_key(&who.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            (wait.as_secs_f64().ceil() as u64).max(1)
        })
    }

    /// Drop the keys whose bucket is full again, at most once per
    /// [`RATE_LIMIT_SWEEP_INTERVAL`]; the request that finds a sweep due makes it.
    fn sweep_if_due(&self, limiter: &DefaultKeyedRateLimiter<String>) {
        // Another request is checking or sweeping: it will do.
        let Ok(mut swept_at) = self.swept_at.try_lock() else {
            return;
        };
        if swept_at.elapsed() < RATE_LIMIT_SWEEP_INTERVAL {
            return;
        }
        *swept_at = Instant::now();
        drop(swept_at);
        Self::sweep(limiter);
    }

    fn sweep(limiter: &DefaultKeyedRateLimiter<String>) {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// Paths that need no key.
fn is_open(path: &str) -> bool {
    path == "/"
        || path == "/health"
        || path == "/ready"
        || path == "/swagger"
        || path.starts_with("/swagger/")
        // The dashboard signs in with its own session cookie; its data requests come back
        // through this middleware with the session's key.
        || crate::ui::is_ui_path(path)
}

/// The least role that may make this request.
pub fn required_role(method: &Method, path: &str) -> Role {
    // Webhooks hold URLs that may carry tokens: admins only, also to read.
    if path.starts_with("/admin/")
        || path == "/admin"
        || path == "/webhooks"
        || path.starts_with("/webhooks/")
    {
        return Role::Admin;
    }
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Role::Reader,
        Method::POST
            if path == "/scans"
                || path == "/scan-jobs"
                || path == "/sboms"
                || path == "/rematch"
                || path == "/api/v1/scan" =>
        {
            Role::Ingester
        }
        // Triage: triagers and admins.
        Method::POST | Method::DELETE
            if path == "/suppressions" || path.starts_with("/suppressions/") || path == "/vex" =>
        {
            Role::Triager
        }
        // The CI gate: a verdict on a report, nothing stored.
        Method::POST if path.starts_with("/policies/") && path.ends_with("/evaluate") => {
            Role::Ingester
        }
        Method::POST if path.starts_with("/scan-jobs/") && path.ends_with("/retry") => {
            Role::Ingester
        }
        _ => Role::Admin,
    }
}

/// What a presented key turned out to be.
pub enum KeyCheck {
    /// A known, active key whose secret matches.
    Valid(KeyRow),
    /// Missing, malformed, unknown, expired or revoked: all alike to the caller.
    Invalid,
    /// The database could not be asked.
    Failed(ApiError),
}

/// Checks a presented key (`svk_<id>_<secret>`), as every request and the dashboard's
/// sign-in do.
pub async fn verify_key(app: &AppState, presented: &str) -> KeyCheck {
    let Some((id, secret)) = split_key(presented) else {
        metrics::counter!("scanvault_auth_failures_total", "reason" => "missing_or_malformed")
            .increment(1);
        return KeyCheck::Invalid;
    };
    let row = match app.auth.key(&app.store, id).await {
        Ok(r) => r,
        Err(e) => return KeyCheck::Failed(ApiError::from(e)),
    };
    let now = micros(Utc::now());
    match row.filter(|r| r.verifies(secret) && r.is_active(now)) {
        Some(row) => KeyCheck::Valid(row),
        None => {
            metrics::counter!("scanvault_auth_failures_total", "reason" => "rejected").increment(1);
            KeyCheck::Invalid
        }
    }
}

/// The middleware.
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if is_open(&path) || !app.auth.settings.enabled {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string)
        // Harbor's "APIKey" scanner authorization.
        .or_else(|| {
            req.headers()
                .get("x-scanneradapter-api-key")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        });
    let row = match verify_key(&app, presented.as_deref().unwrap_or_default()).await {
        KeyCheck::Valid(row) => row,
        KeyCheck::Invalid => return ApiError::Unauthorized.into_response(),
        KeyCheck::Failed(e) => return e.into_response(),
    };
    let need = required_role(req.method(), &path);
    if !row.role().allows(need) {
        return ApiError::Forbidden(format!(
            "this API key has the role {}; {} {} needs {}",
            row.role(),
            req.method(),
            path,
            need
        ))
        .into_response();
    }
    if let Err(wait) = app.auth.take(&row.id) {
        metrics::counter!("scanvault_rate_limited_total").increment(1);
        return ApiError::TooManyRequests(wait).into_response();
    }
    req.extensions_mut().insert(Caller(Some(row.id.clone())));
    next.run(req).await
}

// ------------------------------------------------------------------------------ admin API

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// reader, ingester, triager or admin.
    pub role: String,
    #[serde(default)]
    pub name: Option<String>,
    /// When the key stops working (RFC 3339), or…
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// …after how long (`30d`, `12h`).
    #[serde(default)]
    pub expires_in: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct KeyView {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub active: bool,
    /// The key itself: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyView {
    fn of(r: &KeyRow, key: Option<String>) -> KeyView {
        KeyView {
            id: r.id.clone(),
            name: r.name.clone(),
            role: r.role.clone(),
            created_at: from_micros(r.created_at),
            created_by: r.created_by.clone(),
            expires_at: r.expires_at.map(from_micros),
            revoked_at: r.revoked_at.map(from_micros),
            active: r.is_active(micros(Utc::now())),
            key,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct KeyListResponse {
    pub count: usize,
    pub items: Vec<KeyView>,
}

/// Parse `--expires`/`expires_in`: a duration (`30d`) or an RFC 3339 time.
pub fn parse_expiry(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| format!("{s:?} is neither a duration (30d, 12h) nor an RFC 3339 time"))?;
    let d = chrono::Duration::from_std(d).map_err(|_| format!("{s:?} is too long"))?;
    now.checked_add_signed(d)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Every API key (without secrets).
#[utoipa::path(get, path = "/admin/api-keys", tag = "admin", responses(
    (status = 200, body = KeyListResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_keys(State(app): State<AppState>) -> Result<Json<KeyListResponse>, ApiError> {
    let items: Vec<KeyView> = app
        .store
        .keys()
        .list()
        .await?
        .iter()
        .map(|r| KeyView::of(r, None))
        .collect();
    Ok(Json(KeyListResponse {
        count: items.len(),
        items,
    }))
}

/// Make an API key. The answer holds the key; it is never shown again.
#[utoipa::path(post, path = "/admin/api-keys", tag = "admin", request_body = CreateKeyRequest, responses(
    (status = 201, body = KeyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 415, description = "The body is not JSON", body = ErrorBody)))]
pub async fn create_key(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CreateKeyRequest>,
) -> Result<Response, ApiError> {
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::BadRequest("role must be reader, ingester, triager or admin".into())
    })?;
    let name = text_param("name", &req.name)?.unwrap_or_default();
    let now = Utc::now();
    let expires_at = match (req.expires_at, req.expires_in.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give expires_at or expires_in, not both".into(),
            ))
        }
        (Some(t), None) => Some(t),
        (None, Some(s)) => Some(parse_expiry(s, now).map_err(ApiError::BadRequest)?),
        (None, None) => None,
    };
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::BadRequest("the expiry is in the past".into()));
    }
    let (row, key) = app
        .store
        .keys()
        .create(NewKey {
            name,
            role,
            expires_at,
            created_by: caller.id(),
            secret: None,
            now,
        })
        .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(KeyView::of(&row, Some(key))),
    )
        .into_response())
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/admin/api-keys/{id}", tag = "admin", params(("id" = String, Path, description = "Key id")), responses(
    (status = 204), (status = 400, description = "Malformed key id", body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let id = id.trim().to_string();
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(
            "key id must be 16 hex characters".into(),
        ));
    }
    if app.store.keys().revoke(&id, Utc::now()).await? {
        app.auth.forget(&id);
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            format!("API key {id}"),
            "key_not_found",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_method_and_path() {
        assert_eq!(required_role(&Method::GET, "/scans"), Role::Reader);
        assert_eq!(required_role(&Method::POST, "/scans"), Role::Ingester);
        assert_eq!(required_role(&Method::POST, "/scan-jobs"), Role::Ingester);
        assert_eq!(required_role(&Method::POST, "/sboms"), Role::Ingester);
        assert_eq!(required_role(&Method::POST, "/rematch"), Role::Ingester);
        assert_eq!(required_role(&Method::POST, "/api/v1/scan"), Role::Ingester);
        assert_eq!(
            required_role(&Method::GET, "/api/v1/metadata"),
            Role::Reader
        );
        assert_eq!(required_role(&Method::POST, "/scan-schedules"), Role::Admin);
        assert_eq!(
            required_role(&Method::POST, "/scan-jobs/x/retry"),
            Role::Ingester
        );
        assert_eq!(
            required_role(&Method::POST, "/scan-jobs/x/cancel"),
            Role::Admin
        );
        assert_eq!(required_role(&Method::DELETE, "/scans/x"), Role::Admin);
        assert_eq!(required_role(&Method::GET, "/admin/api-keys"), Role::Admin);
        assert_eq!(required_role(&Method::GET, "/webhooks"), Role::Admin);
        assert_eq!(required_role(&Method::POST, "/feeds/kev"), Role::Admin);
        assert_eq!(required_role(&Method::POST, "/suppressions"), Role::Triager);
        assert_eq!(
            required_role(&Method::DELETE, "/suppressions/x"),
            Role::Triager
        );
        assert_eq!(required_role(&Method::POST, "/vex"), Role::Triager);
        assert!(Role::Triager.allows(Role::Reader) && !Role::Triager.allows(Role::Ingester));
        assert!(!Role::Ingester.allows(Role::Triager) && Role::Admin.allows(Role::Triager));
        assert_eq!(
            required_role(&Method::POST, "/policies/prod/evaluate"),
            Role::Ingester
        );
        assert_eq!(required_role(&Method::PUT, "/policies/prod"), Role::Admin);
        assert_eq!(required_role(&Method::GET, "/feeds"), Role::Reader);
        assert_eq!(
            required_role(&Method::GET, "/webhooks/x/deliveries"),
            Role::Admin
        );
        assert_eq!(required_role(&Method::PUT, "/scans"), Role::Admin);
        assert!(is_open("/health") && is_open("/ready") && is_open("/swagger/openapi.json"));
        assert!(is_open("/"), "the root only redirects to the documentation");
        assert!(!is_open("/metrics") && !is_open("/scans"));
    }

    fn limited(rate_per_second: f64, burst: f64) -> Auth {
        Auth::new(AuthSettings {
            enabled: true,
            rate_per_second,
            burst,
        })
    }

    #[test]
    fn buckets_refill_and_say_how_long_to_wait() {
        let a = limited(1.0, 2.0);
        assert!(a.take("k").is_ok());
        assert!(a.take("k").is_ok());
        assert_eq!(a.take("k"), Err(1));
        assert!(a.take("other").is_ok(), "buckets are per key");
    }

    #[test]
    fn retry_after_is_in_whole_seconds() {
        // One request every 4 s: the next one is 4 s away.
        let a = limited(0.25, 1.0);
        assert!(a.take("k").is_ok());
        assert_eq!(a.take("k"), Err(4));
        // Ten a second: 100 ms away, which is still "retry after 1 s".
        let a = limited(10.0, 1.0);
        assert!(a.take("k").is_ok());
        assert_eq!(a.take("k"), Err(1));
    }

    #[test]
    fn fractional_settings_map_to_a_period_and_a_whole_burst() {
        let q = |rate, burst| {
            AuthSettings {
                enabled: true,
                rate_per_second: rate,
                burst,
            }
            .quota()
        };
        assert!(q(0.0, 10.0).is_none(), "0 turns rate limiting off");
        let half = q(0.5, 2.5).unwrap();
        assert_eq!(half.replenish_interval(), Duration::from_secs(2));
        assert_eq!(half.burst_size().get(), 2);
        assert_eq!(
            q(100.0, 0.0).unwrap().burst_size().get(),
            1,
            "burst at least 1"
        );
        assert_eq!(
            q(1e12, 1.0).unwrap().replenish_interval(),
            Duration::from_nanos(1)
        );
        let slow = q(1e-300, 1e12).unwrap();
        assert_eq!(slow.replenish_interval(), RATE_LIMIT_MAX_WINDOW);
        assert_eq!(slow.burst_size().get(), 1);
        let a = limited(1e-300, 1e12);
        assert!(a.take("k").is_ok());
        assert!(a.take("k").is_err());
    }

    #[test]
    fn off_means_no_limit_and_no_state() {
        let a = limited(0.0, 0.0);
        assert!(a.limiter.is_none());
        for _ in 0..1000 {
            assert!(a.take("k").is_ok());
        }
    }

    #[test]
    fn idle_keys_are_evicted_and_limited_ones_kept() {
        // One request every 200 ms: a key is idle again 200 ms after its request.
        let a = limited(5.0, 1.0);
        let limiter = a.limiter.as_ref().unwrap();
        for i in 0..100 {
            assert!(a.take(&format!("idle-{i}")).is_ok());
        }
        std::thread::sleep(Duration::from_millis(500));
        assert!(a.take("busy").is_ok());
        assert_eq!(limiter.len(), 101, "no sweep is due yet");
        // Make one due: the idle keys go; the one that has just made a request stays.
        *a.swept_at.lock().unwrap() -= RATE_LIMIT_SWEEP_INTERVAL;
        let _ = a.take("busy");
        assert_eq!(limiter.len(), 1);
        assert!(a.swept_at.lock().unwrap().elapsed() < RATE_LIMIT_SWEEP_INTERVAL);
    }

    #[test]
    fn a_forgotten_key_is_not_served_from_the_cache() {
        let a = limited(0.0, 0.0);
        let row = KeyRow {
            id: "0123456789abcdef".into(),
            name: String::new(),
            role: "admin".into(),
            salt: String::new(),
            secret_hash: String::new(),
            created_at: 0,
            created_by: None,
            expires_at: None,
            revoked_at: None,
        };
        a.keys.insert(row.id.clone(), row.clone());
        assert!(a.keys.get(&row.id).is_some());
        a.forget(&row.id);
        assert!(a.keys.get(&row.id).is_none());
    }

    #[test]
    fn expiries_parse_as_durations_or_times() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_expiry("30d", now).unwrap().to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_expiry("2027-01-01T00:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        assert!(parse_expiry("soon", now).is_err());
    }
}
