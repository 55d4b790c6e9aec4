//! Package inventories (SBOMs): what is stored for a digest, how it is served in either
//! format, and how a `trivy sbom` report of it becomes a report of the image (ADR 0027).

use chrono::Utc;
use scanvault_core::sbom::{self, Inventory, SbomError, SbomFormat};
use serde_json::Value;

use crate::store::jobs::{Lane, NewJob};
use crate::store::monitor::{InventorySource, NewInventory};
use crate::store::{micros, Store, StoreError};

/// Why an inventory was not stored.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Invalid(#[from] SbomError),
    #[error("the SBOM names no image: give ?image=NAME[:TAG]")]
    NoImage,
    #[error("the SBOM names no image digest: give ?digest=sha256:...")]
    NoDigest,
    #[error("{0}")]
    BadOverride(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub inventory: Inventory,
    pub image_name: String,
    pub image_tag: String,
    pub image_digest: String,
    /// Written now (an inventory the worker made is kept as first written).
    pub written: bool,
}

/// The document without its `vulnerabilities` (what `trivy convert` adds from the report):
/// an inventory lists packages, not findings.
pub fn without_vulnerabilities(document: &[u8]) -> Result<Vec<u8>, String> {
    let mut v: Value = serde_json::from_slice(document).map_err(|e| e.to_string())?;
    match v.as_object_mut() {
        Some(o) => {
            o.remove("vulnerabilities");
        }
        None => return Err("not a JSON object".into()),
    }
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

/// Parse and store `document` as the inventory of `digest` (of `name:tag`); names and digest
/// default to those the document gives.
pub async fn store(
    store: &Store,
    document: &[u8],
    name: &str,
    tag: &str,
    digest: &str,
    source: InventorySource,
) -> Result<Stored, InventoryError> {
    let inventory = sbom::parse(document)?;
    let image_name = Some(name.to_string())
        .filter(|n| !n.is_empty())
        .or_else(|| inventory.image.name.clone())
        .ok_or(InventoryError::NoImage)?;
    let image_tag = Some(tag.to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| inventory.image.tag.clone())
        .unwrap_or_default();
    let image_digest = Some(digest.to_string())
        .filter(|d| !d.is_empty())
        .or_else(|| inventory.image.digest.clone())
        .ok_or(InventoryError::NoDigest)?;
    if !valid_digest(&image_digest) {
        return Err(InventoryError::BadOverride(format!(
            "{image_digest:?} is not a digest (sha256: and 64 hex digits)"
        )));
    }
    let written = store
        .monitor()
        .put_inventory(&NewInventory {
            image_digest: &image_digest,
            image_name: &image_name,
            image_tag: &image_tag,
            format: inventory.format.as_str(),
            spec_version: &inventory.spec_version,
            packages: inventory.components.len() as i64,
            document,
            source,
            now: micros(Utc::now()),
        })
        .await?;
    Ok(Stored {
        inventory,
        image_name,
        image_tag,
        image_digest,
        written,
    })
}

/// Queue the re-match of a stored inventory in the ad-hoc lane (someone asked for it): its
/// job id, and whether it is new (an active one of the same image is reused).
pub async fn queue_rematch(
    store: &Store,
    stored: &Stored,
    by: Option<String>,
    max_attempts: i64,
) -> Result<Option<(String, bool)>, StoreError> {
    let Ok(job) = crate::monitor::rematch_job(
        &stored.image_name,
        &stored.image_tag,
        &stored.image_digest,
        Lane::Adhoc,
        Utc::now(),
    ) else {
        return Ok(None);
    };
    let (job, created) = store
        .jobs()
        .create(NewJob {
            max_attempts,
            requested_by: by,
            ..job
        })
        .await?;
    Ok(Some((job.id, created)))
}

/// Whether a document is a package inventory rather than a report: SPDX, or CycloneDX
/// without `vulnerabilities`.
pub fn is_inventory(document: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "spdxVersion")]
        spdx: Option<serde::de::IgnoredAny>,
        #[serde(rename = "bomFormat")]
        bom_format: Option<String>,
        vulnerabilities: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Probe>(document) {
        Ok(p) => {
            p.spdx.is_some()
                || (p.bom_format.as_deref() == Some("CycloneDX") && p.vulnerabilities.is_none())
        }
        Err(_) => false,
    }
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The stored `document` (of `stored` format and `spec` version) as `wanted`: a CycloneDX
/// 1.6 document as stored (Trivy's, with everything it wrote); anything else written from
/// the parsed inventory (CycloneDX 1.6 or SPDX 2.3), so that what is served is valid against
/// that format's schema.
pub fn render(
    document: &[u8],
    stored: &str,
    spec: &str,
    wanted: SbomFormat,
) -> Result<Vec<u8>, String> {
    if stored == SbomFormat::CycloneDx.as_str() && spec == "1.6" && wanted == SbomFormat::CycloneDx
    {
        return Ok(document.to_vec());
    }
    let inventory = sbom::parse(document).map_err(|e| e.to_string())?;
    let id = uuid::Uuid::new_v4();
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = match wanted {
        SbomFormat::CycloneDx => sbom::to_cyclonedx(&inventory, &format!("urn:uuid:{id}"), &now),
        SbomFormat::Spdx => sbom::to_spdx(
            &inventory,
            &format!("https://scanvault.invalid/spdx/{id}"),
            &now,
        ),
    };
    serde_json::to_vec_pretty(&out).map_err(|e| e.to_string())
}

/// A `trivy sbom` report as a report of the image: named `artifact` (the name the image's
/// scans carry, so that its findings compare equal), with its image id and digest. Trivy
/// names the artifact and the targets after the temporary file it read.
pub fn as_image_report(
    raw: &[u8],
    artifact: &str,
    image_id: &str,
    digest: &str,
) -> Result<Vec<u8>, String> {
    let mut v: Value = serde_json::from_slice(raw)
        .map_err(|e| format!("trivy sbom printed no JSON report: {e}"))?;
    let Some(o) = v.as_object_mut() else {
        return Err("trivy sbom printed no JSON object".into());
    };
    let read_from = o
        .get("ArtifactName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    o.insert("ArtifactName".into(), Value::from(artifact));
    o.insert("ArtifactType".into(), Value::from("container_image"));
    if let Some(results) = o.get_mut("Results").and_then(Value::as_array_mut) {
        for r in results {
            let target = r.get("Target").and_then(Value::as_str).unwrap_or_default();
            if !read_from.is_empty() {
                if let Some(rest) = target.strip_prefix(&read_from) {
                    let renamed = format!("{artifact}{rest}");
                    r["Target"] = Value::from(renamed);
                }
            }
        }
    }
    let meta = o
        .entry("Metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(m) = meta.as_object_mut() {
        if !image_id.is_empty() {
            m.insert("ImageID".into(), Value::from(image_id));
        }
        let repo = artifact.split('@').next().unwrap_or(artifact);
        let repo = match repo.rfind(':') {
            Some(i) if !repo[i..].contains('/') => &repo[..i],
            _ => repo,
        };
        m.insert(
            "RepoDigests".into(),
            Value::from(vec![format!("{repo}@{digest}")]),
        );
    }
    serde_json::to_vec(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trivy_sbom_report_is_named_after_the_image() {
        let raw = br#"{"SchemaVersion":2,"ArtifactName":"/tmp/scanvault-x.json","ArtifactType":"cyclonedx",
            "Metadata":{"OS":{"Family":"alpine","Name":"3.21.2"}},
            "Results":[{"Target":"/tmp/scanvault-x.json (alpine 3.21.2)"},{"Target":"Node.js"}]}"#;
        let out =
            as_image_report(raw, "reg:5000/e2e/app@sha256:ab", "sha256:cfg", "sha256:ab").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ArtifactName"], "reg:5000/e2e/app@sha256:ab");
        assert_eq!(v["ArtifactType"], "container_image");
        assert_eq!(
            v["Results"][0]["Target"],
            "reg:5000/e2e/app@sha256:ab (alpine 3.21.2)"
        );
        assert_eq!(v["Results"][1]["Target"], "Node.js");
        assert_eq!(v["Metadata"]["ImageID"], "sha256:cfg");
        assert_eq!(
            v["Metadata"]["RepoDigests"][0],
            "reg:5000/e2e/app@sha256:ab"
        );
        let tagged = as_image_report(raw, "reg:5000/e2e/app:1.0", "", "sha256:ab").unwrap();
        let v: Value = serde_json::from_slice(&tagged).unwrap();
        assert_eq!(
            v["Metadata"]["RepoDigests"][0],
            "reg:5000/e2e/app@sha256:ab"
        );
        assert!(v["Metadata"].get("ImageID").is_none());
    }

    #[test]
    fn vulnerabilities_are_left_out_of_an_inventory() {
        let doc =
            br#"{"bomFormat":"CycloneDX","components":[],"vulnerabilities":[{"id":"CVE-1"}]}"#;
        let out: Value = serde_json::from_slice(&without_vulnerabilities(doc).unwrap()).unwrap();
        assert!(out.get("vulnerabilities").is_none());
        assert_eq!(out["bomFormat"], "CycloneDX");
        assert!(without_vulnerabilities(b"[1]").is_err());
    }
}
