//! Trivy JSON → [`ParsedReport`].
//!
//! Accepts Trivy `SchemaVersion: 2` (every release since 0.20) and the legacy top-level
//! array of Results (Trivy ≤ 0.19, including the literal `null`), with or without a UTF-8
//! BOM. The format is detected from the content. Other formats (a `trivy k8s` cluster
//! report, Grype, CycloneDX) are recognised and refused with [`ParseError::Unsupported`].
//!
//! Deserialisation goes into typed structs holding only the fields we use. The bulky text
//! fields are `Cow<str>` (in a newtype, `Str`): borrowed from the body when the JSON
//! string has no escapes, owned when it has (Go's encoder escapes `&`, `<`, `>` as
//! `\u0026`… in real reports, so a plain `&str` would fail).

use crate::accumulate::{Accumulator, Entry};
use crate::image::{identify, split_reference};
use crate::report::{ImageIdentity, ParsedReport, ReportFormat, Severity};
use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest vulnerability id, package name or version we accept (bytes).
pub const MAX_KEY_LEN: usize = 512;
/// Deepest JSON nesting we accept. Trivy reports nest about 8 levels deep.
pub const MAX_DEPTH: usize = 64;

/// Why a body is not a report we can store. Each variant says what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the request body is empty")]
    Empty,
    #[error("the body is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    /// Not JSON at all, or cut short.
    #[error("the body is not valid JSON: {message}")]
    Syntax { message: String },
    /// JSON of the wrong shape: a field with the wrong type, a missing required field.
    #[error("the report is not valid: {message}")]
    Invalid { message: String },
    /// A recognised format that this version does not ingest.
    #[error(
        "{format} documents are not a report ScanVault reads; send Trivy, Grype or CycloneDX JSON \
         with vulnerabilities (`trivy image --format json`, `grype -o json`)"
    )]
    Unsupported { format: &'static str },
}

/// The markers [`ParseError::Unsupported`] names other formats by, for the dispatcher
/// (`crate::parse`) to hand the body to their parser.
pub const FORMAT_K8S: &str = "Trivy Kubernetes cluster (`trivy k8s`)";
pub const FORMAT_GRYPE: &str = "Grype";
pub const FORMAT_CYCLONEDX: &str = "CycloneDX";

/// Parse a Trivy report (one image: a `trivy k8s` cluster report, Grype or CycloneDX is
/// [`ParseError::Unsupported`] here; `crate::parse::parse` reads every format).
pub fn parse(body: &[u8]) -> Result<ParsedReport, ParseError> {
    parse_text(prepare(body)?)
}

/// The body as text: without a UTF-8 byte-order mark, valid UTF-8, nested no deeper than
/// [`MAX_DEPTH`].
pub(crate) fn prepare(body: &[u8]) -> Result<&str, ParseError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    // Validated once here; the deserializer then reads the text without checking it again.
    let text = std::str::from_utf8(body).map_err(|e| ParseError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    check_depth(body)?;
    Ok(text)
}

pub(crate) fn parse_text(text: &str) -> Result<ParsedReport, ParseError> {
    let body = text.as_bytes();
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let report = match first.map(|i| body[i]) {
        None => Err(ParseError::Empty),
        Some(b'[') | Some(b'n') => parse_legacy(text),
        Some(b'{') => parse_object(text),
        Some(_) => {
            // Valid JSON scalars (numbers, strings, booleans) are not reports; anything else
            // is a syntax error. Let serde tell which.
            let v: IgnoredAny = from_text(text)?;
            let _ = v;
            Err(ParseError::Invalid {
                message: "expected a JSON object (SchemaVersion 2) or an array of results".into(),
            })
        }
    }?;
    check_text(&report)?;
    Ok(report)
}

/// Refuse nesting deeper than [`MAX_DEPTH`] before deserialising (a cheap byte scan that
/// skips strings), so hostile input cannot make the parser recurse deeply.
fn check_depth(body: &[u8]) -> Result<(), ParseError> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                // Skip the string: jump from one quote or backslash to the next.
                i += 1;
                loop {
                    let Some(j) = memchr::memchr2(b'"', b'\\', &body[i..]) else {
                        // Unterminated: the parser reports it.
                        return Ok(());
                    };
                    i += j;
                    if body[i] == b'\\' {
                        i += 2;
                        if i >= body.len() {
                            return Ok(());
                        }
                    } else {
                        break;
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ParseError::Invalid {
                        message: format!("JSON nested deeper than {MAX_DEPTH} levels"),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Stored text may not hold NUL characters (PostgreSQL cannot store them in TEXT).
pub(crate) fn check_text(r: &ParsedReport) -> Result<(), ParseError> {
    let bad = |field: &str| ParseError::Invalid {
        message: format!("{field} contains a NUL character"),
    };
    let has_nul = |s: &Option<String>| s.as_deref().is_some_and(|v| v.contains('\0'));
    for (name, v) in [
        ("ArtifactName", &r.artifact_name),
        ("ArtifactType", &r.artifact_type),
        ("Metadata.OS.Family", &r.os_family),
        ("Metadata.OS.Name", &r.os_name),
        ("Trivy.Version", &r.scanner_version),
        ("image name", &r.image.name),
        ("image tag", &r.image.tag),
        ("image digest", &r.image.digest),
        ("Metadata.ImageID", &r.image.image_id),
    ] {
        if has_nul(v) {
            return Err(bad(name));
        }
    }
    if r.image
        .repo_tags
        .iter()
        .chain(&r.image.repo_digests)
        .any(|t| t.contains('\0'))
    {
        return Err(bad("Metadata.RepoTags/RepoDigests"));
    }
    for f in &r.findings {
        for (name, v) in [
            ("FixedVersion", &f.fixed_version),
            ("Status", &f.status),
            ("Type", &f.pkg_type),
            ("Class", &f.class),
            ("Target", &f.target),
            ("PkgPath", &f.pkg_path),
            ("PkgIdentifier.PURL", &f.purl),
            ("Title", &f.title),
        ] {
            if has_nul(v) {
                return Err(bad(&format!("a finding's {name} ({})", f.vulnerability_id)));
            }
        }
    }
    for v in &r.vulnerabilities {
        for (name, val) in [
            ("Title", &v.title),
            ("Description", &v.description),
            ("CVSS vector", &v.cvss_vector),
            ("PrimaryURL", &v.primary_url),
        ] {
            if has_nul(val) {
                return Err(bad(&format!("{name} of {}", v.id)));
            }
        }
        if v.references.iter().any(|x| x.contains('\0')) {
            return Err(bad(&format!("References of {}", v.id)));
        }
    }
    Ok(())
}

/// Deserialise `body`; anything but whitespace after the document is a syntax error.
/// The path-tracking deserializer, which names the field that is wrong, costs about a fifth
/// of the parse time, so it runs only to explain a failure: the plain pass accepts exactly
/// what the tracked pass accepts (the tracker only wraps it).
pub(crate) fn from_text<'de, T: Deserialize<'de>>(body: &'de str) -> Result<T, ParseError> {
    let mut de = serde_json::Deserializer::from_str(body);
    if let Ok(value) = T::deserialize(&mut de) {
        de.end().map_err(|e| classify_json_error("", &e))?;
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        classify_json_error(&path, &inner)
    })?;
    de.end().map_err(|e| classify_json_error("", &e))?;
    Ok(value)
}

fn classify_json_error(path: &str, e: &serde_json::Error) -> ParseError {
    use serde_json::error::Category;
    let at = if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("at {path}: ")
    };
    match e.classify() {
        Category::Io | Category::Syntax | Category::Eof => ParseError::Syntax {
            message: format!("{e}"),
        },
        Category::Data => ParseError::Invalid {
            message: format!("{at}{e}"),
        },
    }
}

// ----------------------------------------------------------------------------- serde model

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Doc<'a> {
    schema_version: Option<i64>,
    trivy: Option<TrivyInfo>,
    created_at: Option<String>,
    artifact_name: Option<String>,
    artifact_type: Option<String>,
    metadata: Option<Metadata>,
    #[serde(borrow)]
    results: Option<Vec<TResult<'a>>>,
    // Markers of other formats: only their presence matters.
    cluster_name: Option<IgnoredAny>,
    resources: Option<IgnoredAny>,
    #[serde(rename = "matches")]
    grype_matches: Option<IgnoredAny>,
    #[serde(rename = "bomFormat")]
    cdx_bom_format: Option<IgnoredAny>,
    #[serde(rename = "specVersion")]
    cdx_spec_version: Option<IgnoredAny>,
    #[serde(rename = "spdxVersion")]
    spdx_version: Option<IgnoredAny>,
    #[serde(rename = "runs")]
    sarif_runs: Option<IgnoredAny>,
    #[serde(rename = "artifacts")]
    syft_artifacts: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyInfo {
    version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    #[serde(rename = "OS")]
    os: Option<Os>,
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
    repo_tags: Option<Vec<String>>,
    repo_digests: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Os {
    family: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TResult<'a> {
    pub(crate) target: Option<String>,
    pub(crate) class: Option<String>,
    #[serde(rename = "Type")]
    pub(crate) kind: Option<String>,
    #[serde(borrow)]
    pub(crate) vulnerabilities: Option<Vec<TVuln<'a>>>,
    /// Misconfigurations (`trivy k8s`, `trivy config`): counted, not stored.
    pub(crate) misconfigurations: Option<Vec<IgnoredAny>>,
}

/// A list (or any value with a default) that may also be `null`.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Text borrowed from the body when it has no escapes (most of a report's bytes are
/// descriptions, titles and references repeated per package; only the first of each id is
/// kept, so copying every one was wasted work).
pub(crate) type Text<'a> = Option<Str<'a>>;

/// A JSON string, borrowed from the body when it has no escapes. A newtype because serde
/// borrows a `Cow<str>` only where it is the field's own type: inside an `Option`, a `Vec`
/// or a map it would always be copied.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Str<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TVuln<'a> {
    #[serde(rename = "VulnerabilityID", borrow)]
    vulnerability_id: Text<'a>,
    #[serde(borrow)]
    pkg_name: Text<'a>,
    #[serde(borrow)]
    pkg_path: Text<'a>,
    #[serde(borrow)]
    pkg_identifier: Option<PkgIdentifier<'a>>,
    #[serde(borrow)]
    installed_version: Text<'a>,
    /// The original service's request schema named the installed version `PkgVersion`;
    /// read when `InstalledVersion` is absent or empty.
    #[serde(borrow)]
    pkg_version: Text<'a>,
    #[serde(borrow)]
    fixed_version: Text<'a>,
    #[serde(borrow)]
    status: Text<'a>,
    #[serde(borrow)]
    severity: Text<'a>,
    #[serde(borrow)]
    severity_source: Text<'a>,
    #[serde(rename = "PrimaryURL", borrow)]
    primary_url: Text<'a>,
    #[serde(borrow)]
    title: Text<'a>,
    #[serde(borrow)]
    description: Text<'a>,
    #[serde(rename = "CVSS", borrow)]
    cvss: Option<BTreeMap<Str<'a>, Cvss<'a>>>,
    #[serde(borrow)]
    references: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    published_date: Text<'a>,
    #[serde(borrow)]
    last_modified_date: Text<'a>,
}

#[derive(Deserialize)]
struct PkgIdentifier<'a> {
    #[serde(rename = "PURL", borrow)]
    purl: Text<'a>,
}

#[derive(Deserialize)]
struct Cvss<'a> {
    #[serde(rename = "V2Score")]
    v2_score: Option<f64>,
    #[serde(rename = "V3Score")]
    v3_score: Option<f64>,
    #[serde(rename = "V40Score")]
    v40_score: Option<f64>,
    #[serde(rename = "V3Vector", borrow)]
    v3_vector: Text<'a>,
    #[serde(rename = "V40Vector", borrow)]
    v40_vector: Text<'a>,
    #[serde(rename = "V2Vector", borrow)]
    v2_vector: Text<'a>,
}

impl Cvss<'_> {
    /// The base score of this source: v3 preferred, then v4, then v2; with its vector.
    fn best(&self) -> Option<(f64, Option<&str>)> {
        let valid = |s: Option<f64>| s.filter(|v| v.is_finite() && (0.0..=10.0).contains(v));
        if let Some(s) = valid(self.v3_score) {
            return Some((s, self.v3_vector.as_deref()));
        }
        if let Some(s) = valid(self.v40_score) {
            return Some((s, self.v40_vector.as_deref()));
        }
        valid(self.v2_score).map(|s| (s, self.v2_vector.as_deref()))
    }
}

// ----------------------------------------------------------------------------- shapes

fn parse_object(body: &str) -> Result<ParsedReport, ParseError> {
    let doc: Doc = from_text(body)?;
    if doc.cluster_name.is_some() || doc.resources.is_some() {
        return Err(ParseError::Unsupported { format: FORMAT_K8S });
    }
    if doc.grype_matches.is_some() {
        return Err(ParseError::Unsupported {
            format: FORMAT_GRYPE,
        });
    }
    if doc.cdx_bom_format.is_some() || doc.cdx_spec_version.is_some() {
        return Err(ParseError::Unsupported {
            format: FORMAT_CYCLONEDX,
        });
    }
    if doc.spdx_version.is_some() {
        return Err(ParseError::Unsupported {
            format: "SPDX (an SBOM without vulnerabilities)",
        });
    }
    if doc.sarif_runs.is_some() {
        return Err(ParseError::Unsupported { format: "SARIF" });
    }
    if doc.syft_artifacts.is_some() && doc.results.is_none() {
        return Err(ParseError::Unsupported {
            format: "Syft (an SBOM without vulnerabilities)",
        });
    }
    match doc.schema_version {
        Some(2) => {}
        Some(v) => {
            return Err(ParseError::Invalid {
                message: format!("unsupported SchemaVersion {v} (expected 2)"),
            })
        }
        None if doc.artifact_name.is_some() || doc.results.is_some() => {}
        None => {
            return Err(ParseError::Invalid {
                message: "not a Trivy, Grype or CycloneDX report: no SchemaVersion, ArtifactName \
                    or Results (Trivy), no matches (Grype), no bomFormat (CycloneDX)"
                    .into(),
            })
        }
    }

    let created_at = match doc.created_at.as_deref() {
        Some(s) => parse_time(s).map_err(|_| ParseError::Invalid {
            message: format!("at CreatedAt: {s:?} is not an RFC 3339 timestamp"),
        })?,
        None => None,
    };
    let md = doc.metadata.unwrap_or_default();
    let repo_tags = md.repo_tags.unwrap_or_default();
    let repo_digests = md.repo_digests.unwrap_or_default();
    let is_image = doc.artifact_type.as_deref() == Some("container_image");
    let id = identify(
        doc.artifact_name.as_deref(),
        is_image,
        &repo_tags,
        &repo_digests,
    );
    let results = doc.results.unwrap_or_default();
    let mut acc = Accumulator::default();
    for (ri, r) in results.iter().enumerate() {
        add_result(&mut acc, ri, r)?;
    }
    let (os_family, os_name) = md
        .os
        .map(|o| (non_empty(o.family), non_empty(o.name)))
        .unwrap_or((None, None));
    Ok(acc.finish(ParsedReport {
        format: ReportFormat::TrivyV2,
        scanner: "trivy".into(),
        scanner_version: doc.trivy.and_then(|t| non_empty(t.version)),
        schema_version: doc.schema_version,
        created_at,
        artifact_name: doc.artifact_name,
        artifact_type: doc.artifact_type,
        image: ImageIdentity {
            name: id.name,
            tag: id.tag,
            digest: id.digest,
            image_id: non_empty(md.image_id),
            repo_tags,
            repo_digests,
        },
        os_family,
        os_name,
        findings: vec![],
        vulnerabilities: vec![],
        vulnerability_entries: 0,
        results: results.len(),
        skipped: vec![],
    }))
}

fn parse_legacy(body: &str) -> Result<ParsedReport, ParseError> {
    let results: Option<Vec<TResult>> = from_text(body)?;
    let results = results.unwrap_or_default();
    let mut acc = Accumulator::default();
    for (ri, r) in results.iter().enumerate() {
        add_result(&mut acc, ri, r)?;
    }
    // Legacy reports carry no artifact identity: the first Result's Target is
    // "<artifact> (<os family> <os version>)".
    let first_target = results.first().and_then(|r| r.target.as_deref());
    let (artifact, os) = first_target.map(split_target).unwrap_or((None, None));
    let (name, tag) = match artifact.as_deref() {
        Some(a) => {
            let (n, t, _) = split_reference(a);
            (Some(crate::image::familiar_name(&n)), t)
        }
        None => (None, None),
    };
    let (os_family, os_name) = os.unzip();
    Ok(acc.finish(ParsedReport {
        format: ReportFormat::TrivyLegacy,
        scanner: "trivy".into(),
        scanner_version: None,
        schema_version: None,
        created_at: None,
        artifact_name: artifact,
        artifact_type: None,
        image: ImageIdentity {
            name,
            tag,
            ..Default::default()
        },
        os_family,
        os_name,
        findings: vec![],
        vulnerabilities: vec![],
        vulnerability_entries: 0,
        results: results.len(),
        skipped: vec![],
    }))
}

/// `"alpine:3.10 (alpine 3.10.2)"` → (`alpine:3.10`, (`alpine`, `3.10.2`)).
pub(crate) fn split_target(target: &str) -> (Option<String>, Option<(String, String)>) {
    let t = target.trim();
    if let Some(open) = t.rfind(" (") {
        if let Some(inner) = t[open + 2..].strip_suffix(')') {
            let artifact = t[..open].trim();
            let os = inner
                .split_once(' ')
                .map(|(f, v)| (f.to_string(), v.to_string()));
            return ((!artifact.is_empty()).then(|| artifact.to_string()), os);
        }
    }
    ((!t.is_empty()).then(|| t.to_string()), None)
}

// ----------------------------------------------------------------------------- findings

pub use crate::accumulate::NO_VULNERABILITY_ID;

/// Add the vulnerability entries of Result `ri`.
pub(crate) fn add_result<'d>(
    acc: &mut Accumulator<'d>,
    ri: usize,
    r: &'d TResult<'_>,
) -> Result<(), ParseError> {
    let Some(vulns) = r.vulnerabilities.as_ref() else {
        return Ok(());
    };
    for (vi, v) in vulns.iter().enumerate() {
        let ver = [&v.installed_version, &v.pkg_version]
            .into_iter()
            .filter_map(|t| t.as_deref())
            .find(|t| !t.trim().is_empty())
            .unwrap_or("");
        let (cvss, cvss_vector) = entry_cvss(v);
        let entry = Entry {
            id: Cow::Borrowed(v.vulnerability_id.as_deref().unwrap_or("")),
            pkg: Cow::Borrowed(v.pkg_name.as_deref().unwrap_or("")),
            // The original service's request schema named the installed version
            // `PkgVersion`: read when `InstalledVersion` is absent or empty.
            ver: Cow::Borrowed(ver),
            fixed: v.fixed_version.as_deref(),
            severity: Severity::from_label(v.severity.as_deref()),
            status: v.status.as_deref(),
            pkg_type: r.kind.as_deref(),
            class: r.class.as_deref(),
            target: r.target.as_deref(),
            pkg_path: v.pkg_path.as_deref(),
            purl: v.pkg_identifier.as_ref().and_then(|p| p.purl.as_deref()),
            title: v.title.as_deref(),
            description: v.description.as_deref(),
            primary_url: v.primary_url.as_deref(),
            references: v.references.iter().flatten().map(|r| &**r).collect(),
            published: v.published_date.as_deref().and_then(lenient_time),
            modified: v.last_modified_date.as_deref().and_then(lenient_time),
            cvss,
            cvss_vector,
            extra: Default::default(),
        };
        acc.add(|| format!("Results[{ri}].Vulnerabilities[{vi}]"), entry)?;
    }
    Ok(())
}

/// CVSS base score of one entry: the severity source's when it has one, else NVD's,
/// else the highest of any source.
fn entry_cvss<'v>(v: &'v TVuln<'_>) -> (Option<f64>, Option<&'v str>) {
    let Some(map) = v.cvss.as_ref() else {
        return (None, None);
    };
    let preferred = v
        .severity_source
        .as_deref()
        .and_then(|s| map.get(s))
        .and_then(Cvss::best)
        .or_else(|| map.get("nvd").and_then(Cvss::best));
    if let Some((s, vec)) = preferred {
        return (Some(s), vec);
    }
    map.values()
        .filter_map(Cvss::best)
        .fold((None, None), |(best, bv), (s, vec)| match best {
            Some(b) if b >= s => (Some(b), bv),
            _ => (Some(s), vec),
        })
}

pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

/// `CreatedAt`: RFC 3339; Go's zero time means "not set".
pub(crate) fn parse_time(s: &str) -> Result<Option<DateTime<Utc>>, chrono::ParseError> {
    let t = DateTime::parse_from_rfc3339(s.trim())?.with_timezone(&Utc);
    Ok((t.timestamp() > 0).then_some(t))
}

pub(crate) fn lenient_time(s: &str) -> Option<DateTime<Utc>> {
    parse_time(s).ok().flatten()
}

#[cfg(test)]
mod tests;
