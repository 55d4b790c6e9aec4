//! Anchore Grype JSON (`grype -o json`) → [`ParsedReport`], every schema from Grype 0.7 on.
//!
//! A finding is a match's vulnerability id with the matched artifact's name and version.
//! Grype's `Negligible` counts as LOW (as Trivy maps Debian's negligible) and the word is
//! kept on the finding; the fixed version is `fix.versions` (older: `fixedInVersion`), the
//! status `fix.state`; the CVSS score the highest of the match's and its related
//! vulnerabilities' (v3 preferred); EPSS and risk where Grype writes them.

use crate::accumulate::{max_opt, Accumulator, Entry};
use crate::image::identify;
use crate::report::{FindingExtra, ImageIdentity, ParsedReport, ReportFormat, Severity};
use crate::trivy::{from_text, lenient_time, null_default, ParseError, Str, Text};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow, default, deserialize_with = "null_default")]
    matches: Vec<Match<'a>>,
    source: Option<Source>,
    distro: Option<Distro>,
    descriptor: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Match<'a> {
    #[serde(borrow)]
    vulnerability: Vuln<'a>,
    #[serde(
        borrow,
        default,
        rename = "relatedVulnerabilities",
        deserialize_with = "null_default"
    )]
    related: Vec<Vuln<'a>>,
    #[serde(borrow)]
    artifact: Artifact<'a>,
}

#[derive(Deserialize)]
struct Vuln<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    severity: Text<'a>,
    #[serde(borrow, rename = "dataSource")]
    data_source: Text<'a>,
    #[serde(borrow)]
    description: Text<'a>,
    /// Reference URLs (`links` before Grype 0.15 or so).
    #[serde(borrow, default, alias = "links", deserialize_with = "null_default")]
    urls: Vec<Str<'a>>,
    #[serde(default, deserialize_with = "null_default")]
    cvss: Vec<Cvss>,
    #[serde(rename = "cvssV3")]
    cvss_v3: Option<OldCvss>,
    #[serde(rename = "cvssV2")]
    cvss_v2: Option<OldCvss>,
    #[serde(borrow)]
    fix: Option<Fix<'a>>,
    #[serde(borrow, rename = "fixedInVersion")]
    fixed_in_version: Text<'a>,
    #[serde(default, deserialize_with = "null_default")]
    epss: Vec<Epss>,
    risk: Option<f64>,
}

#[derive(Deserialize)]
struct Cvss {
    version: Option<String>,
    vector: Option<String>,
    metrics: Option<Metrics>,
}

#[derive(Deserialize)]
struct Metrics {
    #[serde(rename = "baseScore")]
    base_score: Option<f64>,
}

#[derive(Deserialize)]
struct OldCvss {
    #[serde(rename = "baseScore")]
    base_score: Option<f64>,
    vector: Option<String>,
}

#[derive(Deserialize)]
struct Fix<'a> {
    #[serde(borrow, default, deserialize_with = "null_default")]
    versions: Vec<Str<'a>>,
    #[serde(borrow)]
    state: Text<'a>,
}

#[derive(Deserialize)]
struct Epss {
    epss: Option<f64>,
}

#[derive(Deserialize)]
struct Artifact<'a> {
    #[serde(borrow)]
    name: Text<'a>,
    #[serde(borrow)]
    version: Text<'a>,
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(default, deserialize_with = "null_default")]
    locations: Vec<Location>,
    #[serde(borrow)]
    purl: Text<'a>,
}

/// A location: `{path, layerID}` (a plain string in the oldest schemas).
#[derive(Deserialize)]
#[serde(untagged)]
enum Location {
    Object { path: Option<String> },
    Path(String),
    Other(IgnoredAny),
}

impl Location {
    fn path(&self) -> Option<&str> {
        match self {
            Location::Object { path } => path.as_deref(),
            Location::Path(p) => Some(p),
            Location::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct Source {
    #[serde(rename = "type")]
    kind: Option<String>,
    target: Option<Target>,
}

/// An image's description, or the path of a directory or file.
#[derive(Deserialize)]
#[serde(untagged)]
enum Target {
    Image(ImageTarget),
    Path(String),
    Other(IgnoredAny),
}

#[derive(Deserialize)]
struct ImageTarget {
    #[serde(rename = "userInput")]
    user_input: Option<String>,
    #[serde(rename = "imageID")]
    image_id: Option<String>,
    #[serde(rename = "manifestDigest")]
    manifest_digest: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    tags: Vec<String>,
    #[serde(rename = "repoDigests", default, deserialize_with = "null_default")]
    repo_digests: Vec<String>,
}

#[derive(Deserialize)]
struct Distro {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
struct Descriptor {
    name: Option<String>,
    version: Option<String>,
    timestamp: Option<String>,
}

/// Package types of operating-system package managers (the rest are language packages).
const OS_TYPES: &[&str] = &["apk", "deb", "rpm", "alpm", "portage", "dpkg"];

/// Grype's severity word: the five levels, `Negligible` as LOW (the word kept).
fn severity(word: Option<&str>) -> (Severity, Option<String>) {
    match word.map(str::trim) {
        Some(w) if w.eq_ignore_ascii_case("negligible") => (Severity::Low, Some(w.to_string())),
        w => (Severity::from_label(w), None),
    }
}

/// The highest CVSS score of a vulnerability's entries, v3 preferred; with its vector.
fn best_cvss(v: &Vuln<'_>) -> (Option<f64>, Option<String>, bool) {
    let valid = |s: Option<f64>| s.filter(|x| x.is_finite() && (0.0..=10.0).contains(x));
    let mut best: (Option<f64>, Option<String>, bool) = (None, None, false);
    let mut consider = |score: Option<f64>, vector: Option<&String>, v3: bool| {
        let Some(score) = valid(score) else { return };
        let better = match (best.0, best.2) {
            (None, _) => true,
            (Some(_), false) if v3 => true,
            (Some(b), was_v3) => was_v3 == v3 && score > b,
        };
        if better {
            best = (Some(score), vector.cloned(), v3);
        }
    };
    for c in &v.cvss {
        let v3 = c.version.as_deref().is_some_and(|x| x.starts_with('3'));
        consider(
            c.metrics.as_ref().and_then(|m| m.base_score),
            c.vector.as_ref(),
            v3,
        );
    }
    if let Some(c) = &v.cvss_v3 {
        consider(c.base_score, c.vector.as_ref(), true);
    }
    if let Some(c) = &v.cvss_v2 {
        consider(c.base_score, c.vector.as_ref(), false);
    }
    best
}

pub(crate) fn parse(text: &str) -> Result<ParsedReport, ParseError> {
    let doc: Doc = from_text(text).map_err(|e| match e {
        ParseError::Invalid { message } => ParseError::Invalid {
            message: format!("Grype JSON, {message}"),
        },
        e => e,
    })?;
    let mut acc = Accumulator::default();
    for (mi, m) in doc.matches.iter().enumerate() {
        let v = &m.vulnerability;
        let a = &m.artifact;
        let (severity, word) = severity(v.severity.as_deref());
        // The match's CVSS, else its related vulnerabilities' (the CVE behind a distro
        // advisory).
        let (mut cvss, mut vector, mut v3) = best_cvss(v);
        for r in &m.related {
            let (s, vec, r3) = best_cvss(r);
            if s.is_some()
                && (cvss.is_none() || (r3 && !v3) || (r3 == v3 && max_opt(cvss, s) != cvss))
            {
                (cvss, vector, v3) = (s, vec, r3);
            }
        }
        let fixed: Vec<&str> = v
            .fix
            .iter()
            .flat_map(|f| f.versions.iter().map(|x| &**x))
            .filter(|x| !x.trim().is_empty())
            .collect();
        let fixed = if fixed.is_empty() {
            v.fixed_in_version.as_deref().map(Cow::Borrowed)
        } else {
            Some(Cow::Owned(fixed.join(", ")))
        };
        let kind = a.kind.as_deref();
        let class = kind.map(|k| {
            if OS_TYPES.contains(&k) {
                "os-pkgs"
            } else {
                "lang-pkgs"
            }
        });
        let path = a.locations.iter().find_map(Location::path);
        let description = v
            .description
            .as_deref()
            .or_else(|| m.related.iter().find_map(|r| r.description.as_deref()));
        let entry = Entry {
            id: Cow::Borrowed(v.id.as_deref().unwrap_or("")),
            pkg: Cow::Borrowed(a.name.as_deref().unwrap_or("")),
            ver: Cow::Borrowed(a.version.as_deref().unwrap_or("")),
            fixed: fixed.as_deref(),
            severity,
            status: v.fix.as_ref().and_then(|f| f.state.as_deref()),
            pkg_type: kind,
            class,
            target: path,
            pkg_path: path,
            purl: a.purl.as_deref(),
            title: None,
            description,
            primary_url: v.data_source.as_deref(),
            references: v.urls.iter().map(|u| &**u).collect(),
            published: None,
            modified: None,
            cvss,
            cvss_vector: vector.as_deref(),
            extra: FindingExtra {
                scanner_severity: word,
                epss: v.epss.iter().find_map(|e| e.epss),
                risk: v.risk,
                ..Default::default()
            },
        };
        acc.add(|| format!("matches[{mi}]"), entry)?;
    }

    let source = doc.source;
    let kind = source.as_ref().and_then(|s| s.kind.clone());
    let is_image = kind.as_deref() == Some("image");
    let (artifact_name, image) = match source.and_then(|s| s.target) {
        Some(Target::Image(t)) => {
            let id = identify(t.user_input.as_deref(), is_image, &t.tags, &t.repo_digests);
            let digest = id
                .digest
                .or_else(|| t.manifest_digest.filter(|d| !d.trim().is_empty()));
            (
                t.user_input.clone(),
                ImageIdentity {
                    name: id.name,
                    tag: id.tag,
                    digest,
                    image_id: t.image_id.filter(|d| !d.trim().is_empty()),
                    repo_tags: t.tags,
                    repo_digests: t.repo_digests,
                },
            )
        }
        Some(Target::Path(p)) => {
            // A directory or a file: named as given, as Trivy's filesystem scans are.
            let id = identify(Some(&p), false, &[], &[]);
            (
                Some(p),
                ImageIdentity {
                    name: id.name,
                    tag: id.tag,
                    ..Default::default()
                },
            )
        }
        _ => (None, ImageIdentity::default()),
    };
    let (os_family, os_name) = doc
        .distro
        .map(|d| (nonblank(d.name), nonblank(d.version)))
        .unwrap_or((None, None));
    let descriptor = doc.descriptor;
    Ok(acc.finish(ParsedReport {
        format: ReportFormat::Grype,
        scanner: descriptor
            .as_ref()
            .and_then(|d| nonblank(d.name.clone()))
            .unwrap_or_else(|| "grype".into()),
        scanner_version: descriptor
            .as_ref()
            .and_then(|d| nonblank(d.version.clone())),
        schema_version: None,
        created_at: descriptor
            .as_ref()
            .and_then(|d| d.timestamp.as_deref())
            .and_then(lenient_time),
        artifact_name,
        artifact_type: kind,
        image,
        os_family,
        os_name,
        findings: vec![],
        vulnerabilities: vec![],
        vulnerability_entries: 0,
        results: 0,
        skipped: vec![],
    }))
}

fn nonblank(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}
