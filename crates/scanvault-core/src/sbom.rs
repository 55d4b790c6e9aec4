//! Package inventories (SBOMs) of container images: CycloneDX JSON 1.4 to 1.7 and SPDX 2.2/2.3
//! JSON in ([`parse`]), CycloneDX 1.6 ([`to_cyclonedx`]) and SPDX 2.3 ([`to_spdx`]) JSON out.
//!
//! An [`Inventory`] is the image's identity, its operating system and its packages. The
//! image is CycloneDX's `metadata.component` or SPDX's `CONTAINER` package (else the package
//! the document describes), named by the rules of [`crate::image::identify`] from its name,
//! Trivy's `RepoTag`/`RepoDigest`/`ImageID` properties (CycloneDX) or annotations (SPDX),
//! and its `pkg:oci` purl (digest and `repository_url`). A CycloneDX document that lists
//! vulnerabilities is a scan report, not an inventory: [`SbomError::HasVulnerabilities`].
//!
//! Writing then reading gives back the same inventory, with these losses: SPDX carries a
//! licence only as a licence expression, so [`to_spdx`] writes a component's licences only
//! when each is an SPDX licence identifier (or an expression of them) it knows, and
//! `NOASSERTION` otherwise; a kind the format lacks is written as `library` (CycloneDX) or
//! `OTHER` (SPDX); an image without a name is not written, so neither are its digest and id.

use crate::image::{familiar_name, identify, name_and_tag};
use crate::report::ImageIdentity;
use crate::trivy::{from_text, null_default, prepare, ParseError};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

// ----------------------------------------------------------------------------- model

/// The SBOM format of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    /// CycloneDX JSON (`bomFormat: "CycloneDX"`).
    #[serde(rename = "cyclonedx")]
    CycloneDx,
    /// SPDX JSON (`spdxVersion: "SPDX-2.x"`).
    Spdx,
}

impl SbomFormat {
    /// The format's name in URLs and stored rows: `cyclonedx` or `spdx`.
    pub fn as_str(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "cyclonedx",
            SbomFormat::Spdx => "spdx",
        }
    }

    /// The format's name in messages: `CycloneDX` or `SPDX`.
    fn label(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "CycloneDX",
            SbomFormat::Spdx => "SPDX",
        }
    }
}

impl fmt::Display for SbomFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an SBOM format ([`SbomFormat::from_str`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SBOM format {0:?}: expected \"cyclonedx\" or \"spdx\"")]
pub struct UnknownSbomFormat(pub String);

impl FromStr for SbomFormat {
    type Err = UnknownSbomFormat;

    /// `cyclonedx` or `spdx`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cyclonedx" => Ok(SbomFormat::CycloneDx),
            "spdx" => Ok(SbomFormat::Spdx),
            _ => Err(UnknownSbomFormat(s.to_string())),
        }
    }
}

/// The package inventory of one image, as an SBOM states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The format the inventory was read from.
    pub format: SbomFormat,
    /// The document's version: `1.6` (CycloneDX `specVersion`), `SPDX-2.3` (`spdxVersion`).
    pub spec_version: String,
    /// The image: familiar name, tag, manifest digest, image id, repo tags and digests.
    /// Empty when the document names none.
    pub image: ImageIdentity,
    /// The image's operating system: `(family, version)`, e.g. `("alpine", "3.21.2")`; the
    /// version is empty when the document gives none.
    pub os: Option<(String, String)>,
    /// Every package, in document order; neither the image nor its operating system.
    pub components: Vec<Component>,
}

/// One package of an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Component {
    /// The package name; CycloneDX's `group/name` when the component has a group.
    pub name: String,
    /// The installed version.
    pub version: Option<String>,
    /// The package URL (`pkg:apk/alpine/musl@1.2.5-r8?arch=x86_64`).
    pub purl: Option<String>,
    /// CycloneDX's component `type` (`library`, `application`, `operating-system`, …), or
    /// SPDX's `primaryPackagePurpose` in lower case (`OPERATING_SYSTEM` as
    /// `operating-system`); `library` when the document gives none.
    pub kind: String,
    /// Licences as the document names them: SPDX identifiers, expressions or free names.
    pub licenses: Vec<String>,
}

/// Why a body is not an inventory. Each message says what the body is instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    /// Nothing but whitespace.
    #[error("the body is empty: send a CycloneDX or SPDX JSON document")]
    Empty,
    /// Not UTF-8 text.
    #[error("the body is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    /// Not JSON: XML, SPDX tag-value, a syntax error.
    #[error("the body is not JSON: {message}")]
    NotJson { message: String },
    /// JSON, but neither CycloneDX nor SPDX (`what` says what it looks like), or nested
    /// deeper than [`crate::trivy::MAX_DEPTH`].
    #[error(
        "the body is not an SBOM: it is {what}; send CycloneDX JSON (specVersion 1.4 to 1.7) \
         or SPDX JSON (spdxVersion SPDX-2.3 or SPDX-2.2)"
    )]
    NotSbom { what: String },
    /// CycloneDX or SPDX of a version this module does not read.
    #[error(
        "{format} {version} is not supported: send CycloneDX JSON (specVersion 1.4 to 1.7) or \
         SPDX JSON (spdxVersion SPDX-2.3 or SPDX-2.2)"
    )]
    UnsupportedVersion {
        format: &'static str,
        version: String,
    },
    /// A CycloneDX document with a non-empty `vulnerabilities[]`: scan results, to be
    /// ingested as a scan report rather than stored as an inventory.
    #[error(
        "the CycloneDX document lists vulnerabilities ({count}): it is a vulnerability report, \
         not a package inventory"
    )]
    HasVulnerabilities { count: usize },
    /// CycloneDX or SPDX JSON of the wrong shape (a field of the wrong type, a package
    /// without a name, a NUL character).
    #[error("the {format} document is not valid: {message}")]
    Invalid {
        format: &'static str,
        message: String,
    },
}

impl SbomError {
    fn invalid(format: SbomFormat, message: impl Into<String>) -> Self {
        SbomError::Invalid {
            format: format.label(),
            message: message.into(),
        }
    }

    /// A [`from_text`] error of a document already recognised as `format`.
    fn from_parse(format: SbomFormat, e: ParseError) -> Self {
        match e {
            ParseError::Syntax { message } => SbomError::NotJson { message },
            ParseError::Invalid { message } => SbomError::invalid(format, message),
            other => SbomError::invalid(format, other.to_string()),
        }
    }
}

// ----------------------------------------------------------------------------- parse

/// CycloneDX versions [`parse`] reads.
const CYCLONEDX_VERSIONS: [&str; 4] = ["1.4", "1.5", "1.6", "1.7"];
/// SPDX versions [`parse`] reads.
const SPDX_VERSIONS: [&str; 2] = ["SPDX-2.3", "SPDX-2.2"];

/// Read an SBOM: CycloneDX JSON (specVersion 1.4 to 1.7) without vulnerabilities, or SPDX
/// JSON 2.3 or 2.2. A UTF-8 byte-order mark is accepted.
pub fn parse(bytes: &[u8]) -> Result<Inventory, SbomError> {
    let text = prepare(bytes).map_err(|e| match e {
        ParseError::Empty => SbomError::Empty,
        ParseError::NotUtf8 { offset } => SbomError::NotUtf8 { offset },
        ParseError::Syntax { message } => SbomError::NotJson { message },
        // Nesting deeper than `MAX_DEPTH`.
        ParseError::Invalid { message } => SbomError::NotSbom { what: message },
        other => SbomError::NotJson {
            message: other.to_string(),
        },
    })?;
    let start = text.trim_start();
    match start.as_bytes().first() {
        None => return Err(SbomError::Empty),
        Some(b'{') => {}
        Some(_) => return Err(not_an_object(start)),
    }
    let probe: Probe = from_text(text).map_err(|e| match e {
        ParseError::Syntax { message } => SbomError::NotJson { message },
        other => SbomError::NotSbom {
            what: format!("a JSON object of an unknown kind ({other})"),
        },
    })?;
    let inventory = match probe.format()? {
        (SbomFormat::CycloneDx, version) => parse_cyclonedx(text, version)?,
        (SbomFormat::Spdx, version) => parse_spdx(text, version)?,
    };
    check_nul(&inventory)?;
    Ok(inventory)
}

/// A body that does not start with `{`: XML, SPDX tag-value, another JSON value or not JSON.
fn not_an_object(start: &str) -> SbomError {
    let head: String = start.chars().take(4096).collect();
    if head.starts_with('<') {
        return SbomError::NotJson {
            message: "it looks like XML; send the SBOM as JSON (CycloneDX JSON or SPDX JSON)"
                .into(),
        };
    }
    if head.contains("SPDXVersion:") {
        return SbomError::NotJson {
            message: "it looks like SPDX tag-value; send SPDX as JSON".into(),
        };
    }
    match from_text::<IgnoredAny>(start) {
        Err(ParseError::Syntax { message }) => SbomError::NotJson { message },
        _ => {
            let what = match start.as_bytes().first() {
                Some(b'[') => "a JSON array",
                Some(b'"') => "a JSON string",
                Some(b't' | b'f') => "a JSON boolean",
                Some(b'n') => "JSON null",
                _ => "a JSON number",
            };
            SbomError::NotSbom { what: what.into() }
        }
    }
}

/// The top-level keys that tell formats apart.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "bomFormat")]
    bom_format: Option<Value>,
    #[serde(rename = "specVersion")]
    spec_version: Option<Value>,
    #[serde(rename = "spdxVersion")]
    spdx_version: Option<Value>,
    #[serde(rename = "@context")]
    context: Option<Value>,
    #[serde(rename = "SchemaVersion")]
    trivy_schema: Option<IgnoredAny>,
    #[serde(rename = "Results")]
    trivy_results: Option<IgnoredAny>,
    #[serde(rename = "ClusterName")]
    trivy_cluster: Option<IgnoredAny>,
    matches: Option<IgnoredAny>,
    runs: Option<IgnoredAny>,
    artifacts: Option<IgnoredAny>,
}

impl Probe {
    /// The format and version of a CycloneDX or SPDX document this module reads, else what
    /// the document is.
    fn format(&self) -> Result<(SbomFormat, String), SbomError> {
        if let Some(f) = &self.bom_format {
            if f.as_str() != Some("CycloneDX") {
                return Err(SbomError::NotSbom {
                    what: format!(
                        "a document with \"bomFormat\": {f} (CycloneDX says \"CycloneDX\")"
                    ),
                });
            }
            let version = match &self.spec_version {
                Some(Value::String(v)) => v.clone(),
                Some(other) => {
                    return Err(SbomError::invalid(
                        SbomFormat::CycloneDx,
                        format!("specVersion is {other}, not a string"),
                    ))
                }
                None => {
                    return Err(SbomError::invalid(
                        SbomFormat::CycloneDx,
                        "specVersion is missing",
                    ))
                }
            };
            if !CYCLONEDX_VERSIONS.contains(&version.as_str()) {
                return Err(SbomError::UnsupportedVersion {
                    format: "CycloneDX",
                    version,
                });
            }
            return Ok((SbomFormat::CycloneDx, version));
        }
        if let Some(v) = &self.spdx_version {
            let Some(version) = v.as_str() else {
                return Err(SbomError::invalid(
                    SbomFormat::Spdx,
                    format!("spdxVersion is {v}, not a string"),
                ));
            };
            if !SPDX_VERSIONS.contains(&version) {
                return Err(SbomError::UnsupportedVersion {
                    format: "SPDX",
                    version: version.strip_prefix("SPDX-").unwrap_or(version).to_string(),
                });
            }
            return Ok((SbomFormat::Spdx, version.to_string()));
        }
        let context = self
            .context
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        if context.contains("spdx.org/rdf/3") {
            let version = context
                .split("spdx.org/rdf/")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("3")
                .to_string();
            return Err(SbomError::UnsupportedVersion {
                format: "SPDX",
                version: format!("{version} (JSON-LD)"),
            });
        }
        let what = if context.contains("openvex") {
            "an OpenVEX document".to_string()
        } else if self.spec_version.is_some() {
            "a document with \"specVersion\" but no \"bomFormat\" (CycloneDX says \
             \"bomFormat\": \"CycloneDX\")"
                .to_string()
        } else if self.trivy_cluster.is_some() {
            "a Trivy Kubernetes report (`trivy k8s`)".to_string()
        } else if self.trivy_schema.is_some() || self.trivy_results.is_some() {
            "a Trivy JSON report (`--format json`; for an SBOM use `--format cyclonedx` or \
             `--format spdx-json`)"
                .to_string()
        } else if self.matches.is_some() {
            "a Grype report".to_string()
        } else if self.runs.is_some() {
            "a SARIF log".to_string()
        } else if self.artifacts.is_some() {
            "Syft's own JSON format (use `-o cyclonedx-json` or `-o spdx-json`)".to_string()
        } else {
            "a JSON object with neither \"bomFormat\" (CycloneDX) nor \"spdxVersion\" (SPDX)"
                .to_string()
        };
        Err(SbomError::NotSbom { what })
    }
}

/// Refuse text that cannot be stored (PostgreSQL TEXT holds no NUL character).
fn check_nul(inv: &Inventory) -> Result<(), SbomError> {
    let bad = |what: &str| {
        Err(SbomError::invalid(
            inv.format,
            format!("{what} contains a NUL character"),
        ))
    };
    let image = &inv.image;
    let image_texts = [&image.name, &image.tag, &image.digest, &image.image_id];
    if image_texts
        .iter()
        .any(|s| s.as_deref().is_some_and(has_nul))
        || image
            .repo_tags
            .iter()
            .chain(&image.repo_digests)
            .any(|s| has_nul(s))
    {
        return bad("the image's identity");
    }
    if inv
        .os
        .as_ref()
        .is_some_and(|(f, v)| has_nul(f) || has_nul(v))
    {
        return bad("the operating system");
    }
    for c in &inv.components {
        if has_nul(&c.name)
            || has_nul(&c.kind)
            || c.version.as_deref().is_some_and(has_nul)
            || c.purl.as_deref().is_some_and(has_nul)
            || c.licenses.iter().any(|l| has_nul(l))
        {
            return bad(&format!("package {:?}", c.name.replace('\0', "\\0")));
        }
    }
    Ok(())
}

fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// What a document says about its image, before the naming rules are applied.
#[derive(Default)]
struct ImageClues {
    name: Option<String>,
    /// A version that may be the digest (Syft writes the manifest digest there).
    version: Option<String>,
    purl: Option<String>,
    is_container: bool,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    image_id: Option<String>,
}

/// The parts of a `pkg:oci` purl.
struct OciPurl {
    /// The purl's name: the last segment of the repository.
    name: String,
    digest: Option<String>,
    /// The `repository_url` qualifier (`127.0.0.1:5000/e2e/app`, `index.docker.io/library/x`).
    repository: Option<String>,
    tag: Option<String>,
}

impl OciPurl {
    fn parse(purl: &str) -> Option<Self> {
        let p: packageurl::PackageUrl = purl.trim().parse().ok()?;
        if p.ty() != "oci" {
            return None;
        }
        let qualifier = |key: &str| {
            p.qualifiers()
                .iter()
                .find(|(k, _)| k.as_ref() == key)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Some(OciPurl {
            name: p.name().to_string(),
            digest: p.version().filter(|v| is_digest(v)).map(str::to_string),
            repository: qualifier("repository_url").map(|r| r.trim_end_matches('/').to_string()),
            tag: qualifier("tag"),
        })
    }
}

/// `algorithm:hex`, as image digests are written (`sha256:…`).
fn is_digest(s: &str) -> bool {
    match s.split_once(':') {
        Some((alg, hex)) => {
            matches!(alg, "sha256" | "sha384" | "sha512")
                && !hex.is_empty()
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// The image identity by DESIGN.md's rules ([`identify`]), completed from the purl: its
/// digest, its `repository_url` (or the repository of a repo digest) as the name when the
/// document names the image only by the purl's short name, its `tag` qualifier.
fn image_identity(c: ImageClues) -> ImageIdentity {
    let oci = c.purl.as_deref().and_then(OciPurl::parse);
    let repository = oci
        .as_ref()
        .and_then(|o| o.repository.clone())
        .or_else(|| {
            c.repo_digests
                .iter()
                .find_map(|d| d.split_once('@').map(|(r, _)| r.to_string()))
        })
        .filter(|r| !r.is_empty())
        .map(|r| familiar_name(&r));
    let id = identify(
        c.name.as_deref(),
        c.is_container,
        &c.repo_tags,
        &c.repo_digests,
    );
    let name = match (id.name, repository) {
        // A bare short name (`alpine-app`) that the repository spells out in full.
        (Some(n), Some(r))
            if c.repo_tags.is_empty()
                && !n.contains('/')
                && (r == n || r.ends_with(&format!("/{n}"))) =>
        {
            Some(r)
        }
        (Some(n), _) => Some(n),
        (None, Some(r)) => Some(r),
        (None, None) => oci.as_ref().map(|o| o.name.clone()),
    };
    let digest = id
        .digest
        .or_else(|| oci.as_ref().and_then(|o| o.digest.clone()))
        .or_else(|| c.version.filter(|v| is_digest(v)));
    ImageIdentity {
        name,
        tag: id.tag.or_else(|| oci.and_then(|o| o.tag)),
        digest,
        image_id: c.image_id,
        repo_tags: c.repo_tags,
        repo_digests: c.repo_digests,
    }
}

/// A `RepoTag`/`RepoDigest`/`ImageID` fact about the image (a Trivy property or
/// annotation, or one [`to_cyclonedx`]/[`to_spdx`] wrote).
fn add_image_fact(clues: &mut ImageClues, key: &str, value: &str) {
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    match key {
        "RepoTag" => clues.repo_tags.push(value.to_string()),
        "RepoDigest" => clues.repo_digests.push(value.to_string()),
        "ImageID" if clues.image_id.is_none() => clues.image_id = Some(value.to_string()),
        _ => {}
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

// ----------------------------------------------------------------------------- CycloneDX in

#[derive(Deserialize)]
struct CdxDoc {
    metadata: Option<CdxMetadata>,
    #[serde(default, deserialize_with = "null_default")]
    components: Vec<CdxComponent>,
    #[serde(default, deserialize_with = "null_default")]
    vulnerabilities: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct CdxMetadata {
    component: Option<CdxComponent>,
}

#[derive(Deserialize)]
struct CdxComponent {
    #[serde(rename = "bom-ref")]
    bom_ref: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    group: Option<String>,
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    licenses: Vec<CdxLicenseChoice>,
    #[serde(default, deserialize_with = "null_default")]
    properties: Vec<CdxProperty>,
    #[serde(default, deserialize_with = "null_default")]
    components: Vec<CdxComponent>,
}

#[derive(Deserialize)]
struct CdxLicenseChoice {
    license: Option<CdxLicense>,
    expression: Option<String>,
}

#[derive(Deserialize)]
struct CdxLicense {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct CdxProperty {
    name: Option<String>,
    value: Option<String>,
}

/// Property namespaces whose `RepoTag`, `RepoDigest` and `ImageID` describe the image.
const PROPERTY_PREFIXES: [&str; 2] = ["aquasecurity:trivy:", "scanvault:"];

fn parse_cyclonedx(text: &str, spec_version: String) -> Result<Inventory, SbomError> {
    let format = SbomFormat::CycloneDx;
    let doc: CdxDoc = from_text(text).map_err(|e| SbomError::from_parse(format, e))?;
    if !doc.vulnerabilities.is_empty() {
        return Err(SbomError::HasVulnerabilities {
            count: doc.vulnerabilities.len(),
        });
    }
    let main = doc.metadata.and_then(|m| m.component);
    let image = match &main {
        Some(c) => {
            let mut clues = ImageClues {
                name: non_empty(c.name.as_deref()),
                version: non_empty(c.version.as_deref()),
                purl: non_empty(c.purl.as_deref()),
                is_container: c.kind.as_deref() == Some("container"),
                ..Default::default()
            };
            for p in &c.properties {
                let (Some(name), Some(value)) = (p.name.as_deref(), p.value.as_deref()) else {
                    continue;
                };
                if let Some(key) = PROPERTY_PREFIXES.iter().find_map(|x| name.strip_prefix(x)) {
                    add_image_fact(&mut clues, key, value);
                }
            }
            image_identity(clues)
        }
        None => ImageIdentity::default(),
    };
    let main_ref = main.as_ref().and_then(|c| c.bom_ref.as_deref());

    let mut os = None;
    let mut components = Vec::new();
    // Depth first, in document order.
    let mut stack: Vec<(String, &CdxComponent)> = doc
        .components
        .iter()
        .enumerate()
        .rev()
        .map(|(i, c)| (format!("components[{i}]"), c))
        .collect();
    while let Some((path, c)) = stack.pop() {
        stack.extend(
            c.components
                .iter()
                .enumerate()
                .rev()
                .map(|(i, n)| (format!("{path}.components[{i}]"), n)),
        );
        if main_ref.is_some() && c.bom_ref.as_deref() == main_ref {
            continue;
        }
        let Some(name) = non_empty(c.name.as_deref()) else {
            return Err(SbomError::invalid(format, format!("{path} has no name")));
        };
        let kind = non_empty(c.kind.as_deref()).unwrap_or_else(|| "library".into());
        let version = non_empty(c.version.as_deref());
        if kind == "operating-system" && os.is_none() {
            os = Some((name, version.unwrap_or_default()));
            continue;
        }
        let name = match non_empty(c.group.as_deref()) {
            Some(g) => format!("{g}/{name}"),
            None => name,
        };
        components.push(Component {
            name,
            version,
            purl: non_empty(c.purl.as_deref()),
            kind,
            licenses: c
                .licenses
                .iter()
                .filter_map(|l| {
                    let named = l.license.as_ref().and_then(|x| {
                        non_empty(x.id.as_deref()).or_else(|| non_empty(x.name.as_deref()))
                    });
                    named.or_else(|| non_empty(l.expression.as_deref()))
                })
                .collect(),
        });
    }
    Ok(Inventory {
        format,
        spec_version,
        image,
        os,
        components,
    })
}

// ----------------------------------------------------------------------------- SPDX in

#[derive(Deserialize)]
struct SpdxDoc {
    #[serde(
        rename = "documentDescribes",
        default,
        deserialize_with = "null_default"
    )]
    describes: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    packages: Vec<SpdxPackage>,
    #[serde(default, deserialize_with = "null_default")]
    relationships: Vec<SpdxRelationship>,
    #[serde(
        rename = "hasExtractedLicensingInfos",
        default,
        deserialize_with = "null_default"
    )]
    extracted: Vec<SpdxExtracted>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpdxPackage {
    #[serde(rename = "SPDXID")]
    id: Option<String>,
    name: Option<String>,
    version_info: Option<String>,
    primary_package_purpose: Option<String>,
    license_declared: Option<String>,
    license_concluded: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    external_refs: Vec<SpdxExternalRef>,
    #[serde(default, deserialize_with = "null_default")]
    annotations: Vec<SpdxAnnotation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpdxExternalRef {
    reference_type: Option<String>,
    reference_locator: Option<String>,
}

#[derive(Deserialize)]
struct SpdxAnnotation {
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpdxRelationship {
    spdx_element_id: Option<String>,
    related_spdx_element: Option<String>,
    relationship_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpdxExtracted {
    license_id: Option<String>,
    name: Option<String>,
    extracted_text: Option<String>,
}

impl SpdxPackage {
    fn purpose(&self) -> Option<String> {
        non_empty(self.primary_package_purpose.as_deref()).map(|p| kind_of_purpose(&p))
    }

    fn purl(&self) -> Option<String> {
        self.external_refs
            .iter()
            .find(|r| r.reference_type.as_deref() == Some("purl"))
            .and_then(|r| non_empty(r.reference_locator.as_deref()))
    }

    /// The operating system: purpose `OPERATING_SYSTEM`/`OPERATING-SYSTEM`, or (SPDX 2.2,
    /// which has no purpose) Trivy's `SPDXRef-OperatingSystem-…` id.
    fn is_os(&self) -> bool {
        match self.purpose() {
            Some(p) => p == "operating-system",
            None => self
                .id
                .as_deref()
                .is_some_and(|id| id.starts_with("SPDXRef-OperatingSystem")),
        }
    }
}

/// `primaryPackagePurpose` as a component kind: lower case, `OPERATING_SYSTEM` and
/// `OPERATING-SYSTEM` both `operating-system`.
fn kind_of_purpose(p: &str) -> String {
    p.trim().to_ascii_lowercase().replace('_', "-")
}

fn parse_spdx(text: &str, spec_version: String) -> Result<Inventory, SbomError> {
    let format = SbomFormat::Spdx;
    let doc: SpdxDoc = from_text(text).map_err(|e| SbomError::from_parse(format, e))?;
    for (i, p) in doc.packages.iter().enumerate() {
        if non_empty(p.name.as_deref()).is_none() {
            let id = p.id.as_deref().unwrap_or("no SPDXID");
            return Err(SbomError::invalid(
                format,
                format!("packages[{i}] ({id}) has no name"),
            ));
        }
    }
    let mut described: Vec<&str> = doc.describes.iter().map(String::as_str).collect();
    for r in &doc.relationships {
        let (Some(a), Some(b), Some(t)) = (
            r.spdx_element_id.as_deref(),
            r.related_spdx_element.as_deref(),
            r.relationship_type.as_deref(),
        ) else {
            continue;
        };
        match t {
            "DESCRIBES" if a == "SPDXRef-DOCUMENT" => described.push(b),
            "DESCRIBED_BY" if b == "SPDXRef-DOCUMENT" => described.push(a),
            _ => {}
        }
    }
    let is_described = |p: &SpdxPackage| p.id.as_deref().is_some_and(|id| described.contains(&id));
    let is_container = |p: &SpdxPackage| p.purpose().as_deref() == Some("container");
    let packages = &doc.packages;
    let image_at = packages
        .iter()
        .position(|p| is_container(p) && is_described(p))
        .or_else(|| packages.iter().position(is_container))
        .or_else(|| {
            packages
                .iter()
                .position(|p| p.purpose().is_none() && is_described(p))
        });
    let os_at = packages
        .iter()
        .enumerate()
        .position(|(i, p)| Some(i) != image_at && p.is_os());

    let image = match image_at.map(|i| &packages[i]) {
        Some(p) => {
            let mut clues = ImageClues {
                name: non_empty(p.name.as_deref()),
                version: non_empty(p.version_info.as_deref()),
                purl: p.purl(),
                is_container: true,
                ..Default::default()
            };
            for a in &p.annotations {
                if let Some((key, value)) = a.comment.as_deref().and_then(|c| c.split_once(':')) {
                    add_image_fact(&mut clues, key.trim(), value);
                }
            }
            image_identity(clues)
        }
        None => ImageIdentity::default(),
    };
    let os = os_at.map(|i| {
        let p = &packages[i];
        (
            non_empty(p.name.as_deref()).unwrap_or_default(),
            non_empty(p.version_info.as_deref()).unwrap_or_default(),
        )
    });
    let components = packages
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != image_at && Some(*i) != os_at)
        .map(|(_, p)| {
            let license = [&p.license_declared, &p.license_concluded]
                .into_iter()
                .filter_map(|l| non_empty(l.as_deref()))
                .find(|l| l != "NOASSERTION" && l != "NONE");
            Component {
                name: non_empty(p.name.as_deref()).unwrap_or_default(),
                version: non_empty(p.version_info.as_deref()),
                purl: p.purl(),
                kind: p.purpose().unwrap_or_else(|| "library".into()),
                licenses: license
                    .map(|l| licenses_of_expression(&l, &doc.extracted))
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(Inventory {
        format,
        spec_version,
        image,
        os,
        components,
    })
}

/// An SPDX licence expression as a list of licences: its top-level `AND` terms (as Trivy
/// joins a package's licences), each without enclosing parentheses, a `LicenseRef-…` term
/// replaced by the name (else the text) its `hasExtractedLicensingInfos` entry gives.
fn licenses_of_expression(expression: &str, extracted: &[SpdxExtracted]) -> Vec<String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let bytes = expression.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b' ' if depth == 0 && expression[i..].starts_with(" AND ") => {
                terms.push(&expression[start..i]);
                i += " AND ".len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    terms.push(&expression[start..]);
    terms
        .into_iter()
        .map(|t| strip_parentheses(t.trim()))
        .filter(|t| !t.is_empty())
        .map(|t| {
            extracted
                .iter()
                .find(|x| x.license_id.as_deref() == Some(t))
                .and_then(|x| {
                    non_empty(x.name.as_deref()).or_else(|| non_empty(x.extracted_text.as_deref()))
                })
                .unwrap_or_else(|| t.to_string())
        })
        .collect()
}

/// `(a OR b)` → `a OR b`; `(a) OR (b)` stays as it is.
fn strip_parentheses(t: &str) -> &str {
    let mut t = t;
    while let Some(inner) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        // Only when the opening parenthesis closes at the very end.
        let mut depth = 0i32;
        let balanced = inner.bytes().all(|b| {
            match b {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            depth >= 0
        });
        if !balanced || depth != 0 {
            break;
        }
        t = inner.trim();
    }
    t
}

// ----------------------------------------------------------------------------- licences

/// SPDX licence identifiers (list 3.24, all also in CycloneDX 1.6's enumeration) that
/// [`to_spdx`] writes as licences and [`to_cyclonedx`] as `license.id`: the ones package
/// managers of container images commonly report, deprecated `GPL-2.0`-style ones included.
#[rustfmt::skip]
const LICENSE_IDS: &[&str] = &[
    "0BSD", "AFL-2.1", "AGPL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.1",
    "Apache-2.0", "Artistic-1.0", "Artistic-1.0-Perl", "Artistic-2.0", "BSD-1-Clause",
    "BSD-2-Clause", "BSD-3-Clause", "BSD-4-Clause", "BSL-1.0", "bzip2-1.0.6", "CC-BY-3.0",
    "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0-1.0", "CDDL-1.0", "CDDL-1.1", "curl",
    "EPL-1.0", "EPL-2.0", "EUPL-1.2", "FTL", "GFDL-1.2-only", "GFDL-1.2-or-later",
    "GFDL-1.3-only", "GFDL-1.3-or-later", "GPL-1.0", "GPL-1.0+", "GPL-1.0-only",
    "GPL-1.0-or-later", "GPL-2.0", "GPL-2.0+", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0",
    "GPL-3.0+", "GPL-3.0-only", "GPL-3.0-or-later", "HPND", "ICU", "IJG", "ISC", "LGPL-2.0",
    "LGPL-2.0+", "LGPL-2.0-only", "LGPL-2.0-or-later", "LGPL-2.1", "LGPL-2.1+", "LGPL-2.1-only",
    "LGPL-2.1-or-later", "LGPL-3.0", "LGPL-3.0+", "LGPL-3.0-only", "LGPL-3.0-or-later",
    "Libpng", "libtiff", "MIT", "MIT-0", "MPL-1.1", "MPL-2.0", "NCSA", "OFL-1.1", "OpenSSL",
    "PHP-3.01", "PostgreSQL", "PSF-2.0", "Python-2.0", "Ruby", "Sleepycat", "Unicode-3.0",
    "Unicode-DFS-2016", "Unlicense", "UPL-1.0", "Vim", "W3C", "WTFPL", "X11", "Zlib", "ZPL-2.1",
];

/// SPDX licence exceptions that may follow `WITH`.
const LICENSE_EXCEPTIONS: &[&str] = &[
    "Autoconf-exception-3.0",
    "Bison-exception-2.2",
    "Classpath-exception-2.0",
    "GCC-exception-2.0",
    "GCC-exception-3.1",
    "Linux-syscall-note",
    "LLVM-exception",
    "OpenJDK-assembly-exception-1.0",
];

fn is_license_id(s: &str) -> bool {
    LICENSE_IDS.contains(&s)
        || s.strip_suffix('+')
            .is_some_and(|b| LICENSE_IDS.contains(&b))
}

/// A licence expression of known identifiers (`MIT`, `GPL-2.0-only WITH
/// Classpath-exception-2.0`, `(MIT OR Apache-2.0) AND Zlib`): the grammar of SPDX 2.3
/// Annex D with `AND`, `OR`, `WITH` and parentheses, no `LicenseRef-` (which would need a
/// `hasExtractedLicensingInfos` entry).
fn is_known_expression(s: &str) -> bool {
    let spaced = s.replace('(', " ( ").replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut at = 0;
    expression(&tokens, &mut at) && at == tokens.len()
}

/// `term (("AND" | "OR") term)*`
fn expression(tokens: &[&str], at: &mut usize) -> bool {
    if !term(tokens, at) {
        return false;
    }
    while matches!(tokens.get(*at), Some(&("AND" | "OR"))) {
        *at += 1;
        if !term(tokens, at) {
            return false;
        }
    }
    true
}

/// `"(" expression ")" | id ["WITH" exception]`
fn term(tokens: &[&str], at: &mut usize) -> bool {
    match tokens.get(*at) {
        Some(&"(") => {
            *at += 1;
            if !expression(tokens, at) || tokens.get(*at) != Some(&")") {
                return false;
            }
            *at += 1;
            true
        }
        Some(id) if is_license_id(id) => {
            *at += 1;
            if tokens.get(*at) == Some(&"WITH") {
                *at += 1;
                let ok = tokens
                    .get(*at)
                    .is_some_and(|e| LICENSE_EXCEPTIONS.contains(e));
                *at += 1;
                return ok;
            }
            true
        }
        _ => false,
    }
}

/// The licences as one SPDX expression (joined with `AND`), when every one is a known
/// expression; else `None` (`NOASSERTION`).
fn spdx_expression(licenses: &[String]) -> Option<String> {
    if licenses.is_empty() || !licenses.iter().all(|l| is_known_expression(l)) {
        return None;
    }
    // A compound licence is parenthesised when it would otherwise not read back as one
    // licence: beside others, or itself an `AND` (which [`parse`] splits).
    let parts: Vec<String> = licenses
        .iter()
        .map(|l| {
            let l = l.trim();
            let compound = l.contains(' ') && strip_parentheses(l) == l;
            if compound && (licenses.len() > 1 || licenses_of_expression(l, &[]).len() > 1) {
                format!("({l})")
            } else {
                l.to_string()
            }
        })
        .collect();
    Some(parts.join(" AND "))
}

// ----------------------------------------------------------------------------- writers

/// CycloneDX component types ([`to_cyclonedx`] writes any other kind as `library`).
const CDX_TYPES: &[&str] = &[
    "application",
    "framework",
    "library",
    "container",
    "platform",
    "operating-system",
    "device",
    "device-driver",
    "firmware",
    "file",
    "machine-learning-model",
    "data",
    "cryptographic-asset",
];

/// SPDX 2.3's `OPERATING_SYSTEM` purpose as its JSON schema spells it. The specification's
/// text (and Trivy) write `OPERATING-SYSTEM`, which the schema refuses; [`parse`] reads both.
const SPDX_PURPOSE_OS: &str = "OPERATING_SYSTEM";

/// The SPDX 2.3 `primaryPackagePurpose` of a component kind; `OTHER` for kinds SPDX lacks.
fn spdx_purpose(kind: &str) -> String {
    match kind {
        "operating-system" => SPDX_PURPOSE_OS.to_string(),
        "application" | "framework" | "library" | "container" | "device" | "firmware" | "file"
        | "source" | "archive" | "install" | "other" => kind.to_ascii_uppercase(),
        _ => "OTHER".to_string(),
    }
}

/// The CycloneDX type of a component kind.
fn cyclonedx_type(kind: &str) -> &str {
    if CDX_TYPES.contains(&kind) {
        kind
    } else if kind == "archive" {
        "file"
    } else {
        "library"
    }
}

/// The repository with its registry, as a `pkg:oci` `repository_url`: Docker Hub's familiar
/// names get `index.docker.io/` (and `library/`), as Trivy writes them.
fn full_repository(name: &str) -> String {
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("index.docker.io/{name}")
    } else {
        format!("index.docker.io/library/{name}")
    }
}

/// The image's `pkg:oci` purl (`pkg:oci/app@sha256:…?repository_url=registry/org/app`),
/// when its name and digest are known.
fn oci_purl(image: &ImageIdentity) -> Option<String> {
    let name = image.name.as_deref()?;
    let digest = image.digest.as_deref()?;
    let short = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let mut purl = packageurl::PackageUrl::new("oci", short).ok()?;
    purl.with_version(digest.to_string());
    purl.add_qualifier("repository_url", full_repository(name))
        .ok()?;
    Some(purl.to_string())
}

/// `name:tag`, the image as the document names it.
fn image_reference(image: &ImageIdentity) -> Option<String> {
    let name = image.name.as_deref()?;
    Some(name_and_tag(name, image.tag.as_deref().unwrap_or("")))
}

/// `RepoTag`, `RepoDigest` and `ImageID` facts about the image, in that order.
fn image_facts(image: &ImageIdentity) -> Vec<(&'static str, &str)> {
    let tags = image.repo_tags.iter().map(|t| ("RepoTag", t.as_str()));
    let digests = image
        .repo_digests
        .iter()
        .map(|d| ("RepoDigest", d.as_str()));
    let id = image.image_id.iter().map(|i| ("ImageID", i.as_str()));
    tags.chain(digests).chain(id).collect()
}

/// The inventory as a CycloneDX 1.6 JSON document: `serial` is the serial number's UUID
/// (`urn:uuid:` is added when missing), `timestamp` an RFC 3339 time. The image is
/// `metadata.component` (type `container`, its `pkg:oci` purl when the digest is known,
/// `scanvault:RepoTag`/`RepoDigest`/`ImageID` properties); the operating system a component
/// of type `operating-system`; licences known SPDX identifiers as `license.id`, a single
/// known expression as `expression`, others as `license.name`.
pub fn to_cyclonedx(inv: &Inventory, serial: &str, timestamp: &str) -> Value {
    let serial = serial.trim().to_ascii_lowercase();
    let serial = if serial.starts_with("urn:uuid:") {
        serial
    } else {
        format!("urn:uuid:{serial}")
    };
    let mut metadata = json!({
        "timestamp": timestamp,
        "tools": {"components": [{
            "type": "application",
            "name": "scanvault",
            "version": env!("CARGO_PKG_VERSION"),
        }]},
    });
    if let Some(reference) = image_reference(&inv.image) {
        let mut image = json!({
            "bom-ref": "image",
            "type": "container",
            "name": reference,
        });
        if let Some(purl) = oci_purl(&inv.image) {
            image["purl"] = Value::String(purl);
        }
        let properties: Vec<Value> = image_facts(&inv.image)
            .into_iter()
            .map(|(k, v)| json!({"name": format!("scanvault:{k}"), "value": v}))
            .collect();
        if !properties.is_empty() {
            image["properties"] = Value::Array(properties);
        }
        metadata["component"] = image;
    }

    let mut components = Vec::new();
    if let Some((family, version)) = &inv.os {
        let mut os = json!({"bom-ref": "os", "type": "operating-system", "name": family});
        if !version.is_empty() {
            os["version"] = Value::String(version.clone());
        }
        components.push(os);
    }
    let mut refs: HashSet<&str> = HashSet::new();
    for (i, c) in inv.components.iter().enumerate() {
        // The purl is the usual bom-ref; a repeated purl gets a numbered one.
        let bom_ref = match c.purl.as_deref() {
            Some(p) if refs.insert(p) => p.to_string(),
            _ => format!("component-{}", i + 1),
        };
        let mut v = json!({
            "bom-ref": bom_ref,
            "type": cyclonedx_type(&c.kind),
            "name": c.name,
        });
        if let Some(version) = &c.version {
            v["version"] = Value::String(version.clone());
        }
        if let Some(purl) = &c.purl {
            v["purl"] = Value::String(purl.clone());
        }
        if !c.licenses.is_empty() {
            v["licenses"] = cyclonedx_licenses(&c.licenses);
        }
        components.push(v);
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial,
        "version": 1,
        "metadata": metadata,
        "components": components,
    })
}

fn cyclonedx_licenses(licenses: &[String]) -> Value {
    if let [one] = licenses {
        if one.contains(' ') && is_known_expression(one) {
            return json!([{"expression": one}]);
        }
    }
    Value::Array(
        licenses
            .iter()
            .map(|l| {
                if is_license_id(l) {
                    json!({"license": {"id": l}})
                } else {
                    json!({"license": {"name": l}})
                }
            })
            .collect(),
    )
}

/// The inventory as an SPDX 2.3 JSON document: `namespace` is its `documentNamespace` (a
/// unique URI), `created` an RFC 3339 UTC time (`2026-01-02T03:04:05Z`). The document
/// DESCRIBES the image, a `CONTAINER` package (its `pkg:oci` purl, `RepoTag:`/`RepoDigest:`/
/// `ImageID:` annotations), which CONTAINS the operating system (`OPERATING_SYSTEM`) and every
/// component. A component's `licenseDeclared` is its licences when each is a known SPDX
/// expression, else `NOASSERTION`; `licenseConcluded` is `NOASSERTION`.
pub fn to_spdx(inv: &Inventory, namespace: &str, created: &str) -> Value {
    const DOCUMENT: &str = "SPDXRef-DOCUMENT";
    const CONTAINER: &str = "SPDXRef-ContainerImage";
    const OS: &str = "SPDXRef-OperatingSystem";
    let reference = image_reference(&inv.image);
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    let mut top = Vec::new();
    if let Some(reference) = &reference {
        let mut image = json!({
            "name": reference,
            "SPDXID": CONTAINER,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
        });
        if let Some(purl) = oci_purl(&inv.image) {
            image["externalRefs"] = json!([{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }]);
        }
        let annotations: Vec<Value> = image_facts(&inv.image)
            .into_iter()
            .map(|(k, v)| {
                json!({
                    "annotator": "Tool: scanvault",
                    "annotationDate": created,
                    "annotationType": "OTHER",
                    "comment": format!("{k}: {v}"),
                })
            })
            .collect();
        if !annotations.is_empty() {
            image["annotations"] = Value::Array(annotations);
        }
        packages.push(image);
        relationships.push(relationship(DOCUMENT, "DESCRIBES", CONTAINER));
    }
    if let Some((family, version)) = &inv.os {
        let mut os = json!({
            "name": family,
            "SPDXID": OS,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": SPDX_PURPOSE_OS,
        });
        if !version.is_empty() {
            os["versionInfo"] = Value::String(version.clone());
        }
        packages.push(os);
        top.push(OS.to_string());
    }
    for (i, c) in inv.components.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}", i + 1);
        let mut p = json!({
            "name": c.name,
            "SPDXID": id,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": spdx_expression(&c.licenses).unwrap_or_else(|| "NOASSERTION".into()),
            "primaryPackagePurpose": spdx_purpose(&c.kind),
        });
        if let Some(version) = &c.version {
            p["versionInfo"] = Value::String(version.clone());
        }
        if let Some(purl) = &c.purl {
            p["externalRefs"] = json!([{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }]);
        }
        packages.push(p);
        top.push(id);
    }
    for id in &top {
        match reference {
            Some(_) => relationships.push(relationship(CONTAINER, "CONTAINS", id)),
            None => relationships.push(relationship(DOCUMENT, "DESCRIBES", id)),
        }
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT,
        "name": reference.unwrap_or_else(|| "scanvault inventory".into()),
        "documentNamespace": namespace,
        "creationInfo": {
            "creators": ["Tool: scanvault"],
            "created": created,
        },
        "packages": packages,
        "relationships": relationships,
    })
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPINE: &str = "127.0.0.1:38809/e2e/alpine-app";
    const ALPINE_DIGEST: &str =
        "sha256:f623f5a4534ac6e8d52362c863a40d43b6017bf6aef9f1ba393226669aae4427";
    const DEBIAN: &str = "127.0.0.1:38809/e2e/debian-app";
    const DEBIAN_DIGEST: &str =
        "sha256:2af8556dd51d1b02c95cd60c40052f92920abdc8ab644124bc925406d9abdb49";

    fn sample(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/sbom")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn parse_json(v: &Value) -> Result<Inventory, SbomError> {
        parse(v.to_string().as_bytes())
    }

    fn err(body: &str) -> SbomError {
        match parse(body.as_bytes()) {
            Err(e) => e,
            Ok(inv) => panic!("{body}: parsed as {inv:?}"),
        }
    }

    /// The Trivy 0.59.1 samples: image, OS and package counts. The counts were taken with
    /// Python: CycloneDX components whose type is not `operating-system`, SPDX packages
    /// whose purpose is neither `CONTAINER` nor `OPERATING-SYSTEM`.
    #[test]
    fn trivy_samples_parse() {
        for (file, format, spec, name, digest, image_id, os, count) in [
            (
                "alpine.trivy.cdx.json",
                SbomFormat::CycloneDx,
                "1.6",
                ALPINE,
                ALPINE_DIGEST,
                "sha256:b057cb6b9f8dd0e5dc2b704b3925b705d551eb758565a9355f5d660146f43d44",
                ("alpine", "3.21.2"),
                11,
            ),
            (
                "alpine.trivy.spdx.json",
                SbomFormat::Spdx,
                "SPDX-2.3",
                ALPINE,
                ALPINE_DIGEST,
                "sha256:b057cb6b9f8dd0e5dc2b704b3925b705d551eb758565a9355f5d660146f43d44",
                ("alpine", "3.21.2"),
                11,
            ),
            (
                "debian.trivy.cdx.json",
                SbomFormat::CycloneDx,
                "1.6",
                DEBIAN,
                DEBIAN_DIGEST,
                "sha256:691c7a9dc9a4e149021b4f7a36a31849ca9fde5173d90e4d6014bbcd6d3c6a3c",
                ("debian", "12.9"),
                10,
            ),
            (
                "debian.trivy.spdx.json",
                SbomFormat::Spdx,
                "SPDX-2.3",
                DEBIAN,
                DEBIAN_DIGEST,
                "sha256:691c7a9dc9a4e149021b4f7a36a31849ca9fde5173d90e4d6014bbcd6d3c6a3c",
                ("debian", "12.9"),
                10,
            ),
        ] {
            let inv = parse(&sample(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(inv.format, format, "{file}");
            assert_eq!(inv.spec_version, spec, "{file}");
            assert_eq!(inv.image.name.as_deref(), Some(name), "{file}");
            assert_eq!(inv.image.tag.as_deref(), Some("1.0"), "{file}");
            assert_eq!(inv.image.digest.as_deref(), Some(digest), "{file}");
            assert_eq!(inv.image.image_id.as_deref(), Some(image_id), "{file}");
            assert_eq!(inv.image.repo_tags, vec![format!("{name}:1.0")], "{file}");
            assert_eq!(
                inv.image.repo_digests,
                vec![format!("{name}@{digest}")],
                "{file}"
            );
            assert_eq!(inv.os, Some((os.0.to_string(), os.1.to_string())), "{file}");
            assert_eq!(inv.components.len(), count, "{file}");
        }

        let alpine = parse(&sample("alpine.trivy.cdx.json")).unwrap();
        let musl = alpine.components.iter().find(|c| c.name == "musl").unwrap();
        assert_eq!(
            musl,
            &Component {
                name: "musl".into(),
                version: Some("1.2.5-r8".into()),
                purl: Some("pkg:apk/alpine/musl@1.2.5-r8?arch=x86_64&distro=3.21.2".into()),
                kind: "library".into(),
                licenses: vec!["MIT".into()],
            }
        );
        // Trivy lists the lock file it read as an `application` without a version.
        let lock = &alpine.components[0];
        assert_eq!(
            (
                lock.name.as_str(),
                lock.kind.as_str(),
                lock.version.as_deref()
            ),
            ("app/Cargo.lock", "application", None)
        );
        let debian = parse(&sample("debian.trivy.spdx.json")).unwrap();
        let zlib = debian
            .components
            .iter()
            .find(|c| c.name == "zlib1g")
            .unwrap();
        assert_eq!(zlib.version.as_deref(), Some("1:1.2.13.dfsg-1"));
        assert!(zlib.licenses.is_empty(), "NOASSERTION is no licence");
    }

    /// Trivy's CycloneDX and SPDX of one image list the same packages (in another order).
    #[test]
    fn cyclonedx_and_spdx_of_one_image_agree() {
        for image in ["alpine", "debian"] {
            let cdx = parse(&sample(&format!("{image}.trivy.cdx.json"))).unwrap();
            let spdx = parse(&sample(&format!("{image}.trivy.spdx.json"))).unwrap();
            assert_eq!(cdx.image, spdx.image, "{image}");
            assert_eq!(cdx.os, spdx.os, "{image}");
            let sorted = |inv: &Inventory| {
                let mut c = inv.components.clone();
                c.sort();
                c
            };
            assert_eq!(sorted(&cdx), sorted(&spdx), "{image}");
        }
    }

    fn same_inventory(a: &Inventory, b: &Inventory, what: &str) {
        assert_eq!(a.image, b.image, "{what}: image");
        assert_eq!(a.os, b.os, "{what}: os");
        assert_eq!(a.components, b.components, "{what}: components");
    }

    #[test]
    fn written_documents_read_back_the_same() {
        for file in [
            "alpine.trivy.cdx.json",
            "alpine.trivy.spdx.json",
            "debian.trivy.cdx.json",
            "debian.trivy.spdx.json",
        ] {
            let inv = parse(&sample(file)).unwrap();
            let cdx = to_cyclonedx(
                &inv,
                "3E671687-395B-41F5-A30F-A58921A69B79",
                "2026-01-02T03:04:05Z",
            );
            assert_eq!(
                cdx["serialNumber"],
                "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"
            );
            let back = parse_json(&cdx).unwrap();
            assert_eq!(
                (back.format, back.spec_version.as_str()),
                (SbomFormat::CycloneDx, "1.6")
            );
            same_inventory(&inv, &back, &format!("{file} → CycloneDX"));

            let spdx = to_spdx(
                &inv,
                "https://scanvault.example/spdx/1",
                "2026-01-02T03:04:05Z",
            );
            let back = parse_json(&spdx).unwrap();
            assert_eq!(
                (back.format, back.spec_version.as_str()),
                (SbomFormat::Spdx, "SPDX-2.3")
            );
            same_inventory(&inv, &back, &format!("{file} → SPDX"));
        }
    }

    #[test]
    fn written_documents_have_the_expected_shape() {
        let inv = parse(&sample("alpine.trivy.cdx.json")).unwrap();
        let cdx = to_cyclonedx(&inv, "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79", "t");
        let image = &cdx["metadata"]["component"];
        assert_eq!(image["type"], "container");
        assert_eq!(image["name"], format!("{ALPINE}:1.0"));
        assert_eq!(
            image["purl"],
            format!("pkg:oci/alpine-app@{ALPINE_DIGEST}?repository_url={ALPINE}")
        );
        assert_eq!(
            cdx["metadata"]["tools"]["components"][0]["name"],
            "scanvault"
        );
        assert_eq!(cdx["components"][0]["type"], "operating-system");
        let musl = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "musl")
            .unwrap();
        assert_eq!(musl["licenses"], json!([{"license": {"id": "MIT"}}]));
        assert_eq!(musl["bom-ref"], musl["purl"]);

        let spdx = to_spdx(&inv, "https://scanvault.example/spdx/1", "t");
        let packages = spdx["packages"].as_array().unwrap();
        assert_eq!(packages.len(), 13);
        assert_eq!(packages[0]["primaryPackagePurpose"], "CONTAINER");
        assert_eq!(packages[1]["primaryPackagePurpose"], "OPERATING_SYSTEM");
        let ids: HashSet<&str> = packages
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), packages.len(), "SPDXIDs are unique");
        for id in &ids {
            let rest = id.strip_prefix("SPDXRef-").unwrap();
            assert!(
                !rest.is_empty()
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
                "{id}"
            );
        }
        let relationships = spdx["relationships"].as_array().unwrap();
        assert_eq!(
            relationships.len(),
            13,
            "DESCRIBES the image, which CONTAINS 12"
        );
        assert_eq!(
            relationships[0],
            json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                   "relatedSpdxElement": "SPDXRef-ContainerImage"})
        );
        let musl = packages.iter().find(|p| p["name"] == "musl").unwrap();
        assert_eq!(musl["licenseDeclared"], "MIT");
        assert_eq!(musl["licenseConcluded"], "NOASSERTION");
        assert_eq!(
            musl["externalRefs"][0]["referenceCategory"],
            "PACKAGE-MANAGER"
        );
        let lock = packages
            .iter()
            .find(|p| p["name"] == "app/Cargo.lock")
            .unwrap();
        assert_eq!(lock["licenseDeclared"], "NOASSERTION");
        assert_eq!(lock["primaryPackagePurpose"], "APPLICATION");
    }

    #[test]
    fn an_inventory_without_image_or_os_round_trips() {
        let inv = Inventory {
            format: SbomFormat::CycloneDx,
            spec_version: "1.6".into(),
            image: ImageIdentity::default(),
            os: None,
            components: vec![
                Component {
                    name: "@babel/core".into(),
                    version: Some("7.0.0".into()),
                    purl: Some("pkg:npm/%40babel/core@7.0.0".into()),
                    kind: "library".into(),
                    licenses: vec!["MIT OR Apache-2.0".into()],
                },
                Component {
                    name: "dup".into(),
                    version: None,
                    purl: Some("pkg:npm/%40babel/core@7.0.0".into()),
                    kind: "framework".into(),
                    licenses: vec![
                        "MIT AND Zlib".into(),
                        "GPL-2.0-only WITH Classpath-exception-2.0".into(),
                        "Public Domain".into(),
                    ],
                },
                Component {
                    name: "and".into(),
                    version: Some("1".into()),
                    purl: None,
                    kind: "file".into(),
                    licenses: vec!["MIT AND Zlib".into()],
                },
            ],
        };
        let cdx = to_cyclonedx(&inv, "3e671687-395b-41f5-a30f-a58921a69b79", "t");
        assert!(cdx["metadata"].get("component").is_none());
        assert_eq!(
            cdx["components"][1]["bom-ref"], "component-2",
            "purls repeat"
        );
        same_inventory(&inv, &parse_json(&cdx).unwrap(), "CycloneDX");

        let spdx = to_spdx(&inv, "https://scanvault.example/spdx/2", "t");
        assert_eq!(spdx["packages"][0]["licenseDeclared"], "MIT OR Apache-2.0");
        assert_eq!(
            spdx["packages"][1]["licenseDeclared"], "NOASSERTION",
            "a free name"
        );
        assert_eq!(spdx["packages"][2]["licenseDeclared"], "(MIT AND Zlib)");
        assert_eq!(spdx["relationships"].as_array().unwrap().len(), 3);
        let back = parse_json(&spdx).unwrap();
        assert_eq!(back.image, ImageIdentity::default());
        assert_eq!(back.components[0], inv.components[0]);
        assert_eq!(back.components[2], inv.components[2]);
        assert!(back.components[1].licenses.is_empty());
    }

    #[test]
    fn a_cyclonedx_document_with_vulnerabilities_is_a_report() {
        let mut doc: Value = serde_json::from_slice(&sample("alpine.trivy.cdx.json")).unwrap();
        doc["vulnerabilities"] = json!([{"id": "CVE-2099-0001"}, {"id": "CVE-2099-0002"}]);
        let e = parse_json(&doc).unwrap_err();
        assert_eq!(e, SbomError::HasVulnerabilities { count: 2 });
        assert!(e.to_string().contains("vulnerability report"), "{e}");
        doc["vulnerabilities"] = json!([]);
        assert_eq!(
            parse_json(&doc).unwrap().components.len(),
            11,
            "none listed"
        );
    }

    #[test]
    fn other_bodies_are_refused_saying_what_they_are() {
        assert_eq!(err(""), SbomError::Empty);
        assert_eq!(err(" \r\n"), SbomError::Empty);
        assert!(matches!(
            parse(b"\xff\xfe"),
            Err(SbomError::NotUtf8 { offset: 0 })
        ));
        for (body, want) in [
            ("this is not json", "not JSON"),
            ("{\"bomFormat\": \"CycloneDX\",", "not JSON"),
            ("<?xml version=\"1.0\"?><bom/>", "XML"),
            (
                "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n",
                "SPDX tag-value",
            ),
            ("[]", "a JSON array"),
            ("42", "a JSON number"),
            (
                "{}",
                "neither \"bomFormat\" (CycloneDX) nor \"spdxVersion\" (SPDX)",
            ),
            (
                r#"{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}"#,
                "SPDX 3.0.1 (JSON-LD) is not supported",
            ),
            (r#"{"spdxVersion":"SPDX-3.0"}"#, "SPDX 3.0 is not supported"),
            (r#"{"spdxVersion":"SPDX-2.1"}"#, "SPDX 2.1 is not supported"),
            (
                r#"{"bomFormat":"CycloneDX","specVersion":"1.2","components":[]}"#,
                "CycloneDX 1.2 is not supported",
            ),
            (r#"{"bomFormat":"CycloneDX"}"#, "specVersion is missing"),
            (
                r#"{"bomFormat":"SPDX","specVersion":"1.6"}"#,
                "\"bomFormat\": \"SPDX\"",
            ),
            (
                r#"{"specVersion":"1.6","components":[]}"#,
                "no \"bomFormat\"",
            ),
            (
                r#"{"SchemaVersion":2,"ArtifactName":"x","Results":[]}"#,
                "a Trivy JSON report",
            ),
            (r#"{"matches":[],"source":{}}"#, "a Grype report"),
            (r#"{"artifacts":[],"descriptor":{"name":"syft"}}"#, "Syft"),
            (
                r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}"#,
                "OpenVEX",
            ),
            (
                r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"library"}]}"#,
                "components[0] has no name",
            ),
            (
                r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"name":"a","components":[{"name":"b","version":3}]}]}"#,
                "components[0].components[0].version",
            ),
            (
                r#"{"spdxVersion":"SPDX-2.3","packages":[{"SPDXID":"SPDXRef-x"}]}"#,
                "packages[0] (SPDXRef-x) has no name",
            ),
            (
                r#"{"spdxVersion":"SPDX-2.3","packages":[{"SPDXID":"SPDXRef-x","name":"a\u0000b"}]}"#,
                "NUL",
            ),
        ] {
            let e = err(body);
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(err(&deep).to_string().contains("nested deeper"));
    }

    /// Syft's CycloneDX names the image as the user wrote it, with the digest as version.
    #[test]
    fn syft_style_image_components_are_understood() {
        let doc = json!({"bomFormat": "CycloneDX", "specVersion": "1.5",
            "metadata": {"component": {"bom-ref": "x", "type": "container",
                "name": "docker.io/library/alpine:3.19", "version": ALPINE_DIGEST}},
            "components": [{"bom-ref": "x", "type": "container", "name": "dup of the image"},
                {"type": "operating-system", "name": "alpine", "version": "3.19.1"},
                {"type": "library", "group": "org.x", "name": "lib", "version": "1",
                 "licenses": [{"license": {"id": "MIT"}}, {"license": {"name": "custom"}},
                              {"expression": "MIT OR Zlib"}]}]});
        let inv = parse_json(&doc).unwrap();
        assert_eq!(inv.image.name.as_deref(), Some("alpine"));
        assert_eq!(inv.image.tag.as_deref(), Some("3.19"));
        assert_eq!(inv.image.digest.as_deref(), Some(ALPINE_DIGEST));
        assert_eq!(inv.os, Some(("alpine".into(), "3.19.1".into())));
        assert_eq!(inv.components.len(), 1);
        assert_eq!(inv.components[0].name, "org.x/lib");
        assert_eq!(inv.components[0].licenses, ["MIT", "custom", "MIT OR Zlib"]);
    }

    /// A name that is only the purl's short name gives way to `repository_url`; without any
    /// name, the repository of the repo digest names the image.
    #[test]
    fn the_repository_is_preferred_over_the_purls_short_name() {
        let purl = format!(
            "pkg:oci/alpine-app@{}?repository_url=127.0.0.1%3A38809%2Fe2e%2Falpine-app&tag=2.0",
            ALPINE_DIGEST.replace(':', "%3A")
        );
        let doc = json!({"bomFormat": "CycloneDX", "specVersion": "1.4",
            "metadata": {"component": {"type": "container", "name": "alpine-app", "purl": purl}}});
        let inv = parse_json(&doc).unwrap();
        assert_eq!(inv.image.name.as_deref(), Some(ALPINE));
        assert_eq!(inv.image.tag.as_deref(), Some("2.0"));
        assert_eq!(inv.image.digest.as_deref(), Some(ALPINE_DIGEST));

        let doc = json!({"spdxVersion": "SPDX-2.3", "packages": [
            {"SPDXID": "SPDXRef-img", "name": "app", "primaryPackagePurpose": "CONTAINER",
             "annotations": [{"comment": format!("RepoDigest: ghcr.io/acme/app@{ALPINE_DIGEST}")}]},
            {"SPDXID": "SPDXRef-os", "name": "debian", "versionInfo": "12",
             "primaryPackagePurpose": "OPERATING-SYSTEM"}]});
        let inv = parse_json(&doc).unwrap();
        assert_eq!(inv.image.name.as_deref(), Some("ghcr.io/acme/app"));
        assert_eq!(inv.image.digest.as_deref(), Some(ALPINE_DIGEST));
        assert_eq!(inv.os, Some(("debian".into(), "12".into())));
        assert!(inv.components.is_empty());
    }

    /// SPDX 2.2 has no purposes: the described package is the image, Trivy's
    /// `SPDXRef-OperatingSystem-…` the OS; licence references read as their names.
    #[test]
    fn spdx_2_2_and_licence_references() {
        let doc = json!({"spdxVersion": "SPDX-2.2", "documentDescribes": ["SPDXRef-img"],
            "packages": [
                {"SPDXID": "SPDXRef-OperatingSystem-1", "name": "ubuntu", "versionInfo": "22.04"},
                {"SPDXID": "SPDXRef-pkg", "name": "bash", "versionInfo": "5.1",
                 "licenseConcluded": "NOASSERTION",
                 "licenseDeclared": "GPL-3.0-only AND LicenseRef-1 AND (MIT OR ISC)",
                 "externalRefs": [{"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl",
                                   "referenceLocator": "pkg:deb/ubuntu/bash@5.1"}]},
                {"SPDXID": "SPDXRef-img", "name": "ubuntu:22.04", "versionInfo": ALPINE_DIGEST}],
            "hasExtractedLicensingInfos": [{"licenseId": "LicenseRef-1", "name": "Custom",
                                            "extractedText": "..."}]});
        let inv = parse_json(&doc).unwrap();
        assert_eq!(inv.spec_version, "SPDX-2.2");
        assert_eq!(inv.image.name.as_deref(), Some("ubuntu"));
        assert_eq!(inv.image.tag.as_deref(), Some("22.04"));
        assert_eq!(inv.image.digest.as_deref(), Some(ALPINE_DIGEST));
        assert_eq!(inv.os, Some(("ubuntu".into(), "22.04".into())));
        assert_eq!(
            inv.components,
            [Component {
                name: "bash".into(),
                version: Some("5.1".into()),
                purl: Some("pkg:deb/ubuntu/bash@5.1".into()),
                kind: "library".into(),
                licenses: vec!["GPL-3.0-only".into(), "Custom".into(), "MIT OR ISC".into()],
            }]
        );
    }

    #[test]
    fn licence_expressions_are_written_only_when_known() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(spdx_expression(&s(&["MIT"])).as_deref(), Some("MIT"));
        assert_eq!(
            spdx_expression(&s(&["MIT", "Apache-2.0 OR BSD-3-Clause"])).as_deref(),
            Some("MIT AND (Apache-2.0 OR BSD-3-Clause)")
        );
        assert_eq!(
            spdx_expression(&s(&["GPL-2.0+"])).as_deref(),
            Some("GPL-2.0+")
        );
        for unknown in [
            &["MIT", "Public Domain"][..],
            &["mit"],
            &["GPLv2"],
            &["LicenseRef-x"],
            &["MIT AND"],
            &["(MIT"],
            &["MIT WITH MIT"],
            &[],
        ] {
            assert_eq!(spdx_expression(&s(unknown)), None, "{unknown:?}");
        }
        assert_eq!(
            licenses_of_expression("((MIT OR ISC)) AND Zlib", &[]),
            ["MIT OR ISC", "Zlib"]
        );
        assert_eq!(
            licenses_of_expression("(MIT) OR (ISC)", &[]),
            ["(MIT) OR (ISC)"]
        );
    }

    /// Every identifier written as a CycloneDX `license.id` is in CycloneDX 1.6's list
    /// (the vendored `spdx.schema.json`, SPDX licence list 3.24).
    #[test]
    fn known_licence_ids_are_spdx_ids() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scanvault/tests/schemas/spdx.schema.json");
        let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let ids: HashSet<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for id in LICENSE_IDS.iter().chain(LICENSE_EXCEPTIONS) {
            assert!(ids.contains(id), "{id}");
        }
    }

    #[test]
    fn formats_have_names() {
        for f in [SbomFormat::CycloneDx, SbomFormat::Spdx] {
            assert_eq!(f.as_str().parse::<SbomFormat>(), Ok(f));
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
        }
        assert_eq!("CycloneDX".parse(), Ok(SbomFormat::CycloneDx));
        let e = "swid".parse::<SbomFormat>().unwrap_err();
        assert!(e.to_string().contains("\"cyclonedx\" or \"spdx\""), "{e}");
    }
}
