//! The one API error type. Every variant maps to a status and a stable snake_case `code`;
//! the body is always `{"error": "message", "code": "stable_code"}`, the original service's
//! shape (`error` a string) with the stable code beside it. `Internal` never sends its text to
//! the client: the error goes into the response extensions and is logged once.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use scanvault_core::trivy::ParseError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a human (the original service's field).
    pub error: String,
    /// Stable machine-readable code, e.g. `invalid_json`, `scan_not_found`.
    pub code: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A report that names no image, without `?image=`.
    #[error("{0}")]
    ImageRequired(String),
    #[error("{what} not found")]
    NotFound { what: String, code: &'static str },
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    EmptyBody(String),
    #[error("{0}")]
    InvalidReport(String),
    #[error("{0}")]
    UnsupportedFormat(String),
    /// An exploit feed (KEV, EPSS) that is not in its published format.
    #[error("{0}")]
    InvalidFeed(String),
    /// A VEX document that is not valid OpenVEX.
    #[error("{0}")]
    InvalidVex(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Conflict(String),
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("rate limit exceeded; retry after {0} s")]
    TooManyRequests(u64),
    #[error("the database is unavailable; try again shortly")]
    Unavailable(String),
    #[error("the request took too long")]
    Timeout,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_)
            | ApiError::ImageRequired(_)
            | ApiError::InvalidJson(_)
            | ApiError::EmptyBody(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::InvalidReport(_)
            | ApiError::UnsupportedFormat(_)
            | ApiError::InvalidFeed(_)
            | ApiError::InvalidVex(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::ImageRequired(_) => "image_required",
            ApiError::NotFound { code, .. } => code,
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::EmptyBody(_) => "empty_body",
            ApiError::InvalidReport(_) => "invalid_report",
            ApiError::UnsupportedFormat(_) => "unsupported_format",
            ApiError::InvalidFeed(_) => "invalid_feed",
            ApiError::InvalidVex(_) => "invalid_vex",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::TooManyRequests(_) => "rate_limited",
            ApiError::Unavailable(_) => "database_unavailable",
            ApiError::Timeout => "timeout",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn not_found(what: impl Into<String>, code: &'static str) -> ApiError {
        ApiError::NotFound {
            what: what.into(),
            code,
        }
    }

    pub fn bad_param(name: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest(format!("query parameter '{name}' {why}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Empty => ApiError::EmptyBody(e.to_string()),
            ParseError::NotUtf8 { .. } | ParseError::Syntax { .. } => {
                ApiError::InvalidJson(e.to_string())
            }
            ParseError::Invalid { .. } => ApiError::InvalidReport(e.to_string()),
            ParseError::Unsupported { .. } => ApiError::UnsupportedFormat(e.to_string()),
        }
    }
}

impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError;
        match e {
            IngestError::Parse(p) => p.into(),
            e @ IngestError::TooManyFindings { .. } => ApiError::InvalidReport(e.to_string()),
            e @ IngestError::NoImage => ApiError::ImageRequired(e.to_string()),
            e @ IngestError::OverrideOnCluster => ApiError::BadRequest(e.to_string()),
            e @ IngestError::ClusterNotAccepted => ApiError::UnsupportedFormat(e.to_string()),
            IngestError::Store(s) => s.into(),
            IngestError::Job(j) => j.into(),
            e @ IngestError::Failed(_) => ApiError::Internal(anyhow::Error::new(e)),
        }
    }
}

/// Marker put in the extensions of a 5xx response so the logging middleware can log the
/// full error chain once.
#[derive(Clone, Debug)]
pub struct LoggedError(pub std::sync::Arc<String>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: message,
            code: self.code().to_string(),
        };
        let mut resp = (status, Json(body)).into_response();
        match &self {
            ApiError::Unauthorized => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scanvault\""),
                );
            }
            ApiError::TooManyRequests(secs) => {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        if status.is_server_error() {
            let detail = match &self {
                ApiError::Internal(e) => format!("{e:#}"),
                ApiError::Unavailable(m) => m.clone(),
                other => other.to_string(),
            };
            resp.extensions_mut()
                .insert(LoggedError(std::sync::Arc::new(detail)));
            if status == StatusCode::SERVICE_UNAVAILABLE {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
        }
        resp
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query string: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", e.body_text()))
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        match e {
            J::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected a request body with Content-Type: application/json".into(),
            ),
            J::JsonSyntaxError(e) => {
                ApiError::InvalidJson(format!("the body is not valid JSON: {}", e.body_text()))
            }
            J::JsonDataError(e) => {
                ApiError::BadRequest(format!("invalid request body: {}", e.body_text()))
            }
            J::BytesRejection(e) => body_rejection(e),
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// Map a failure to read the body: too large (413) or too slow (408).
pub fn body_rejection(e: axum::extract::rejection::BytesRejection) -> ApiError {
    let text = e.body_text();
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE || text.contains("length limit") {
        ApiError::PayloadTooLarge(
            "the request body is larger than the configured limit (HTTP_MAX_BODY_SIZE)".into(),
        )
    } else if text.to_ascii_lowercase().contains("timed out")
        || text.to_ascii_lowercase().contains("timeout")
    {
        ApiError::RequestTimeout(
            "the request body was not received within HTTP_READ_TIMEOUT".into(),
        )
    } else {
        ApiError::BadRequest(format!("could not read the request body: {text}"))
    }
}
