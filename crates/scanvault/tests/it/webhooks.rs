//! Webhooks: events written in the transaction of their cause, delivered at least once to a
//! real HTTP receiver on loopback, signed, retried while the receiver is down, carried over
//! a restart, and dead after WEBHOOK_RETRY_FOR.

use crate::on_both_backends;
use crate::support::{digest, Report, TestApp};
use axum::http::{Method, StatusCode};
use scanvault::webhooks::{signature, Dispatcher, WebhookSettings};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "s3cret-of-sixteen-or-more";

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) event: String,
    delivery: String,
    signature: String,
    pub(crate) body: String,
}

/// An HTTP receiver on `port` answering `status`; it can be stopped and started again.
pub(crate) struct Receiver {
    port: u16,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    pub(crate) fn new() -> Receiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Receiver {
            port,
            status: Arc::new(AtomicU16::new(200)),
            got: Arc::default(),
            stop: None,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub(crate) async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let (got, status) = (self.got.clone(), self.status.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (got, status) = (got.clone(), status.clone());
                async move {
                    let h = |k: &str| {
                        headers
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    got.lock().unwrap().push(Received {
                        event: h("x-scanvault-event"),
                        delivery: h("x-scanvault-delivery"),
                        signature: h("x-scanvault-signature"),
                        body,
                    });
                    StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap()
        });
        self.stop = Some(tx);
    }

    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

pub(crate) fn settings(retry_for: Duration) -> WebhookSettings {
    WebhookSettings {
        poll_interval: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
        retry_for,
        backoff_base: Duration::from_millis(40),
        backoff_max: Duration::from_millis(80),
    }
}

pub(crate) async fn subscribe(app: &TestApp, url: &str, events: &[&str]) -> String {
    let r = app
        .request(
            Method::POST,
            "/webhooks",
            serde_json::to_vec(&json!({"URL": url, "Events": events, "Secret": SECRET})).unwrap(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let hook = r.json();
    assert!(hook.get("Secret").is_none(), "the secret is never returned");
    hook["ID"].as_str().unwrap().to_string()
}

async fn deliveries(app: &TestApp, hook: &str) -> Vec<Value> {
    let r = app
        .request(Method::GET, &format!("/webhooks/{hook}/deliveries"), vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()["Items"].as_array().unwrap().clone()
}

/// Run the dispatcher until `done` holds for the receiver (or fail after 20 s).
pub(crate) async fn dispatch_until(
    d: &Dispatcher,
    receiver: &Receiver,
    done: impl Fn(&[Received]) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done(&receiver.received()) {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered: {:?}",
            receiver.received()
        );
        d.dispatch_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post_report(app: &TestApp, r: &Report) -> Value {
    let resp = app.request(Method::POST, "/scans", r.bytes()).await;
    assert!(
        resp.status.is_success(),
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    resp.json()
}

async fn deliveries_are_signed_retried_and_survive_a_restart(app: &TestApp) {
    let mut receiver = Receiver::new();
    let hook = subscribe(
        app,
        &receiver.url(),
        &["scan.noncompliant", "fleet.new_critical"],
    )
    .await;
    // Two CRITICAL vulnerabilities: the scan is not compliant, and both are new to the fleet.
    let report = Report::image("acme/api:1.0", &digest(1))
        .vuln(
            "CVE-2024-0001",
            "openssl",
            "3.0.1",
            "CRITICAL",
            Some("3.0.2"),
        )
        .vuln("CVE-2024-0002", "zlib", "1.2", "CRITICAL", None)
        .vuln("CVE-2024-0003", "curl", "8.0", "LOW", None);
    let scan = post_report(app, &report).await;

    // The receiver is down: each delivery fails once and stays pending.
    let first = Dispatcher::new(app.store.clone(), settings(Duration::from_secs(3600))).unwrap();
    assert_eq!(first.dispatch_once().await.unwrap(), 3);
    let pending = deliveries(app, &hook).await;
    assert_eq!(pending.len(), 3);
    for d in &pending {
        assert_eq!(d["Status"], "pending", "{d}");
        assert_eq!(d["Attempts"].as_array().unwrap().len(), 1);
        assert!(d["Attempts"][0]["Error"].is_string(), "{d}");
        assert!(d["Attempts"][0].get("StatusCode").is_none());
    }
    // The process dies while it holds a claim on one delivery (claimed, never recorded).
    let now = scanvault::store::micros(chrono::Utc::now()) + 1_000_000;
    let held = app
        .store
        .webhooks()
        .claim_deliveries(now, now + 300_000, 1)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    drop(first);

    // A restarted process, on a store of its own, delivers everything once the receiver is up.
    receiver.start().await;
    let restarted = app.reopen().await;
    let second = Dispatcher::new(restarted.clone(), settings(Duration::from_secs(3600))).unwrap();
    dispatch_until(&second, &receiver, |got| got.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    second.dispatch_once().await.unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 3, "each delivered once: {got:?}");
    let mut by_event: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in &got {
        assert_eq!(r.signature, signature(SECRET, r.body.as_bytes()));
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["ID"], r.delivery);
        assert_eq!(body["Event"], r.event);
        by_event.entry(r.event.clone()).or_default().push(body);
    }
    let mut criticals: Vec<&str> = by_event["fleet.new_critical"]
        .iter()
        .map(|b| b["Data"]["VulnerabilityID"].as_str().unwrap())
        .collect();
    criticals.sort_unstable();
    assert_eq!(criticals, ["CVE-2024-0001", "CVE-2024-0002"]);
    let noncompliant = &by_event["scan.noncompliant"][0]["Data"];
    assert_eq!(noncompliant["ScanID"], scan["ID"]);
    assert_eq!(noncompliant["Critical"], 2);
    // The delivery ids are the ones the failed attempts had.
    let ids: Vec<&str> = pending.iter().map(|d| d["ID"].as_str().unwrap()).collect();
    for r in &got {
        assert!(ids.contains(&r.delivery.as_str()));
    }
    for d in deliveries(app, &hook).await {
        assert_eq!(d["Status"], "delivered", "{d}");
        let attempts = d["Attempts"].as_array().unwrap();
        assert_eq!(attempts.last().unwrap()["StatusCode"], 200, "{d}");
        assert!(attempts.len() >= 2, "{d}");
    }

    // The same report again: nothing new. A rebuild bringing one more CRITICAL: one
    // fleet.new_critical (for that one only) and a scan.noncompliant.
    post_report(app, &report).await;
    let rebuilt = Report::image("acme/api:1.1", &digest(2))
        .vuln(
            "CVE-2024-0001",
            "openssl",
            "3.0.1",
            "CRITICAL",
            Some("3.0.2"),
        )
        .vuln("CVE-2024-0004", "glibc", "2.36", "CRITICAL", None);
    post_report(app, &rebuilt).await;
    dispatch_until(&second, &receiver, |got| got.len() >= 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    second.dispatch_once().await.unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 5, "{got:?}");
    let news: Vec<Value> = got[3..]
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
        .collect();
    let critical: Vec<&Value> = news
        .iter()
        .filter(|b| b["Event"] == "fleet.new_critical")
        .collect();
    assert_eq!(critical.len(), 1);
    assert_eq!(critical[0]["Data"]["VulnerabilityID"], "CVE-2024-0004");
    receiver.stop();
    restarted.close().await;
}
on_both_backends!(
    webhook_delivery,
    deliveries_are_signed_retried_and_survive_a_restart
);

async fn failures_are_retried_until_dead(app: &TestApp) {
    let mut receiver = Receiver::new();
    receiver.status.store(503, Ordering::SeqCst);
    receiver.start().await;
    let hook = subscribe(app, &receiver.url(), &["job.failed"]).await;
    // A job that fails permanently: a reference the worker cannot parse is refused at the
    // API, so fail it through the store as a worker would.
    let r = app
        .request(
            Method::POST,
            "/scan-jobs",
            serde_json::to_vec(&json!({"image": "registry.invalid/acme/app:1"})).unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let job_id = r.json()["ID"].as_str().unwrap().to_string();
    let job = app
        .store
        .jobs()
        .claim("w1", Duration::from_secs(30), chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    let mut t = scanvault::store::jobs::Transition::new(
        &job.id,
        scanvault_core::job::JobStatus::Pulling,
        scanvault_core::job::JobEvent::PermanentError,
        scanvault::store::jobs::Actor::Worker("w1".into()),
        "manifest unknown",
        scanvault::store::micros(chrono::Utc::now()),
    )
    .fenced(job.attempt);
    t.error = Some(("image_not_found".into(), "manifest unknown".into()));
    app.store.jobs().transition(t).await.unwrap();

    // 503 while the delivery may still be retried, then dead.
    let d = Dispatcher::new(app.store.clone(), settings(Duration::from_millis(300))).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        d.dispatch_once().await.unwrap();
        let items = deliveries(app, &hook).await;
        assert_eq!(items.len(), 1);
        if items[0]["Status"] == "dead" {
            let attempts = items[0]["Attempts"].as_array().unwrap();
            assert!(attempts.len() >= 2, "{}", items[0]);
            assert!(attempts.iter().all(|a| a["StatusCode"] == 503));
            assert_eq!(items[0]["Data"]["JobID"], job_id.as_str());
            assert_eq!(items[0]["Data"]["ErrorCode"], "image_not_found");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", items[0]);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let n = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    d.dispatch_once().await.unwrap();
    assert_eq!(
        receiver.received().len(),
        n,
        "a dead delivery is not sent again"
    );
    receiver.stop();
}
on_both_backends!(webhook_dead, failures_are_retried_until_dead);

async fn webhooks_are_validated_and_their_secrets_kept(app: &TestApp) {
    for (body, why) in [
        (
            json!({"URL": "ftp://x/y", "Events": ["job.failed"], "Secret": SECRET}),
            "http",
        ),
        (
            json!({"URL": "not a url", "Events": ["job.failed"], "Secret": SECRET}),
            "absolute",
        ),
        (
            json!({"URL": "http://x/y", "Events": [], "Secret": SECRET}),
            "at least one",
        ),
        (
            json!({"URL": "http://x/y", "Events": ["scan.created"], "Secret": SECRET}),
            "unknown event",
        ),
        (
            json!({"URL": "http://x/y", "Events": ["job.failed"], "Secret": "short"}),
            "16 to 256",
        ),
        (
            json!({"URL": "http://x/y", "Events": ["job.failed"]}),
            "Secret",
        ),
    ] {
        let r = app
            .request(
                Method::POST,
                "/webhooks",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(text.contains(why), "{text}");
    }
    let id = subscribe(
        app,
        "https://hooks.example.com/in?token=abc",
        &["job.failed"],
    )
    .await;
    let one = app
        .request(Method::GET, &format!("/webhooks/{id}"), vec![])
        .await;
    assert_eq!(one.status, StatusCode::OK);
    let all = app.request(Method::GET, "/webhooks", vec![]).await;
    for r in [&one, &all] {
        assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
    }
    assert_eq!(all.json()["Count"], 1);
    let del = app
        .request(Method::DELETE, &format!("/webhooks/{id}"), vec![])
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let gone = app
        .request(Method::GET, &format!("/webhooks/{id}"), vec![])
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
on_both_backends!(
    webhook_validation,
    webhooks_are_validated_and_their_secrets_kept
);

async fn a_known_exploited_vulnerability_is_new_to_the_fleet_once(app: &TestApp) {
    let mut receiver = Receiver::new();
    receiver.start().await;
    let hook = subscribe(app, &receiver.url(), &["fleet.new_critical"]).await;
    let kev = serde_json::to_vec(&json!({
        "catalogVersion": "2024.06.01", "dateReleased": "2024-06-01T00:00:00.000Z", "count": 1,
        "vulnerabilities": [{"cveID": "CVE-2024-7777", "vendorProject": "x", "product": "y",
            "vulnerabilityName": "z", "dateAdded": "2024-05-01"}]
    }))
    .unwrap();
    assert_eq!(
        app.request(Method::POST, "/feeds/kev", kev).await.status,
        StatusCode::OK
    );
    let low = Report::image("acme/web:1", &digest(3))
        .vuln("CVE-2024-7777", "libk", "1.0", "LOW", None)
        .vuln("CVE-2024-8888", "libn", "1.0", "LOW", None);
    post_report(app, &low).await;
    // The same vulnerability in another image later: not new any more.
    post_report(
        app,
        &Report::image("acme/other:1", &digest(4)).vuln(
            "CVE-2024-7777",
            "libk",
            "1.0",
            "LOW",
            None,
        ),
    )
    .await;
    let d = Dispatcher::new(app.store.clone(), settings(Duration::from_secs(3600))).unwrap();
    dispatch_until(&d, &receiver, |got| !got.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    d.dispatch_once().await.unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["Data"]["VulnerabilityID"], "CVE-2024-7777");
    assert_eq!(body["Data"]["Reason"], "KEV");
    assert_eq!(body["Data"]["Severity"], "LOW");
    assert_eq!(deliveries(app, &hook).await.len(), 1);
    receiver.stop();
}
on_both_backends!(
    webhook_kev,
    a_known_exploited_vulnerability_is_new_to_the_fleet_once
);
