//! API keys, roles, 401/403, rate limiting, and who-did-what on every write.

use crate::on_both_backends;
use crate::support::{digest, Db, Report, TestApp};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::Utc;
use http_body_util::BodyExt;
use scanvault::http::auth::AuthSettings;
use scanvault::http::HttpSettings;
use serde_json::{json, Value};
use tower::ServiceExt;

pub(crate) struct Call {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

pub(crate) async fn call(
    app: &TestApp,
    key: Option<&str>,
    method: Method,
    uri: &str,
    body: Vec<u8>,
) -> Call {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let resp = app
        .router
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Call {
        status,
        headers,
        body,
    }
}

pub(crate) async fn secured(db: Db, rate: f64, burst: f64) -> Option<TestApp> {
    TestApp::with_auth(
        db,
        HttpSettings::default(),
        |_| {},
        AuthSettings {
            enabled: true,
            rate_per_second: rate,
            burst,
        },
    )
    .await
}

pub(crate) async fn make_key(
    app: &TestApp,
    admin: &str,
    role: &str,
    extra: Value,
) -> (String, String) {
    let mut body = json!({"role": role, "name": format!("{role} key")});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = call(
        app,
        Some(admin),
        Method::POST,
        "/admin/api-keys",
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["ID"].as_str().unwrap().to_string(),
        r.body["Key"].as_str().unwrap().to_string(),
    )
}

async fn roles_keys_and_attribution(db: Db) {
    let Some(app) = secured(db, 0.0, 0.0).await else {
        return;
    };
    // Closed by default; health, readiness and the API document stay open.
    let anon = call(&app, None, Method::GET, "/scans/all", vec![]).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anon.body["code"], "unauthorized");
    assert!(anon.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    for open in ["/health", "/ready", "/swagger/openapi.json"] {
        assert_eq!(
            call(&app, None, Method::GET, open, vec![]).await.status,
            StatusCode::OK,
            "{open}"
        );
    }
    assert_eq!(
        call(&app, None, Method::GET, "/metrics", vec![])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // The first admin key is made once.
    let admin = app
        .store
        .keys()
        .bootstrap_admin(None, Utc::now())
        .await
        .unwrap()
        .expect("first key");
    assert!(
        app.store
            .keys()
            .bootstrap_admin(None, Utc::now())
            .await
            .unwrap()
            .is_none(),
        "made twice"
    );
    let keys = app.store.keys().list().await.unwrap();
    assert_eq!(keys.len(), 1);
    // The whole secret (base64url, so it may hold `_` itself), as the service splits a key.
    let (_, secret) = scanvault::store::keys::split_key(&admin).expect("a well-formed key");
    assert!(
        !keys[0].secret_hash.contains(secret),
        "the secret is stored in clear"
    );

    let (reader_id, reader) = make_key(&app, &admin, "reader", json!({})).await;
    let (ingester_id, ingester) =
        make_key(&app, &admin, "ingester", json!({"expires_in": "30d"})).await;
    let report = Report::image("auth:1", &digest(1))
        .vuln("CVE-A", "p", "1", "HIGH", None)
        .bytes();

    // reader: reads only.
    assert_eq!(
        call(&app, Some(&reader), Method::GET, "/scans/all", vec![])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, Some(&reader), Method::GET, "/metrics", vec![])
            .await
            .status,
        StatusCode::OK
    );
    let denied = call(&app, Some(&reader), Method::POST, "/scans", report.clone()).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body["code"], "forbidden");
    assert_eq!(
        call(&app, Some(&reader), Method::GET, "/admin/api-keys", vec![])
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Harbor's "APIKey" authorization: the key in X-ScannerAdapter-API-Key.
    let harbor = app
        .request_with(
            Method::GET,
            "/api/v1/metadata",
            &[("X-ScannerAdapter-API-Key", reader.as_str())],
            vec![],
        )
        .await;
    assert_eq!(harbor.status, StatusCode::OK);
    let harbor_scan = app
        .request_with(
            Method::POST,
            "/api/v1/scan",
            &[("X-ScannerAdapter-API-Key", reader.as_str())],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        harbor_scan.status,
        StatusCode::FORBIDDEN,
        "a reader cannot scan"
    );
    assert_eq!(
        call(&app, None, Method::GET, "/api/v1/metadata", vec![])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // ingester: posts reports and requests scans; the writes record its key id.
    let posted = call(&app, Some(&ingester), Method::POST, "/scans", report).await;
    assert_eq!(posted.status, StatusCode::CREATED, "{}", posted.body);
    assert_eq!(posted.body["CreatedBy"], ingester_id);
    let scan_id = posted.body["ID"].as_str().unwrap().to_string();
    let job = call(
        &app,
        Some(&ingester),
        Method::POST,
        "/scan-jobs",
        br#"{"image":"alpine:3.19"}"#.to_vec(),
    )
    .await;
    assert_eq!(job.status, StatusCode::ACCEPTED);
    assert_eq!(job.body["RequestedBy"], ingester_id);
    let job_id = job.body["ID"].as_str().unwrap().to_string();
    let del = call(
        &app,
        Some(&ingester),
        Method::DELETE,
        &format!("/scans/{scan_id}"),
        vec![],
    )
    .await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    let cancel = call(
        &app,
        Some(&ingester),
        Method::POST,
        &format!("/scan-jobs/{job_id}/cancel"),
        vec![],
    )
    .await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN);

    // admin: deletes, cancels, manages keys; the audit log names the key.
    let cancel = call(
        &app,
        Some(&admin),
        Method::POST,
        &format!("/scan-jobs/{job_id}/cancel"),
        vec![],
    )
    .await;
    assert_eq!(cancel.status, StatusCode::OK);
    let events = call(
        &app,
        Some(&reader),
        Method::GET,
        &format!("/scan-jobs/{job_id}/events"),
        vec![],
    )
    .await;
    let by: Vec<&str> = events.body["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ChangedBy"].as_str().unwrap())
        .collect();
    let admin_id = &admin[4..20];
    assert_eq!(
        by,
        vec![format!("api:{ingester_id}"), format!("api:{admin_id}")]
    );
    assert_eq!(
        call(
            &app,
            Some(&admin),
            Method::DELETE,
            &format!("/scans/{scan_id}"),
            vec![]
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let list = call(&app, Some(&admin), Method::GET, "/admin/api-keys", vec![]).await;
    assert_eq!(list.body["Count"], 3);
    assert!(
        list.body["Items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("Key").is_none()),
        "secrets listed"
    );

    // Revoked, expired, unknown and malformed keys all get the same 401.
    assert_eq!(
        call(
            &app,
            Some(&admin),
            Method::DELETE,
            &format!("/admin/api-keys/{reader_id}"),
            vec![]
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let revoked = call(&app, Some(&reader), Method::GET, "/scans/all", vec![]).await;
    let unknown = call(
        &app,
        Some(&format!("svk_0123456789abcdef_{}", "x".repeat(43))),
        Method::GET,
        "/scans/all",
        vec![],
    )
    .await;
    let wrong_secret = call(
        &app,
        Some(&format!("{}y", &ingester[..ingester.len() - 1])),
        Method::GET,
        "/scans/all",
        vec![],
    )
    .await;
    let malformed = call(&app, Some("hello"), Method::GET, "/scans/all", vec![]).await;
    for r in [&revoked, &unknown, &wrong_secret, &malformed] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body, anon.body, "401 bodies must not tell keys apart");
    }
    let expired = app
        .store
        .keys()
        .create(scanvault::store::keys::NewKey {
            name: "old".into(),
            role: scanvault::store::keys::Role::Admin,
            expires_at: Some(Utc::now() - chrono::Duration::seconds(1)),
            created_by: None,
            secret: None,
            now: Utc::now(),
        })
        .await
        .unwrap()
        .1;
    assert_eq!(
        call(&app, Some(&expired), Method::GET, "/scans/all", vec![])
            .await
            .body,
        anon.body
    );

    // Key requests are validated.
    for bad in [
        json!({"role": "root"}),
        json!({"role": "reader", "expires_in": "never"}),
        json!({"role": "reader", "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        let r = call(
            &app,
            Some(&admin),
            Method::POST,
            "/admin/api-keys",
            serde_json::to_vec(&bad).unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    app.finish().await;
}

async fn rate_limits_answer_429_with_retry_after(db: Db) {
    let Some(app) = secured(db, 1.0, 3.0).await else {
        return;
    };
    let admin = app
        .store
        .keys()
        .bootstrap_admin(None, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let mut statuses = vec![];
    for _ in 0..5 {
        statuses.push(call(&app, Some(&admin), Method::GET, "/scans/all", vec![]).await);
    }
    assert!(statuses[..3].iter().all(|c| c.status == StatusCode::OK));
    let limited = &statuses[4];
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["code"], "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry));
    assert_eq!(
        call(&app, None, Method::GET, "/health", vec![])
            .await
            .status,
        StatusCode::OK,
        "health is not rate limited"
    );
    app.finish().await;
}

mod keys_and_roles {
    #[tokio::test]
    async fn sqlite() {
        super::roles_keys_and_attribution(crate::support::Db::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::roles_keys_and_attribution(crate::support::Db::Postgres).await
    }
}

mod rate_limit {
    #[tokio::test]
    async fn sqlite() {
        super::rate_limits_answer_429_with_retry_after(crate::support::Db::Sqlite).await
    }
    #[tokio::test]
    async fn postgres() {
        super::rate_limits_answer_429_with_retry_after(crate::support::Db::Postgres).await
    }
}

async fn auth_disabled_lets_everyone_in(app: &TestApp) {
    assert_eq!(app.get("/scans/all").await.status, StatusCode::OK);
}

on_both_backends!(auth_disabled, auth_disabled_lets_everyone_in);
