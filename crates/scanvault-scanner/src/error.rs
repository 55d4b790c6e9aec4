//! Error type of a Trivy run and its retry classification.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Whether retrying the same scan later can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Infrastructure trouble (network, registry overload, timeouts, kills): retry with backoff.
    Transient,
    /// The artifact was rejected / not found, the request or configuration is wrong, or the
    /// error could not be classified: retrying the same job will not help.
    Permanent,
}

impl ErrorClass {
    /// `"transient"` / `"permanent"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a Trivy run did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Our wall-clock limit passed; the process (group) was killed and reaped.
    #[error("trivy did not finish within {}; killed", crate::format_duration(*.timeout))]
    Timeout {
        timeout: Duration,
        /// Last ~8 KB of Trivy's stderr before it was killed (for logs; may be empty).
        stderr_tail: String,
    },

    /// The cancellation token fired; the process (group) was killed and reaped.
    #[error("scan cancelled; trivy was killed")]
    Cancelled,

    /// The Trivy binary could not be started.
    #[error("cannot start trivy ({}): {cause}", .path.display())]
    Spawn {
        path: PathBuf,
        /// In the message, not chained as a source: a chain would print it twice.
        cause: io::Error,
    },

    /// Trivy exited unsuccessfully. `message` is a short (≤ ~500 chars) human-readable cause
    /// taken from its stderr; `exit_code` is `None` when it was killed by a signal.
    #[error("trivy failed ({}): {message}", exit_text(*.exit_code))]
    Failed {
        class: ErrorClass,
        message: String,
        exit_code: Option<i32>,
    },

    /// Trivy exited 0 but stdout does not look like a JSON report.
    #[error("trivy exited 0 but its output is not a JSON report: {reason}")]
    InvalidOutput { reason: String, stdout_len: usize },

    /// The request itself is unusable (e.g. an empty image reference or one starting with `-`,
    /// which Trivy would parse as a flag). Trivy was not started.
    #[error("invalid scan request: {reason}")]
    InvalidRequest { reason: String },

    /// Reading Trivy's pipes or waiting for it failed (the process was killed and reaped).
    #[error("i/o error while running trivy ({context}): {cause}")]
    Io {
        context: &'static str,
        /// In the message, not chained as a source.
        cause: io::Error,
    },
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    }
}

impl ScanError {
    /// Retry classification. See the crate README for the reasoning behind each case.
    pub fn class(&self) -> ErrorClass {
        match self {
            ScanError::Timeout { .. } => ErrorClass::Transient,
            // The job did not fail; whoever cancelled decides what happens next. Transient
            // means "running it again can succeed" (e.g. re-queue on shutdown).
            ScanError::Cancelled => ErrorClass::Transient,
            ScanError::Spawn { cause, .. } => spawn_class(cause),
            ScanError::Failed { class, .. } => *class,
            ScanError::InvalidOutput { .. } => ErrorClass::Permanent,
            ScanError::InvalidRequest { .. } => ErrorClass::Permanent,
            ScanError::Io { .. } => ErrorClass::Transient,
        }
    }

    /// `true` when [`ScanError::class`] is [`ErrorClass::Transient`].
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// Stable machine-readable code for job records and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            ScanError::Timeout { .. } => "trivy_timeout",
            ScanError::Cancelled => "cancelled",
            ScanError::Spawn { cause, .. } if cause.kind() == io::ErrorKind::NotFound => {
                "trivy_not_found"
            }
            ScanError::Spawn { .. } => "trivy_spawn_failed",
            ScanError::Failed { .. } => "trivy_failed",
            ScanError::InvalidOutput { .. } => "invalid_output",
            ScanError::InvalidRequest { .. } => "invalid_request",
            ScanError::Io { .. } => "trivy_io_error",
        }
    }
}

/// A missing or non-executable binary is a configuration error that will not fix itself
/// between retries: Permanent (the worker should call `Trivy::version()` at startup and refuse
/// to run). Other spawn errors (EAGAIN/ENOMEM from fork, EMFILE, ETXTBSY while the binary is
/// being replaced) are resource trouble on this worker: Transient.
fn spawn_class(e: &io::Error) -> ErrorClass {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => ErrorClass::Permanent,
        _ => ErrorClass::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_classes() {
        let t = ScanError::Timeout {
            timeout: Duration::from_secs(30),
            stderr_tail: String::new(),
        };
        assert_eq!(t.to_string(), "trivy did not finish within 30s; killed");
        assert_eq!(t.code(), "trivy_timeout");
        assert_eq!(t.class(), ErrorClass::Transient);

        let nf = ScanError::Spawn {
            path: "/nope/trivy".into(),
            cause: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(nf.code(), "trivy_not_found");
        // The cause is in the message and not chained again: printed as a chain, it is said
        // once.
        assert!(nf.to_string().ends_with(": entity not found"), "{nf}");
        assert!(std::error::Error::source(&nf).is_none());
        assert_eq!(nf.class(), ErrorClass::Permanent);
        let busy = ScanError::Spawn {
            path: "/x/trivy".into(),
            cause: io::Error::from(io::ErrorKind::ResourceBusy),
        };
        assert_eq!(busy.code(), "trivy_spawn_failed");
        assert_eq!(busy.class(), ErrorClass::Transient);

        let f = ScanError::Failed {
            class: ErrorClass::Permanent,
            message: "manifest unknown".into(),
            exit_code: Some(1),
        };
        assert_eq!(
            f.to_string(),
            "trivy failed (exit code 1): manifest unknown"
        );
        assert_eq!(f.code(), "trivy_failed");
        assert!(!f.is_transient());
        assert_eq!(ScanError::Cancelled.code(), "cancelled");
    }
}
