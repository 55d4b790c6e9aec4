//! Suppressions: triage decisions keyed by vulnerability (and package, image glob) that
//! survive a rebuild under a new tag and digest, mark the findings they apply to, keep an
//! audit trail, expire by themselves with an event, and are managed by triagers and admins.

use crate::auth::{call, make_key, secured};
use crate::on_both_backends;
use crate::support::{digest, Db, Report, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn create(app: &TestApp, body: Value) -> crate::support::Resp {
    app.request(
        Method::POST,
        "/suppressions",
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// The suppression marking each finding of the scan, by vulnerability and package.
async fn marks(app: &TestApp, scan: &str) -> Vec<(String, String, Option<String>)> {
    let v = app
        .request(
            Method::GET,
            &format!("/scans/{scan}/vulnerabilities"),
            vec![],
        )
        .await
        .json();
    let mut out: Vec<(String, String, Option<String>)> = v["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let d = &i["Vulnerability"];
            (
                d["VulnerabilityID"].as_str().unwrap().to_string(),
                d["PkgName"].as_str().unwrap().to_string(),
                d["Suppression"]["State"].as_str().map(str::to_string),
            )
        })
        .collect();
    out.sort();
    out
}

fn mark(v: &str, p: &str, s: Option<&str>) -> (String, String, Option<String>) {
    (v.into(), p.into(), s.map(str::to_string))
}

async fn suppressions_survive_rebuilds_and_keep_a_trail(app: &TestApp) {
    let build = |tag: &str, d: u32| {
        Report::image(&format!("ghcr.io/acme/api:{tag}"), &digest(d))
            .vuln("CVE-2024-0101", "openssl", "3.0.1", "HIGH", Some("3.0.2"))
            .vuln("CVE-2024-0101", "libssl", "3.0.1", "HIGH", Some("3.0.2"))
            .vuln("CVE-2024-0202", "zlib", "1.2", "MEDIUM", None)
    };
    let none = app
        .request(Method::GET, "/suppressions?format=openvex", vec![])
        .await;
    assert_eq!(
        none.status,
        StatusCode::NOT_FOUND,
        "a VEX document needs a statement"
    );
    let first = app
        .request(Method::POST, "/scans", build("1.0", 1).bytes())
        .await
        .json();
    let r = create(
        app,
        json!({"VulnerabilityID": "CVE-2024-0101", "Package": "openssl", "Image": "ghcr.io/acme/*",
               "State": "not_affected", "Reason": "the vulnerable function is never called"}),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let sup = r.json();
    let id = sup["ID"].as_str().unwrap().to_string();
    assert_eq!(sup["Active"], true);
    // A fleet-wide one for another vulnerability, and one for another image.
    create(app, json!({"VulnerabilityID": "CVE-2024-0202", "State": "accepted_risk", "Reason": "no network exposure"})).await;
    create(app, json!({"VulnerabilityID": "CVE-2024-0101", "Image": "docker.io/other/*", "State": "false_positive", "Reason": "not ours"})).await;

    let want = vec![
        mark("CVE-2024-0101", "libssl", None),
        mark("CVE-2024-0101", "openssl", Some("not_affected")),
        mark("CVE-2024-0202", "zlib", Some("accepted_risk")),
    ];
    assert_eq!(marks(app, first["ID"].as_str().unwrap()).await, want);
    // A rebuild under a new tag and digest is a new scan, and stays suppressed.
    let rebuilt = app
        .request(Method::POST, "/scans", build("1.1", 2).bytes())
        .await
        .json();
    assert_ne!(rebuilt["ID"], first["ID"]);
    assert_eq!(marks(app, rebuilt["ID"].as_str().unwrap()).await, want);

    // VEX out: the active suppressions as an OpenVEX 0.2.0 document, valid against its schema.
    let vex = app
        .request(Method::GET, "/suppressions?format=openvex", vec![])
        .await;
    assert_eq!(vex.status, StatusCode::OK);
    let vex = vex.json();
    let schema: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/schemas/openvex_json_schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .offline()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&vex)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{vex:#}");
    let mut statuses: Vec<(String, String)> = vex["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            (
                st["vulnerability"]["name"].as_str().unwrap().to_string(),
                st["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("CVE-2024-0101".to_string(), "not_affected".to_string()),
            ("CVE-2024-0101".to_string(), "not_affected".to_string()),
            ("CVE-2024-0202".to_string(), "affected".to_string())
        ]
    );
    // Listed; deleted (then it no longer applies), with who and why in its trail.
    let all = app
        .request(Method::GET, "/suppressions", vec![])
        .await
        .json();
    assert_eq!(all["Count"], 3);
    let del = app
        .request(Method::DELETE, &format!("/suppressions/{id}"), vec![])
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let again = app
        .request(Method::DELETE, &format!("/suppressions/{id}"), vec![])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let active = app
        .request(Method::GET, "/suppressions?active=true", vec![])
        .await
        .json();
    assert_eq!(active["Count"], 2);
    let one = app
        .request(Method::GET, &format!("/suppressions/{id}"), vec![])
        .await
        .json();
    assert_eq!(one["Active"], false);
    let actions: Vec<&str> = one["History"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["Action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "deleted"]);
    assert_eq!(
        one["History"][0]["Detail"]["Reason"],
        "the vulnerable function is never called"
    );
    assert_eq!(
        marks(app, rebuilt["ID"].as_str().unwrap()).await[1],
        mark("CVE-2024-0101", "openssl", None)
    );

    for (body, why) in [
        (
            json!({"VulnerabilityID": "", "State": "not_affected", "Reason": "x"}),
            "VulnerabilityID",
        ),
        (
            json!({"VulnerabilityID": "CVE-1", "State": "ignored", "Reason": "x"}),
            "State",
        ),
        (
            json!({"VulnerabilityID": "CVE-1", "State": "not_affected", "Reason": " "}),
            "Reason",
        ),
        (
            json!({"VulnerabilityID": "CVE-1", "State": "not_affected", "Reason": "x", "ExpiresAt": "2020-01-01T00:00:00Z"}),
            "past",
        ),
        (
            json!({"VulnerabilityID": "CVE-1", "State": "not_affected", "Reason": "x", "Scope": "all"}),
            "Scope",
        ),
    ] {
        let r = create(app, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(String::from_utf8_lossy(&r.body).contains(why), "{body}");
    }
}
on_both_backends!(
    suppression_rebuilds,
    suppressions_survive_rebuilds_and_keep_a_trail
);

async fn an_expired_suppression_stops_applying_and_is_announced(app: &TestApp) {
    let hook = app
        .request(
            Method::POST,
            "/webhooks",
            serde_json::to_vec(
                &json!({"URL": "http://127.0.0.1:9/hook", "Events": ["suppression.expired"],
                "Secret": "sixteen-characters-at-least"}),
            )
            .unwrap(),
        )
        .await
        .json();
    let scan = app
        .request(
            Method::POST,
            "/scans",
            Report::image("acme/web:1", &digest(5))
                .vuln("CVE-2024-0303", "curl", "8.0", "LOW", None)
                .bytes(),
        )
        .await
        .json();
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(600);
    let sup = create(
        app,
        json!({"VulnerabilityID": "CVE-2024-0303", "State": "will_not_fix",
        "Reason": "end of life next month", "ExpiresAt": expires.to_rfc3339()}),
    )
    .await
    .json();
    let scan_id = scan["ID"].as_str().unwrap();
    assert_eq!(
        marks(app, scan_id).await[0].2.as_deref(),
        Some("will_not_fix")
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    // Past ExpiresAt it no longer applies, before anyone acts.
    assert_eq!(marks(app, scan_id).await[0].2, None);
    // Processing the expiry (every process runs it every 2 s) announces it once.
    let now = scanvault::store::micros(chrono::Utc::now());
    let expired = app
        .store
        .suppressions()
        .expire_suppressions(now)
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert!(app
        .store
        .suppressions()
        .expire_suppressions(now)
        .await
        .unwrap()
        .is_empty());
    let one = app
        .request(
            Method::GET,
            &format!("/suppressions/{}", sup["ID"].as_str().unwrap()),
            vec![],
        )
        .await
        .json();
    let last = one["History"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["Action"].clone(), last["Actor"].clone()),
        (json!("expired"), json!("system"))
    );
    let deliveries = app
        .request(
            Method::GET,
            &format!("/webhooks/{}/deliveries", hook["ID"].as_str().unwrap()),
            vec![],
        )
        .await
        .json();
    assert_eq!(deliveries["Count"], 1);
    assert_eq!(deliveries["Items"][0]["Event"], "suppression.expired");
    assert_eq!(
        deliveries["Items"][0]["Data"]["VulnerabilityID"],
        "CVE-2024-0303"
    );
}
on_both_backends!(
    suppression_expiry,
    an_expired_suppression_stops_applying_and_is_announced
);

async fn only_triagers_and_admins_manage_suppressions(db: Db) {
    let Some(app) = secured(db, 0.0, 0.0).await else {
        return;
    };
    let admin = app
        .store
        .keys()
        .bootstrap_admin(None, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    let body = serde_json::to_vec(
        &json!({"VulnerabilityID": "CVE-1", "State": "false_positive", "Reason": "r"}),
    )
    .unwrap();
    let mut made = vec![];
    for (role, want) in [
        ("reader", StatusCode::FORBIDDEN),
        ("ingester", StatusCode::FORBIDDEN),
        ("triager", StatusCode::CREATED),
    ] {
        let (_, key) = make_key(&app, &admin, role, json!({})).await;
        let r = call(
            &app,
            Some(&key),
            Method::POST,
            "/suppressions",
            body.clone(),
        )
        .await;
        assert_eq!(r.status, want, "{role}");
        if r.status == StatusCode::CREATED {
            made.push((key.clone(), r.body["ID"].as_str().unwrap().to_string()));
        }
        // Everyone with a key reads them.
        assert_eq!(
            call(&app, Some(&key), Method::GET, "/suppressions", vec![])
                .await
                .status,
            StatusCode::OK
        );
        // A triager does not ingest.
        if role == "triager" {
            let r = call(
                &app,
                Some(&key),
                Method::POST,
                "/scans",
                Report::image("t:1", &digest(1)).bytes(),
            )
            .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
        }
    }
    let r = call(&app, Some(&admin), Method::POST, "/suppressions", body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (triager, id) = &made[0];
    let r = call(
        &app,
        Some(triager),
        Method::DELETE,
        &format!("/suppressions/{id}"),
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let trail = call(
        &app,
        Some(&admin),
        Method::GET,
        &format!("/suppressions/{id}"),
        vec![],
    )
    .await;
    let actors: Vec<&str> = trail.body["History"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["Actor"].as_str().unwrap())
        .collect();
    assert!(actors.iter().all(|a| a.starts_with("api:")), "{actors:?}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_roles_sqlite() {
    only_triagers_and_admins_manage_suppressions(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_roles_postgres() {
    only_triagers_and_admins_manage_suppressions(Db::Postgres).await;
}

/// Every analytics answer, scoped or not, about the past or now, and every scan's counts
/// leave out what the active suppressions cover, as a recomputation from the reports that
/// applies them says; `include` and `only` show everything and only them; a deleted or
/// expired suppression stops applying at once.
async fn analytics_leave_out_what_suppressions_cover(app: &TestApp) {
    use crate::fleet_model::{expect, generate, Model};
    let mut model = Model::default();
    for r in generate(7) {
        app.ingest(&format!("tag={}", r.tag), r.bytes()).await;
        model.add(&r);
    }
    let e = expect(&model.fleet(None, None, None));
    let row_of = |cve: &str| e.rows.iter().find(|r| r.1 == cve).unwrap().clone();
    let (widest, second, third) = (
        e.cves[0].0.clone(),
        e.cves[1].0.clone(),
        e.cves[2].0.clone(),
    );
    let in_pkg = row_of(&second).4;
    let in_image = format!("{}*", row_of(&third).2);
    for body in [
        json!({"VulnerabilityID": widest, "State": "not_affected", "Reason": "r1"}),
        json!({"VulnerabilityID": second, "Package": in_pkg, "State": "accepted_risk", "Reason": "r2"}),
        json!({"VulnerabilityID": third, "Image": in_image, "State": "false_positive", "Reason": "r3"}),
    ] {
        assert_eq!(create(app, body).await.status, StatusCode::CREATED);
    }
    // One more, deleted: it leaves nothing out.
    let gone = create(
        app,
        json!({"VulnerabilityID": e.cves[3].0, "State": "will_not_fix", "Reason": "r4"}),
    )
    .await
    .json();
    let r = app
        .delete(&format!("/suppressions/{}", gone["ID"].as_str().unwrap()))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    model.suppress = vec![
        (widest.clone(), None, None),
        (second.clone(), Some(in_pkg.clone()), None),
        (third.clone(), None, Some(in_image.clone())),
    ];
    crate::analytics::check_all(app, &model).await;
    app.store.analytics().compact().await.unwrap();
    crate::analytics::check_all(app, &model).await;

    // include and only, and the count left out.
    let fleet = model.fleet(None, None, None);
    let (all, kept, only) = (
        expect(&fleet),
        model.expect(&fleet, false),
        model.expect(&fleet, true),
    );
    let total = |e: &crate::fleet_model::Expected| e.by_sev.iter().sum::<i64>();
    let left_out = total(&only);
    assert!(left_out > 0 && total(&kept) > 0);
    for (mode, want, images) in [
        ("", &kept, kept.images),
        ("?suppressed=include", &all, all.images),
        ("?suppressed=only", &only, only.images),
    ] {
        let s = app
            .get_json(&format!("/analytics/vulnerabilities/summary{mode}"))
            .await;
        assert_eq!(
            s["TotalVulnerabilities"],
            total(want),
            "{mode} on {:?}",
            app.db
        );
        assert_eq!(s["Fixable"], want.fixable, "{mode}");
        assert_eq!(s["TotalScans"], images, "{mode}");
        assert_eq!(s["Suppressed"], left_out, "{mode}");
    }
    let only_top = app
        .get_json("/analytics/vulnerabilities/top-cves?suppressed=only&limit=100")
        .await;
    let ids: BTreeSet<&str> = only_top["CVEs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CVEID"].as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = only.cves.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ids, want);

    // Every scan's counts: its findings now, less the covered ones.
    let scans = app.get_json("/scans/all?include=summary&limit=500").await;
    for s in scans["Items"].as_array().unwrap() {
        let (image, digest) = (
            s["ImageName"].as_str().unwrap().to_string(),
            s["ImageDigest"].as_str().unwrap().to_string(),
        );
        let m = &model.scans[&(image.clone(), digest)];
        let findings = &m.latest().findings;
        let covered = findings
            .iter()
            .filter(|f| model.suppressed(&image, f))
            .count() as i64;
        assert_eq!(s["Suppressed"], covered, "{image}");
        assert_eq!(s["VulnTotal"], findings.len() as i64 - covered, "{image}");
        let one = app
            .get_json(&format!(
                "/scans/{}?suppressed=include",
                s["ID"].as_str().unwrap()
            ))
            .await;
        assert_eq!(one["VulnTotal"], findings.len() as i64, "{image}");
        assert_eq!(one["Suppressed"], covered, "{image}");
    }

    // An expiry: applies until its time, then stops without anyone acting.
    let fourth = e.cves[3].0.clone();
    let until = chrono::Utc::now() + chrono::Duration::seconds(3);
    let r = create(
        app,
        json!({"VulnerabilityID": fourth, "State": "accepted_risk", "Reason": "for now",
               "ExpiresAt": until.to_rfc3339()}),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    model.suppress.push((fourth, None, None));
    let summary = |m: &Model| total(&m.expect(&m.fleet(None, None, None), false));
    let s = app.get_json("/analytics/vulnerabilities/summary").await;
    assert_eq!(s["TotalVulnerabilities"], summary(&model));
    tokio::time::sleep((until - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    model.suppress.pop();
    let s = app.get_json("/analytics/vulnerabilities/summary").await;
    assert_eq!(s["TotalVulnerabilities"], summary(&model), "expired");
    crate::analytics::check_all(app, &model).await;
}

on_both_backends!(
    suppressed_analytics,
    analytics_leave_out_what_suppressions_cover
);

async fn post_vex(app: &TestApp, doc: &Value) -> crate::support::Resp {
    app.request(Method::POST, "/vex", serde_json::to_vec(doc).unwrap())
        .await
}

/// VEX in: an OpenVEX document's statements become suppressions scoped to the products and
/// subcomponents they name, a repeated document changes nothing, `affected` lifts what a VEX
/// made, an invalid document is refused whole; a CycloneDX report's `analysis` suppresses
/// its findings in the image it names.
async fn vex_documents_and_cyclonedx_analysis_become_suppressions(app: &TestApp) {
    let scan = app
        .request(
            Method::POST,
            "/scans",
            Report::image("ghcr.io/acme/api:1.0", &digest(7))
                .vuln("CVE-2024-1001", "openssl", "3.0.1", "HIGH", Some("3.0.2"))
                .vuln("CVE-2024-1001", "libssl", "3.0.1", "HIGH", Some("3.0.2"))
                .vuln("CVE-2024-1002", "zlib", "1.2", "CRITICAL", None)
                .vuln("CVE-2024-1003", "curl", "8.0", "LOW", None)
                .bytes(),
        )
        .await
        .json();
    let id = scan["ID"].as_str().unwrap().to_string();
    let doc = json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://acme.example/vex/2026-1",
        "author": "ACME security",
        "timestamp": "2026-12-01T00:00:00Z",
        "version": 1,
        "statements": [
            {"vulnerability": {"name": "CVE-2024-1001"},
             "products": [{"@id": "pkg:oci/api@sha256%3Aabc?repository_url=ghcr.io/acme/api",
                           "subcomponents": [{"@id": "pkg:deb/debian/openssl@3.0.1"}]}],
             "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"},
            {"vulnerability": {"name": "CVE-2024-1002"}, "products": [{"@id": "ghcr.io/acme/*"}],
             "status": "fixed"},
            {"vulnerability": {"name": "CVE-2024-1003"}, "products": [{"@id": "ghcr.io/acme/api"}],
             "status": "under_investigation"}
        ]
    });
    let r = post_vex(app, &doc).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(
        (v["Decisions"].as_u64(), v["Created"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        marks(app, &id).await,
        vec![
            mark("CVE-2024-1001", "libssl", None),
            mark("CVE-2024-1001", "openssl", Some("not_affected")),
            mark("CVE-2024-1002", "zlib", Some("not_affected")),
            mark("CVE-2024-1003", "curl", None),
        ]
    );
    let s = app.get_json(&format!("/scans/{id}")).await;
    assert_eq!(
        (s["VulnTotal"].as_i64(), s["Suppressed"].as_i64()),
        (Some(2), Some(2))
    );
    // The same document again changes nothing.
    let again = post_vex(app, &doc).await.json();
    assert_eq!(
        (again["Created"].as_u64(), again["Unchanged"].as_u64()),
        (Some(0), Some(2))
    );
    // An invalid one is refused whole, naming the statement.
    let count = |v: Value| v["Count"].as_u64().unwrap();
    let before = count(app.get_json("/suppressions?active=true").await);
    let mut bad = doc.clone();
    bad["statements"][1]["status"] = json!("perhaps");
    bad["statements"][0]["vulnerability"]["name"] = json!("CVE-2024-9999");
    let r = post_vex(app, &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_code(), "invalid_vex");
    assert!(String::from_utf8_lossy(&r.body).contains("statements[1]"));
    assert_eq!(
        count(app.get_json("/suppressions?active=true").await),
        before
    );
    // `affected` lifts the VEX-made suppression of that scope.
    let mut lift = doc.clone();
    lift["statements"] = json!([doc["statements"][1].clone()]);
    lift["statements"][0]["status"] = json!("affected");
    lift["statements"][0]["action_statement"] = json!("upgrade zlib");
    let v = post_vex(app, &lift).await.json();
    assert_eq!(v["Lifted"].as_u64(), Some(1));
    assert_eq!(
        marks(app, &id).await[2],
        mark("CVE-2024-1002", "zlib", None)
    );

    // CycloneDX analysis: the report's image, the finding's package.
    let bom = json!({"bomFormat": "CycloneDX", "specVersion": "1.6",
        "metadata": {"component": {"bom-ref": "img", "type": "container", "name": "ghcr.io/acme/web:2",
            "purl": "pkg:oci/web@sha256%3A".to_string() + &"d".repeat(64) + "?repository_url=ghcr.io/acme/web"}},
        "components": [{"bom-ref": "c1", "type": "library", "name": "busybox", "version": "1.36",
            "purl": "pkg:apk/alpine/busybox@1.36"}],
        "vulnerabilities": [
            {"id": "CVE-2024-2001", "ratings": [{"severity": "high"}], "affects": [{"ref": "c1"}],
             "analysis": {"state": "false_positive", "justification": "code_not_present"}},
            {"id": "CVE-2024-2002", "ratings": [{"severity": "low"}], "affects": [{"ref": "c1"}],
             "analysis": {"state": "in_triage"}}]});
    let web = app
        .request(Method::POST, "/scans", serde_json::to_vec(&bom).unwrap())
        .await;
    assert_eq!(
        web.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&web.body)
    );
    let web = web.json();
    assert_eq!(
        (web["VulnTotal"].as_i64(), web["Suppressed"].as_i64()),
        (Some(1), Some(1))
    );
    let web_id = web["ID"].as_str().unwrap();
    assert_eq!(
        marks(app, web_id).await,
        vec![
            mark("CVE-2024-2001", "busybox", Some("false_positive")),
            mark("CVE-2024-2002", "busybox", None),
        ]
    );
    let all = app.get_json("/suppressions?active=true").await;
    let made = all["Items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["VulnerabilityID"] == "CVE-2024-2001")
        .unwrap()
        .clone();
    assert_eq!(
        (made["Image"].as_str(), made["Package"].as_str()),
        (Some("ghcr.io/acme/web"), Some("busybox"))
    );
}

on_both_backends!(
    vex_in,
    vex_documents_and_cyclonedx_analysis_become_suppressions
);
