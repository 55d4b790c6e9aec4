//! Query and path parameters: the extractors whose rejections are our JSON 400, and the
//! checks every endpoint applies to its parameters.

use axum::extract::{FromRequestParts, Path, Query};
use scanvault_core::report::Severity;

use super::error::ApiError;

/// Query extractor whose rejection is our JSON 400.
#[derive(FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejection is our JSON 400.
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// A text parameter: trimmed, empty means absent; bounded length, no control characters.
pub fn text_param(name: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    let Some(v) = v.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if v.len() > 512 {
        return Err(ApiError::bad_param(name, "is longer than 512 bytes"));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::bad_param(name, "contains control characters"));
    }
    Ok(Some(v.to_string()))
}

pub fn int_param(
    name: &str,
    v: &Option<String>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ApiError> {
    let Some(raw) = v.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let n: i64 = raw.parse().map_err(|_| {
        ApiError::bad_param(
            name,
            format!("must be an integer (got {:?})", truncate(raw, 40)),
        )
    })?;
    if n < min {
        return Err(ApiError::bad_param(name, format!("must be >= {min}")));
    }
    if n > max {
        return Err(ApiError::bad_param(name, format!("must be <= {max}")));
    }
    Ok(n)
}

pub fn severity_param(v: &Option<String>) -> Result<Option<Severity>, ApiError> {
    match text_param("severity", v)? {
        None => Ok(None),
        Some(s) => Severity::parse_strict(&s).map(Some).ok_or_else(|| {
            ApiError::bad_param(
                "severity",
                "must be one of CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN",
            )
        }),
    }
}

pub fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Scan ids are UUIDs; anything else is a 400, not a lookup.
pub fn parse_scan_id(raw: &str) -> Result<String, ApiError> {
    parse_uuid("scan", raw)
}

/// A path id that must be a UUID (scans, jobs): canonical hyphenated form, or a 400 naming `kind`.
pub fn parse_uuid(kind: &str, raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            ApiError::BadRequest(format!("{kind} id {:?} is not a UUID", truncate(raw, 64)))
        })
}

/// `sha256:<hex>` style digest (algorithm, colon, encoded).
pub fn is_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "=_-".contains(c))
        }
        None => false,
    }
}
