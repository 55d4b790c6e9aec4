//! Every Trivy and legacy Trivy report of the shared corpus parses to the counts that the
//! independent counter (`expect.py`) wrote into `EXPECTED.json`.

use scanvault_core::report::{ReportFormat, Severity};
use scanvault_core::trivy::{parse, ParseError};
use serde_json::Value;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    if let Ok(p) = std::env::var("SCANVAULT_CORPUS") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    assert!(
        p.join("EXPECTED.json").exists(),
        "corpus not found at {}; set SCANVAULT_CORPUS or run scripts/test.sh",
        p.display()
    );
    p
}

#[test]
fn every_trivy_corpus_file_matches_expected_counts() {
    let dir = corpus_dir();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("EXPECTED.json")).unwrap()).unwrap();
    let files = expected["files"].as_object().unwrap();
    let mut checked = 0;
    for (name, facts) in files {
        let format = facts["format"].as_str().unwrap();
        if format != "trivy" && format != "trivy-legacy" {
            continue;
        }
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            bytes.len() as u64,
            facts["bytes"].as_u64().unwrap(),
            "{name} changed on disk"
        );
        let shape = facts["shape"].as_str().unwrap();
        if shape == "trivy-k8s" {
            assert!(
                matches!(parse(&bytes), Err(ParseError::Unsupported { .. })),
                "{name}: k8s reports are refused as unsupported"
            );
            checked += 1;
            continue;
        }
        let r = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let f = &facts["findings"];
        assert_eq!(
            r.findings.len() as u64,
            f["count"].as_u64().unwrap(),
            "{name}: findings"
        );
        assert_eq!(
            r.vulnerability_entries as u64,
            facts["vulnerability_entries"].as_u64().unwrap(),
            "{name}: entries"
        );
        let counts = r.counts();
        for sev in Severity::ALL {
            assert_eq!(
                counts.get(sev) as u64,
                f["severity"][sev.as_str()].as_u64().unwrap(),
                "{name}: {sev}"
            );
        }
        assert_eq!(
            r.fixable_count() as u64,
            f["fixable"].as_u64().unwrap(),
            "{name}: fixable"
        );
        assert_eq!(
            r.vulnerabilities.len() as u64,
            facts["unique_vulnerability_ids"].as_u64().unwrap(),
            "{name}: ids"
        );
        if let Some(max) = facts["max_cvss_any"].as_f64() {
            let got = r.max_cvss().unwrap_or_else(|| panic!("{name}: no cvss"));
            assert!(got <= max + 1e-9, "{name}: cvss {got} > {max}");
        } else {
            assert_eq!(r.max_cvss(), None, "{name}");
        }
        let img = &facts["image"];
        if format == "trivy-legacy" {
            assert_eq!(r.format, ReportFormat::TrivyLegacy);
            let first = facts["legacy_first_target"].as_str().unwrap();
            let artifact = first.split(" (").next().unwrap();
            assert_eq!(r.image.name.as_deref(), Some(artifact), "{name}");
        } else {
            let want_name = img["familiar_name"]
                .as_str()
                .or_else(|| facts["artifact_name"].as_str());
            assert_eq!(r.image.name.as_deref(), want_name, "{name}: name");
            assert_eq!(r.image.tag.as_deref(), img["tag"].as_str(), "{name}: tag");
            assert_eq!(
                r.image.digest.as_deref(),
                img["digest_for_name"].as_str(),
                "{name}: digest"
            );
            assert_eq!(
                r.image.image_id.as_deref(),
                img["image_id"].as_str(),
                "{name}: image id"
            );
            assert_eq!(
                r.created_at.is_some(),
                !facts["created_at"].is_null(),
                "{name}: created"
            );
            assert_eq!(
                r.scanner_version.as_deref(),
                facts["scanner_version"].as_str().filter(|v| !v.is_empty()),
                "{name}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 19, "only {checked} files checked");
}

/// The Trivy reader names other scanners' reports instead of misreading them, so that
/// `parse::parse` hands them to their own readers (tests/formats.rs).
#[test]
fn the_trivy_reader_names_other_formats_as_unsupported() {
    let dir = corpus_dir();
    for sub in ["grype", "cyclonedx"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                matches!(parse(&bytes), Err(ParseError::Unsupported { .. })),
                "{}",
                p.display()
            );
        }
    }
}
