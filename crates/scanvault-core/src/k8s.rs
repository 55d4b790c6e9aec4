//! `trivy k8s` cluster reports → one [`ParsedReport`] per image, each with the workloads
//! that run it.
//!
//! Two shapes: `{ClusterName, Resources[]}` (Trivy 0.4x on) and the older
//! `{ClusterName, Vulnerabilities[], Misconfigurations[]}`. A resource (a workload) lists
//! Results; an `os-pkgs` Result's `Target` names an image (`image:tag (os version)`), and
//! the language-package Results after it belong to the same image. Configuration findings,
//! resources with an `Error`, and findings of an image the report does not name are left
//! out and counted.

use crate::accumulate::{skip, Accumulator};
use crate::image::{familiar_name, split_reference};
use crate::report::{ImageIdentity, ParsedReport, ReportFormat, SkippedEntries};
use crate::trivy::{
    add_result, from_text, lenient_time, null_default, split_target, ParseError, TResult,
};
use serde::Deserialize;
use std::collections::HashMap;

/// A workload of a cluster that runs an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Workload {
    pub cluster: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

/// One image of a cluster report.
#[derive(Debug, Clone)]
pub struct ClusterImage {
    pub report: ParsedReport,
    pub workloads: Vec<Workload>,
}

/// A cluster report: its images, and what was left out.
#[derive(Debug, Clone)]
pub struct ClusterReport {
    pub cluster: String,
    pub images: Vec<ClusterImage>,
    pub skipped: Vec<SkippedEntries>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Doc<'a> {
    cluster_name: Option<String>,
    created_at: Option<String>,
    trivy: Option<TrivyInfo>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    resources: Vec<Resource<'a>>,
    /// The older shape: resources with vulnerabilities, and with misconfigurations.
    #[serde(borrow, default, deserialize_with = "null_default")]
    vulnerabilities: Vec<Resource<'a>>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    misconfigurations: Vec<Resource<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyInfo {
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resource<'a> {
    namespace: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    error: Option<String>,
    /// Images of the workload (newer Trivy): their tags, digests and ids.
    #[serde(default, deserialize_with = "null_default")]
    metadata: Vec<ImageMetadata>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    results: Vec<TResult<'a>>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct ImageMetadata {
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    repo_digests: Vec<String>,
}

/// Findings of one image, as they are gathered.
struct ImageAcc<'d> {
    reference: String,
    os: Option<(String, String)>,
    acc: Accumulator<'d>,
    results: usize,
    workloads: Vec<Workload>,
    metadata: Option<ImageMetadata>,
}

const CONFIG: &str = "configuration findings (misconfigurations are not stored)";
const ERRORS: &str = "resources the scan could not read (their Error)";
const UNNAMED: &str = "vulnerabilities of an image the report does not name";

pub(crate) fn parse(text: &str) -> Result<ClusterReport, ParseError> {
    let doc: Doc = from_text(text).map_err(|e| match e {
        ParseError::Invalid { message } => ParseError::Invalid {
            message: format!("Trivy Kubernetes JSON, {message}"),
        },
        e => e,
    })?;
    let cluster = doc.cluster_name.clone().unwrap_or_default();
    let mut images: Vec<ImageAcc> = vec![];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut skipped: Vec<SkippedEntries> = vec![];
    let sections = [
        ("Resources", &doc.resources),
        ("Vulnerabilities", &doc.vulnerabilities),
        ("Misconfigurations", &doc.misconfigurations),
    ];
    for (section, resources) in sections {
        for (i, res) in resources.iter().enumerate() {
            let at = || format!("{section}[{i}]");
            if res.error.as_deref().is_some_and(|e| !e.trim().is_empty()) {
                skip(&mut skipped, ERRORS, at());
                continue;
            }
            let workload = Workload {
                cluster: cluster.clone(),
                namespace: res.namespace.clone().unwrap_or_default(),
                kind: res.kind.clone().unwrap_or_default(),
                name: res.name.clone().unwrap_or_default(),
            };
            let mut current: Option<usize> = None;
            for (ri, r) in res.results.iter().enumerate() {
                let at = || format!("{section}[{i}].Results[{ri}]");
                for _ in r.misconfigurations.iter().flatten() {
                    skip(&mut skipped, CONFIG, at());
                }
                let vulns = r.vulnerabilities.as_ref().map_or(0, Vec::len);
                if r.class.as_deref() == Some("os-pkgs") {
                    let (artifact, os) = r
                        .target
                        .as_deref()
                        .map(split_target)
                        .unwrap_or((None, None));
                    current = artifact.map(|reference| {
                        let at = *index.entry(reference.clone()).or_insert_with(|| {
                            images.push(ImageAcc {
                                metadata: metadata_for(&res.metadata, &reference),
                                reference,
                                os: os.clone(),
                                acc: Accumulator::default(),
                                results: 0,
                                workloads: vec![],
                            });
                            images.len() - 1
                        });
                        if !images[at].workloads.contains(&workload) {
                            images[at].workloads.push(workload.clone());
                        }
                        at
                    });
                }
                match current {
                    Some(img) if vulns > 0 || r.class.as_deref() == Some("os-pkgs") => {
                        let image = &mut images[img];
                        image.results += 1;
                        add_result(&mut image.acc, ri, r)?;
                    }
                    None if vulns > 0 => {
                        for _ in 0..vulns {
                            skip(&mut skipped, UNNAMED, at());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let created_at = doc.created_at.as_deref().and_then(lenient_time);
    let version = doc.trivy.and_then(|t| t.version).filter(|v| !v.is_empty());
    let images = images
        .into_iter()
        .map(|i| {
            let (name, tag, ref_digest) = split_reference(&i.reference);
            let md = i.metadata.clone();
            let digest = ref_digest.or_else(|| {
                md.as_ref().and_then(|m| {
                    crate::image::digest_for_name(&m.repo_digests, Some(&familiar_name(&name)))
                })
            });
            let mut workloads = i.workloads;
            workloads.sort();
            let (os_family, os_name) = i.os.unzip();
            ClusterImage {
                report: i.acc.finish(ParsedReport {
                    format: ReportFormat::TrivyK8s,
                    scanner: "trivy".into(),
                    scanner_version: version.clone(),
                    schema_version: None,
                    created_at,
                    artifact_name: Some(i.reference.clone()),
                    artifact_type: Some("container_image".into()),
                    image: ImageIdentity {
                        name: Some(familiar_name(&name)),
                        tag,
                        digest,
                        image_id: md.as_ref().and_then(|m| m.image_id.clone()),
                        repo_tags: md.as_ref().map(|m| m.repo_tags.clone()).unwrap_or_default(),
                        repo_digests: md.map(|m| m.repo_digests).unwrap_or_default(),
                    },
                    os_family,
                    os_name,
                    findings: vec![],
                    vulnerabilities: vec![],
                    vulnerability_entries: 0,
                    results: i.results,
                    skipped: vec![],
                }),
                workloads,
            }
        })
        .collect();
    Ok(ClusterReport {
        cluster,
        images,
        skipped,
    })
}

/// The metadata entry of a workload's image `reference` (by tag), if the report has one.
fn metadata_for(metadata: &[ImageMetadata], reference: &str) -> Option<ImageMetadata> {
    metadata
        .iter()
        .find(|m| {
            m.repo_tags
                .iter()
                .any(|t| t == reference || familiar_name(t) == familiar_name(reference))
        })
        .cloned()
}
