//! The dashboard's pages. Each reads what it shows from the API as the signed-in key.

mod cve;
mod fleet;
mod images;
mod jobs;
pub(super) mod triage;

pub use cve::cve;
pub use fleet::{fleet, search};
pub use images::{download, download_compliance, image, images};
pub use jobs::{job, job_action, jobs, request_scan};
pub use triage::{
    compliance, create_suppression, delete_policy, delete_suppression, policies, put_policy,
    suppressions,
};

use super::chart::Series;
use super::urlencode;
/// The severities as the API names them, most severe first.
pub(super) fn severities() -> [&'static str; 5] {
    scanvault_core::report::Severity::ALL.map(scanvault_core::report::Severity::as_str)
}

/// The severity lines of a chart (UNKNOWN left out: it is rarely more than noise).
pub(super) fn severity_series() -> [Series; 4] {
    [
        ("Critical", "sev-critical"),
        ("High", "sev-high"),
        ("Medium", "sev-medium"),
        ("Low", "sev-low"),
    ]
    .map(|(name, class)| Series {
        name,
        class,
        values: vec![],
    })
}

/// A query parameter as given, trimmed; `None` when empty.
pub(super) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `key=value` pairs as a query string (empty values left out).
pub(super) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    parts.join("&")
}
