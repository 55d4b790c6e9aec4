//! CycloneDX JSON with `vulnerabilities[]` (1.4 to 1.7; Trivy's and Grype's
//! `cyclonedx` output) → [`ParsedReport`].
//!
//! Each vulnerability's `affects[].ref` is resolved to a component (name, version, purl):
//! one entry per affected component. The severity is the most severe of its `ratings[]`;
//! the CVSS score the highest rating with a CVSS method (v3 preferred). A fix is an
//! `unaffected` version of the affected component, else the `recommendation`. VEX
//! `analysis.state` and its justification are kept on the finding. The image is
//! `metadata.component` (Trivy's `aquasecurity:trivy:Repo*` properties, else its name and
//! purl).

use crate::accumulate::{Accumulator, Entry};
use crate::image::identify;
use crate::report::{FindingExtra, ImageIdentity, ParsedReport, ReportFormat, Severity};
use crate::trivy::{from_text, lenient_time, null_default, ParseError};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Deserialize)]
struct Doc {
    metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "null_default")]
    components: Vec<Component>,
    /// Absent: an SBOM (a package inventory), not scan results.
    vulnerabilities: Option<Vec<Vuln>>,
}

/// A CycloneDX document without `vulnerabilities`.
pub const FORMAT_SBOM: &str = "CycloneDX SBOM (no `vulnerabilities`)";

#[derive(Deserialize)]
struct Metadata {
    timestamp: Option<String>,
    tools: Option<Tools>,
    component: Option<Component>,
}

/// `tools`: an array before CycloneDX 1.5, `{components, services}` since.
#[derive(Deserialize)]
#[serde(untagged)]
enum Tools {
    List(Vec<Tool>),
    Object {
        #[serde(default, deserialize_with = "null_default")]
        components: Vec<Tool>,
    },
}

#[derive(Deserialize)]
struct Tool {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
struct Component {
    #[serde(rename = "bom-ref")]
    bom_ref: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    group: Option<String>,
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    properties: Vec<Property>,
    #[serde(default, deserialize_with = "null_default")]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Property {
    name: Option<String>,
    value: Option<String>,
}

impl Component {
    fn props<'c>(&'c self, name: &'c str) -> impl Iterator<Item = String> + 'c {
        self.properties
            .iter()
            .filter(move |p| p.name.as_deref() == Some(name))
            .filter_map(|p| p.value.clone())
            .filter(|v| !v.trim().is_empty())
    }

    /// `group/name`, as the package of a finding.
    fn package(&self) -> String {
        let name = self.name.as_deref().unwrap_or("");
        match self.group.as_deref().filter(|g| !g.is_empty()) {
            Some(g) => format!("{g}/{name}"),
            None => name.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Vuln {
    id: Option<String>,
    source: Option<Source>,
    #[serde(default, deserialize_with = "null_default")]
    ratings: Vec<Rating>,
    description: Option<String>,
    detail: Option<String>,
    recommendation: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    advisories: Vec<Advisory>,
    published: Option<String>,
    updated: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    affects: Vec<Affects>,
    analysis: Option<Analysis>,
}

#[derive(Deserialize)]
struct Source {
    url: Option<String>,
}

#[derive(Deserialize)]
struct Rating {
    score: Option<f64>,
    severity: Option<String>,
    method: Option<String>,
    vector: Option<String>,
}

#[derive(Deserialize)]
struct Advisory {
    url: Option<String>,
}

#[derive(Deserialize)]
struct Affects {
    #[serde(rename = "ref")]
    reference: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    versions: Vec<AffectedVersion>,
}

#[derive(Deserialize)]
struct AffectedVersion {
    version: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct Analysis {
    state: Option<String>,
    justification: Option<String>,
}

/// Rating severities, most severe first.
const ORDER: &[&str] = &[
    "critical", "high", "medium", "low", "info", "none", "unknown",
];

/// The most severe of the ratings' severities, and the word when it is not one of the five.
fn severity(ratings: &[Rating]) -> (Severity, Option<String>) {
    let best = ratings
        .iter()
        .filter_map(|r| r.severity.as_deref())
        .filter_map(|s| ORDER.iter().position(|o| o.eq_ignore_ascii_case(s)))
        .min();
    match best.map(|i| ORDER[i]) {
        Some(w @ ("info" | "none")) => (Severity::Unknown, Some(w.to_string())),
        Some(w) => (Severity::from_label(Some(w)), None),
        None => (Severity::Unknown, None),
    }
}

/// The highest CVSS rating, v3 preferred: its score and vector.
fn cvss(ratings: &[Rating]) -> (Option<f64>, Option<&str>) {
    let valid = |s: Option<f64>| s.filter(|x| x.is_finite() && (0.0..=10.0).contains(x));
    let mut best: Option<(bool, f64, Option<&str>)> = None;
    for r in ratings {
        let Some(method) = r.method.as_deref() else {
            continue;
        };
        if !method.starts_with("CVSSv") {
            continue;
        }
        let Some(score) = valid(r.score) else {
            continue;
        };
        let v3 = method.starts_with("CVSSv3");
        let better = match best {
            None => true,
            Some((b3, bs, _)) => (v3 && !b3) || (v3 == b3 && score > bs),
        };
        if better {
            best = Some((v3, score, r.vector.as_deref()));
        }
    }
    best.map_or((None, None), |(_, s, v)| (Some(s), v))
}

/// The fixed version a recommendation names (`Upgrade x to version 1.2.3`), else the
/// recommendation itself.
fn recommended(r: &str) -> &str {
    let r = r.trim();
    match r.rfind("to version ") {
        Some(i) => r[i + "to version ".len()..].trim_end_matches('.').trim(),
        None => r,
    }
}

/// A `pkg:oci/name@sha256%3A…` purl's digest.
fn purl_digest(purl: &str) -> Option<String> {
    let rest = purl.strip_prefix("pkg:oci/")?;
    let at = rest.find('@')?;
    let version = rest[at + 1..].split(['?', '#']).next()?;
    let decoded = version.replace("%3A", ":").replace("%3a", ":");
    decoded.starts_with("sha256:").then_some(decoded)
}

pub(crate) fn parse(text: &str) -> Result<ParsedReport, ParseError> {
    let doc: Doc = from_text(text).map_err(|e| match e {
        ParseError::Invalid { message } => ParseError::Invalid {
            message: format!("CycloneDX JSON, {message}"),
        },
        e => e,
    })?;
    let Some(vulnerabilities) = doc.vulnerabilities else {
        return Err(ParseError::Unsupported {
            format: FORMAT_SBOM,
        });
    };
    let metadata = doc.metadata;
    let main = metadata.as_ref().and_then(|m| m.component.as_ref());
    let mut by_ref: HashMap<&str, &Component> = HashMap::new();
    let mut stack: Vec<&Component> = main.into_iter().chain(doc.components.iter()).collect();
    while let Some(c) = stack.pop() {
        if let Some(r) = c.bom_ref.as_deref() {
            by_ref.entry(r).or_insert(c);
        }
        stack.extend(c.components.iter());
    }

    let mut acc = Accumulator::default();
    for (vi, v) in vulnerabilities.iter().enumerate() {
        let (sev, word) = severity(&v.ratings);
        let (score, vector) = cvss(&v.ratings);
        let recommendation = v
            .recommendation
            .as_deref()
            .map(recommended)
            .filter(|r| !r.is_empty());
        let references: Vec<&str> = v
            .advisories
            .iter()
            .filter_map(|a| a.url.as_deref())
            .collect();
        let analysis = v.analysis.as_ref();
        let affects: Vec<Option<&Affects>> = if v.affects.is_empty() {
            vec![None]
        } else {
            v.affects.iter().map(Some).collect()
        };
        for (ai, a) in affects.into_iter().enumerate() {
            let reference = a.and_then(|a| a.reference.as_deref());
            let component = reference.and_then(|r| by_ref.get(r)).copied();
            let (pkg, ver) = match component {
                Some(c) => (c.package(), c.version.clone().unwrap_or_default()),
                None => (reference.unwrap_or("").to_string(), String::new()),
            };
            let unaffected = a
                .into_iter()
                .flat_map(|a| a.versions.iter())
                .find(|x| x.status.as_deref() == Some("unaffected"))
                .and_then(|x| x.version.as_deref());
            let entry = Entry {
                id: Cow::Borrowed(v.id.as_deref().unwrap_or("")),
                pkg: Cow::Owned(pkg),
                ver: Cow::Owned(ver),
                fixed: unaffected.or(recommendation),
                severity: sev,
                status: None,
                pkg_type: component.and_then(|c| c.kind.as_deref()),
                class: None,
                target: None,
                pkg_path: None,
                purl: component.and_then(|c| c.purl.as_deref()),
                title: None,
                description: v.description.as_deref().or(v.detail.as_deref()),
                primary_url: v.source.as_ref().and_then(|s| s.url.as_deref()),
                references: references.clone(),
                published: v.published.as_deref().and_then(lenient_time),
                modified: v.updated.as_deref().and_then(lenient_time),
                cvss: score,
                cvss_vector: vector,
                extra: FindingExtra {
                    scanner_severity: word.clone(),
                    vex_state: analysis.and_then(|x| x.state.clone()),
                    vex_justification: analysis.and_then(|x| x.justification.clone()),
                    ..Default::default()
                },
            };
            acc.add(|| format!("vulnerabilities[{vi}].affects[{ai}]"), entry)?;
        }
    }

    let is_container = main.and_then(|c| c.kind.as_deref()) == Some("container");
    let (artifact_name, artifact_type, image) = match main {
        Some(c) => {
            let tags: Vec<String> = c.props("aquasecurity:trivy:RepoTag").collect();
            let digests: Vec<String> = c.props("aquasecurity:trivy:RepoDigest").collect();
            let id = identify(c.name.as_deref(), is_container, &tags, &digests);
            let digest = id.digest.or_else(|| {
                is_container
                    .then(|| c.purl.as_deref().and_then(purl_digest))
                    .flatten()
            });
            (
                c.name.clone(),
                c.kind.clone(),
                ImageIdentity {
                    name: id.name,
                    tag: id.tag,
                    digest,
                    image_id: c.props("aquasecurity:trivy:ImageID").next(),
                    repo_tags: tags,
                    repo_digests: digests,
                },
            )
        }
        None => (None, None, ImageIdentity::default()),
    };
    let tool = metadata.as_ref().and_then(|m| match &m.tools {
        Some(Tools::List(l)) => l.first(),
        Some(Tools::Object { components }) => components.first(),
        None => None,
    });
    Ok(acc.finish(ParsedReport {
        format: ReportFormat::CycloneDx,
        scanner: tool
            .and_then(|t| t.name.clone())
            .unwrap_or_else(|| "cyclonedx".into()),
        scanner_version: tool.and_then(|t| t.version.clone()),
        schema_version: None,
        created_at: metadata
            .as_ref()
            .and_then(|m| m.timestamp.as_deref())
            .and_then(lenient_time),
        artifact_name,
        artifact_type,
        image,
        os_family: None,
        os_name: None,
        findings: vec![],
        vulnerabilities: vec![],
        vulnerability_entries: 0,
        results: 0,
        skipped: vec![],
    }))
}
