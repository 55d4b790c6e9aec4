//! The Harbor pluggable scanner API v1.1 (goharbor/pluggable-scanner-spec,
//! `api/spec/scanner-adapter-openapi-v1.1.yaml`): Harbor registers ScanVault as a scanner,
//! posts scan requests (the artifact, the registry URL and a pull `Authorization`), and
//! polls for the report. A scan request is a scan job of the ad-hoc lane whose registry
//! access is the request's (kept while the job may run); the report is the job's scan.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use scanvault_core::report::Severity;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::params::ApiPath;
use super::{AppState, Caller};
use crate::store::jobs::{Lane, NewJob};
use crate::store::scans::FindingFilter;

pub const METADATA_MIME: &str = "application/vnd.scanner.adapter.metadata+json; version=1.0";
pub const SCAN_RESPONSE_MIME: &str =
    "application/vnd.scanner.adapter.scan.response+json; version=1.0";
pub const ERROR_MIME: &str = "application/vnd.scanner.adapter.error+json; version=1.0";
/// The Harbor vulnerability report (the default when `Accept` names none).
pub const HARBOR_REPORT_MIME: &str =
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0";
/// The generic vulnerability report of v1.1 (same schema).
pub const GENERIC_REPORT_MIME: &str = "application/vnd.security.vulnerability.report; version=1.1";
pub const RAW_REPORT_MIME: &str = "application/vnd.scanner.adapter.vuln.report.raw";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Seconds Harbor waits before asking for a report again (it reads at most 127).
const REFRESH_AFTER: &str = "5";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(metadata))
        .routes(routes!(accept_scan))
        .routes(routes!(scan_report))
}

/// An error as the scanner API writes it: `{"error": {"message": …}}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, ERROR_MIME)],
        Json(json!({"error": {"message": message.into()}})),
    )
        .into_response()
}

fn scanner() -> Value {
    json!({"name": "ScanVault", "vendor": "ScanVault", "version": env!("CARGO_PKG_VERSION")})
}

/// What the scanner is and what it consumes and produces.
#[utoipa::path(get, path = "/api/v1/metadata", tag = "harbor",
    responses((status = 200, description = "ScannerAdapterMetadata", content_type = "application/vnd.scanner.adapter.metadata+json; version=1.0", body = Object)))]
pub async fn metadata(State(app): State<AppState>) -> Response {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "harbor.scanner-adapter/scanner-type".into(),
        "os-package-vulnerability".into(),
    );
    // The vulnerability database the last re-match round was made for.
    if let Ok((db, _)) = app.store.monitor().rematch_state().await {
        if !db.is_empty() {
            properties.insert(
                "harbor.scanner-adapter/vulnerability-database-updated-at".into(),
                db.into(),
            );
        }
    }
    let body = json!({
        "scanner": scanner(),
        "capabilities": [{
            "type": "vulnerability",
            "consumes_mime_types": [OCI_MANIFEST, DOCKER_MANIFEST],
            "produces_mime_types": [GENERIC_REPORT_MIME, HARBOR_REPORT_MIME],
        }],
        "properties": properties,
    });
    ([(header::CONTENT_TYPE, METADATA_MIME)], Json(body)).into_response()
}

/// A Harbor scan request (unknown fields, such as `enabled_capabilities`, are ignored).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ScanRequest {
    #[serde(default)]
    pub registry: Option<RegistryPart>,
    #[serde(default)]
    pub artifact: Option<ArtifactPart>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RegistryPart {
    /// Base URL of the registry, e.g. `https://core.harbor.domain`.
    #[serde(default)]
    pub url: Option<String>,
    /// `Authorization` header value to pull with (`Basic …` or `Bearer …`).
    #[serde(default)]
    pub authorization: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct ArtifactPart {
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
}

/// Accept a scan request: queue a scan of `registry.url`/`artifact.repository`@`digest`
/// with the request's registry authorization, and answer its id at once.
#[utoipa::path(post, path = "/api/v1/scan", tag = "harbor",
    request_body(content = ScanRequest, content_type = "application/vnd.scanner.adapter.scan.request+json; version=1.0"),
    responses(
        (status = 202, description = "ScanResponse `{id}`", content_type = "application/vnd.scanner.adapter.scan.response+json; version=1.0", body = Object),
        (status = 400, description = "Not JSON", content_type = "application/vnd.scanner.adapter.error+json; version=1.0", body = Object),
        (status = 422, description = "A required field is missing or invalid", content_type = "application/vnd.scanner.adapter.error+json; version=1.0", body = Object),
    ))]
pub async fn accept_scan(
    State(app): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Response {
    let req: ScanRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let registry = req.registry.unwrap_or_default();
    let artifact = req.artifact.unwrap_or_default();
    let Some(url) = registry.url.filter(|u| !u.trim().is_empty()) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "missing registry.url");
    };
    let Some(repository) = artifact.repository.filter(|r| !r.trim().is_empty()) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing artifact.repository",
        );
    };
    let Some(digest) = artifact.digest.filter(|d| !d.trim().is_empty()) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "missing artifact.digest");
    };
    let authorization = registry.authorization.unwrap_or_default();
    let access = match scanvault_registry::RegistryAccess::from_url(
        &url,
        Some(authorization.as_str()).filter(|a| !a.trim().is_empty()),
    ) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    let name = match artifact.tag.as_deref().filter(|t| !t.is_empty()) {
        Some(tag) => format!("{}/{repository}:{tag}@{digest}", access.registry),
        None => format!("{}/{repository}@{digest}", access.registry),
    };
    let reference = match scanvault_registry::Reference::parse(&name) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    let created = app
        .store
        .jobs()
        .create(NewJob {
            max_attempts: app.jobs.max_attempts,
            requested_by: caller.id(),
            credentials: Some((url, authorization)),
            ..NewJob::scan(
                reference.to_string(),
                reference.familiar_name(),
                Lane::Adhoc,
                Utc::now(),
            )
        })
        .await;
    match created {
        Ok((job, new)) => {
            if new {
                app.signals.job_queued();
            }
            (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, SCAN_RESPONSE_MIME)],
                Json(json!({"id": job.id})),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The report format an `Accept` header asks for (none or `*/*`: the Harbor report).
fn wanted(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let norm = |s: &str| s.replace(' ', "").to_ascii_lowercase();
    let a = norm(accept);
    if a.is_empty() || a == "*/*" {
        return Some(HARBOR_REPORT_MIME);
    }
    [HARBOR_REPORT_MIME, GENERIC_REPORT_MIME, RAW_REPORT_MIME]
        .into_iter()
        .find(|m| a.split(',').any(|part| part == norm(m)))
}

/// The report of a scan request: 302 with `Refresh-After` while the job runs, 200 with the
/// report, 500 when the scan failed, 404 for an unknown id.
#[utoipa::path(get, path = "/api/v1/scan/{scan_request_id}/report", tag = "harbor",
    params(("scan_request_id" = String, Path, description = "The id `POST /api/v1/scan` answered")),
    responses(
        (status = 200, description = "HarborVulnerabilityReport", body = Object),
        (status = 302, description = "Not ready: ask again after `Refresh-After` seconds"),
        (status = 404, description = "Unknown scan request id"),
        (status = 415, description = "A report format this scanner does not produce", body = Object),
        (status = 500, description = "The scan failed", content_type = "application/vnd.scanner.adapter.error+json; version=1.0", body = Object),
    ))]
pub async fn scan_report(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(mime) = wanted(&headers) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("this scanner produces {GENERIC_REPORT_MIME} and {HARBOR_REPORT_MIME}"),
        );
    };
    let job = match app.store.jobs().find(&id).await {
        Ok(Some(j)) => j,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no scan request {id}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let status = job.status();
    if status.is_active() {
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut()
            .insert("Refresh-After", HeaderValue::from_static(REFRESH_AFTER));
        return r;
    }
    let Some(scan_id) = job
        .scan_id
        .clone()
        .filter(|_| status.as_str() == "completed")
    else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the scan {}: {}",
                status.as_str(),
                job.error_message.as_deref().unwrap_or("no report")
            ),
        );
    };
    if mime == RAW_REPORT_MIME {
        return match app.store.scans().report(&scan_id).await {
            Ok(Some(raw)) => ([(header::CONTENT_TYPE, RAW_REPORT_MIME)], raw).into_response(),
            Ok(None) => error(StatusCode::INTERNAL_SERVER_ERROR, "the report is gone"),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let findings = match app
        .store
        .scans()
        .findings(&scan_id, &FindingFilter::all())
        .await
    {
        Ok(f) => f,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let reference = scanvault_registry::Reference::parse(&job.image_ref).ok();
    let artifact = json!({
        "repository": reference.as_ref().map(|r| r.repository.clone()),
        "digest": job.resolved_digest.clone().or_else(|| reference.as_ref().and_then(|r| r.digest.clone())),
        "tag": reference.as_ref().and_then(|r| r.tag.clone()),
        "mime_type": Value::Null,
    });
    let body = report(artifact, &findings);
    ([(header::CONTENT_TYPE, mime)], Json(body)).into_response()
}

/// Harbor's severity words.
fn harbor_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "High",
        Severity::Medium => "Medium",
        Severity::Low => "Low",
        Severity::Unknown => "Unknown",
    }
}

/// A HarborVulnerabilityReport of the findings.
pub fn report(artifact: Value, findings: &[crate::store::scans::FindingRow]) -> Value {
    let top = findings
        .iter()
        .map(|f| Severity::from_rank(f.severity))
        .max_by_key(|s| s.rank());
    let vulnerabilities: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut v = json!({
                "id": f.vulnerability_id,
                "package": f.pkg_name,
                "version": f.pkg_version,
                "severity": harbor_severity(Severity::from_rank(f.severity)),
                "description": f.description.clone().or_else(|| f.title.clone()).unwrap_or_default(),
                "links": f.primary_url.iter().collect::<Vec<_>>(),
            });
            if let Some(fix) = &f.fixed_version {
                v["fix_version"] = fix.clone().into();
            }
            if let Some(score) = f.cvss_score {
                v["preferred_cvss"] = json!({"score_v3": score});
            }
            if let Some(status) = &f.status {
                v["status"] = status.clone().into();
            }
            v
        })
        .collect();
    json!({
        "generated_at": Utc::now().to_rfc3339(),
        "artifact": artifact,
        "scanner": scanner(),
        "severity": top.map_or("None", harbor_severity),
        "vulnerabilities": vulnerabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_chooses_the_report() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(wanted(&HeaderMap::new()), Some(HARBOR_REPORT_MIME));
        assert_eq!(wanted(&h("*/*")), Some(HARBOR_REPORT_MIME));
        assert_eq!(
            wanted(&h(
                "application/vnd.security.vulnerability.report; version=1.1"
            )),
            Some(GENERIC_REPORT_MIME)
        );
        assert_eq!(
            wanted(&h(
                "application/vnd.scanner.adapter.vuln.report.harbor+json;version=1.0"
            )),
            Some(HARBOR_REPORT_MIME)
        );
        assert_eq!(wanted(&h("text/html")), None);
    }
}
