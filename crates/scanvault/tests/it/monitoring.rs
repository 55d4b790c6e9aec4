//! Continuous monitoring end to end, with the e2e kit (real Trivy, a real registry on
//! loopback, real vulnerability DBs built from advisory files): inventories stored by the
//! worker's scans and served as valid CycloneDX and SPDX; a second DB re-matched with the
//! registry stopped; SBOMs ingested and re-matched; schedules and their batches; the Harbor
//! scanner API; the ad-hoc lane under a scan-all.

use crate::exports::{assert_valid, validator};
use crate::on_both_backends;
use crate::support::TestApp;
use crate::webhooks::{dispatch_until, settings, subscribe, Receiver};
use crate::worker::{copy_dir, kit, runner, Kit, WorkerOpts};
use axum::http::{Method, StatusCode};
use scanvault::monitor::{self, MonitorSettings};
use scanvault::webhooks::Dispatcher;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The kit's directory (scripts/test.sh exports it).
fn kit_dir() -> PathBuf {
    std::env::var("SCANVAULT_E2E_KIT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/e2e-kit")
        })
}

/// A registry of this test's own (the shared one must stay up for the other tests), with
/// the kit's images pushed to it; stopped when dropped.
struct OwnRegistry {
    addr: String,
    state: PathBuf,
}

impl OwnRegistry {
    fn start(dir: &Path) -> OwnRegistry {
        let state = dir.join("registry");
        let out = Command::new("bash")
            .arg(kit_dir().join("registry.sh"))
            .arg("start")
            .env("E2E_REGISTRY_STATE", &state)
            .env_remove("E2E_REGISTRY_PORT")
            .env_remove("E2E_REGISTRY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let addr = stdout
            .lines()
            .find_map(|l| l.strip_prefix("export E2E_REGISTRY="))
            .unwrap()
            .to_string();
        let r = OwnRegistry { addr, state };
        for (var, name) in [
            ("E2E_OCI_ALPINE", "e2e/alpine-app:1.0"),
            ("E2E_OCI_DEBIAN", "e2e/debian-app:1.0"),
        ] {
            let oci = std::env::var(var).unwrap();
            let out = Command::new("bash")
                .arg(kit_dir().join("registry.sh"))
                .args(["push", &format!("oci:{oci}"), name])
                .env("E2E_REGISTRY", &r.addr)
                .env("E2E_REGISTRY_STATE", &r.state)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        r
    }

    fn stop(&self) {
        let _ = Command::new("bash")
            .arg(kit_dir().join("registry.sh"))
            .arg("stop")
            .arg(&self.state)
            .output();
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Build a vulnerability DB from `advisories` into `cache` (its `db/` replaced).
fn build_db(advisories: &Value, cache: &Path, updated_at: &str, dir: &Path) {
    let file = dir.join(format!("advisories-{updated_at}.json"));
    std::fs::write(&file, serde_json::to_vec(advisories).unwrap()).unwrap();
    let out_dir = dir.join(format!("db-{updated_at}"));
    let out = Command::new("python3")
        .arg(kit_dir().join("make-trivy-db.py"))
        .arg(&file)
        .arg(&out_dir)
        .args(["--updated-at", updated_at])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    copy_dir(&out_dir.join("db"), &cache.join("db"));
}

/// The kit's advisories, less `drop`, plus `add`.
fn advisories(drop: &str, add: Value) -> Value {
    let mut a: Value =
        serde_json::from_slice(&std::fs::read(kit_dir().join("advisories.json")).unwrap()).unwrap();
    let list = a["advisories"].as_array_mut().unwrap();
    list.retain(|x| x["id"] != drop);
    list.push(add);
    a
}

async fn scan_of(app: &TestApp, image: &str) -> Value {
    let l = app
        .get_json(&format!("/scans?image={}", urlencoding(image)))
        .await;
    l["Items"][0].clone()
}

fn urlencoding(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

async fn run_all(w: &scanvault::worker::Runner) {
    // A transient hiccup under a parallel run is retried after its (short) backoff.
    for _ in 0..50 {
        w.run_until_idle().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if w.run_until_idle().await == 0 {
            return;
        }
    }
}

fn mon() -> MonitorSettings {
    MonitorSettings {
        rematch_interval: Duration::from_secs(1),
        max_attempts: 3,
    }
}

/// Scan the kit's images from a registry, then build a second DB that adds a CVE to a
/// package of the alpine image and drops one, stop the registry, and let the DB change
/// start a re-match round: the new CVE is on the image with a diff of one added and one
/// removed, without a registry (it is down), and the events are delivered.
async fn rematch_without_the_registry(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let own = OwnRegistry::start(dir.path());
    let kit = Kit {
        registry: own.addr.clone(),
        alpine: format!("{}/e2e/alpine-app:1.0", own.addr),
        debian: format!("{}/e2e/debian-app:1.0", own.addr),
        ..kit
    };
    let w = runner(app, &kit, &dir, WorkerOpts::default());
    let cache = dir.path().join("trivy-cache");
    for image in [&kit.alpine, &kit.debian] {
        let r = crate::jobs::post_job(app, json!({"image": image})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    run_all(&w).await;
    let alpine_name = format!("{}/e2e/alpine-app", own.addr);
    let scan = scan_of(app, &alpine_name).await;
    let scan_id = scan["ID"].as_str().unwrap().to_string();
    assert_eq!(scan["VulnTotal"], 8, "{scan}");

    // The worker kept each digest's inventory: valid CycloneDX 1.6 and SPDX 2.3.
    let cdx = app
        .get_json(&format!("/scans/{scan_id}/sbom?format=cyclonedx"))
        .await;
    assert_valid(
        &validator("bom-1.6.schema.json"),
        &cdx,
        "CycloneDX inventory",
    );
    assert!(cdx.get("vulnerabilities").is_none());
    let names: Vec<&str> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for pkg in ["busybox", "apk-tools", "zlib", "smallvec", "lodash"] {
        assert!(names.contains(&pkg), "{pkg} not in {names:?}");
    }
    let spdx = app
        .get_json(&format!("/scans/{scan_id}/sbom?format=spdx"))
        .await;
    assert_valid(&validator("spdx-2.3.schema.json"), &spdx, "SPDX inventory");
    assert!(spdx["packages"].as_array().unwrap().len() >= names.len());

    // A round for the database the worker has: nothing changes.
    let trivy = w.trivy().clone();
    let registry = w.registry().clone();
    let rounds = monitor::tick(&app.store, &registry, &trivy, &mon())
        .await
        .unwrap();
    assert_eq!(rounds.len(), 1, "the first look at the DB starts a round");
    assert_eq!(rounds[0].jobs, 2);
    run_all(&w).await;
    let batch = app
        .get_json(&format!("/scan-batches/{}", rounds[0].batch_id))
        .await;
    assert_eq!(
        (batch["State"].as_str(), batch["Completed"].as_i64()),
        (Some("completed"), Some(2)),
        "{batch}"
    );
    // The same DB again: no round.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(monitor::tick(&app.store, &registry, &trivy, &mon())
        .await
        .unwrap()
        .is_empty());

    let receiver = {
        let mut r = Receiver::new();
        r.start().await;
        r
    };
    subscribe(
        app,
        &receiver.url(),
        &["image.new_vulnerabilities", "fleet.new_critical"],
    )
    .await;

    // The database learns of CVE-2099-9001 in apk-tools and forgets CVE-2099-0002.
    build_db(
        &advisories(
            "CVE-2099-0002",
            json!({"id": "CVE-2099-9001", "source": "alpine 3.21", "package": "apk-tools",
                   "fixed_version": "2.14.7-r0", "severity": "CRITICAL",
                   "cvss": {"v3_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "v3_score": 9.8},
                   "title": "apk-tools: e2e re-match advisory", "description": "Added by the re-match test."}),
        ),
        &cache,
        "2099-06-01T00:00:00Z",
        dir.path(),
    );
    own.stop();
    let down = scanvault_registry::RegistryClient::new(scanvault_registry::RegistryConfig {
        insecure_hosts: vec![own.addr.clone()],
        timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap()
    .resolve_str(&kit.alpine)
    .await;
    assert!(down.is_err(), "the registry is stopped");

    let rounds = monitor::tick(&app.store, &registry, &trivy, &mon())
        .await
        .unwrap();
    assert_eq!(rounds.len(), 1, "the new DB starts a round");
    run_all(&w).await;
    let batch = app
        .get_json(&format!("/scan-batches/{}", rounds[0].batch_id))
        .await;
    assert_eq!(batch["Completed"], 2, "{batch}");
    assert_eq!(batch["Failed"], 0, "{batch}");

    let after = app.get_json(&format!("/scans/{scan_id}")).await;
    assert_eq!(after["VulnTotal"], 8, "{after}");
    let diff = app
        .get_json(&format!("/scans/{scan_id}/diff?against=previous"))
        .await;
    let ids = |k: &str| -> Vec<String> {
        diff[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["VulnerabilityID"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("Added"), ["CVE-2099-9001"], "{diff}");
    assert_eq!(ids("Removed"), ["CVE-2099-0002"], "{diff}");
    assert_eq!(ids("Changed"), Vec::<String>::new(), "{diff}");
    let history = app
        .get_json(&format!(
            "/images/history?image={}&tag=1.0",
            urlencoding(&alpine_name)
        ))
        .await;
    assert_eq!(history["Items"][0]["Source"], "rematch", "{history}");
    assert_eq!(history["Items"][0]["Added"], 1);
    assert_eq!(history["Items"][0]["Removed"], 1);
    // The re-match jobs say they did not use the registry.
    let jobs = app.get_json("/scan-jobs?limit=100").await;
    let rematches: Vec<&Value> = jobs["Items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["Kind"] == "rematch")
        .collect();
    assert_eq!(rematches.len(), 4);
    assert!(rematches
        .iter()
        .all(|j| j["Lane"] == "rematch" && j["Status"] == "completed"));

    let d = Dispatcher::new(app.store.clone(), settings(Duration::from_secs(3600))).unwrap();
    dispatch_until(&d, &receiver, |got| {
        got.iter().any(|r| r.event == "image.new_vulnerabilities")
            && got.iter().any(|r| r.event == "fleet.new_critical")
    })
    .await;
    let got = receiver.received();
    let new_vulns: Vec<Value> = got
        .iter()
        .filter(|r| r.event == "image.new_vulnerabilities")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(
        new_vulns.len(),
        1,
        "only the alpine image gained one: {new_vulns:?}"
    );
    let data = &new_vulns[0]["Data"];
    assert_eq!(data["VulnerabilityIDs"], json!(["CVE-2099-9001"]), "{data}");
    assert_eq!(data["Source"], "rematch");
    assert_eq!(data["ImageName"], alpine_name.as_str());
    let critical: Value = serde_json::from_str(
        &got.iter()
            .find(|r| r.event == "fleet.new_critical")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(critical["Data"]["VulnerabilityID"], "CVE-2099-9001");
}
on_both_backends!(rematch_without_registry, rematch_without_the_registry);

/// An SPDX document (Trivy's, of the kit's debian image) posted to /sboms: stored as the
/// image's inventory, re-matched by the worker into a scan of the image with the findings
/// a scan of the image has; refused input keeps nothing.
async fn an_sbom_becomes_a_scan(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = runner(app, &kit, &dir, WorkerOpts::default());
    let spdx = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../scanvault-core/testdata/sbom/debian.trivy.spdx.json"),
    )
    .unwrap();
    let r = app.request(Method::POST, "/sboms", spdx).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let stored = r.json();
    assert_eq!(stored["Format"], "spdx");
    assert_eq!(stored["ImageName"], "127.0.0.1:38809/e2e/debian-app");
    let job = stored["JobID"].as_str().unwrap().to_string();
    run_all(&w).await;
    let j = app.get_json(&format!("/scan-jobs/{job}")).await;
    assert_eq!(j["Status"], "completed", "{j}");
    assert_eq!(j["Kind"], "rematch");
    let scan = app
        .get_json(&format!("/scans/{}", j["ScanID"].as_str().unwrap()))
        .await;
    // The kit's debian image: HIGH 3, MEDIUM 1, LOW 1, UNKNOWN 1.
    assert_eq!(
        [
            &scan["VulnHigh"],
            &scan["VulnMedium"],
            &scan["VulnLow"],
            &scan["VulnUnknown"]
        ],
        [&json!(3), &json!(1), &json!(1), &json!(1)],
        "{scan}"
    );
    assert_eq!(scan["ImageDigest"], stored["ImageDigest"]);
    let cdx = app
        .get_json(&format!("/scans/{}/sbom", scan["ID"].as_str().unwrap()))
        .await;
    assert_valid(&validator("bom-1.6.schema.json"), &cdx, "converted SPDX");

    // A report with vulnerabilities, or anything else, is refused and stores nothing.
    let listed = "/scans?image=127.0.0.1%3A38809%2Fe2e%2Fdebian-app";
    let before = app.get_json(listed).await["Count"].clone();
    assert_eq!(before, 1);
    for (body, why) in [
        (
            br#"{"bomFormat":"CycloneDX","specVersion":"1.6","vulnerabilities":[{"id":"CVE-1"}]}"#
                .to_vec(),
            "vulnerabilities",
        ),
        (b"{}".to_vec(), "bomFormat"),
        (b"not json".to_vec(), "JSON"),
    ] {
        let r = app.request(Method::POST, "/sboms", body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(why), "{msg}");
    }
    assert_eq!(app.get_json(listed).await["Count"], before);
    assert_eq!(
        app.store
            .jobs()
            .list(None, None, 100, 0)
            .await
            .unwrap()
            .len(),
        1
    );
}
on_both_backends!(sbom_ingest, an_sbom_becomes_a_scan);

/// Give `repo`'s manifest `from` the tags `tags` (one `PUT` of the same manifest each).
async fn tag_manifest(registry: &str, repo: &str, from: &str, tags: &[String]) {
    let client = reqwest::Client::new();
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let got = client
        .get(format!("http://{registry}/v2/{repo}/manifests/{from}"))
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    assert!(got.status().is_success());
    let body = got.bytes().await.unwrap();
    for t in tags {
        let r = client
            .put(format!("http://{registry}/v2/{repo}/manifests/{t}"))
            .header("Content-Type", accept)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}

/// A schedule's entries: a `registry/repo:*` pattern lists the repository's tags, a
/// reference is itself, a repository that does not exist is a problem of the round; the
/// first round starts at once and its batch counts its jobs exactly, a later round of the
/// same digests completes from the cache; a round with nothing to scan says so.
async fn schedules_make_batches(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let own = OwnRegistry::start(dir.path());
    tag_manifest(&own.addr, "e2e/alpine-app", "1.0", &["1.1".to_string()]).await;
    let w = runner(
        app,
        &Kit {
            registry: own.addr.clone(),
            ..kit
        },
        &dir,
        WorkerOpts::default(),
    );
    for (body, why) in [
        (json!({"Images": [], "Interval": "24h"}), "Images"),
        (json!({"Images": ["a/b:1"], "Interval": "10s"}), "1m"),
        (json!({"Images": ["a/b:1"], "Interval": "soon"}), "Interval"),
        (json!({"Images": ["a/b:1.0:*"], "Interval": "1h"}), "Images"),
    ] {
        let r = app
            .request(
                Method::POST,
                "/scan-schedules",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            r.json()["error"].as_str().unwrap().contains(why),
            "{:?}",
            r.json()
        );
    }
    assert_eq!(app.get_json("/scan-schedules").await, json!([]));

    let images = json!([
        format!("{}/e2e/alpine-app:*", own.addr),
        format!("{}/e2e/debian-app:1.0", own.addr),
        format!("{}/e2e/missing:*", own.addr),
    ]);
    let r = app
        .request(
            Method::POST,
            "/scan-schedules",
            serde_json::to_vec(&json!({"Images": images, "Interval": "24h"})).unwrap(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let schedule = r.json();
    let batch_id = schedule["BatchID"].as_str().unwrap().to_string();
    assert_eq!(
        schedule["Round"]["Jobs"], 3,
        "alpine 1.0 and 1.1, debian 1.0: {schedule}"
    );
    assert_eq!(schedule["Round"]["Problems"][0]["Entry"], images[2]);
    let batch = app.get_json(&format!("/scan-batches/{batch_id}")).await;
    assert_eq!(
        (
            batch["State"].as_str(),
            batch["Total"].as_i64(),
            batch["Queued"].as_i64()
        ),
        (Some("running"), Some(3), Some(3)),
        "{batch}"
    );
    let jobs = app.get_json("/scan-jobs").await;
    assert!(jobs["Items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["Lane"] == "scheduled" && j["Kind"] == "scan"));
    run_all(&w).await;
    let batch = app.get_json(&format!("/scan-batches/{batch_id}")).await;
    // alpine 1.0 and 1.1 are one digest: whichever ran second may be a cache hit.
    assert_eq!(batch["State"], "completed", "{batch}");
    assert_eq!(
        batch["Completed"].as_i64().unwrap() + batch["Cached"].as_i64().unwrap(),
        3,
        "{batch}"
    );
    assert_eq!(batch["Failed"], 0);

    // The next round, made due now: every digest has a fresh scan, so all are cache hits.
    let id = schedule["ID"].as_str().unwrap();
    let row = app.store.monitor().schedule(id).await.unwrap().unwrap();
    assert!(app
        .store
        .monitor()
        .advance_schedule(id, row.next_run_at, 0)
        .await
        .unwrap());
    let rounds = monitor::tick(
        &app.store,
        w.registry(),
        w.trivy(),
        &MonitorSettings {
            rematch_interval: Duration::ZERO,
            max_attempts: 3,
        },
    )
    .await
    .unwrap();
    assert_eq!(rounds.len(), 1);
    run_all(&w).await;
    let second = app
        .get_json(&format!("/scan-batches/{}", rounds[0].batch_id))
        .await;
    assert_eq!(
        (
            second["Cached"].as_i64(),
            second["Completed"].as_i64(),
            second["State"].as_str()
        ),
        (Some(3), Some(0), Some("completed")),
        "{second}"
    );
    let listed = app.get_json(&format!("/scan-schedules/{id}")).await;
    assert_eq!(
        listed["BatchID"].as_str(),
        Some(rounds[0].batch_id.as_str())
    );
    assert!(
        listed["NextRunAt"].as_str().unwrap() > chrono::Utc::now().to_rfc3339().as_str(),
        "the next round is in the future: {listed}"
    );

    // Nothing to scan: the batch says so.
    let r = app
        .request(
            Method::POST,
            "/scan-schedules",
            serde_json::to_vec(
                &json!({"Images": [format!("{}/e2e/missing:*", own.addr)], "Interval": "1h"}),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let empty = app
        .get_json(&format!(
            "/scan-batches/{}",
            r.json()["BatchID"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (empty["State"].as_str(), empty["Total"].as_i64()),
        (Some("empty"), Some(0))
    );
    assert!(
        empty["Problems"][0]["Error"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{empty}"
    );
    let r = app
        .request(Method::DELETE, &format!("/scan-schedules/{id}"), vec![])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_json("/scan-schedules")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let rematch_nothing = app
        .request(Method::POST, "/rematch?image=nginx", vec![])
        .await;
    assert_eq!(rematch_nothing.status, StatusCode::ACCEPTED);
    let b = app
        .get_json(&format!(
            "/scan-batches/{}",
            rematch_nothing.json()["BatchID"].as_str().unwrap()
        ))
        .await;
    assert_eq!(b["State"], "empty", "{b}");
}
on_both_backends!(schedules, schedules_make_batches);

/// Four workers, a schedule of 200 tags queued, and requests through the API arriving
/// while they run: each request is claimed before every scheduled job that had not
/// started when it arrived.
async fn the_ad_hoc_lane_goes_first_under_a_scan_all(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let own = OwnRegistry::start(dir.path());
    let scheduled: Vec<String> = (0..200).map(|i| format!("s{i:03}")).collect();
    let adhoc: Vec<String> = (0..5).map(|i| format!("adhoc-{i}")).collect();
    tag_manifest(&own.addr, "e2e/debian-app", "1.0", &scheduled).await;
    tag_manifest(&own.addr, "e2e/alpine-app", "1.0", &adhoc).await;
    let kit = Kit {
        registry: own.addr.clone(),
        ..kit
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut running = vec![];
    let mut dirs = vec![];
    for _ in 0..4 {
        let d = tempfile::tempdir().unwrap();
        let w = std::sync::Arc::new(runner(app, &kit, &d, WorkerOpts::default()));
        dirs.push(d);
        running.push(tokio::spawn(w.run(shutdown.clone())));
    }
    let r = app
        .request(
            Method::POST,
            "/scan-schedules",
            serde_json::to_vec(
                &json!({"Images": [format!("{}/e2e/debian-app:*", own.addr)], "Interval": "24h"}),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let batch_id = r.json()["BatchID"].as_str().unwrap().to_string();
    assert_eq!(r.json()["Round"]["Jobs"], 201, "200 tags and 1.0");

    // Requests arrive while the scan-all runs: one after every ~30 scheduled starts.
    let started = |jobs: &[scanvault::store::jobs::JobRow]| {
        jobs.iter()
            .filter(|j| j.lane == 1 && j.started_at.is_some())
            .count()
    };
    let mut posted = vec![];
    for (i, tag) in adhoc.iter().enumerate() {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let jobs = app.store.jobs().list(None, None, 1000, 0).await.unwrap();
            if started(&jobs) >= 20 + 30 * i {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the scan-all stalled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = crate::jobs::post_job(
            app,
            json!({"image": format!("{}/e2e/alpine-app:{tag}", own.addr)}),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        posted.push((
            r.json()["ID"].as_str().unwrap().to_string(),
            scanvault::store::micros(chrono::Utc::now()),
        ));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let b = app.get_json(&format!("/scan-batches/{batch_id}")).await;
        if b["State"] != "running" {
            assert_eq!(b["Failed"], 0, "{b}");
            assert_eq!(
                b["Completed"].as_i64().unwrap() + b["Cached"].as_i64().unwrap(),
                201,
                "{b}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    for r in running {
        r.await.unwrap();
    }
    let jobs = app.store.jobs().list(None, None, 1000, 0).await.unwrap();
    // Claims race by at most a few milliseconds (each takes its time just before claiming).
    let slack = 20_000;
    for (id, queued) in &posted {
        let a = jobs.iter().find(|j| &j.id == id).unwrap();
        assert_eq!(a.status, "completed");
        let a_started = a.started_at.unwrap();
        let overtaken: Vec<&str> = jobs
            .iter()
            .filter(|s| s.lane == 1)
            .filter(|s| {
                let t = s.started_at.unwrap();
                t > queued + slack && t + slack < a_started
            })
            .map(|s| s.image_ref.as_str())
            .take(10)
            .collect();
        assert!(
            overtaken.is_empty(),
            "scheduled jobs started while the request {id} waited ({} ms): {overtaken:?}",
            (a_started - queued) / 1000
        );
    }
}
on_both_backends!(
    lanes_under_load,
    the_ad_hoc_lane_goes_first_under_a_scan_all
);

/// Harbor's scanner API, with requests shaped as Harbor sends them: the metadata Harbor
/// validates on registration, a scan request with the registry URL (plain HTTP, not in the
/// worker's list of insecure hosts) and a robot account's Basic authorization, 302 with
/// Refresh-After while the scan runs, the report in both report formats, 404 for an unknown
/// id; the request's credentials are gone once the job ended.
async fn harbor_registers_and_scans(app: &TestApp) {
    let Some(kit) = kit() else { return };
    let dir = tempfile::tempdir().unwrap();
    let registry = kit.registry.clone();
    let alpine_digest =
        scanvault_registry::RegistryClient::new(scanvault_registry::RegistryConfig {
            insecure_hosts: vec![registry.clone()],
            ..Default::default()
        })
        .unwrap()
        .resolve_str(&kit.alpine)
        .await
        .unwrap()
        .digest;
    // The worker does not know the kit's registry: Harbor's URL says how to reach it.
    let w = runner(
        app,
        &Kit {
            registry: "registry.invalid".into(),
            ..kit
        },
        &dir,
        WorkerOpts::default(),
    );

    let meta = app
        .request_with(
            Method::GET,
            "/api/v1/metadata",
            &[(
                "Accept",
                "application/vnd.scanner.adapter.metadata+json; version=1.0",
            )],
            vec![],
        )
        .await;
    assert_eq!(meta.status, StatusCode::OK);
    let m = meta.json();
    for k in ["name", "vendor", "version"] {
        assert!(!m["scanner"][k].as_str().unwrap().is_empty(), "{m}");
    }
    let cap = &m["capabilities"][0];
    assert!(cap["consumes_mime_types"]
        .as_array()
        .unwrap()
        .contains(&json!(
            "application/vnd.docker.distribution.manifest.v2+json"
        )));
    assert!(cap["produces_mime_types"]
        .as_array()
        .unwrap()
        .contains(&json!(
            "application/vnd.security.vulnerability.report; version=1.1"
        )));

    use base64::Engine as _;
    let robot = base64::engine::general_purpose::STANDARD.encode("robot$scan-42:s3cr3t");
    let request = json!({
        "registry": {"url": format!("http://{registry}"), "authorization": format!("Basic {robot}"), "insecure": false},
        "artifact": {"repository": "e2e/alpine-app", "tag": "1.0", "digest": alpine_digest,
                     "mime_type": "application/vnd.oci.image.manifest.v1+json", "size": 1234},
        "enabled_capabilities": [{"type": "vulnerability",
            "produces_mime_types": ["application/vnd.security.vulnerability.report; version=1.1"],
            "parameters": null}]
    });
    let scan = app
        .request_with(
            Method::POST,
            "/api/v1/scan",
            &[
                (
                    "Content-Type",
                    "application/vnd.scanner.adapter.scan.request+json; version=1.0",
                ),
                (
                    "Accept",
                    "application/vnd.scanner.adapter.scan.response+json; version=1.0",
                ),
            ],
            serde_json::to_vec(&request).unwrap(),
        )
        .await;
    assert_eq!(
        scan.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&scan.body)
    );
    let id = scan.json()["id"].as_str().unwrap().to_string();
    assert!(app
        .store
        .monitor()
        .job_credentials(&id)
        .await
        .unwrap()
        .is_some());

    let report_path = format!("/api/v1/scan/{id}/report");
    let generic = [(
        "Accept",
        "application/vnd.security.vulnerability.report; version=1.1",
    )];
    let waiting = app
        .request_with(Method::GET, &report_path, &generic, vec![])
        .await;
    assert_eq!(waiting.status, StatusCode::FOUND);
    assert_eq!(waiting.headers["refresh-after"], "5");

    run_all(&w).await;
    let done = app
        .request_with(Method::GET, &report_path, &generic, vec![])
        .await;
    assert_eq!(
        done.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&done.body)
    );
    assert_eq!(
        done.headers["content-type"],
        "application/vnd.security.vulnerability.report; version=1.1"
    );
    let report = done.json();
    let vulns = report["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns.len(), 8, "the kit's alpine image: {report}");
    assert_eq!(report["severity"], "Critical");
    assert_eq!(report["artifact"]["digest"], alpine_digest.as_str());
    let v = vulns
        .iter()
        .find(|v| v["id"] == "CVE-2099-0001" && v["package"] == "libssl3")
        .unwrap();
    assert_eq!(
        (
            v["version"].as_str(),
            v["fix_version"].as_str(),
            v["severity"].as_str()
        ),
        (Some("3.3.2-r4"), Some("3.3.3-r0"), Some("Critical"))
    );
    assert_eq!(v["preferred_cvss"]["score_v3"], 9.8);
    let native = app
        .request_with(
            Method::GET,
            &report_path,
            &[(
                "Accept",
                "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0",
            )],
            vec![],
        )
        .await;
    assert_eq!(native.status, StatusCode::OK);
    assert_eq!(
        native.json()["vulnerabilities"].as_array().unwrap().len(),
        8
    );
    assert!(app
        .store
        .monitor()
        .job_credentials(&id)
        .await
        .unwrap()
        .is_none());

    let missing = app
        .request_with(Method::GET, "/api/v1/scan/nope/report", &generic, vec![])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for (body, status) in [
        (b"{".to_vec(), StatusCode::BAD_REQUEST),
        (
            br#"{"registry":{"url":"http://r"},"artifact":{"repository":"x"}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            br#"{"artifact":{"repository":"x","digest":"sha256:00"}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = app.request(Method::POST, "/api/v1/scan", body).await;
        assert_eq!(r.status, status);
        assert!(r.json()["error"]["message"].is_string());
    }
}
on_both_backends!(harbor, harbor_registers_and_scans);
