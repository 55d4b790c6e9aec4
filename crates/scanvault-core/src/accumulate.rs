//! Findings and catalog entries of a report, whatever its format: each vulnerability entry
//! of the report becomes an [`Entry`], and entries of the same `(vulnerability, package,
//! installed version)` are one finding (the highest severity, any fixed version).

use crate::report::{
    Finding, FindingExtra, ParsedReport, Severity, SkippedEntries, VulnerabilityDetail,
};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::HashMap;

use crate::trivy::{ParseError, MAX_KEY_LEN};

/// Why an entry without a vulnerability id is left out.
pub const NO_VULNERABILITY_ID: &str = "no VulnerabilityID";

/// One vulnerability entry of a report, as every format states it.
#[derive(Default)]
pub(crate) struct Entry<'d, 'e> {
    pub id: Cow<'d, str>,
    pub pkg: Cow<'d, str>,
    pub ver: Cow<'d, str>,
    pub fixed: Option<&'e str>,
    pub severity: Severity,
    pub status: Option<&'e str>,
    pub pkg_type: Option<&'e str>,
    pub class: Option<&'e str>,
    pub target: Option<&'e str>,
    pub pkg_path: Option<&'e str>,
    pub purl: Option<&'e str>,
    pub title: Option<&'e str>,
    pub description: Option<&'e str>,
    pub primary_url: Option<&'e str>,
    pub references: Vec<&'e str>,
    pub published: Option<DateTime<Utc>>,
    pub modified: Option<DateTime<Utc>>,
    pub cvss: Option<f64>,
    pub cvss_vector: Option<&'e str>,
    pub extra: FindingExtra,
}

/// Findings and catalog entries, de-duplicated on keys borrowed from the parsed document
/// (`'d`) where it can.
/// A finding's key: vulnerability, package, installed version.
type Key<'d> = (Cow<'d, str>, Cow<'d, str>, Cow<'d, str>);

#[derive(Default)]
pub(crate) struct Accumulator<'d> {
    findings: Vec<Finding>,
    index: HashMap<Key<'d>, usize>,
    vulns: Vec<VulnerabilityDetail>,
    vuln_index: HashMap<Cow<'d, str>, usize>,
    entries: usize,
    /// Entries left out, by reason: where the first of each was.
    skipped: Vec<SkippedEntries>,
}

/// Count one entry left out for `reason`; `at` is where, kept for the first.
pub(crate) fn skip(list: &mut Vec<SkippedEntries>, reason: &str, at: String) {
    match list.iter_mut().find(|s| s.reason == reason) {
        Some(s) => s.count += 1,
        None => list.push(SkippedEntries {
            reason: reason.to_string(),
            count: 1,
            first_at: at,
        }),
    }
}

/// Blank text is no text.
fn text(s: Option<&str>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty()).map(str::to_string)
}

pub(crate) fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl<'d> Accumulator<'d> {
    /// Add one entry; `at` says where it is in the report (for messages).
    pub fn add(&mut self, at: impl Fn() -> String, e: Entry<'d, '_>) -> Result<(), ParseError> {
        let Entry {
            id,
            pkg,
            ver,
            fixed,
            severity,
            status,
            pkg_type,
            class,
            target,
            pkg_path,
            purl,
            title,
            description,
            primary_url,
            references,
            published,
            modified,
            cvss,
            cvss_vector,
            extra,
        } = e;
        let trim = |c: Cow<'d, str>| match c {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) if o.trim().len() == o.len() => Cow::Owned(o),
            Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
        };
        let (id, pkg, ver) = (trim(id), trim(pkg), trim(ver));
        if id.is_empty() {
            // Nothing identifies the finding: the rest of the report is still stored.
            self.skip(NO_VULNERABILITY_ID, at());
            return Ok(());
        }
        for (field, value) in [
            ("VulnerabilityID", &id),
            ("PkgName", &pkg),
            ("InstalledVersion", &ver),
        ] {
            if value.len() > MAX_KEY_LEN {
                return Err(ParseError::Invalid {
                    message: format!(
                        "at {}.{field}: longer than {MAX_KEY_LEN} bytes ({} bytes)",
                        at(),
                        value.len()
                    ),
                });
            }
            if value.contains('\0') {
                return Err(ParseError::Invalid {
                    message: format!("at {}.{field}: contains a NUL character", at()),
                });
            }
        }
        self.entries += 1;
        let fixed = fixed.map(str::trim).filter(|s| !s.is_empty());
        let rest = Rest {
            cvss,
            cvss_vector,
            title,
            description,
            primary_url,
            references,
            published,
            modified,
        };
        let catalog_id = id.clone();
        let key = (id, pkg, ver);
        match self.index.get(&key) {
            Some(&i) => {
                let f = &mut self.findings[i];
                f.severity = f.severity.max(severity);
                if f.fixed_version.is_none() {
                    f.fixed_version = fixed.map(str::to_string);
                }
                if f.status.is_none() {
                    f.status = text(status);
                }
                f.cvss_score = max_opt(f.cvss_score, cvss);
                if f.title.is_none() {
                    f.title = text(title);
                }
                if f.extra.is_empty() {
                    f.extra = extra;
                }
            }
            None => {
                self.findings.push(Finding {
                    vulnerability_id: key.0.to_string(),
                    pkg_name: key.1.to_string(),
                    installed_version: key.2.to_string(),
                    fixed_version: fixed.map(str::to_string),
                    severity,
                    status: text(status),
                    pkg_type: text(pkg_type),
                    class: text(class),
                    target: target.map(str::to_string),
                    pkg_path: text(pkg_path),
                    purl: text(purl),
                    title: text(title),
                    cvss_score: cvss,
                    extra,
                });
                self.index.insert(key, self.findings.len() - 1);
            }
        }
        self.catalog(catalog_id, severity, &rest);
        Ok(())
    }

    fn catalog(&mut self, id: Cow<'d, str>, severity: Severity, e: &Rest<'_>) {
        match self.vuln_index.get(&id) {
            Some(&i) => {
                let d = &mut self.vulns[i];
                d.severity = d.severity.max(severity);
                if e.cvss.is_some() && max_opt(d.cvss_score, e.cvss) != d.cvss_score {
                    d.cvss_score = e.cvss;
                    d.cvss_vector = e.cvss_vector.map(str::to_string);
                }
                for (slot, v) in [
                    (&mut d.title, e.title),
                    (&mut d.description, e.description),
                    (&mut d.primary_url, e.primary_url),
                ] {
                    if slot.is_none() {
                        *slot = text(v);
                    }
                }
                if d.references.is_empty() {
                    d.references = e.references.iter().map(|r| r.to_string()).collect();
                }
                d.published_at = d.published_at.or(e.published);
                d.modified_at = d.modified_at.or(e.modified);
            }
            None => {
                self.vulns.push(VulnerabilityDetail {
                    id: id.to_string(),
                    title: text(e.title),
                    description: text(e.description),
                    severity,
                    cvss_score: e.cvss,
                    cvss_vector: e.cvss_vector.map(str::to_string),
                    primary_url: text(e.primary_url),
                    references: e.references.iter().map(|r| r.to_string()).collect(),
                    published_at: e.published,
                    modified_at: e.modified,
                });
                self.vuln_index.insert(id, self.vulns.len() - 1);
            }
        }
    }

    pub fn skip(&mut self, reason: &str, at: String) {
        skip(&mut self.skipped, reason, at);
    }

    pub fn finish(self, mut report: ParsedReport) -> ParsedReport {
        report.findings = self.findings;
        report.vulnerabilities = self.vulns;
        report.vulnerability_entries = self.entries;
        report.skipped.extend(self.skipped);
        report
    }
}

/// The catalog's part of an entry.
struct Rest<'e> {
    cvss: Option<f64>,
    cvss_vector: Option<&'e str>,
    title: Option<&'e str>,
    description: Option<&'e str>,
    primary_url: Option<&'e str>,
    references: Vec<&'e str>,
    published: Option<DateTime<Utc>>,
    modified: Option<DateTime<Utc>>,
}
