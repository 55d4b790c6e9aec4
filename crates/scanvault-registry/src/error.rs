//! Registry errors and their classification (transient = worth retrying later).

use std::time::Duration;

use crate::reference::ReferenceError;

/// Whether retrying later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The registry or the network may recover: retry later (with back-off).
    Transient,
    /// Retrying the same request will fail the same way.
    Permanent,
}

/// What went wrong, as a stable machine-readable code ([`ErrorKind::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The reference does not parse. Permanent.
    InvalidReference,
    /// The repository or tag/digest does not exist (404, `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`),
    /// also when listing the tags of a repository. Permanent.
    ManifestUnknown,
    /// 401/403 after authenticating (or no credentials for a registry that wants them). Permanent.
    Unauthorized,
    /// 429 Too Many Requests. Transient; see [`RegistryError::retry_after`].
    RateLimited,
    /// 5xx from the registry or its token service. Transient.
    RegistryUnavailable,
    /// Connection refused/reset, DNS failure, connection closed early. Transient.
    Network,
    /// No answer within the configured timeout. Transient.
    Timeout,
    /// TLS handshake or certificate failure (also: a plain-HTTP registry reached over https). Permanent.
    Tls,
    /// Any other unexpected answer (other 4xx, malformed digest or token response, a tag list
    /// that is too long or links elsewhere). Permanent.
    Protocol,
    /// The client configuration (auth file) or a per-request access (registry URL,
    /// `Authorization` value, access for another registry) is unusable. Permanent.
    Config,
}

impl ErrorKind {
    /// Stable code, e.g. `"manifest_unknown"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidReference => "invalid_reference",
            Self::ManifestUnknown => "manifest_unknown",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::RegistryUnavailable => "registry_unavailable",
            Self::Network => "network",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
            Self::Protocol => "protocol",
            Self::Config => "config",
        }
    }

    /// Transient or permanent.
    pub fn class(self) -> ErrorClass {
        match self {
            Self::RateLimited | Self::RegistryUnavailable | Self::Network | Self::Timeout => {
                ErrorClass::Transient
            }
            Self::InvalidReference
            | Self::ManifestUnknown
            | Self::Unauthorized
            | Self::Tls
            | Self::Protocol
            | Self::Config => ErrorClass::Permanent,
        }
    }
}

/// A failure to resolve an image, with a message for people (which image, which registry,
/// what happened; never credentials) and a classification for the retry logic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
}

impl RegistryError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Transient (retry later) or permanent.
    pub fn class(&self) -> ErrorClass {
        self.kind.class()
    }

    /// Shorthand for `class() == ErrorClass::Transient`.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// Stable machine-readable code, e.g. `"manifest_unknown"`, `"rate_limited"`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// HTTP status of the answer that caused the error, if any.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The registry's `Retry-After`, for [`ErrorKind::RateLimited`] (and 503) answers.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The human-readable message (same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<ReferenceError> for RegistryError {
    fn from(e: ReferenceError) -> Self {
        RegistryError::new(ErrorKind::InvalidReference, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_codes() {
        use ErrorKind::*;
        let all = [
            (InvalidReference, "invalid_reference", ErrorClass::Permanent),
            (ManifestUnknown, "manifest_unknown", ErrorClass::Permanent),
            (Unauthorized, "unauthorized", ErrorClass::Permanent),
            (RateLimited, "rate_limited", ErrorClass::Transient),
            (
                RegistryUnavailable,
                "registry_unavailable",
                ErrorClass::Transient,
            ),
            (Network, "network", ErrorClass::Transient),
            (Timeout, "timeout", ErrorClass::Transient),
            (Tls, "tls", ErrorClass::Permanent),
            (Protocol, "protocol", ErrorClass::Permanent),
            (Config, "config", ErrorClass::Permanent),
        ];
        for (kind, code, class) in all {
            let e = RegistryError::new(kind, "m");
            assert_eq!(e.code(), code);
            assert_eq!(e.class(), class, "{code}");
            assert_eq!(e.is_transient(), class == ErrorClass::Transient);
        }
    }

    #[test]
    fn from_reference_error() {
        let e: RegistryError = crate::Reference::parse("Bad").unwrap_err().into();
        assert_eq!(e.code(), "invalid_reference");
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.to_string().contains("must be lowercase"), "{e}");
    }
}
