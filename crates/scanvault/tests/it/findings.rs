//! Findings and the catalog through the API: every stored attribute and text of any shape
//! round-trip, the catalog keeps the newest details, and the sweep removes only entries no
//! finding references.

use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use axum::http::StatusCode;
use serde_json::Value;

/// Prepared statements are cached per connection: a nullable float (CVSS) must keep one
/// parameter type whether a report has it or not (PostgreSQL answers 22P03 otherwise).
async fn nullable_scores_through_cached_statements(app: &TestApp) {
    for i in 0..12u32 {
        let mut r = Report::image(&format!("cvss{i}:1"), &digest(100 + i))
            .vuln("CVE-9", "pkg", "1", "HIGH", None);
        // The first execution on a connection binds NULL (a 4-byte parameter type would
        // then refuse the 8-byte values that follow).
        if i % 2 == 0 {
            r.vulns[0].as_object_mut().unwrap().remove("CVSS");
        }
        let resp = app.create("", r.bytes()).await;
        let want = if i % 2 == 0 {
            Value::Null
        } else {
            Value::from(5.0)
        };
        assert_eq!(resp["CVSSScore"], want, "report {i}");
    }
}

/// The catalog keeps one entry per vulnerability id: a report with newer details
/// (`LastModifiedDate`) refreshes it for every scan, an older one leaves it alone.
async fn catalog_entries_take_newer_details_only(app: &TestApp) {
    let detail = |image: &str, n: u32, modified: &str, text: &str| {
        let mut r = Report::image(image, &digest(n)).vuln("CVE-CAT", "pkg", "1", "HIGH", None);
        let v = r.vulns[0].as_object_mut().unwrap();
        v.insert("Title".into(), Value::from(format!("{text} title")));
        v.insert(
            "Description".into(),
            Value::from(format!("{text} description")),
        );
        v.insert(
            "PrimaryURL".into(),
            Value::from(format!("https://example.com/{text}")),
        );
        v.insert("LastModifiedDate".into(), Value::from(modified));
        r.bytes()
    };
    let seen = |v: &Value| {
        let d = &v["Items"][0]["Vulnerability"];
        (
            d["Title"].as_str().unwrap_or_default().to_string(),
            d["Description"].as_str().unwrap_or_default().to_string(),
            d["PrimaryURL"].as_str().unwrap_or_default().to_string(),
        )
    };
    let first = app
        .post_scan("", detail("cat-a:1", 200, "2024-01-01T00:00:00Z", "old"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let id = first.json()["ID"].as_str().unwrap().to_string();
    let uri = format!("/scans/{id}/vulnerabilities");
    let old = (
        "old title".to_string(),
        "old description".to_string(),
        "https://example.com/old".to_string(),
    );
    assert_eq!(seen(&app.get_json(&uri).await), old);

    // Newer details from another image refresh the shared entry.
    let newer = app
        .post_scan("", detail("cat-b:1", 201, "2024-06-01T00:00:00Z", "new"))
        .await;
    assert_eq!(newer.status, StatusCode::CREATED);
    let new = (
        "new title".to_string(),
        "new description".to_string(),
        "https://example.com/new".to_string(),
    );
    assert_eq!(seen(&app.get_json(&uri).await), new);

    // Older details do not roll it back.
    let older = app
        .post_scan("", detail("cat-c:1", 202, "2024-03-01T00:00:00Z", "stale"))
        .await;
    assert_eq!(older.status, StatusCode::CREATED);
    assert_eq!(seen(&app.get_json(&uri).await), new);
}

/// Every stored attribute of a finding comes back in its own place, on the first version of
/// a scan's findings and on a later one: a row set whose columns were bound in another order
/// than the statement reads them (two text columns swapped, say) fails here.
async fn every_stored_attribute_of_a_finding_round_trips(app: &TestApp) {
    let report = |at: &str, extra: bool| {
        let mut os = vec![serde_json::json!({
            "VulnerabilityID": "CVE-2025-7001", "PkgName": "openssl", "InstalledVersion": "3.0.1",
            "FixedVersion": "3.0.2", "Status": "fixed", "Severity": "HIGH", "PkgPath": "/usr/lib/ssl",
            "PkgIdentifier": {"PURL": "pkg:apk/alpine/openssl@3.0.1"},
            "CVSS": {"nvd": {"V3Score": 7.1}}, "Title": "t1"
        })];
        if extra {
            os.push(serde_json::json!({
                "VulnerabilityID": "CVE-2025-7003", "PkgName": "zlib", "InstalledVersion": "1.3",
                "Status": "affected", "Severity": "LOW", "CVSS": {"nvd": {"V3Score": 2.2}}
            }));
        }
        serde_json::json!({
            "SchemaVersion": 2, "ArtifactName": "attrs/app:1", "ArtifactType": "container_image",
            "CreatedAt": at,
            "Metadata": {"RepoTags": ["attrs/app:1"], "RepoDigests": [format!("attrs/app@{}", digest(950))]},
            "Results": [
                {"Target": "attrs/app:1 (alpine 3.19.1)", "Class": "os-pkgs", "Type": "alpine", "Vulnerabilities": os},
                {"Target": "app/package-lock.json", "Class": "lang-pkgs", "Type": "npm", "Vulnerabilities": [{
                    "VulnerabilityID": "GHSA-aaaa-bbbb-cccc", "PkgName": "lodash", "InstalledVersion": "4.17.20",
                    "FixedVersion": "4.17.21", "Status": "fixed", "Severity": "CRITICAL",
                    "PkgPath": "node_modules/lodash/package.json",
                    "PkgIdentifier": {"PURL": "pkg:npm/lodash@4.17.20"},
                    "CVSS": {"ghsa": {"V3Score": 9.1}}, "Title": "t2"
                }]}
            ]
        })
    };
    let check = |v: &Value| {
        let by_id = |id: &str| -> Value {
            v["Items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["Vulnerability"]["VulnerabilityID"] == id)
                .unwrap_or_else(|| panic!("{id} missing: {v}"))
                .clone()
        };
        let ssl = by_id("CVE-2025-7001");
        assert_eq!(
            (&ssl["Target"], &ssl["Class"], &ssl["Type"]),
            (
                &Value::from("attrs/app:1 (alpine 3.19.1)"),
                &Value::from("os-pkgs"),
                &Value::from("alpine")
            )
        );
        let d = &ssl["Vulnerability"];
        assert_eq!(d["PkgName"], "openssl");
        assert_eq!(d["PkgVersion"], "3.0.1");
        assert_eq!(d["FixedVersion"], "3.0.2");
        assert_eq!(d["Status"], "fixed");
        assert_eq!(d["Severity"], "HIGH");
        assert_eq!(d["PkgPath"], "/usr/lib/ssl");
        assert_eq!(d["PURL"], "pkg:apk/alpine/openssl@3.0.1");
        assert_eq!(d["CVSSScore"], 7.1);
        let npm = by_id("GHSA-aaaa-bbbb-cccc");
        assert_eq!(
            (&npm["Target"], &npm["Class"], &npm["Type"]),
            (
                &Value::from("app/package-lock.json"),
                &Value::from("lang-pkgs"),
                &Value::from("npm")
            )
        );
        let d = &npm["Vulnerability"];
        assert_eq!(d["PkgName"], "lodash");
        assert_eq!(d["PkgVersion"], "4.17.20");
        assert_eq!(d["FixedVersion"], "4.17.21");
        assert_eq!(d["PkgPath"], "node_modules/lodash/package.json");
        assert_eq!(d["PURL"], "pkg:npm/lodash@4.17.20");
        assert_eq!(d["CVSSScore"], 9.1);
    };
    let body = |v: Value| serde_json::to_vec(&v).unwrap();
    let first = app
        .create("", body(report("2025-05-01T00:00:00Z", false)))
        .await;
    let id = first["ID"].as_str().unwrap().to_string();
    let uri = format!("/scans/{id}/vulnerabilities");
    check(&app.get_json(&uri).await);
    // A later version of the scan's findings (one more), written as a change.
    let second = app
        .post_scan("", body(report("2025-05-02T00:00:00Z", true)))
        .await;
    assert_eq!(second.status, StatusCode::OK);
    let v = app.get_json(&uri).await;
    check(&v);
    assert_eq!(v["Count"], 3);
    let zlib = v["Items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Vulnerability"]["PkgName"] == "zlib")
        .unwrap()
        .clone();
    assert_eq!(zlib["Vulnerability"]["Status"], "affected");
    assert_eq!(zlib["Vulnerability"]["FixedVersion"], Value::Null);
    assert_eq!(zlib["Vulnerability"]["CVSSScore"], 2.2);
}

/// Rows travel to the database as sets (PostgreSQL: an array literal per column): text
/// of any shape comes back exactly as the report had it, in the history, the catalog and
/// the current fleet.
async fn text_of_any_shape_round_trips(app: &TestApp) {
    let odd = [
        r#"q"uote"#,
        r"back\slash\",
        "{br,aces}",
        "NULL",
        "mid space",
        "ünï-çødé ✓",
        "a&b<c>",
        "",
    ];
    let mut r = Report::image("odd/text:1", &digest(300));
    for (i, s) in odd.iter().enumerate() {
        let id = format!("CVE-{s}-{i}");
        r = r.vuln(&id, &format!("pkg{s}"), &format!("1{s}"), "HIGH", Some(s));
        let v = r.vulns[i].as_object_mut().unwrap();
        v.insert("Title".into(), Value::from(format!("title {s}")));
        v.insert("Description".into(), Value::from(*s));
        v.insert("PkgPath".into(), Value::from(format!("/p/{s}")));
        v.insert("References".into(), Value::from(vec![*s, "x"]));
    }
    let id = app.create("", r.bytes()).await["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stored = app
        .store
        .scans()
        .findings(&id, &scanvault::store::scans::FindingFilter::all())
        .await
        .unwrap();
    stored.sort_by(|a, b| a.pkg_name.cmp(&b.pkg_name));
    let mut want: Vec<(usize, &str)> = odd.iter().copied().enumerate().collect();
    want.sort_by_key(|(_, s)| format!("pkg{s}"));
    assert_eq!(stored.len(), odd.len());
    for (f, (i, s)) in stored.iter().zip(&want) {
        assert_eq!(f.vulnerability_id, format!("CVE-{s}-{i}"));
        assert_eq!(f.pkg_name, format!("pkg{s}"));
        assert_eq!(f.pkg_version, format!("1{s}"));
        assert_eq!(
            f.fixed_version.as_deref(),
            Some(*s).filter(|s| !s.is_empty())
        );
        assert_eq!(f.pkg_path.as_deref(), Some(format!("/p/{s}").as_str()));
        assert_eq!(f.title.as_deref(), Some(format!("title {s}").as_str()));
        assert_eq!(f.description.as_deref(), Some(*s).filter(|s| !s.is_empty()));
        let (fleet, images) = app
            .store
            .analytics()
            .cve_images(
                &f.vulnerability_id,
                10,
                0,
                scanvault::store::analytics::Suppressed::ALL,
            )
            .await
            .unwrap();
        assert_eq!(images, 1, "{s:?}");
        assert_eq!(
            (fleet[0].pkg_name.as_str(), fleet[0].pkg_version.as_str()),
            (f.pkg_name.as_str(), f.pkg_version.as_str())
        );
        assert_eq!(fleet[0].fixed_version, f.fixed_version);
    }
}

/// The catalog sweep removes only entries no finding references: one that just an older
/// scan still has (no longer its reference's current scan, so absent from the current
/// fleet) stays, with its details, until that scan goes too.
async fn catalog_sweep_keeps_entries_older_scans_still_have(app: &TestApp) {
    let id_of = |scan: Value| scan["ID"].as_str().unwrap().to_string();
    let old = Report::image("sweep/app:1", &digest(700))
        .at("2025-03-01T00:00:00Z")
        .vuln("CVE-2030-0001", "a", "1", "HIGH", None)
        .vuln("CVE-2030-0002", "b", "1", "LOW", None);
    let old_id = id_of(app.create("", old.bytes()).await);
    let newer = Report::image("sweep/app:1", &digest(701))
        .at("2025-03-02T00:00:00Z")
        .vuln("CVE-2030-0002", "b", "1", "LOW", None);
    app.create("", newer.bytes()).await;
    let other = Report::image("sweep/other:1", &digest(702))
        .at("2025-03-02T00:00:00Z")
        .vuln("CVE-2030-0003", "c", "1", "LOW", None);
    let other_id = id_of(app.create("", other.bytes()).await);
    let images = app
        .get_json("/analytics/vulnerabilities/cve/CVE-2030-0001/images")
        .await;
    assert_eq!(images["ImageCount"], 0, "{images}");

    assert_eq!(
        app.delete(&format!("/scans/{other_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    // Only CVE-2030-0003 lost its last finding.
    assert_eq!(app.store.admin().sweep_catalog_if_due().await.unwrap(), 1);
    let v = app
        .get_json(&format!("/scans/{old_id}/vulnerabilities"))
        .await;
    let titles: Vec<&str> = v["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Vulnerability"]["Title"].as_str().unwrap_or("(none)"))
        .collect();
    assert_eq!(titles.len(), 2, "{v}");
    assert!(titles.iter().all(|t| t.starts_with("CVE-2030-000")), "{v}");

    assert_eq!(
        app.delete(&format!("/scans/{old_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.store.admin().sweep_catalog_if_due().await.unwrap(), 1);
    assert_eq!(app.rows("vulnerabilities").await, 1);
}

on_both_backends!(
    catalog_sweep,
    catalog_sweep_keeps_entries_older_scans_still_have
);
on_both_backends!(ingest_odd_text, text_of_any_shape_round_trips);
on_both_backends!(
    ingest_every_attribute,
    every_stored_attribute_of_a_finding_round_trips
);
on_both_backends!(
    ingest_catalog_refresh,
    catalog_entries_take_newer_details_only
);
on_both_backends!(
    ingest_nullable_scores,
    nullable_scores_through_cached_statements
);
