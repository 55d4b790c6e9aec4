//! The scan worker end to end: the real Trivy binary, a real OCI registry on loopback and a
//! small real vulnerability DB (the shared e2e kit, set up by scripts/test.sh).

use crate::jobs::post_job;
use crate::on_both_backends;
use crate::support::{Db, TestApp};
use axum::http::{Method, StatusCode};
use chrono::Utc;
use scanvault::ingest::IngestSettings;
use scanvault::store::jobs::{Actor, JobError, Transition};
use scanvault::worker::{Runner, WorkerSettings};
use scanvault_core::job::{JobEvent, JobStatus};
use scanvault_core::report::Severity;
use scanvault_registry::{RegistryClient, RegistryConfig};
use scanvault_scanner::{Trivy, TrivyConfig};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The kit's environment (see shared/e2e-kit/README.md).
pub struct Kit {
    pub trivy: PathBuf,
    pub cache: PathBuf,
    pub registry: String,
    pub alpine: String,
    pub debian: String,
}

pub fn kit() -> Option<Kit> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("E2E_TRIVY"), get("E2E_TRIVY_CACHE"), get("E2E_REGISTRY"), get("E2E_IMAGE_ALPINE"), get("E2E_IMAGE_DEBIAN")) {
        (Some(t), Some(c), Some(r), Some(a), Some(d)) => Some(Kit {
            trivy: t.into(),
            cache: c.into(),
            registry: r,
            alpine: a,
            debian: d,
        }),
        _ if std::env::var("SCANVAULT_SKIP_E2E").is_ok_and(|v| v == "1") => {
            eprintln!("SKIPPED: e2e kit not set up (SCANVAULT_SKIP_E2E=1)");
            None
        }
        _ => panic!(
            "the e2e kit is not set up (E2E_TRIVY, E2E_TRIVY_CACHE, E2E_REGISTRY, E2E_IMAGE_ALPINE): run `bash scripts/test.sh`, \
             or set SCANVAULT_SKIP_E2E=1 for a local run without it"
        ),
    }
}

/// Trivy locks its DB: each worker gets its own copy of the cache.
fn copy_cache(from: &Path, dir: &tempfile::TempDir) -> PathBuf {
    let to = dir.path().join("trivy-cache");
    copy_dir(from, &to);
    to
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &p);
        } else {
            std::fs::copy(e.path(), p).unwrap();
        }
    }
}

pub struct WorkerOpts {
    pub trivy: Option<PathBuf>,
    pub timeout: Duration,
    pub lease: Duration,
    pub backoff: Duration,
    pub cache_max_age: Duration,
    pub shutdown_timeout: Duration,
}

impl Default for WorkerOpts {
    fn default() -> Self {
        WorkerOpts {
            trivy: None,
            timeout: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            backoff: Duration::from_millis(50),
            cache_max_age: Duration::from_secs(3600),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

pub fn runner(app: &TestApp, kit: &Kit, dir: &tempfile::TempDir, o: WorkerOpts) -> Runner {
    let registry = RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![kit.registry.clone()],
        // Generous: under a parallel test run the loopback registry can be slow to answer.
        timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .unwrap();
    let trivy = Trivy::new(TrivyConfig {
        path: o.trivy.unwrap_or_else(|| kit.trivy.clone()),
        server_url: None,
        timeout: o.timeout,
        cache_dir: Some(copy_cache(&kit.cache, dir)),
        extra_args: vec!["--skip-db-update".into(), "--offline-scan".into()],
    });
    Runner::new(
        app.store.clone(),
        app.signals.clone(),
        registry,
        trivy,
        WorkerSettings {
            concurrency: 2,
            adhoc_slots: 0,
            lease: o.lease,
            poll_interval: Duration::from_millis(100),
            backoff_base: o.backoff,
            backoff_max: o.backoff * 4,
            cache_max_age: o.cache_max_age,
            shutdown_timeout: o.shutdown_timeout,
            ingest: IngestSettings {
                compliance_fail_on: Severity::Critical,
                max_findings: 100_000,
            },
        },
    )
}

/// Run jobs until `id` is finished: a transient registry hiccup under a parallel test run is
/// retried after its backoff, as in production.
async fn run_until_done(w: &Runner, app: &TestApp, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        w.run_until_idle().await;
        let status = job(app, id).await["Status"].as_str().unwrap().to_string();
        if status != "queued" && status != "pulling" && status != "scanning" {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} still {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn request(app: &TestApp, image: &str, force: bool) -> String {
    let r = post_job(app, json!({"image": image, "force": force})).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["ID"].as_str().unwrap().to_string()
}

async fn job(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/scan-jobs/{id}")).await
}

async fn steps(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let e = app.get_json(&format!("/scan-jobs/{id}/events")).await;
    e["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["OldStatus"].as_str().unwrap_or("").to_string(),
                i["NewStatus"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn s(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// A fake `trivy` that records its PID and hangs: only for process-control cases.
fn hanging_trivy(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let pid = dir.path().join("trivy.pid");
    let path = dir.path().join("hanging-trivy");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho $$ > {}\nexec sleep 60\n", pid.display()),
    )
    .unwrap();
    make_executable(&path);
    (path, pid)
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn process_alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Ok(stat) => !stat.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')),
        Err(_) => false,
    }
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..1200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What the kit's alpine image is built to match (shared/e2e-kit/demo.sh, README.md).
const ALPINE_EXPECTED: &[(&str, &str)] = &[
    ("CVE-2099-0001", "libssl3"),
    ("CVE-2099-0001", "libcrypto3"),
    ("CVE-2099-0005", "libssl3"),
    ("CVE-2099-0002", "busybox"),
    ("CVE-2099-0003", "zlib"),
    ("RUSTSEC-2099-0001", "smallvec"),
    ("GHSA-e2e0-0000-0001", "lodash"),
];

async fn a_requested_scan_completes_with_the_advisories_the_image_matches(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = runner(app, &kit, &dir, WorkerOpts::default());
    let id = request(app, &kit.alpine, false).await;
    run_until_done(&w, app, &id).await;
    let j = job(app, &id).await;
    assert_eq!(j["Status"], "completed", "{j}");
    let digest = j["ResolvedDigest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"));
    // The kit's image: 8 findings, CRITICAL 2, HIGH 3, MEDIUM 1, LOW 2.
    assert_eq!(
        (
            j["VulnCritical"].clone(),
            j["VulnHigh"].clone(),
            j["VulnMedium"].clone(),
            j["VulnLow"].clone()
        ),
        (json!(2), json!(3), json!(1), json!(2))
    );
    let scan_id = j["ScanID"].as_str().unwrap();
    let scan = app.get_json(&format!("/scans/{scan_id}")).await;
    let (name, tag) = kit.alpine.rsplit_once(':').unwrap();
    assert_eq!(scan["ImageName"], name);
    assert_eq!(scan["ImageTag"], tag);
    assert_eq!(scan["ImageDigest"], digest);
    assert_eq!(scan["Source"], "job");
    let v = app
        .get_json(&format!("/scans/{scan_id}/vulnerabilities"))
        .await;
    let found: BTreeSet<(String, String)> = v["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["Vulnerability"]["VulnerabilityID"]
                    .as_str()
                    .unwrap()
                    .into(),
                i["Vulnerability"]["PkgName"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (id, pkg) in ALPINE_EXPECTED {
        assert!(
            found.contains(&(id.to_string(), pkg.to_string())),
            "{id} in {pkg} missing: {found:?}"
        );
    }
    assert!(
        !found.iter().any(|(id, _)| id == "CVE-2099-0004"),
        "the negative control was reported"
    );
    assert_eq!(found.len(), 8, "{found:?}");
    let st = steps(app, &id).await;
    assert_eq!(st[0], s("", "queued"));
    assert_eq!(
        st[st.len() - 3..],
        [
            s("queued", "pulling"),
            s("pulling", "scanning"),
            s("scanning", "completed")
        ]
    );
    let events = app.get_json(&format!("/scan-jobs/{id}/events")).await;
    assert!(events["Items"][1]["ChangedBy"]
        .as_str()
        .unwrap()
        .starts_with("worker:"));

    // The same digest again within SCAN_CACHE_MAX_AGE: completed without running Trivy.
    let marker = dir.path().join("trivy-ran");
    let tripwire = dir.path().join("tripwire-trivy");
    std::fs::write(
        &tripwire,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    make_executable(&tripwire);
    let w2 = runner(
        app,
        &kit,
        &dir,
        WorkerOpts {
            trivy: Some(tripwire),
            ..Default::default()
        },
    );
    let again = request(app, &kit.alpine, false).await;
    assert_ne!(again, id);
    w2.run_until_idle().await;
    let j2 = job(app, &again).await;
    assert_eq!(j2["Status"], "completed", "{j2}");
    assert_eq!(j2["ScanID"], scan_id);
    assert!(!marker.exists(), "Trivy ran for a cached digest");
    assert_eq!(
        steps(app, &again).await,
        vec![
            s("", "queued"),
            s("queued", "pulling"),
            s("pulling", "completed")
        ]
    );
    let ev = app.get_json(&format!("/scan-jobs/{again}/events")).await;
    assert!(
        ev["Items"][2]["Reason"]
            .as_str()
            .unwrap()
            .contains("cache hit"),
        "{ev}"
    );
    // force=true rescans.
    let forced = request(app, &kit.debian, true).await;
    run_until_done(&w, app, &forced).await;
    assert_eq!(job(app, &forced).await["Status"], "completed");
}

async fn a_missing_image_fails_once_permanently(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = runner(app, &kit, &dir, WorkerOpts::default());
    let id = request(
        app,
        &format!("{}/e2e/does-not-exist:1.0", kit.registry),
        false,
    )
    .await;
    w.run_until_idle().await;
    let j = job(app, &id).await;
    assert_eq!(j["Status"], "failed");
    assert_eq!(j["Attempts"], 1);
    assert_eq!(j["ErrorClass"], "permanent");
    let msg = j["ErrorMessage"].as_str().unwrap();
    assert!(
        msg.contains("not found") && msg.contains("does-not-exist"),
        "{msg}"
    );
    assert!(
        !msg.contains("panicked") && !msg.contains("backtrace"),
        "{msg}"
    );
    assert_eq!(
        steps(app, &id).await,
        vec![
            s("", "queued"),
            s("queued", "pulling"),
            s("pulling", "failed")
        ]
    );
}

async fn a_registry_that_is_down_is_retried_with_backoff_then_fails(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let registry = format!("127.0.0.1:{port}");
    let mut w = runner(app, &kit, &dir, WorkerOpts::default());
    w = {
        drop(w);
        let registry_client = RegistryClient::new(RegistryConfig {
            insecure_hosts: vec![registry.clone()],
            timeout: Duration::from_secs(2),
            ..Default::default()
        })
        .unwrap();
        Runner::new(
            app.store.clone(),
            app.signals.clone(),
            registry_client,
            Trivy::new(TrivyConfig {
                path: kit.trivy.clone(),
                ..Default::default()
            }),
            WorkerSettings {
                concurrency: 1,
                adhoc_slots: 0,
                lease: Duration::from_secs(30),
                poll_interval: Duration::from_millis(50),
                backoff_base: Duration::from_millis(200),
                backoff_max: Duration::from_secs(1),
                cache_max_age: Duration::ZERO,
                shutdown_timeout: Duration::from_secs(5),
                ingest: IngestSettings {
                    compliance_fail_on: Severity::Critical,
                    max_findings: 1000,
                },
            },
        )
    };
    let id = request(app, &format!("{registry}/e2e/app:1"), false).await;
    let mut runs = 0;
    let mut retry_gaps = vec![];
    while job(app, &id).await["Status"] != "failed" {
        let before = job(app, &id).await;
        if w.run_one().await.is_some() {
            runs += 1;
            let after = job(app, &id).await;
            if after["Status"] == "queued" {
                let run_after: chrono::DateTime<Utc> =
                    serde_json::from_value(after["RunAfter"].clone()).unwrap();
                let updated: chrono::DateTime<Utc> =
                    serde_json::from_value(after["UpdatedAt"].clone()).unwrap();
                retry_gaps.push((run_after - updated).num_milliseconds());
                assert!(
                    run_after > Utc::now() - chrono::Duration::milliseconds(5),
                    "not backed off: {before}"
                );
            }
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(runs <= 3, "more attempts than JOB_MAX_ATTEMPTS");
    }
    let j = job(app, &id).await;
    assert_eq!(runs, 3);
    assert_eq!(j["Attempts"], 3);
    assert_eq!(j["ErrorClass"], "transient");
    // Backoff: 100–200 ms after attempt 1, 200–400 ms after attempt 2.
    assert_eq!(retry_gaps.len(), 2, "{retry_gaps:?}");
    assert!(
        (100..=200).contains(&retry_gaps[0]) && (200..=400).contains(&retry_gaps[1]),
        "{retry_gaps:?}"
    );
    let ev = app.get_json(&format!("/scan-jobs/{id}/events")).await;
    let reasons: Vec<&str> = ev["Items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["Reason"].as_str())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| r.contains("retrying in")).count(),
        2,
        "{reasons:?}"
    );
    assert!(
        reasons.last().unwrap().contains("no attempts left"),
        "{reasons:?}"
    );
}

async fn a_hanging_trivy_is_killed_at_its_timeout(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (fake, pidfile) = hanging_trivy(&dir);
    let w = runner(
        app,
        &kit,
        &dir,
        WorkerOpts {
            trivy: Some(fake),
            timeout: Duration::from_secs(1),
            cache_max_age: Duration::ZERO,
            ..Default::default()
        },
    );
    let id = request(app, &kit.alpine, false).await;
    let started = std::time::Instant::now();
    w.run_one().await.expect("a job");
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        !process_alive(&pid),
        "trivy still running after its timeout"
    );
    let j = job(app, &id).await;
    assert_eq!(j["Status"], "queued", "a Trivy timeout is transient: {j}");
    assert_eq!(j["ErrorClass"], "transient");
    assert!(
        j["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1s"),
        "{j}"
    );
}

async fn cancel_kills_a_running_scan(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (fake, pidfile) = hanging_trivy(&dir);
    let w = Arc::new(runner(
        app,
        &kit,
        &dir,
        WorkerOpts {
            trivy: Some(fake),
            cache_max_age: Duration::ZERO,
            ..Default::default()
        },
    ));
    let id = request(app, &kit.alpine, false).await;
    let w2 = w.clone();
    let running = tokio::spawn(async move { w2.run_one().await });
    let started = std::time::Instant::now();
    while !(pidfile.exists()
        && std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty()))
    {
        if running.is_finished() || started.elapsed() > Duration::from_secs(60) {
            panic!("the scan never started: {}", job(app, &id).await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("trivy to start", || {
        pidfile.exists() && std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty())
    })
    .await;
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(process_alive(&pid));
    let r = app
        .request(Method::POST, &format!("/scan-jobs/{id}/cancel"), vec![])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["Status"], "cancelled");
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops")
        .unwrap();
    assert!(!process_alive(&pid), "trivy survived the cancel");
    let j = job(app, &id).await;
    assert_eq!(j["Status"], "cancelled");
    assert_eq!(
        steps(app, &id).await.last().unwrap(),
        &s("scanning", "cancelled")
    );
}

async fn a_dead_workers_job_is_taken_over_and_its_late_write_refused(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let id = request(app, &kit.alpine, false).await;
    // Worker A claims, resolves, starts scanning… and dies (stops renewing its lease).
    let lease = Duration::from_millis(500);
    let a = app
        .store
        .jobs()
        .claim("dead-worker", lease, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let mut t = Transition::new(
        &id,
        JobStatus::Pulling,
        JobEvent::Resolved,
        Actor::Worker("dead-worker".into()),
        "resolved",
        1,
    )
    .fenced(a.attempt);
    t.resolved_digest = Some("sha256:0".into());
    app.store.jobs().transition(t).await.unwrap();
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    // Worker B takes over once the lease has expired, and completes the job.
    let b = runner(
        app,
        &kit,
        &dir,
        WorkerOpts {
            cache_max_age: Duration::ZERO,
            ..Default::default()
        },
    );
    assert_eq!(b.run_until_idle().await, 1);
    let j = job(app, &id).await;
    assert_eq!(j["Status"], "completed");
    assert_eq!(j["Attempts"], 2);
    // A wakes up and tries to store its (old) result: refused, nothing written.
    let before = app.fingerprint().await;
    let report =
        std::fs::read(crate::support::corpus_dir().join("trivy/alpine-3.10_trivy-dev-head.json"))
            .unwrap();
    let new = scanvault::ingest::build_new_scan(
        report,
        &Default::default(),
        &IngestSettings {
            compliance_fail_on: Severity::Critical,
            max_findings: 1000,
        },
        scanvault::store::scans::ScanSource::Job,
        Utc::now(),
    )
    .unwrap();
    let body = scanvault::store::StoredBody::of(&new.raw).unwrap();
    let late_worker = scanvault::store::jobs::JobCompletion {
        job_id: id.clone(),
        attempt: a.attempt,
        worker: "dead-worker".into(),
    };
    let late = app
        .store
        .scans()
        .ingest(&new, &body, Some(&late_worker))
        .await;
    assert!(
        matches!(
            late,
            Err(scanvault::store::scans::IngestError::Job(JobError::Lost))
        ),
        "{late:?}"
    );
    assert_eq!(
        app.fingerprint().await,
        before,
        "the late write changed the database"
    );
    let st = steps(app, &id).await;
    assert_eq!(
        st,
        vec![
            s("", "queued"),
            s("queued", "pulling"),
            s("pulling", "scanning"),
            s("scanning", "queued"),
            s("queued", "pulling"),
            s("pulling", "scanning"),
            s("scanning", "completed")
        ]
    );
    let ev = app.get_json(&format!("/scan-jobs/{id}/events")).await;
    let attempts: Vec<i64> = ev["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, vec![0, 1, 1, 1, 2, 2, 2]);
    assert_eq!(ev["Items"][3]["ChangedBy"], "system");
    assert_eq!(
        app.get_json("/scans/all").await["Count"],
        1,
        "completed once"
    );
}

async fn shutdown_hands_unfinished_jobs_back_to_the_queue(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (fake, pidfile) = hanging_trivy(&dir);
    let w = Arc::new(runner(
        app,
        &kit,
        &dir,
        WorkerOpts {
            trivy: Some(fake),
            cache_max_age: Duration::ZERO,
            shutdown_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    ));
    let id = request(app, &kit.alpine, false).await;
    let stop = CancellationToken::new();
    let run = tokio::spawn(w.clone().run(stop.clone()));
    wait_for("trivy to start", || {
        pidfile.exists() && std::fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty())
    })
    .await;
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("worker stops")
        .unwrap();
    assert!(!process_alive(&pid));
    let j = job(app, &id).await;
    assert_eq!(j["Status"], "queued", "{j}");
    let ev = app.get_json(&format!("/scan-jobs/{id}/events")).await;
    assert!(ev["Items"].as_array().unwrap().last().unwrap()["Reason"]
        .as_str()
        .unwrap()
        .contains("shutting down"));
}

/// PostgreSQL: four workers share one queue of 100 jobs; each job runs exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_run_a_hundred_jobs_exactly_once_on_postgres() {
    // The kit first: returning after the app is made would leave its database behind.
    let Some(kit) = kit() else { return };
    let Some(app) = TestApp::try_new(Db::Postgres).await else {
        return;
    };
    // 100 tags of the kit's image, pushed with the registry's own API (same manifest).
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
    // A repository of its own, so that concurrent tests reading the kit's images never race
    // with these writes: mount the blobs from the kit's repository, then put the manifest.
    let parsed: Value = serde_json::from_slice(&manifest).unwrap();
    let from = repo;
    let repo = "e2e/many-tags";
    let mut blobs = vec![parsed["config"]["digest"].as_str().unwrap().to_string()];
    blobs.extend(
        parsed["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string()),
    );
    for b in blobs {
        let r = http
            .post(format!(
                "http://{}/v2/{repo}/blobs/uploads/?mount={b}&from={from}",
                kit.registry
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "blob mount {b}");
    }
    let mut ids = vec![];
    for i in 0..100 {
        let r = http
            .put(format!(
                "http://{}/v2/{repo}/manifests/many-{i}",
                kit.registry
            ))
            .header("content-type", &ct)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        ids.push(request(&app, &format!("{}/{repo}:many-{i}", kit.registry), false).await);
    }
    let stop = CancellationToken::new();
    let mut runs = vec![];
    let mut dirs = vec![];
    for _ in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(runner(&app, &kit, &dir, WorkerOpts::default()));
        runs.push(tokio::spawn(w.run(stop.clone())));
        dirs.push(dir);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        let done = app.get_json("/scan-jobs?status=completed&limit=500").await["Count"]
            .as_i64()
            .unwrap();
        if done == 100 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {done} of 100 jobs completed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    for r in runs {
        r.await.unwrap();
    }
    let mut workers = BTreeSet::new();
    for id in &ids {
        let ev = app.get_json(&format!("/scan-jobs/{id}/events")).await;
        let items = ev["Items"].as_array().unwrap();
        let claims: Vec<&Value> = items
            .iter()
            .filter(|e| e["NewStatus"] == "pulling")
            .collect();
        assert_eq!(
            claims.len(),
            1,
            "job {id} was claimed {} times",
            claims.len()
        );
        assert_eq!(
            items
                .iter()
                .filter(|e| e["NewStatus"] == "completed")
                .count(),
            1,
            "{id}"
        );
        workers.insert(claims[0]["ChangedBy"].as_str().unwrap().to_string());
    }
    assert!(workers.len() >= 2, "one worker did everything: {workers:?}");
    app.finish().await;
}

on_both_backends!(
    worker_completes_scan,
    a_requested_scan_completes_with_the_advisories_the_image_matches
);
on_both_backends!(worker_missing_image, a_missing_image_fails_once_permanently);
on_both_backends!(
    worker_registry_down,
    a_registry_that_is_down_is_retried_with_backoff_then_fails
);
on_both_backends!(
    worker_trivy_timeout,
    a_hanging_trivy_is_killed_at_its_timeout
);
on_both_backends!(worker_cancel, cancel_kills_a_running_scan);
on_both_backends!(
    worker_takeover,
    a_dead_workers_job_is_taken_over_and_its_late_write_refused
);
on_both_backends!(
    worker_shutdown,
    shutdown_hands_unfinished_jobs_back_to_the_queue
);
