//! The SBOM writers' output is valid against the official schemas, vendored (byte-exact) in
//! the service crate's `tests/schemas` (see its README): CycloneDX 1.6 with the SPDX licence
//! list and JSF schemas it references, and SPDX 2.3. Validators are built offline: every
//! `$ref` resolves among the vendored files, nothing is fetched.
//!
//! Trivy's own documents are checked too. Its CycloneDX is valid; its SPDX is not, only
//! because it spells the OS package's purpose `OPERATING-SYSTEM` as the SPDX 2.3 text does,
//! where the 2.3 JSON schema says `OPERATING_SYSTEM` (spdx/spdx-spec#813): that one
//! difference is asserted, so a change in either is noticed.

use jsonschema::{Registry, Validator};
use scanvault_core::sbom::{parse, to_cyclonedx, to_spdx};
use serde_json::Value;
use std::path::{Path, PathBuf};

const CYCLONEDX: [&str; 3] = [
    "bom-1.6.schema.json",
    "spdx.schema.json",
    "jsf-0.82.schema.json",
];
const SPDX: &str = "spdx-2.3.schema.json";
const SAMPLES: [&str; 2] = ["alpine", "debian"];

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scanvault/tests/schemas")
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/sbom")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A validator of `files[0]`, the other files registered under their `$id`s, offline.
fn validator(files: &[&str]) -> Validator {
    let docs: Vec<Value> = files
        .iter()
        .map(|f| read_json(&schema_dir().join(f)))
        .collect();
    let ids: Vec<String> = docs
        .iter()
        .map(|d| d["$id"].as_str().unwrap().to_string())
        .collect();
    let registry = Registry::new()
        .extend(ids.iter().map(String::as_str).zip(docs.iter()))
        .unwrap()
        .prepare()
        .unwrap();
    jsonschema::options()
        .offline()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&docs[0])
        .unwrap()
}

fn errors(v: &Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[test]
fn written_cyclonedx_is_valid_cyclonedx_1_6() {
    let v = validator(&CYCLONEDX);
    for image in SAMPLES {
        for format in ["cdx", "spdx"] {
            let inv = parse(&sample(&format!("{image}.trivy.{format}.json"))).unwrap();
            let doc = to_cyclonedx(
                &inv,
                "3e671687-395b-41f5-a30f-a58921a69b79",
                "2026-01-02T03:04:05Z",
            );
            let errs = errors(&v, &doc);
            assert!(errs.is_empty(), "{image} ({format}): {errs:#?}\n{doc:#}");
        }
    }
    // The validator does check: a licence id outside SPDX's list (resolved through the
    // vendored spdx.schema.json) and an unknown component type are refused.
    let inv = parse(&sample("alpine.trivy.cdx.json")).unwrap();
    let mut doc = to_cyclonedx(
        &inv,
        "3e671687-395b-41f5-a30f-a58921a69b79",
        "2026-01-02T03:04:05Z",
    );
    doc["components"][1]["licenses"] = serde_json::json!([{"license": {"id": "Not-A-Licence"}}]);
    assert!(!errors(&v, &doc).is_empty());
    let mut doc = to_cyclonedx(
        &inv,
        "3e671687-395b-41f5-a30f-a58921a69b79",
        "2026-01-02T03:04:05Z",
    );
    doc["components"][1]["type"] = "package".into();
    assert!(!errors(&v, &doc).is_empty());
}

#[test]
fn written_spdx_is_valid_spdx_2_3() {
    let v = validator(&[SPDX]);
    for image in SAMPLES {
        for format in ["cdx", "spdx"] {
            let inv = parse(&sample(&format!("{image}.trivy.{format}.json"))).unwrap();
            let doc = to_spdx(
                &inv,
                &format!("https://scanvault.example/spdx/{image}-{format}"),
                "2026-01-02T03:04:05Z",
            );
            let errs = errors(&v, &doc);
            assert!(errs.is_empty(), "{image} ({format}): {errs:#?}\n{doc:#}");
        }
    }
}

#[test]
fn trivys_cyclonedx_is_valid_cyclonedx_1_6() {
    let v = validator(&CYCLONEDX);
    for image in SAMPLES {
        let doc: Value =
            serde_json::from_slice(&sample(&format!("{image}.trivy.cdx.json"))).unwrap();
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{image}: {errs:#?}");
    }
}

#[test]
fn trivys_spdx_differs_from_spdx_2_3_only_in_the_os_purpose() {
    let v = validator(&[SPDX]);
    for image in SAMPLES {
        let mut doc: Value =
            serde_json::from_slice(&sample(&format!("{image}.trivy.spdx.json"))).unwrap();
        let errs = errors(&v, &doc);
        assert_eq!(errs.len(), 1, "{image}: {errs:#?}");
        assert!(
            errs[0].contains("OPERATING-SYSTEM") && errs[0].contains("primaryPackagePurpose"),
            "{image}: {errs:#?}"
        );
        for p in doc["packages"].as_array_mut().unwrap() {
            if p["primaryPackagePurpose"] == "OPERATING-SYSTEM" {
                p["primaryPackagePurpose"] = "OPERATING_SYSTEM".into();
            }
        }
        let errs = errors(&v, &doc);
        assert!(errs.is_empty(), "{image} with OPERATING_SYSTEM: {errs:#?}");
    }
}
