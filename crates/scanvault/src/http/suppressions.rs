//! Triage: `POST /suppressions`, `GET /suppressions[?active=true]`, `GET /suppressions/{id}`
//! (with its audit trail), `DELETE /suppressions/{id}`; `triager` or `admin` to change.

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
use super::params::{text_param, ApiPath, ApiQuery};
use super::{AppJson, AppState, Caller};
use crate::store::suppressions::{AuditRow, SuppressionRow, STATES};
use crate::store::{from_micros, micros};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_suppression, list_suppressions))
        .routes(routes!(get_suppression, delete_suppression))
        .routes(routes!(post_vex))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSuppressionRequest {
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    /// Only findings in this package (any package without it).
    #[serde(rename = "Package", default)]
    pub package: Option<String>,
    /// Only images whose name matches this glob (`ghcr.io/acme/*`; every image without it).
    #[serde(rename = "Image", default)]
    pub image: Option<String>,
    /// `not_affected`, `false_positive`, `accepted_risk` or `will_not_fix`.
    #[serde(rename = "State")]
    pub state: String,
    /// Why: kept with the suppression and in its audit trail.
    #[serde(rename = "Reason")]
    pub reason: String,
    /// When it stops applying (RFC 3339); never without it.
    #[serde(rename = "ExpiresAt", default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A suppression as it is now.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SuppressionView {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub state: String,
    pub reason: String,
    /// `api` (a person), `openvex` (`POST /vex`) or `cyclonedx` (a report's analysis).
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Applies now: not deleted, not expired.
    pub active: bool,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
}

impl SuppressionView {
    pub fn of(s: &SuppressionRow, now: i64) -> SuppressionView {
        SuppressionView {
            id: s.id.clone(),
            vulnerability_id: s.vulnerability_id.clone(),
            package: s.package.clone(),
            image: s.image.clone(),
            state: s.state.clone(),
            reason: s.reason.clone(),
            source: s.source.clone(),
            expires_at: s.expires_at.map(from_micros),
            active: s.is_active(now),
            created_at: from_micros(s.created_at),
            created_by: s.created_by.clone(),
            deleted_at: s.deleted_at.map(from_micros),
            deleted_by: s.deleted_by.clone(),
        }
    }
}

/// One entry of a suppression's audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AuditView {
    /// `created`, `deleted` or `expired`.
    pub action: String,
    /// `api:<key id>`, or `system` for an expiry.
    pub actor: String,
    pub at: DateTime<Utc>,
    /// The suppression as it was.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl AuditView {
    fn of(a: AuditRow) -> AuditView {
        AuditView {
            action: a.action,
            actor: a.actor,
            at: from_micros(a.at),
            detail: serde_json::from_str(&a.detail).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SuppressionDetail {
    #[serde(flatten)]
    pub suppression: SuppressionView,
    /// Who did what to it, oldest first.
    pub history: Vec<AuditView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SuppressionList {
    pub count: usize,
    pub items: Vec<SuppressionView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionParams {
    /// `true`: only those applying now.
    pub active: Option<String>,
    /// `openvex`: the active suppressions as an OpenVEX 0.2.0 document.
    pub format: Option<String>,
}

/// The active suppressions as an OpenVEX 0.2.0 document: a statement per suppression,
/// its products the image glob (or the whole fleet) with the package as a subcomponent.
/// `not_affected` and `false_positive` are `not_affected` with the reason as the impact
/// statement; `accepted_risk` and `will_not_fix` are `affected` with the decision and reason
/// as the action statement.
pub fn openvex(rows: &[SuppressionRow], now: DateTime<Utc>) -> serde_json::Value {
    use sha2::Digest as _;
    let ts = |t: i64| from_micros(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut h = sha2::Sha256::new();
    let statements: Vec<serde_json::Value> = rows
        .iter()
        .map(|s| {
            h.update(s.id.as_bytes());
            let mut product = serde_json::json!({
                "@id": match &s.image {
                    Some(g) => format!("urn:scanvault:images:{}", percent_encoding::utf8_percent_encode(g, percent_encoding::NON_ALPHANUMERIC)),
                    None => "urn:scanvault:fleet".to_string(),
                }
            });
            if let Some(p) = &s.package {
                product["subcomponents"] = serde_json::json!([{
                    "@id": format!("urn:scanvault:package:{}", percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC))
                }]);
            }
            let mut st = serde_json::json!({
                "@id": format!("urn:scanvault:suppression:{}", s.id),
                "vulnerability": {"name": s.vulnerability_id},
                "timestamp": ts(s.created_at),
                "products": [product],
            });
            match s.state.as_str() {
                "not_affected" => {
                    st["status"] = "not_affected".into();
                    st["impact_statement"] = s.reason.clone().into();
                }
                "false_positive" => {
                    st["status"] = "not_affected".into();
                    st["impact_statement"] = format!("false positive: {}", s.reason).into();
                }
                other => {
                    st["status"] = "affected".into();
                    st["action_statement"] =
                        format!("{}: {}", other.replace('_', " "), s.reason).into();
                }
            }
            st
        })
        .collect();
    let digest: String = h
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("urn:scanvault:vex:{digest}"),
        "author": "ScanVault",
        "role": "Document Creator",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "version": 1,
        "tooling": concat!("ScanVault ", env!("CARGO_PKG_VERSION")),
        "statements": statements,
    })
}

fn actor(caller: &Caller) -> String {
    caller
        .id()
        .map(|id| format!("api:{id}"))
        .unwrap_or_else(|| "api".into())
}

/// Suppress a vulnerability, fleet-wide or narrowed to a package and an image-name glob.
#[utoipa::path(post, path = "/suppressions", tag = "triage", request_body = CreateSuppressionRequest,
    responses((status = 201, body = SuppressionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 415, description = "The body is not JSON", body = ErrorBody)))]
pub async fn create_suppression(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CreateSuppressionRequest>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let vuln = req.vulnerability_id.trim().to_string();
    if vuln.is_empty() || vuln.len() > 200 || vuln.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "VulnerabilityID must be 1-200 characters without control characters".into(),
        ));
    }
    if !STATES.contains(&req.state.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "State must be one of {}",
            STATES.join(", ")
        )));
    }
    let reason = req.reason.trim().to_string();
    if reason.is_empty() || reason.len() > 4000 {
        return Err(ApiError::BadRequest(
            "Reason must say why, in 1-4000 characters".into(),
        ));
    }
    if req.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::BadRequest("ExpiresAt is in the past".into()));
    }
    let narrow = |name: &str, v: &Option<String>| -> Result<Option<String>, ApiError> {
        match text_param(name, v)? {
            Some(s) if s.len() > 500 => Err(ApiError::BadRequest(format!(
                "{name} must be at most 500 characters"
            ))),
            other => Ok(other),
        }
    };
    let row = SuppressionRow {
        id: uuid::Uuid::now_v7().to_string(),
        vulnerability_id: vuln,
        package: narrow("Package", &req.package)?,
        image: narrow("Image", &req.image)?,
        state: req.state,
        reason,
        expires_at: req.expires_at.map(micros),
        created_at: micros(now),
        created_by: caller.id(),
        source: "api".into(),
        deleted_at: None,
        deleted_by: None,
        expired_at: None,
    };
    app.store
        .suppressions()
        .create_suppression(&row, &actor(&caller))
        .await?;
    app.triage.forget();
    tracing::info!(suppression = %row.id, vulnerability = %row.vulnerability_id, state = %row.state, by = ?row.created_by, "suppression created");
    let location = format!("/suppressions/{}", row.id);
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        Json(SuppressionView::of(&row, micros(now))),
    )
        .into_response())
}

/// Suppressions, newest first (`format=openvex`: the active ones as an OpenVEX document).
#[utoipa::path(get, path = "/suppressions", tag = "triage", params(SuppressionParams),
    responses((status = 200, body = SuppressionList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 404, description = "format=openvex with no active suppression (a VEX document needs a statement)", body = ErrorBody)))]
pub async fn list_suppressions(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<SuppressionParams>,
) -> Result<Response, ApiError> {
    let at = Utc::now();
    let now = micros(at);
    match text_param("format", &p.format)?.as_deref() {
        None | Some("json") => {}
        Some("openvex") => {
            let rows = app.store.suppressions().suppressions(Some(now)).await?;
            if rows.is_empty() {
                return Err(ApiError::not_found(
                    "active suppression to state in VEX",
                    "no_active_suppressions",
                ));
            }
            return Ok((
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                Json(openvex(&rows, at)),
            )
                .into_response());
        }
        Some(_) => return Err(ApiError::bad_param("format", "must be json or openvex")),
    }
    let active = match text_param("active", &p.active)?.as_deref() {
        None | Some("false") => None,
        Some("true") => Some(now),
        Some(_) => return Err(ApiError::bad_param("active", "must be true or false")),
    };
    let items: Vec<SuppressionView> = app
        .store
        .suppressions()
        .suppressions(active)
        .await?
        .iter()
        .map(|s| SuppressionView::of(s, now))
        .collect();
    Ok(Json(SuppressionList {
        count: items.len(),
        items,
    })
    .into_response())
}

/// One suppression with its audit trail.
#[utoipa::path(get, path = "/suppressions/{id}", tag = "triage", params(("id" = String, Path, description = "Suppression id")),
    responses((status = 200, body = SuppressionDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_suppression(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SuppressionDetail>, ApiError> {
    let (row, trail) = app
        .store
        .suppressions()
        .suppression(id.trim())
        .await?
        .ok_or_else(|| ApiError::not_found("suppression", "suppression_not_found"))?;
    Ok(Json(SuppressionDetail {
        suppression: SuppressionView::of(&row, micros(Utc::now())),
        history: trail.into_iter().map(AuditView::of).collect(),
    }))
}

/// Stop a suppression now (it and its trail are kept).
#[utoipa::path(delete, path = "/suppressions/{id}", tag = "triage", params(("id" = String, Path, description = "Suppression id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_suppression(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if app
        .store
        .suppressions()
        .delete_suppression(id.trim(), &actor(&caller), micros(Utc::now()))
        .await?
    {
        app.triage.forget();
        tracing::info!(suppression = %id.trim(), by = ?caller.id(), "suppression deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "active suppression",
            "suppression_not_found",
        ))
    }
}

/// What an OpenVEX document changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct VexResult {
    /// Statements read, one per (vulnerability, product, subcomponent).
    pub decisions: usize,
    /// Suppressions created (replacements included).
    pub created: usize,
    /// Earlier suppressions of the same scope replaced by a new statement.
    pub replaced: usize,
    /// Suppressions an earlier VEX made, lifted by an `affected` statement.
    pub lifted: usize,
    /// Statements already in force.
    pub unchanged: usize,
    /// The suppressions created.
    pub suppressions: Vec<SuppressionView>,
}

/// VEX in: an OpenVEX document (0.2.0, or the 0.0.x drafts); each `not_affected` or `fixed`
/// statement suppresses its vulnerability in the products it names (an OCI purl's
/// `repository_url` or an image reference: that image; a subcomponent's purl: that package),
/// replacing an earlier decision for the same scope; `affected` lifts a VEX-made one.
/// Nothing is stored when the document has an error.
#[utoipa::path(post, path = "/vex", tag = "triage", request_body(content = Object, description = "An OpenVEX document"),
    responses((status = 200, body = VexResult), (status = 400, description = "Not JSON", body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 413, description = "Body larger than HTTP_MAX_BODY_SIZE", body = ErrorBody),
    (status = 415, description = "The body is not JSON", body = ErrorBody),
    (status = 422, description = "Not a valid OpenVEX document (what is wrong, and where)", body = ErrorBody)))]
pub async fn post_vex(
    State(app): State<AppState>,
    caller: Caller,
    AppJson(doc): AppJson<serde_json::Value>,
) -> Result<Json<VexResult>, ApiError> {
    let decisions = scanvault_core::openvex::decisions(&doc).map_err(ApiError::InvalidVex)?;
    let n = decisions.len();
    let applied = crate::vex::apply(
        &app.store,
        &crate::vex::decided(decisions),
        &format!("{}:vex", actor(&caller)),
        caller.id(),
        crate::vex::SOURCE_OPENVEX,
    )
    .await?;
    app.triage.forget();
    tracing::info!(decisions = n, created = applied.created.len(), replaced = applied.replaced,
        lifted = applied.lifted, by = ?caller.id(), "OpenVEX document applied");
    let now = micros(Utc::now());
    Ok(Json(VexResult {
        decisions: n,
        created: applied.created.len(),
        replaced: applied.replaced,
        lifted: applied.lifted,
        unchanged: applied.unchanged,
        suppressions: applied
            .created
            .iter()
            .map(|s| SuppressionView::of(s, now))
            .collect(),
    }))
}

/// Mark suppressions expired and announce them, every few seconds, until `shutdown`.
pub async fn expiry_loop(
    store: crate::store::Store,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match store
            .suppressions()
            .expire_suppressions(micros(Utc::now()))
            .await
        {
            Ok(rows) => {
                for r in rows {
                    tracing::info!(suppression = %r.id, vulnerability = %r.vulnerability_id, "suppression expired");
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiring suppressions failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
}
