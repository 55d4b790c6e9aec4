//! Compliance policies: `PUT /policies/{name}`, `GET /policies`, `GET /policies/{name}`,
//! `DELETE /policies/{name}` (admin to change), and `POST /policies/{name}/evaluate`
//! (ingester: the CI gate), which answers the verdict on a report without storing it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use scanvault_core::policy::{Policy, Violation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::params::ApiPath;
use super::{AppState, Caller};
use crate::compliance::{valid_name, DEFAULT_POLICY};
use crate::ingest::IngestOverrides;
use crate::store::policies::PolicyRow;
use crate::store::scans::ScanSource;
use crate::store::{from_micros, micros};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies))
        .routes(routes!(put_policy, get_policy, delete_policy))
        .routes(routes!(evaluate_policy))
}

/// A policy as stored, with its name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyView {
    pub name: String,
    /// `default` comes from COMPLIANCE_FAIL_SEVERITY and cannot be changed here.
    pub builtin: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Globs over image names; empty: every image.
    pub images: Vec<String>,
    /// `MaxSeverity`, `MinCVSS`, `FixableOnly`, `FixAvailableForDays`, `KEV`, `MinEPSS`.
    #[schema(value_type = Object)]
    pub rules: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

impl PolicyView {
    fn of(name: &str, p: &Policy, row: Option<&PolicyRow>) -> PolicyView {
        PolicyView {
            name: name.to_string(),
            builtin: row.is_none(),
            description: p.description.clone(),
            images: p.images.clone(),
            rules: serde_json::to_value(&p.rules).unwrap_or_default(),
            updated_at: row.map(|r| from_micros(r.updated_at)),
            updated_by: row.and_then(|r| r.updated_by.clone()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyList {
    pub count: usize,
    pub items: Vec<PolicyView>,
}

/// A rule a finding fails.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ViolationView {
    pub policy: String,
    /// `MaxSeverity`, `MinCVSS`, `KEV`, `MinEPSS` or `FixAvailableForDays`.
    pub rule: String,
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    pub package: String,
    pub installed_version: String,
    pub severity: String,
}

impl From<Violation> for ViolationView {
    fn from(v: Violation) -> Self {
        ViolationView {
            policy: v.policy,
            rule: v.rule,
            vulnerability_id: v.vulnerability_id,
            package: v.package,
            installed_version: v.installed_version,
            severity: v.severity,
        }
    }
}

/// The verdict on a report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct EvaluationView {
    pub policy: String,
    pub image_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_tag: String,
    /// Whether the policy's `Images` globs match the image (a policy that does not apply
    /// finds nothing).
    pub applies: bool,
    pub compliant: bool,
    /// Findings of the report.
    pub findings: usize,
    pub violations: Vec<ViolationView>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim().to_string();
    if valid_name(&name) {
        Ok(name)
    } else {
        Err(ApiError::BadRequest(
            "a policy name is 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit".into(),
        ))
    }
}

async fn load(app: &AppState, name: &str) -> Result<Policy, ApiError> {
    crate::compliance::policy(&app.store, name, app.ingest.compliance_fail_on)
        .await
        .map_err(ApiError::Internal)?
        .ok_or_else(|| ApiError::not_found(format!("policy {name}"), "policy_not_found"))
}

/// Every policy, `default` first.
#[utoipa::path(get, path = "/policies", tag = "policies",
    responses((status = 200, body = PolicyList), (status = 401, body = ErrorBody)))]
pub async fn list_policies(State(app): State<AppState>) -> Result<Json<PolicyList>, ApiError> {
    let default = scanvault_core::policy::default_policy(app.ingest.compliance_fail_on);
    let mut items = vec![PolicyView::of(DEFAULT_POLICY, &default, None)];
    for row in app.store.policies().policies().await? {
        let p = row.policy().map_err(ApiError::Internal)?;
        items.push(PolicyView::of(&row.name, &p, Some(&row)));
    }
    Ok(Json(PolicyList {
        count: items.len(),
        items,
    }))
}

/// Create or replace a policy.
#[utoipa::path(put, path = "/policies/{name}", tag = "policies",
    params(("name" = String, Path, description = "Policy name")),
    request_body(content = Object, description = "`{Description?, Images?: [glob], Rules: {MaxSeverity?, MinCVSS?, FixableOnly?, FixAvailableForDays?, KEV?, MinEPSS?}}`"),
    responses((status = 201, body = PolicyView), (status = 200, body = PolicyView), (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_policy(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = check_name(&name)?;
    if name == DEFAULT_POLICY {
        return Err(ApiError::BadRequest(
            "the policy 'default' is COMPLIANCE_FAIL_SEVERITY's; give another name".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(&body);
    let policy: Policy = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ApiError::BadRequest(format!("the policy at {}: {}", e.path(), e.inner())))?;
    policy.validate().map_err(ApiError::BadRequest)?;
    let row = PolicyRow {
        name: name.clone(),
        body: serde_json::to_string(&policy).map_err(|e| ApiError::Internal(e.into()))?,
        updated_at: micros(Utc::now()),
        updated_by: caller.id(),
    };
    let created = app.store.policies().put_policy(&row).await?;
    app.policies.forget();
    tracing::info!(policy = %name, created, by = ?row.updated_by, body = %row.body, "policy saved");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(PolicyView::of(&name, &policy, Some(&row)))).into_response())
}

/// One policy.
#[utoipa::path(get, path = "/policies/{name}", tag = "policies",
    params(("name" = String, Path, description = "Policy name")),
    responses((status = 200, body = PolicyView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_policy(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PolicyView>, ApiError> {
    let name = check_name(&name)?;
    let policy = load(&app, &name).await?;
    let row = app.store.policies().policy(&name).await?;
    Ok(Json(PolicyView::of(&name, &policy, row.as_ref())))
}

/// Delete a policy.
#[utoipa::path(delete, path = "/policies/{name}", tag = "policies",
    params(("name" = String, Path, description = "Policy name")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_policy(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let name = check_name(&name)?;
    if name == DEFAULT_POLICY {
        return Err(ApiError::BadRequest(
            "the policy 'default' is COMPLIANCE_FAIL_SEVERITY's; it cannot be deleted".into(),
        ));
    }
    let deleted = app.store.policies().delete_policy(&name).await?;
    app.policies.forget();
    if deleted {
        tracing::info!(policy = %name, by = ?caller.id(), "policy deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            format!("policy {name}"),
            "policy_not_found",
        ))
    }
}

/// The policy's verdict on a report (any format `POST /scans` reads, one image), without
/// storing anything.
#[utoipa::path(post, path = "/policies/{name}/evaluate", tag = "policies",
    params(("name" = String, Path, description = "Policy name (`default`: COMPLIANCE_FAIL_SEVERITY)")),
    request_body(content = Object, description = "A report (Trivy, Grype or CycloneDX JSON)"),
    responses((status = 200, body = EvaluationView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn evaluate_policy(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> Result<Json<EvaluationView>, ApiError> {
    let name = check_name(&name)?;
    let policy = load(&app, &name).await?;
    let settings = (*app.ingest).clone();
    let new = tokio::task::spawn_blocking(move || {
        crate::ingest::build_new_scan(
            body,
            &IngestOverrides::default(),
            &settings,
            ScanSource::Ingest,
            Utc::now(),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("parsing task failed: {e}")))??;
    let findings: Vec<&scanvault_core::report::Finding> = new.report.findings.iter().collect();
    let verdict =
        crate::compliance::evaluate(&app.store, &name, &policy, &new.image_name, &findings).await?;
    Ok(Json(EvaluationView {
        compliant: verdict.compliant(),
        policy: name,
        image_name: new.image_name.clone(),
        image_tag: new.image_tag.clone(),
        applies: verdict.applies,
        findings: findings.len(),
        violations: verdict
            .violations
            .into_iter()
            .map(ViolationView::from)
            .collect(),
    }))
}
