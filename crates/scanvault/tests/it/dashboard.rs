//! The dashboard's sessions, CSRF and roles, and the API it reads (vulnerability details,
//! sorted scan listings, the job queue's counts, workloads on a CVE's images), on both
//! backends. The same pages in a real browser: tests/ui/dashboard.mjs.

use crate::auth::{call, make_key, secured};
use crate::support::{corpus_file, digest, Db, Report, TestApp};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let at = self
            .html
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.html));
        let rest = &self.html[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// `name=value` of a `Set-Cookie` header, with its attributes.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

async fn browse(
    app: &TestApp,
    method: Method,
    uri: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> Page {
    let mut b = Request::builder().method(method).uri(uri);
    if !cookie.is_empty() {
        b = b.header("cookie", cookie);
    }
    let body = if form.is_empty() {
        Body::empty()
    } else {
        b = b.header("content-type", "application/x-www-form-urlencoded");
        let encoded: Vec<String> = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect();
        Body::from(encoded.join("&"))
    };
    let resp = app
        .router
        .clone()
        .oneshot(b.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        headers,
        html: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Signs in with `key` through the form; the session cookie to send.
async fn sign_in(app: &TestApp, key: &str) -> String {
    let form = browse(app, Method::GET, "/ui/login", "", &[]).await;
    assert_eq!(form.status, StatusCode::OK);
    let nonce = form
        .set_cookie("scanvault_login")
        .expect("the sign-in form's cookie");
    let nonce = nonce.split(';').next().unwrap().to_string();
    let csrf = form.csrf();
    let done = browse(
        app,
        Method::POST,
        "/ui/login",
        &nonce,
        &[("key", key), ("csrf", &csrf), ("next", "/ui/images")],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(done.location(), "/ui/images");
    let session = done
        .set_cookie("scanvault_session")
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(session.contains(attribute), "{session} lacks {attribute}");
    }
    assert!(
        !session.contains("Max-Age") && !session.contains("Expires"),
        "a browser-session cookie: {session}"
    );
    assert!(!session.contains("Secure"), "not over TLS: {session}");
    session.split(';').next().unwrap().to_string()
}

async fn sessions_csrf_and_roles(db: Db) {
    let Some(app) = secured(db, 0.0, 0.0).await else {
        return;
    };
    let admin = app
        .store
        .keys()
        .bootstrap_admin(None, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let (_, triager) = make_key(&app, &admin, "triager", json!({})).await;
    let (reader_id, reader) = make_key(&app, &admin, "reader", json!({})).await;
    let post = |body: Vec<u8>| {
        let (app, admin) = (&app, admin.clone());
        async move { call(app, Some(&admin), Method::POST, "/scans", body).await }
    };
    let r = post(
        Report::image("ui/app:1.0", &digest(701))
            .vuln(
                "CVE-2025-7001",
                "openssl",
                "3.0.1",
                "CRITICAL",
                Some("3.0.2"),
            )
            .vuln("CVE-2025-7002", "zlib", "1.2", "HIGH", None)
            .bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    post(
        Report::image("ui/lib:2.0", &digest(702))
            .vuln(
                "CVE-2025-7001",
                "openssl",
                "3.0.1",
                "CRITICAL",
                Some("3.0.2"),
            )
            .bytes(),
    )
    .await;

    // Signed out: every page sends to the form, which keeps where to go.
    let p = browse(&app, Method::GET, "/ui/images?sort=name", "", &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/ui/login?next=%2Fui%2Fimages%3Fsort%3Dname");
    // The sign-in form refuses a post without its own token, and a bad key.
    let form = browse(&app, Method::GET, "/ui/login", "", &[]).await;
    let nonce = form
        .set_cookie("scanvault_login")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let forged = browse(
        &app,
        Method::POST,
        "/ui/login",
        "",
        &[("key", &triager), ("csrf", &form.csrf())],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.set_cookie("scanvault_session").is_none());
    let wrong = browse(
        &app,
        Method::POST,
        "/ui/login",
        &nonce,
        &[("key", "svk_0123456789abcdef_nope"), ("csrf", &form.csrf())],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.set_cookie("scanvault_session").is_none());
    // `next` only ever leads to the dashboard.
    let away = browse(
        &app,
        Method::POST,
        "/ui/login",
        &nonce,
        &[
            ("key", &triager),
            ("csrf", &form.csrf()),
            ("next", "//evil.example/ui/"),
        ],
    )
    .await;
    assert_eq!(away.location(), "/ui/");

    // A triager reads every page and may suppress.
    let session = sign_in(&app, &triager).await;
    for (uri, expect) in [
        ("/ui/", "Top vulnerabilities"),
        ("/ui/images?sort=critical", "ui/app:1.0"),
        ("/ui/image?name=ui%2Fapp&tag=1.0", "CVE-2025-7002"),
        ("/ui/cve/CVE-2025-7001", "Images that carry it"),
        ("/ui/jobs", "Jobs by state and lane"),
        ("/ui/suppressions", "New suppression"),
        ("/ui/policies", "default"),
        ("/ui/compliance", "Compliant images"),
    ] {
        let p = browse(&app, Method::GET, uri, &session, &[]).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}: {}", p.html);
        assert!(p.html.contains(expect), "{uri} lacks {expect:?}");
        let csp = p.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
    }
    // Downloads pass the API's answer on, as a file.
    let scan = r.body["ID"].as_str().unwrap();
    for (uri, kind, file) in [
        (
            format!("/ui/download/scans/{scan}/export?format=csv"),
            "text/csv",
            ".csv",
        ),
        (
            "/ui/download/compliance?format=csv".to_string(),
            "text/csv",
            "compliance.csv",
        ),
    ] {
        let d = browse(&app, Method::GET, &uri, &session, &[]).await;
        assert_eq!(d.status, StatusCode::OK, "{uri}: {}", d.html);
        assert!(
            d.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{uri}"
        );
        let cd = d.headers["content-disposition"].to_str().unwrap();
        assert!(
            cd.starts_with("attachment;") && cd.contains(file),
            "{uri}: {cd}"
        );
    }
    let missing = browse(
        &app,
        Method::GET,
        "/ui/download/scans/00000000-0000-0000-0000-000000000000/sbom",
        &session,
        &[],
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let cve = browse(&app, Method::GET, "/ui/cve/CVE-2025-7001", &session, &[]).await;
    assert!(
        cve.html.contains(r#"action="/ui/suppressions""#),
        "a triager is offered the form"
    );
    let csrf = cve.csrf();
    // Without the token nothing is stored.
    let before = call(&app, Some(&admin), Method::GET, "/suppressions", vec![])
        .await
        .body;
    let no_token = browse(
        &app,
        Method::POST,
        "/ui/suppressions",
        &session,
        &[
            ("csrf", "0000"),
            ("vulnerability", "CVE-2025-7001"),
            ("state", "not_affected"),
            ("reason", "r"),
        ],
    )
    .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&app, Some(&admin), Method::GET, "/suppressions", vec![])
            .await
            .body,
        before
    );
    let done = browse(
        &app,
        Method::POST,
        "/ui/suppressions",
        &session,
        &[
            ("csrf", &csrf),
            ("back", "/ui/cve/CVE-2025-7001"),
            ("vulnerability", "CVE-2025-7001"),
            ("package", ""),
            ("image", ""),
            ("state", "not_affected"),
            ("reason", "not reachable"),
            ("expires", ""),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    assert_eq!(done.location(), "/ui/cve/CVE-2025-7001");
    let after = call(&app, Some(&admin), Method::GET, "/suppressions", vec![])
        .await
        .body;
    assert_eq!(after["Count"], 1);
    assert_eq!(
        after["Items"][0]["CreatedBy"].as_str().map(|s| s.len()),
        Some(16),
        "made by the triager's key: {after}"
    );
    let summary = call(
        &app,
        Some(&admin),
        Method::GET,
        "/analytics/vulnerabilities/summary",
        vec![],
    )
    .await
    .body;
    assert_eq!(summary["Suppressed"], 2, "{summary}");
    // An API error is the page's error, with the API's message.
    let bad = browse(
        &app,
        Method::POST,
        "/ui/suppressions",
        &session,
        &[
            ("csrf", &csrf),
            ("vulnerability", "CVE-2025-7001"),
            ("state", "maybe"),
            ("reason", "r"),
        ],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.html);
    assert!(bad.html.contains("State"), "{}", bad.html);

    // A reader sees no forms that change anything, and a forged one is refused.
    let rs = sign_in(&app, &reader).await;
    let cve = browse(&app, Method::GET, "/ui/cve/CVE-2025-7002", &rs, &[]).await;
    assert!(!cve.html.contains(r#"action="/ui/suppressions""#));
    let jobs = browse(&app, Method::GET, "/ui/jobs", &rs, &[]).await;
    assert!(
        !jobs.html.contains(r#"action="/ui/jobs""#),
        "a reader cannot request scans"
    );
    let forged = browse(
        &app,
        Method::POST,
        "/ui/suppressions",
        &rs,
        &[
            ("csrf", &cve.csrf()),
            ("vulnerability", "CVE-2025-7002"),
            ("state", "not_affected"),
            ("reason", "r"),
        ],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    assert_eq!(
        call(&app, Some(&admin), Method::GET, "/suppressions", vec![])
            .await
            .body["Count"],
        1
    );
    // One key's token is not another's.
    let crossed = browse(&app, Method::POST, "/ui/logout", &rs, &[("csrf", &csrf)]).await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);

    // A revoked key's session ends; signing out clears the cookie.
    let r = call(
        &app,
        Some(&admin),
        Method::DELETE,
        &format!("/admin/api-keys/{reader_id}"),
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let p = browse(&app, Method::GET, "/ui/", &rs, &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(p.location().starts_with("/ui/login"));
    let out = browse(
        &app,
        Method::POST,
        "/ui/logout",
        &session,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out
        .set_cookie("scanvault_session")
        .unwrap()
        .contains("Max-Age=0"));
    app.finish().await;
}

mod sessions {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::sessions_csrf_and_roles(crate::support::Db::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::sessions_csrf_and_roles(crate::support::Db::Postgres).await;
    }
}

/// What the dashboard reads that the API did not serve before.
async fn the_api_the_dashboard_reads(app: &TestApp) {
    // Four orders that all differ: newest a, z, k; by name a, k, z; by critical findings
    // k (one), z (none, three high), a; by risk z (3 × 5), k (10), a (1).
    let k = Report::image("dash/k:1", &digest(711))
        .at("2025-03-01T10:00:00Z")
        .vuln("CVE-2025-7101", "openssl", "1.0", "CRITICAL", Some("1.1"));
    let z = Report::image("dash/z:1", &digest(712))
        .at("2025-03-02T10:00:00Z")
        .vuln("CVE-2025-7104", "libx", "1.0", "HIGH", None)
        .vuln("CVE-2025-7105", "liby", "1.0", "HIGH", None)
        .vuln("CVE-2025-7106", "libz", "1.0", "HIGH", None);
    let a = Report::image("dash/a:1", &digest(713))
        .at("2025-03-03T10:00:00Z")
        .vuln("CVE-2025-7103", "zlib", "1.0", "LOW", None);
    for r in [&k, &z, &a] {
        app.create("", r.bytes()).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["Items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["ImageName"].as_str().unwrap().to_string())
            .collect()
    };
    for (sort, want) in [
        ("", ["dash/a", "dash/z", "dash/k"]),
        ("newest", ["dash/a", "dash/z", "dash/k"]),
        ("name", ["dash/a", "dash/k", "dash/z"]),
        ("critical", ["dash/k", "dash/z", "dash/a"]),
        ("risk", ["dash/z", "dash/k", "dash/a"]),
    ] {
        let got = app
            .get_json(&format!("/scans/all?include=summary&sort={sort}"))
            .await;
        assert_eq!(names(&got), want, "sort={sort}");
    }
    // Pages of a sorted listing neither overlap nor skip.
    let mut paged = vec![];
    for offset in 0..3 {
        paged.extend(names(
            &app.get_json(&format!(
                "/scans/all?include=summary&sort=critical&limit=1&offset={offset}"
            ))
            .await,
        ));
    }
    assert_eq!(paged, ["dash/k", "dash/z", "dash/a"]);
    let r = app.get("/scans/all?sort=size").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("sort"));

    // A vulnerability as the catalog has it.
    let v = app.get_json("/vulnerabilities/CVE-2025-7101").await;
    assert_eq!(v["ID"], "CVE-2025-7101");
    assert_eq!(v["Severity"], "CRITICAL");
    assert_eq!(v["Title"], "CVE-2025-7101 in openssl");
    assert!(v["References"].is_array());
    let r = app.get("/vulnerabilities/CVE-1999-0000").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["code"], "vulnerability_not_found");

    // The queue at a glance.
    let counts = app.get_json("/scan-jobs/counts").await;
    assert_eq!(counts, json!({"Total": 0, "Items": []}));
    for image in ["registry.invalid/x:1", "registry.invalid/y:1"] {
        let r = app
            .request(
                Method::POST,
                "/scan-jobs",
                serde_json::to_vec(&json!({"image": image})).unwrap(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let counts = app.get_json("/scan-jobs/counts").await;
    assert_eq!(
        counts,
        json!({"Total": 2, "Items": [{"Status": "queued", "Lane": "adhoc", "Count": 2}]})
    );

    // The workloads that run a CVE's images, from a cluster report.
    let cluster = app
        .create("", corpus_file("trivy/k8s-cluster_local_resources.json"))
        .await;
    let scan = cluster["Scans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["VulnTotal"].as_i64() > Some(0))
        .expect("a vulnerable image");
    let id = scan["ID"].as_str().unwrap();
    let vulns = app.get_json(&format!("/scans/{id}/vulnerabilities")).await;
    let cve = vulns["Items"][0]["Vulnerability"]["VulnerabilityID"]
        .as_str()
        .unwrap()
        .to_string();
    let images = app
        .get_json(&format!(
            "/analytics/vulnerabilities/cve/{cve}/images?limit=500"
        ))
        .await;
    let item = images["Images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["ScanID"] == id)
        .expect("the scan's image");
    assert_eq!(item["Workloads"], scan["Workloads"], "{item}");
    let plain = app
        .get_json("/analytics/vulnerabilities/cve/CVE-2025-7101/images")
        .await;
    assert!(
        plain["Images"][0].get("Workloads").is_none(),
        "no workloads, no field: {plain}"
    );
}

crate::on_both_backends!(dashboard_api, the_api_the_dashboard_reads);
