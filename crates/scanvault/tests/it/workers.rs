//! Scans that cannot run: no worker, or none whose Trivy starts. `GET /ready`, `GET /workers`
//! and the answer to `POST /scan-jobs` say so, and a worker whose Trivy cannot run leaves
//! the jobs queued instead of failing them.

use crate::jobs::post_job;
use crate::on_both_backends;
use crate::support::TestApp;
use scanvault::ingest::IngestSettings;
use scanvault::worker::{Runner, WorkerSettings};
use scanvault_core::report::Severity;
use scanvault_registry::{RegistryClient, RegistryConfig};
use scanvault_scanner::{Trivy, TrivyConfig};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn runner(app: &TestApp, trivy: PathBuf) -> Arc<Runner> {
    Arc::new(Runner::new(
        app.store.clone(),
        app.signals.clone(),
        RegistryClient::new(RegistryConfig::default()).unwrap(),
        Trivy::new(TrivyConfig {
            path: trivy,
            server_url: None,
            timeout: Duration::from_secs(10),
            cache_dir: None,
            extra_args: vec![],
        }),
        WorkerSettings {
            concurrency: 1,
            adhoc_slots: 0,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(60),
            cache_max_age: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(5),
            ingest: IngestSettings {
                compliance_fail_on: Severity::Critical,
                max_findings: 100_000,
            },
        },
    ))
}

/// `GET /workers` once it satisfies `done`.
async fn workers_until(app: &TestApp, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = app.get_json("/workers").await;
        if done(&w) {
            return w;
        }
        assert!(Instant::now() < deadline, "workers never became {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn warnings(v: &Value, key: &str) -> String {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .unwrap_or_default()
}

async fn scans_that_cannot_run_are_reported(app: &TestApp) {
    // No worker at all.
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["status"], "ok", "the API itself is ready");
    assert_eq!(ready["workers"], 0);
    assert!(
        warnings(&ready, "warnings").contains("no scan worker is running"),
        "{ready}"
    );
    let r = post_job(app, json!({"image": "127.0.0.1:1/app:1"})).await;
    assert_eq!(r.status, 202);
    let job = r.json();
    assert!(
        warnings(&job, "Warnings").contains("no scan worker is running"),
        "{job}"
    );
    let job_id = job["ID"].as_str().unwrap().to_string();
    assert_eq!(app.get_json("/workers").await["Count"], 0);

    // A worker whose Trivy cannot start: it says why, with the setting to fix, and takes
    // no job.
    let dir = tempfile::tempdir().unwrap();
    let broken = runner(app, dir.path().join("no-such-trivy"));
    let why = broken.check_trivy().await.unwrap_err();
    assert!(
        why.contains("TRIVY_PATH") && why.contains("no-such-trivy"),
        "{why}"
    );
    let stop = CancellationToken::new();
    let run = tokio::spawn(broken.clone().run(stop.clone()));
    let w = workers_until(app, |w| w["Count"] == 1).await;
    assert_eq!(w["CanScan"], 0);
    assert_eq!(w["Items"][0]["Live"], true);
    assert_eq!(w["Items"][0]["ID"], broken.id());
    assert!(w["Items"][0]["TrivyError"]
        .as_str()
        .unwrap()
        .contains("TRIVY_PATH"));
    let ready = app.get_json("/ready").await;
    let said = warnings(&ready, "warnings");
    assert!(
        said.contains("no running worker can run Trivy") && said.contains("TRIVY_PATH"),
        "{said}"
    );
    let r = post_job(app, json!({"image": "127.0.0.1:1/other:1", "force": true})).await;
    assert!(warnings(&r.json(), "Warnings").contains("can run Trivy"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let j = app.get_json(&format!("/scan-jobs/{job_id}")).await;
    assert_eq!(
        (j["Status"].as_str(), j["Attempts"].as_i64()),
        (Some("queued"), Some(0)),
        "{j}"
    );

    // A worker whose Trivy runs: nothing to warn about.
    let fake = dir.path().join("trivy");
    std::fs::write(&fake, "#!/bin/sh\necho 'Version: 0.59.1'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let working = runner(app, fake);
    assert_eq!(working.check_trivy().await.unwrap(), "0.59.1");
    let stop2 = CancellationToken::new();
    let run2 = tokio::spawn(working.clone().run(stop2.clone()));
    let w = workers_until(app, |w| w["CanScan"] == 1).await;
    assert_eq!(w["Count"], 2);
    assert!(w.get("Warnings").is_none(), "{w}");
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["workers"], 2);
    assert!(ready.get("warnings").is_none(), "{ready}");

    // Workers that stop say so.
    stop.cancel();
    stop2.cancel();
    run.await.unwrap();
    run2.await.unwrap();
    assert_eq!(app.get_json("/workers").await["Count"], 0);
}

on_both_backends!(scans_that_cannot_run, scans_that_cannot_run_are_reported);
