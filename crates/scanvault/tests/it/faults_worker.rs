//! Fault tests of the worker: scan jobs in flight when PostgreSQL goes away go back to the
//! queue and complete; none is lost or stuck (the private cluster is `faults.rs`'s).

use crate::faults::{blocking, skip_pg, Cluster};
use crate::support::{digest, Report};
use crate::worker::kit;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use scanvault::http::{AppState, HttpSettings};
use scanvault::ingest::IngestSettings;
use scanvault::store::{Store, StoreOptions};
use scanvault::worker::{Runner, WorkerSettings};
use scanvault_core::report::Severity;
use scanvault_registry::{RegistryClient, RegistryConfig};
use scanvault_scanner::{Trivy, TrivyConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A `trivy` that notes its start, takes `secs` seconds and prints a small valid report.
fn slow_trivy(dir: &Path, secs: f64) -> (PathBuf, PathBuf) {
    let starts = dir.join("starts");
    std::fs::create_dir_all(&starts).unwrap();
    let report = dir.join("report.json");
    let r = Report::image("e2e/fault:1", &digest(7))
        .vuln("CVE-2099-0001", "musl", "1.2.4", "HIGH", Some("1.2.5"))
        .vuln("CVE-2099-0002", "busybox", "1.36", "LOW", None);
    std::fs::write(&report, r.bytes()).unwrap();
    let path = dir.join("slow-trivy");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ntouch {starts}/$$\nsleep {secs}\ncat {report}\n",
            starts = starts.display(),
            report = report.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, starts)
}

async fn call(router: &axum::Router, method: Method, uri: &str, body: Value) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(if body.is_null() {
            Body::empty()
        } else {
            Body::from(serde_json::to_vec(&body).unwrap())
        })
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_jobs_survive_a_postgres_outage() {
    if skip_pg() {
        eprintln!("SKIPPED: SCANVAULT_SKIP_PG=1");
        return;
    }
    let Some(kit) = kit() else { return };
    let Some(pg) = blocking(Cluster::start).await else {
        return;
    };
    scanvault::telemetry::init_for_tests();
    let store = Store::connect(&StoreOptions {
        database_url: Some(pg.url()),
        max_connections: 10,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    let max_attempts = 3;
    let signals = scanvault::worker::Signals::default();
    let router = scanvault::http::router(
        AppState::new(
            store.clone(),
            IngestSettings {
                compliance_fail_on: Severity::Critical,
                max_findings: 100_000,
            },
            scanvault::http::jobs::JobSettings { max_attempts },
            Default::default(),
            signals.clone(),
        ),
        &HttpSettings::default(),
    );

    // Six tags of the kit's image in its real registry, pushed with the registry's own API.
    let (repo, tag) = kit
        .alpine
        .split_once('/')
        .map(|(_, r)| r.rsplit_once(':').unwrap())
        .unwrap();
    let http = reqwest::Client::new();
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let m = http
        .get(format!("http://{}/v2/{repo}/manifests/{tag}", kit.registry))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let ct = m.headers()["content-type"].to_str().unwrap().to_string();
    let manifest = m.bytes().await.unwrap();
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut ids = vec![];
    for i in 0..6 {
        let t = format!("fault-{run}-{i}");
        let r = http
            .put(format!("http://{}/v2/{repo}/manifests/{t}", kit.registry))
            .header("content-type", &ct)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let (s, job) = call(
            &router,
            Method::POST,
            "/scan-jobs",
            json!({"image": format!("{}/{repo}:{t}", kit.registry)}),
        )
        .await;
        assert_eq!(s, 202, "{job}");
        ids.push(job["ID"].as_str().unwrap().to_string());
    }

    let dir = tempfile::tempdir().unwrap();
    let scan_secs = 2.0;
    let (fake, starts) = slow_trivy(dir.path(), scan_secs);
    let lease = Duration::from_secs(3);
    let registry = RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![kit.registry.clone()],
        timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .unwrap();
    let runner = Arc::new(Runner::new(
        store.clone(),
        signals.clone(),
        registry,
        Trivy::new(TrivyConfig {
            path: fake,
            timeout: Duration::from_secs(60),
            ..Default::default()
        }),
        WorkerSettings {
            concurrency: 3,
            adhoc_slots: 0,
            lease,
            poll_interval: Duration::from_millis(100),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
            // Every tag is the same digest: no cache hits, every job runs its own scan.
            cache_max_age: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(5),
            ingest: IngestSettings {
                compliance_fail_on: Severity::Critical,
                max_findings: 100_000,
            },
        },
    ));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(runner.clone().run(stop.clone()));

    // Three scans running (the worker's concurrency): the database goes away.
    let started = |p: &Path| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while started(&starts) < 3 {
        assert!(
            Instant::now() < deadline,
            "the worker did not start 3 scans within 60 s ({} started)",
            started(&starts)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_flight: Vec<(String, String)> = {
        let mut v = vec![];
        for id in &ids {
            let (_, j) = call(
                &router,
                Method::GET,
                &format!("/scan-jobs/{id}"),
                Value::Null,
            )
            .await;
            v.push((id.clone(), j["Status"].as_str().unwrap_or("?").to_string()));
        }
        v
    };
    let pg = Arc::new(pg);
    {
        let pg = pg.clone();
        blocking(move || pg.stop_immediate()).await;
    }
    let t_stop = Instant::now();
    // Down long enough for the running scans to finish (and fail to store) and their
    // leases to expire.
    tokio::time::sleep(Duration::from_secs(6)).await;
    {
        let pg = pg.clone();
        blocking(move || pg.start_again()).await;
    }
    let t_up = Instant::now();

    // Every job must complete, with no restart of anything.
    let bound = Duration::from_secs(60);
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    let done_after = loop {
        let mut all = true;
        for id in &ids {
            let (s, j) = call(
                &router,
                Method::GET,
                &format!("/scan-jobs/{id}"),
                Value::Null,
            )
            .await;
            if s != 200 || j["Status"] != "completed" {
                all = false;
            }
            if s == 200 {
                last.insert(id.clone(), j);
            }
        }
        if all {
            break Some(t_up.elapsed());
        }
        if t_up.elapsed() > bound {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), worker)
        .await
        .expect("the worker stops")
        .unwrap();

    let mut problems = vec![];
    let mut requeued = 0;
    let mut attempts_total = 0;
    for id in &ids {
        let (_, j) = call(
            &router,
            Method::GET,
            &format!("/scan-jobs/{id}"),
            Value::Null,
        )
        .await;
        let (_, ev) = call(
            &router,
            Method::GET,
            &format!("/scan-jobs/{id}/events"),
            Value::Null,
        )
        .await;
        let items = ev["Items"].as_array().cloned().unwrap_or_default();
        let chain: Vec<String> = items
            .iter()
            .map(|e| {
                format!(
                    "{}->{} ({})",
                    e["OldStatus"].as_str().unwrap_or(""),
                    e["NewStatus"].as_str().unwrap_or(""),
                    e["Reason"].as_str().unwrap_or("")
                )
            })
            .collect();
        attempts_total += j["Attempts"].as_i64().unwrap_or(0);
        eprintln!("faults/worker: job {id}: {}", chain.join(" | "));
        if items.iter().any(|e| {
            e["OldStatus"].as_str().is_some_and(|o| !o.is_empty()) && e["NewStatus"] == "queued"
        }) {
            requeued += 1;
        }
        if j["Status"] != "completed" {
            problems.push(format!(
                "job {id} ended {} (attempts {}, lease until {}): {chain:#?}",
                j["Status"], j["Attempts"], j["LeaseExpiresAt"]
            ));
            continue;
        }
        // The audit log is one unbroken chain ending in exactly one completion.
        let mut prev = String::new();
        for e in &items {
            let old = e["OldStatus"].as_str().unwrap_or("").to_string();
            if old != prev {
                problems.push(format!("job {id}: broken audit chain: {chain:#?}"));
                break;
            }
            prev = e["NewStatus"].as_str().unwrap_or("").to_string();
        }
        let completions = items
            .iter()
            .filter(|e| e["NewStatus"] == "completed")
            .count();
        if completions != 1 || prev != "completed" {
            problems.push(format!("job {id}: {completions} completions: {chain:#?}"));
        }
        let scan_id = j["ScanID"].as_str().unwrap_or_default();
        let (s, scan) = call(
            &router,
            Method::GET,
            &format!("/scans/{scan_id}"),
            Value::Null,
        )
        .await;
        if s != 200 || scan["VulnTotal"] != 2 {
            problems.push(format!(
                "job {id}: its scan {scan_id:?} is {s} with {} findings",
                scan["VulnTotal"]
            ));
        }
        if j["Attempts"].as_i64().unwrap_or(0) > max_attempts {
            problems.push(format!("job {id}: {} attempts", j["Attempts"]));
        }
    }
    if done_after.is_none() {
        problems.push(format!(
            "not every job completed within {bound:?} of PostgreSQL being back: {:?}",
            last.iter()
                .map(|(id, j)| format!("{id}: {} attempt {}", j["Status"], j["Attempts"]))
                .collect::<Vec<_>>()
        ));
    }
    if requeued == 0 {
        problems.push(
            "no job went back to the queue: the outage did not interrupt any job (test too weak)"
                .into(),
        );
    }
    eprintln!(
        "faults/worker: {} jobs; in flight at the stop: {in_flight:?}; PostgreSQL down {:.2} s; \
         all completed {} after it was back; {requeued} jobs went back to the queue; {attempts_total} attempts in all; \
         {} scans started",
        ids.len(),
        t_up.duration_since(t_stop).as_secs_f64(),
        done_after
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .unwrap_or_else(|| "never".into()),
        started(&starts),
    );
    store.close().await;
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
