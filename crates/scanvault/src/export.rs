//! A stored scan written out for other tools: CSV for spreadsheets, SARIF 2.1.0 for
//! code-scanning views, CycloneDX 1.6 JSON with `vulnerabilities[]` (and VEX `analysis`
//! where known) for suppliers; and the CSV rows of the fleet listings.

use scanvault_core::report::{FindingExtra, Severity};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use crate::store::scans::{FindingRow, ScanRow};

/// The formats a scan is exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Sarif,
    CycloneDx,
}

impl ExportFormat {
    pub const NAMES: &'static str = "csv, sarif or cyclonedx";

    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(ExportFormat::Csv),
            "sarif" => Some(ExportFormat::Sarif),
            "cyclonedx" | "cdx" => Some(ExportFormat::CycloneDx),
            _ => None,
        }
    }

    /// The format an `Accept` header asks for, if it names one of them.
    pub fn from_accept(accept: &str) -> Option<ExportFormat> {
        accept.split(',').find_map(|part| {
            match part.split(';').next()?.trim().to_ascii_lowercase().as_str() {
                "text/csv" => Some(ExportFormat::Csv),
                "application/sarif+json" => Some(ExportFormat::Sarif),
                "application/vnd.cyclonedx+json" => Some(ExportFormat::CycloneDx),
                _ => None,
            }
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Sarif => "application/sarif+json",
            ExportFormat::CycloneDx => "application/vnd.cyclonedx+json; version=1.6",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Sarif => "sarif",
            ExportFormat::CycloneDx => "cdx.json",
        }
    }
}

/// `name:tag`, or the name alone.
pub fn reference(scan: &ScanRow) -> String {
    scanvault_core::image::name_and_tag(&scan.image_name, &scan.image_tag)
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR at the start)
/// is prefixed with `'`, unless it is a number.
pub fn csv_cell(s: &str) -> String {
    let risky = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// A CSV writer's bytes of `rows` (each a record of cells).
pub fn csv_bytes<I, R>(rows: I) -> Vec<u8>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = String>,
{
    let mut w = csv::Writer::from_writer(vec![]);
    for r in rows {
        let cells: Vec<String> = r.into_iter().map(|c| csv_cell(&c)).collect();
        // Writing to memory cannot fail.
        let _ = w.write_record(&cells);
    }
    w.into_inner().unwrap_or_default()
}

pub const SCAN_CSV_HEADER: [&str; 20] = [
    "ScanID",
    "ImageName",
    "ImageTag",
    "ImageDigest",
    "Target",
    "Class",
    "Type",
    "VulnerabilityID",
    "PkgName",
    "InstalledVersion",
    "FixedVersion",
    "Severity",
    "Status",
    "CVSSScore",
    "Title",
    "PrimaryURL",
    "PkgPath",
    "PURL",
    "VEXState",
    "VEXJustification",
];

/// The scan's findings as CSV: a header row, then one row per finding.
pub fn scan_csv(scan: &ScanRow, findings: &[FindingRow]) -> Vec<u8> {
    let header = SCAN_CSV_HEADER
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    let rows = findings.iter().map(|f| {
        let extra = FindingExtra::from_stored(f.extra.as_deref());
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        vec![
            scan.id.clone(),
            scan.image_name.clone(),
            scan.image_tag.clone(),
            scan.image_digest.clone(),
            o(&f.target),
            o(&f.class),
            o(&f.pkg_type),
            f.vulnerability_id.clone(),
            f.pkg_name.clone(),
            f.pkg_version.clone(),
            o(&f.fixed_version),
            Severity::from_rank(f.severity).as_str().to_string(),
            o(&f.status),
            f.cvss_score.map(|c| c.to_string()).unwrap_or_default(),
            o(&f.title),
            o(&f.primary_url),
            o(&f.pkg_path),
            o(&f.purl),
            o(&extra.vex_state),
            o(&extra.vex_justification),
        ]
    });
    csv_bytes(std::iter::once(header).chain(rows))
}

/// GitHub's `security-severity` (a CVSS-like score) of a finding without a CVSS score.
fn severity_score(s: Severity) -> f64 {
    match s {
        Severity::Critical => 9.5,
        Severity::High => 8.0,
        Severity::Medium => 5.5,
        Severity::Low => 2.0,
        Severity::Unknown => 0.0,
    }
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Unknown => "note",
    }
}

/// The scan as a SARIF 2.1.0 log: one rule per vulnerability id, one result per finding,
/// located at the image (artifact) and the package (logical location).
pub fn scan_sarif(scan: &ScanRow, findings: &[FindingRow]) -> Value {
    let image = reference(scan);
    let mut rule_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rules: Vec<Value> = vec![];
    for f in findings {
        if rule_index.contains_key(f.vulnerability_id.as_str()) {
            continue;
        }
        let sev = Severity::from_rank(f.severity);
        let title = f
            .title
            .clone()
            .unwrap_or_else(|| f.vulnerability_id.clone());
        let mut rule = json!({
            "id": f.vulnerability_id,
            "name": "ContainerVulnerability",
            "shortDescription": {"text": title},
            "fullDescription": {"text": f.description.clone().unwrap_or_else(|| title.clone())},
            "defaultConfiguration": {"level": sarif_level(sev)},
            "help": {"text": format!("{}: {title}", f.vulnerability_id)},
            "properties": {
                "security-severity": format!("{:.1}", f.cvss_score.unwrap_or_else(|| severity_score(sev))),
                "tags": ["vulnerability", "security", sev.as_str()],
            },
        });
        if let Some(url) = f
            .primary_url
            .as_deref()
            .filter(|u| url::Url::parse(u).is_ok())
        {
            rule["helpUri"] = json!(url);
        }
        rule_index.insert(&f.vulnerability_id, rules.len());
        rules.push(rule);
    }
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let sev = Severity::from_rank(f.severity);
            let fix = match f.fixed_version.as_deref() {
                Some(v) if !v.is_empty() => format!("; fixed in {v}"),
                _ => String::new(),
            };
            let package = format!("{}@{}", f.pkg_name, f.pkg_version);
            json!({
                "ruleId": f.vulnerability_id,
                "ruleIndex": rule_index[f.vulnerability_id.as_str()],
                "level": sarif_level(sev),
                "message": {"text": format!(
                    "{} {} in {image} has {} ({}){fix}",
                    f.pkg_name, f.pkg_version, f.vulnerability_id, sev.as_str()
                )},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {
                        "uri": percent_encoding::utf8_percent_encode(&image, URI).to_string(),
                    }},
                    "logicalLocations": [{
                        "name": package,
                        "fullyQualifiedName": f.purl.clone().unwrap_or_else(|| format!("{image}/{package}")),
                        "kind": "package",
                    }],
                }],
                "properties": {
                    "image": image,
                    "imageDigest": scan.image_digest,
                    "package": f.pkg_name,
                    "installedVersion": f.pkg_version,
                    "fixedVersion": f.fixed_version.clone().unwrap_or_default(),
                    "target": f.target.clone().unwrap_or_default(),
                },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "ScanVault",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
            "properties": {
                "scanId": scan.id,
                "image": image,
                "imageDigest": scan.image_digest,
                "scanner": scan.scanner,
            },
        }],
    })
}

/// Characters kept as they are in the artifact URI (an image reference: `/`, `:`, `@`,
/// `.`, `-`, `_` are allowed in a URI path).
const URI: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b':')
    .remove(b'@')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_');

const VEX_STATES: [&str; 6] = [
    "resolved",
    "resolved_with_pertinent_evidence",
    "exploitable",
    "in_triage",
    "false_positive",
    "not_affected",
];
const VEX_JUSTIFICATIONS: [&str; 9] = [
    "code_not_present",
    "code_not_reachable",
    "requires_configuration",
    "requires_dependency",
    "requires_environment",
    "protected_by_compiler",
    "protected_at_runtime",
    "protected_at_perimeter",
    "protected_by_mitigating_control",
];

/// The scan as a CycloneDX 1.6 BOM: the image as the BOM's component, each package a
/// component, each vulnerability id one entry affecting its packages, with VEX `analysis`
/// where a report gave it.
pub fn scan_cyclonedx(
    scan: &ScanRow,
    findings: &[FindingRow],
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let mut components: Vec<Value> = vec![];
    let mut component_ref: BTreeMap<(&str, &str, Option<&str>), String> = BTreeMap::new();
    for f in findings {
        let key = (
            f.pkg_name.as_str(),
            f.pkg_version.as_str(),
            f.purl.as_deref(),
        );
        if component_ref.contains_key(&key) {
            continue;
        }
        let bom_ref = format!("pkg-{}", component_ref.len() + 1);
        let mut c = json!({
            "bom-ref": bom_ref,
            "type": "library",
            "name": f.pkg_name,
            "version": f.pkg_version,
        });
        if let Some(p) = &f.purl {
            c["purl"] = json!(p);
        }
        components.push(c);
        component_ref.insert(key, bom_ref);
    }
    // One entry per vulnerability id, in first-appearance order.
    let mut order: Vec<&str> = vec![];
    let mut by_id: BTreeMap<&str, Vec<&FindingRow>> = BTreeMap::new();
    for f in findings {
        let e = by_id.entry(&f.vulnerability_id).or_default();
        if e.is_empty() {
            order.push(&f.vulnerability_id);
        }
        e.push(f);
    }
    let vulnerabilities: Vec<Value> = order
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let fs = &by_id[id];
            let first = fs[0];
            let worst = fs.iter().map(|f| f.severity).max().unwrap_or(0);
            let mut rating = Map::new();
            rating.insert("severity".into(), json!(Severity::from_rank(worst).as_str().to_ascii_lowercase()));
            if let Some(score) = fs.iter().filter_map(|f| f.cvss_score).reduce(f64::max) {
                rating.insert("score".into(), json!(score));
            }
            let mut v = json!({
                "bom-ref": format!("vuln-{}", i + 1),
                "id": id,
                "ratings": [Value::Object(rating)],
                "affects": fs.iter().map(|f| json!({
                    "ref": component_ref[&(f.pkg_name.as_str(), f.pkg_version.as_str(), f.purl.as_deref())],
                    "versions": [{"version": f.pkg_version, "status": "affected"}],
                })).collect::<Vec<_>>(),
            });
            if let Some(d) = first.description.as_deref().or(first.title.as_deref()) {
                v["description"] = json!(d);
            }
            if let Some(url) = first.primary_url.as_deref().filter(|u| url::Url::parse(u).is_ok()) {
                v["source"] = json!({"url": url});
            }
            let fixes: Vec<String> = fs
                .iter()
                .filter_map(|f| {
                    f.fixed_version
                        .as_deref()
                        .filter(|x| !x.is_empty())
                        .map(|x| format!("{} to version {x}", f.pkg_name))
                })
                .collect();
            if !fixes.is_empty() {
                v["recommendation"] = json!(format!("Upgrade {}.", fixes.join(", ")));
            }
            let extra = FindingExtra::from_stored(first.extra.as_deref());
            if let Some(state) = extra.vex_state.as_deref().filter(|s| VEX_STATES.contains(s)) {
                let mut analysis = json!({"state": state});
                if let Some(j) = extra
                    .vex_justification
                    .as_deref()
                    .filter(|j| VEX_JUSTIFICATIONS.contains(j))
                {
                    analysis["justification"] = json!(j);
                }
                v["analysis"] = analysis;
            }
            v
        })
        .collect();
    let mut image = json!({
        "bom-ref": "image",
        "type": "container",
        "name": scan.image_name,
    });
    if !scan.image_tag.is_empty() {
        image["version"] = json!(scan.image_tag);
    } else if !scan.image_digest.is_empty() {
        image["version"] = json!(scan.image_digest);
    }
    if !scan.image_digest.is_empty() {
        let name = scan
            .image_name
            .rsplit('/')
            .next()
            .unwrap_or(&scan.image_name);
        image["purl"] = json!(format!(
            "pkg:oci/{}@{}",
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC),
            scan.image_digest.replace(':', "%3A")
        ));
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "tools": {"components": [{
                "type": "application",
                "name": "ScanVault",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": image,
            "properties": [
                {"name": "scanvault:scan_id", "value": scan.id},
                {"name": "scanvault:scanned_at", "value": scan.scanned_at().to_rfc3339()},
            ],
        },
        "components": components,
        "vulnerabilities": vulnerabilities,
    })
}
