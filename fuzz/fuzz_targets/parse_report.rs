//! Fuzz `scanvault_core::parse::parse` with arbitrary bytes: the format (Trivy, `trivy k8s`,
//! Grype, CycloneDX) is detected from the content before parsing, so this one target covers
//! every reader.
//!
//! Beyond "never panics, overflows the stack or hangs", every `Ok` report (each image's
//! report of a cluster report too) must satisfy the invariants the store relies on (see
//! docs/fuzzing.md):
//! - `findings.len() <= vulnerability_entries`
//! - finding keys `(vulnerability_id, pkg_name, installed_version)` are unique, the id is
//!   non-empty, and no key part is untrimmed, longer than `MAX_KEY_LEN` or holds a NUL
//! - `counts().total() == findings.len()` and `fixable_count() <= findings.len()`
//! - every CVSS score (findings and catalog) is finite and within 0..=10, and so is `max_cvss()`
//! - the catalog (`vulnerabilities`) has exactly one entry per distinct finding id, and its
//!   severity is at least that of every finding with that id
//! - the report serialises to JSON, and no string anywhere in it holds a NUL character
//!   (PostgreSQL TEXT cannot store one; the parser refuses them)
//!
//! An `Err` must render its message without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanvault_core::report::ParsedReport;
use scanvault_core::parse::{parse, Parsed};
use scanvault_core::trivy::MAX_KEY_LEN;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

fuzz_target!(|data: &[u8]| {
    // Inventories (POST /sboms): what reads, writes and reads back the same.
    if let Ok(inv) = scanvault_core::sbom::parse(data) {
        for doc in [
            scanvault_core::sbom::to_cyclonedx(&inv, "urn:uuid:00000000-0000-0000-0000-000000000000", "2026-01-01T00:00:00Z"),
            scanvault_core::sbom::to_spdx(&inv, "https://example.invalid/spdx", "2026-01-01T00:00:00Z"),
        ] {
            let back = scanvault_core::sbom::parse(&serde_json::to_vec(&doc).unwrap())
                .expect("a written inventory reads back");
            assert_eq!(back.components.len(), inv.components.len());
        }
    }
    match parse(data) {
        Ok(Parsed::Report(report)) => check(&report),
        Ok(Parsed::Cluster(cluster)) => {
            for image in &cluster.images {
                check(&image.report);
                // Written back as Trivy JSON, an image's report reads as the same findings.
                let json = scanvault_core::render::trivy_json(&image.report);
                match parse(&json) {
                    Ok(Parsed::Report(back)) => {
                        assert_eq!(back.findings.len(), image.report.findings.len());
                        for (a, b) in back.findings.iter().zip(&image.report.findings) {
                            assert!(a.stores_same(b), "{a:?} != {b:?}");
                        }
                    }
                    other => panic!("a rendered image report reads as {other:?}"),
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
        }
    }
});

/// The first string (key or value) in `v` that holds a NUL, if any.
fn find_nul(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => s.contains('\0').then_some(s.as_str()),
        Value::Array(a) => a.iter().find_map(find_nul),
        Value::Object(o) => o.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(k.as_str())
            } else {
                find_nul(v)
            }
        }),
        _ => None,
    }
}

fn valid_score(s: Option<f64>) -> bool {
    s.is_none_or(|v| v.is_finite() && (0.0..=10.0).contains(&v))
}

fn check(r: &ParsedReport) {
    let n = r.findings.len();
    assert!(
        n <= r.vulnerability_entries,
        "{n} findings from {} entries",
        r.vulnerability_entries
    );

    let mut keys = HashSet::with_capacity(n);
    // id -> highest severity among its findings
    let mut ids = HashMap::new();
    for f in &r.findings {
        let key = f.key();
        assert!(keys.insert(key), "duplicate finding key {key:?}");
        for part in [key.0, key.1, key.2] {
            assert_eq!(part, part.trim(), "untrimmed key part in {key:?}");
            assert!(
                part.len() <= MAX_KEY_LEN,
                "key part longer than MAX_KEY_LEN"
            );
            assert!(!part.contains('\0'), "NUL in key {key:?}");
        }
        assert!(!key.0.is_empty(), "empty vulnerability id");
        assert!(
            valid_score(f.cvss_score),
            "finding {key:?} has cvss {:?}",
            f.cvss_score
        );
        let sev = ids.entry(key.0).or_insert(f.severity);
        *sev = (*sev).max(f.severity);
    }

    let counts = r.counts();
    assert_eq!(
        counts.total(),
        n as i64,
        "counts {counts:?} vs {n} findings"
    );
    let fixable = r.fixable_count();
    assert!(
        (0..=n as i64).contains(&fixable),
        "{fixable} fixable of {n}"
    );
    assert!(valid_score(r.max_cvss()), "max_cvss {:?}", r.max_cvss());

    assert_eq!(
        r.vulnerabilities.len(),
        ids.len(),
        "catalog has {} entries for {} distinct ids",
        r.vulnerabilities.len(),
        ids.len()
    );
    let mut seen = HashSet::with_capacity(r.vulnerabilities.len());
    for v in &r.vulnerabilities {
        assert!(
            seen.insert(v.id.as_str()),
            "duplicate catalog id {:?}",
            v.id
        );
        let Some(&sev) = ids.get(v.id.as_str()) else {
            panic!("catalog id {:?} has no finding", v.id);
        };
        assert!(
            v.severity >= sev,
            "catalog {:?} severity {:?} < finding severity {sev:?}",
            v.id,
            v.severity
        );
        assert!(
            valid_score(v.cvss_score),
            "catalog {:?} has cvss {:?}",
            v.id,
            v.cvss_score
        );
    }

    let json = serde_json::to_value(r).expect("a parsed report serialises to JSON");
    if let Some(s) = find_nul(&json) {
        panic!("NUL character in the stored text {s:?}");
    }
}
