//! Exports: a scan as CSV, SARIF 2.1.0 and CycloneDX 1.6, each checked against what the
//! scan stores and the SARIF and CycloneDX JSON schemas (vendored under tests/schemas); and
//! the fleet listings as CSV, streamed in pages, equal to their JSON pages.

use crate::on_both_backends;
use crate::support::{corpus_file, digest, Report, TestApp};
use axum::http::{Method, StatusCode};
use jsonschema::{Registry, Validator};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

const SCHEMAS: [&str; 5] = [
    "sarif-schema-2.1.0.json",
    "spdx-2.3.schema.json",
    "bom-1.6.schema.json",
    "spdx.schema.json",
    "jsf-0.82.schema.json",
];

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A validator of one vendored schema, every `$ref` resolved among the vendored files
/// (no network).
pub(crate) fn validator(root: &str) -> Validator {
    let docs: Vec<Value> = SCHEMAS.iter().map(|n| load(n)).collect();
    let id = |d: &Value| -> String {
        d.get("$id")
            .or_else(|| d.get("id"))
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    };
    let ids: Vec<String> = docs.iter().map(id).collect();
    let registry = Registry::new()
        .extend(ids.iter().map(String::as_str).zip(docs.iter()))
        .unwrap()
        .prepare()
        .unwrap();
    jsonschema::options()
        .offline()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&load(root))
        .unwrap()
}

pub(crate) fn assert_valid(v: &Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(5)
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
}

/// The scan's findings as `/vulnerabilities` lists them: (id, package, version, severity).
async fn stored(app: &TestApp, id: &str) -> BTreeSet<(String, String, String, String)> {
    let v = app.get_json(&format!("/scans/{id}/vulnerabilities")).await;
    v["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let f = &i["Vulnerability"];
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (
                s("VulnerabilityID"),
                s("PkgName"),
                s("PkgVersion"),
                s("Severity"),
            )
        })
        .collect()
}

async fn scans_export_valid_documents(app: &TestApp) {
    let sarif = validator("sarif-schema-2.1.0.json");
    let cdx = validator("bom-1.6.schema.json");
    for file in [
        "trivy/ubuntu-18.04_trivy-dev-head.json",
        "grype/busybox-1.32.1_epss_grype-0.94.0.json",
        "cyclonedx/log4j-core_grype-0.41.0_cdx-1.4_vex-analysis.json",
        "trivy/cns-website_alpine_no-vulns_2024.json",
    ] {
        let scan = app.create("", corpus_file(file)).await;
        let id = scan["ID"].as_str().unwrap();
        let want = stored(app, id).await;
        let ids: BTreeSet<&str> = want.iter().map(|f| f.0.as_str()).collect();

        // CSV: a header, then one row per finding.
        let r = app.get(&format!("/scans/{id}/export?format=csv")).await;
        assert_eq!(r.status, StatusCode::OK, "{file}");
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let mut rdr = csv::Reader::from_reader(r.body.as_slice());
        let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let rows: BTreeSet<(String, String, String, String)> = rdr
            .records()
            .map(|r| {
                let r = r.unwrap();
                let c = |n: &str| r[col(n)].trim_start_matches('\'').to_string();
                (
                    c("VulnerabilityID"),
                    c("PkgName"),
                    c("InstalledVersion"),
                    c("Severity"),
                )
            })
            .collect();
        assert_eq!(rows, want, "{file}: csv");

        // SARIF: valid; one rule per id, one result per finding, image and package located.
        let r = app.get(&format!("/scans/{id}/export?format=sarif")).await;
        assert_eq!(r.status, StatusCode::OK);
        let doc = r.json();
        assert_valid(&sarif, &doc, file);
        let run = &doc["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), ids.len(), "{file}: rules");
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), want.len(), "{file}: results");
        for res in results {
            let i = res["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[i]["id"], res["ruleId"]);
            let loc = &res["locations"][0];
            assert!(loc["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .contains(
                    scan["ImageName"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                ));
            assert!(loc["logicalLocations"][0]["name"]
                .as_str()
                .unwrap()
                .contains('@'));
        }

        // CycloneDX 1.6: valid; one entry per id, each affecting its packages.
        let r = app
            .request_with(
                Method::GET,
                &format!("/scans/{id}/export"),
                &[("accept", "application/vnd.cyclonedx+json")],
                vec![],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let doc = r.json();
        assert_valid(&cdx, &doc, file);
        let vulns = doc["vulnerabilities"].as_array().unwrap();
        assert_eq!(vulns.len(), ids.len(), "{file}: vulnerabilities");
        let affects: usize = vulns
            .iter()
            .map(|v| v["affects"].as_array().unwrap().len())
            .sum();
        assert_eq!(affects, want.len(), "{file}: affects");
        if file.contains("vex") {
            let src: Value = serde_json::from_slice(&corpus_file(file)).unwrap();
            let with_state: BTreeSet<(&str, &str)> = src["vulnerabilities"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| Some((v["id"].as_str()?, v["analysis"]["state"].as_str()?)))
                .collect();
            let got: BTreeSet<(&str, &str)> = vulns
                .iter()
                .filter_map(|v| Some((v["id"].as_str()?, v["analysis"]["state"].as_str()?)))
                .collect();
            assert_eq!(got, with_state, "VEX analysis carried over");
        }
        // The exported BOM ingests back with the same findings.
        let back = app.post_scan("image=roundtrip", r.body).await;
        assert!(
            back.status.is_success(),
            "{}",
            String::from_utf8_lossy(&back.body)
        );
        assert_eq!(back.json()["VulnTotal"], want.len(), "{file}: round trip");
    }
    // Choosing a format.
    let scan = app
        .post_scan(
            "",
            corpus_file("grype/busybox-1.32.1_epss_grype-0.94.0.json"),
        )
        .await
        .json();
    let id = scan["ID"].as_str().unwrap();
    let r = app
        .request_with(
            Method::GET,
            &format!("/scans/{id}/export"),
            &[("accept", "application/sarif+json")],
            vec![],
        )
        .await;
    assert_eq!(r.json()["version"], "2.1.0");
    for uri in [
        format!("/scans/{id}/export"),
        format!("/scans/{id}/export?format=pdf"),
        "/scans/00000000-0000-7000-8000-000000000000/export?format=csv".to_string(),
    ] {
        let r = app.get(&uri).await;
        assert!(r.status.is_client_error(), "{uri}");
        r.error_code();
    }
}

on_both_backends!(scan_exports, scans_export_valid_documents);

/// A report with `n` packages that each have `CVE-2026-7777`, fixable.
fn wide(name: &str, d: u32, n: usize) -> Vec<u8> {
    let mut r = Report::image(name, &digest(d));
    for i in 0..n {
        r = r.vuln(
            "CVE-2026-7777",
            &format!("pkg{i:05}"),
            "1.0",
            "HIGH",
            Some("1.1"),
        );
    }
    r.bytes()
}

fn csv_rows(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_reader(body);
    let header = rdr.headers().unwrap().iter().map(String::from).collect();
    let rows = rdr
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

async fn listings_stream_as_csv(app: &TestApp) {
    // 2,600 rows of one CVE over two images: more than two pages of the stream.
    app.create("", wide("wide/a:1", 1, 1500)).await;
    app.create("", wide("wide/b:1", 2, 1100)).await;
    let r = app
        .get("/analytics/vulnerabilities/cve/CVE-2026-7777/images?format=csv")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers.get("content-length").is_none(),
        "streamed, not sized"
    );
    let (header, rows) = csv_rows(&r.body);
    assert_eq!(rows.len(), 2600);
    // The same rows as the JSON pages, in the same order.
    let mut json_rows = vec![];
    for offset in (0..2600).step_by(1000) {
        let v = app
            .get_json(&format!(
                "/analytics/vulnerabilities/cve/CVE-2026-7777/images?limit=1000&offset={offset}"
            ))
            .await;
        assert_eq!(v["Count"], 2600, "Count is every item, on every page");
        assert_eq!(v["ImageCount"], 2);
        json_rows.extend(v["Images"].as_array().unwrap().iter().cloned());
    }
    let at = |n: &str| header.iter().position(|h| h == n).unwrap();
    for (row, item) in rows.iter().zip(&json_rows) {
        assert_eq!(row[at("ImageName")], item["ImageName"].as_str().unwrap());
        assert_eq!(row[at("PkgName")], item["PkgName"].as_str().unwrap());
        assert_eq!(row[at("ScanID")], item["ScanID"].as_str().unwrap());
    }
    // Offset and limit narrow it.
    let r = app
        .get("/analytics/vulnerabilities/cve/CVE-2026-7777/images?format=csv&offset=2590&limit=5")
        .await;
    assert_eq!(csv_rows(&r.body).1.len(), 5);

    let r = app
        .get("/analytics/vulnerabilities/fixable?format=csv")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (header, rows) = csv_rows(&r.body);
    assert_eq!(rows.len(), 2600);
    assert!(rows
        .iter()
        .all(|r| r[header.iter().position(|h| h == "FixedVersion").unwrap()] == "1.1"));
    let r = app
        .get("/analytics/vulnerabilities/fixable?format=xml")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

on_both_backends!(listing_csv, listings_stream_as_csv);
