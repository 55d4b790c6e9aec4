//! A parsed report written back as Trivy JSON (schema 2): what ScanVault stores as the
//! report of an image it learned of from a cluster report, where the body received covers
//! many images. Reading the result again gives the same findings and catalog entries.

use crate::report::{ParsedReport, VulnerabilityDetail};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A Result being written: its target, class, type and vulnerabilities.
type Group<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Vec<Value>,
);

/// `report` as a Trivy JSON report.
pub fn trivy_json(report: &ParsedReport) -> Vec<u8> {
    let catalog: HashMap<&str, &VulnerabilityDetail> = report
        .vulnerabilities
        .iter()
        .map(|v| (v.id.as_str(), v))
        .collect();
    // Results in order of first appearance of their (target, class, type).
    let mut results: Vec<Group> = vec![];
    for f in &report.findings {
        let key = (
            f.target.as_deref(),
            f.class.as_deref(),
            f.pkg_type.as_deref(),
        );
        let at = match results.iter().position(|r| (r.0, r.1, r.2) == key) {
            Some(at) => at,
            None => {
                results.push((key.0, key.1, key.2, vec![]));
                results.len() - 1
            }
        };
        let mut v = Map::new();
        v.insert("VulnerabilityID".into(), json!(f.vulnerability_id));
        v.insert("PkgName".into(), json!(f.pkg_name));
        put(&mut v, "PkgPath", f.pkg_path.as_deref());
        if let Some(purl) = &f.purl {
            v.insert("PkgIdentifier".into(), json!({ "PURL": purl }));
        }
        v.insert("InstalledVersion".into(), json!(f.installed_version));
        put(&mut v, "FixedVersion", f.fixed_version.as_deref());
        put(&mut v, "Status", f.status.as_deref());
        v.insert("Severity".into(), json!(f.severity.as_str()));
        let detail = catalog.get(f.vulnerability_id.as_str());
        if let Some(d) = detail {
            put(&mut v, "PrimaryURL", d.primary_url.as_deref());
            put(&mut v, "Title", d.title.as_deref());
            put(&mut v, "Description", d.description.as_deref());
            if !d.references.is_empty() {
                v.insert("References".into(), json!(d.references));
            }
            let time = |t: &Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            };
            put(&mut v, "PublishedDate", time(&d.published_at).as_deref());
            put(&mut v, "LastModifiedDate", time(&d.modified_at).as_deref());
        }
        if let Some(score) = f.cvss_score {
            let mut cvss = Map::new();
            cvss.insert("V3Score".into(), json!(score));
            if let Some(vector) = detail.and_then(|d| d.cvss_vector.as_deref()) {
                cvss.insert("V3Vector".into(), json!(vector));
            }
            v.insert("SeveritySource".into(), json!("nvd"));
            v.insert("CVSS".into(), json!({ "nvd": cvss }));
        }
        results[at].3.push(Value::Object(v));
    }
    let results: Vec<Value> = results
        .into_iter()
        .map(|(target, class, kind, vulns)| {
            let mut r = Map::new();
            r.insert("Target".into(), json!(target.unwrap_or_default()));
            put(&mut r, "Class", class);
            put(&mut r, "Type", kind);
            r.insert("Vulnerabilities".into(), Value::Array(vulns));
            Value::Object(r)
        })
        .collect();
    let image = &report.image;
    let mut doc = Map::new();
    doc.insert("SchemaVersion".into(), json!(2));
    if let Some(t) = report.created_at {
        doc.insert(
            "CreatedAt".into(),
            json!(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        );
    }
    put(&mut doc, "ArtifactName", report.artifact_name.as_deref());
    put(&mut doc, "ArtifactType", report.artifact_type.as_deref());
    let mut md = Map::new();
    if let (Some(family), Some(name)) = (&report.os_family, &report.os_name) {
        md.insert("OS".into(), json!({ "Family": family, "Name": name }));
    }
    put(&mut md, "ImageID", image.image_id.as_deref());
    md.insert("RepoTags".into(), json!(image.repo_tags));
    md.insert("RepoDigests".into(), json!(image.repo_digests));
    doc.insert("Metadata".into(), Value::Object(md));
    doc.insert("Results".into(), Value::Array(results));
    serde_json::to_vec_pretty(&Value::Object(doc)).unwrap_or_default()
}

fn put(m: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        m.insert(key.into(), json!(v));
    }
}
