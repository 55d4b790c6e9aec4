//! Query and path parameters: the extractors whose rejections are our JSON 400, and the
//! checks every endpoint applies to its parameters.

use axum::extract::{FromRequestParts, Path, Query};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
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

/// An integer parameter: `default` when absent; a value above `max` is capped to it (the
/// original service capped its limits); below `min`, or not an integer, is a 400.
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
    Ok(n.min(max))
}

/// Which end of a day a plain date means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayEnd {
    /// Its first microsecond (`from`).
    Start,
    /// Its last microsecond (`to`).
    End,
}

/// A time parameter: RFC 3339 (`2025-01-31T00:00:00Z`), or a plain date (`2025-01-31`), which
/// means the start or the end of that day (UTC) by `end`.
pub fn time_param(
    name: &str,
    v: &Option<String>,
    end: DayEnd,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = text_param(name, v)? else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&raw) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    if let Ok(d) = NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
        let start = d.and_time(NaiveTime::MIN).and_utc();
        return Ok(Some(match end {
            DayEnd::Start => start,
            DayEnd::End => start + chrono::Duration::days(1) - chrono::Duration::microseconds(1),
        }));
    }
    Err(ApiError::bad_param(
        name,
        format!(
            "must be an RFC 3339 time such as 2025-01-31T00:00:00Z, or a date such as 2025-01-31 (got {:?})",
            truncate(&raw, 40)
        ),
    ))
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

/// `suppressed`: `exclude` (default) leaves out the findings active suppressions cover,
/// `include` shows everything, `only` shows only them.
pub fn suppressed_param(
    v: &Option<String>,
) -> Result<crate::store::analytics::SuppressedMode, ApiError> {
    use crate::store::analytics::SuppressedMode;
    match text_param("suppressed", v)?
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("exclude") => Ok(SuppressedMode::Exclude),
        Some("include") => Ok(SuppressedMode::Include),
        Some("only") => Ok(SuppressedMode::Only),
        Some(_) => Err(ApiError::bad_param(
            "suppressed",
            "must be exclude, include or only",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn limits_above_the_maximum_are_capped_and_bad_values_refused() {
        assert_eq!(int_param("limit", &some("900"), 10, 1, 100).unwrap(), 100);
        assert_eq!(int_param("limit", &None, 10, 1, 100).unwrap(), 10);
        assert!(int_param("limit", &some("-1"), 10, 1, 100).is_err());
        assert!(int_param("limit", &some("ten"), 10, 1, 100).is_err());
    }

    #[test]
    fn a_plain_date_is_the_start_or_the_end_of_its_day() {
        let from = time_param("from", &some("2025-01-31"), DayEnd::Start)
            .unwrap()
            .unwrap();
        assert_eq!(from.to_rfc3339(), "2025-01-31T00:00:00+00:00");
        let to = time_param("to", &some("2025-01-31"), DayEnd::End)
            .unwrap()
            .unwrap();
        assert_eq!(
            to.timestamp_micros() + 1,
            from.timestamp_micros() + 86_400_000_000
        );
        let t = time_param("to", &some("2025-01-31T12:00:00+02:00"), DayEnd::End)
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2025-01-31T10:00:00+00:00");
        assert!(time_param("from", &some("yesterday"), DayEnd::Start).is_err());
        assert!(time_param("from", &some("2025-02-30"), DayEnd::Start).is_err());
    }
}
