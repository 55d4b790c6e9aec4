//! Grype, CycloneDX and `trivy k8s` reports of the shared corpus parse to the counts that the
//! independent counter (`expect.py`) wrote into `EXPECTED.json` (Grype's NEGLIGIBLE counted
//! as LOW).

use scanvault_core::parse::{parse, Parsed};
use scanvault_core::report::{ParsedReport, Severity};
use serde_json::Value;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    std::env::var("SCANVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
        })
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(corpus_dir().join("EXPECTED.json")).unwrap()).unwrap()
}

fn check_counts(name: &str, r: &ParsedReport, facts: &Value) {
    let f = &facts["findings"];
    assert_eq!(
        r.findings.len() as u64,
        f["count"].as_u64().unwrap(),
        "{name}: findings"
    );
    let counts = r.counts();
    for sev in Severity::ALL {
        let mut want = f["severity"][sev.as_str()].as_u64().unwrap_or(0);
        if sev == Severity::Low {
            want += f["severity"]["NEGLIGIBLE"].as_u64().unwrap_or(0);
        }
        if sev == Severity::Unknown {
            for other in ["INFO", "NONE"] {
                want += f["severity"][other].as_u64().unwrap_or(0);
            }
        }
        assert_eq!(counts.get(sev) as u64, want, "{name}: {sev}");
    }
    assert_eq!(
        r.fixable_count() as u64,
        f["fixable"].as_u64().unwrap(),
        "{name}: fixable"
    );
    assert_eq!(
        r.vulnerability_entries as u64,
        facts["vulnerability_entries"].as_u64().unwrap(),
        "{name}: entries"
    );
    assert_eq!(
        r.vulnerabilities.len() as u64,
        facts["unique_vulnerability_ids"].as_u64().unwrap(),
        "{name}: ids"
    );
    match facts["max_cvss_any"].as_f64() {
        Some(max) => {
            let got = r.max_cvss().unwrap_or_else(|| panic!("{name}: no cvss"));
            assert!(got <= max + 1e-9, "{name}: cvss {got} > {max}");
        }
        None => assert_eq!(r.max_cvss(), None, "{name}"),
    }
    assert_eq!(
        r.scanner_version.as_deref(),
        facts["scanner_version"].as_str().filter(|v| !v.is_empty()),
        "{name}: scanner version"
    );
    assert_eq!(
        r.created_at.is_some(),
        !facts["created_at"].is_null(),
        "{name}: created"
    );
}

#[test]
fn grype_and_cyclonedx_corpus_files_match_expected_counts() {
    let expected = expected();
    let mut checked = 0;
    for (name, facts) in expected["files"].as_object().unwrap() {
        let format = facts["format"].as_str().unwrap();
        if format != "grype" && format != "cyclonedx" {
            continue;
        }
        let bytes = std::fs::read(corpus_dir().join(name)).unwrap();
        let Parsed::Report(r) = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}")) else {
            panic!("{name}: not one report");
        };
        assert_eq!(r.format.as_str(), format, "{name}");
        check_counts(name, &r, facts);
        let img = &facts["image"];
        // Not an image: named as the artifact is given (a directory, a file).
        let want_name = img["familiar_name"]
            .as_str()
            .or_else(|| facts["artifact_name"].as_str());
        assert_eq!(r.image.name.as_deref(), want_name, "{name}: name");
        if !img.is_null() {
            assert_eq!(r.image.tag.as_deref(), img["tag"].as_str(), "{name}: tag");
            assert_eq!(
                r.image.image_id.as_deref(),
                img["image_id"].as_str(),
                "{name}: id"
            );
            // The digest for the name, else (Grype) the manifest digest.
            let digest = img["digest_for_name"]
                .as_str()
                .or_else(|| img["manifest_digest"].as_str());
            assert_eq!(r.image.digest.as_deref(), digest, "{name}: digest");
        }
        checked += 1;
    }
    assert_eq!(checked, 6, "every Grype and CycloneDX file");
}

#[test]
fn the_k8s_cluster_report_is_one_report_per_named_image() {
    let expected = expected();
    let name = "trivy/k8s-cluster_local_resources.json";
    let facts = &expected["files"][name];
    let bytes = std::fs::read(corpus_dir().join(name)).unwrap();
    let Parsed::Cluster(c) = parse(&bytes).unwrap() else {
        panic!("not a cluster report");
    };
    // Every image the report names in an os-pkgs Result's Target.
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let mut named: Vec<String> = doc["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Results"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["Class"] == "os-pkgs")
        .map(|r| {
            r["Target"]
                .as_str()
                .unwrap()
                .split(" (")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    named.sort();
    named.dedup();
    let mut got: Vec<String> = c
        .images
        .iter()
        .map(|i| i.report.artifact_name.clone().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, named);
    // Findings stored plus those of unnamed images: every unique entry of the report.
    let stored: usize = c
        .images
        .iter()
        .map(|i| i.report.vulnerability_entries)
        .sum();
    let unnamed = c
        .skipped
        .iter()
        .find(|s| s.reason.contains("does not name"))
        .map_or(0, |s| s.count);
    assert_eq!(
        (stored + unnamed) as u64,
        facts["vulnerability_entries"].as_u64().unwrap()
    );
    assert!(
        c.skipped.iter().any(|s| s.reason.contains("configuration")),
        "{:?}",
        c.skipped
    );
    let minio = c
        .images
        .iter()
        .find(|i| i.report.image.name.as_deref() == Some("bitnami/minio"))
        .unwrap();
    assert_eq!(
        minio.report.image.tag.as_deref(),
        Some("2022.9.1-debian-11-r0")
    );
    assert_eq!(minio.workloads.len(), 1);
    assert_eq!(minio.workloads[0].namespace, "securecodebox-system");
    assert_eq!(minio.workloads[0].kind, "Deployment");
    assert_eq!(minio.workloads[0].name, "securecodebox-operator-minio");
    // Its gobinary Results belong to it.
    assert!(minio
        .report
        .findings
        .iter()
        .any(|f| f.pkg_type.as_deref() == Some("gobinary")));
}

#[test]
fn a_cluster_image_written_as_trivy_json_reads_back_the_same() {
    let name = "trivy/k8s-cluster_local_resources.json";
    let bytes = std::fs::read(corpus_dir().join(name)).unwrap();
    let Parsed::Cluster(c) = parse(&bytes).unwrap() else {
        panic!("not a cluster report");
    };
    for image in &c.images {
        let json = scanvault_core::render::trivy_json(&image.report);
        let Parsed::Report(back) = parse(&json).unwrap() else {
            panic!("a rendered report reads as a single report");
        };
        let name = image.report.artifact_name.as_deref();
        assert_eq!(back.image.name, image.report.image.name, "{name:?}");
        assert_eq!(back.image.tag, image.report.image.tag, "{name:?}");
        assert_eq!(back.image.digest, image.report.image.digest, "{name:?}");
        assert_eq!(back.image.image_id, image.report.image.image_id, "{name:?}");
        assert_eq!(back.os_family, image.report.os_family, "{name:?}");
        assert_eq!(back.findings.len(), image.report.findings.len(), "{name:?}");
        for (a, b) in back.findings.iter().zip(&image.report.findings) {
            assert!(a.stores_same(b), "{name:?}: {a:?} != {b:?}");
        }
        assert_eq!(
            back.vulnerabilities.len(),
            image.report.vulnerabilities.len()
        );
        for (a, b) in back
            .vulnerabilities
            .iter()
            .zip(&image.report.vulnerabilities)
        {
            assert_eq!(
                (&a.id, &a.title, &a.description),
                (&b.id, &b.title, &b.description)
            );
            assert_eq!(
                (&a.references, a.published_at),
                (&b.references, b.published_at)
            );
        }
    }
}
