//! The real Trivy binary against the real registry of the project's e2e kit, fully offline.
//!
//! Needs the variables printed by `fixture.sh up` (E2E_TRIVY, E2E_TRIVY_CACHE, E2E_REGISTRY,
//! E2E_IMAGE_ALPINE). Without them every test fails, unless SCANVAULT_SKIP_E2E=1.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scanvault_scanner::{ErrorClass, ScanError, ScanRequest, Trivy, TrivyConfig};
use tokio_util::sync::CancellationToken;

struct Kit {
    trivy: PathBuf,
    cache: PathBuf,
    registry: String,
    alpine: String,
}

fn kit() -> Option<Kit> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("E2E_TRIVY"),
        var("E2E_TRIVY_CACHE"),
        var("E2E_REGISTRY"),
        var("E2E_IMAGE_ALPINE"),
    ) {
        (Some(trivy), Some(cache), Some(registry), Some(alpine)) => Some(Kit {
            trivy: trivy.into(),
            cache: cache.into(),
            registry,
            alpine,
        }),
        _ if std::env::var("SCANVAULT_SKIP_E2E").as_deref() == Ok("1") => {
            eprintln!("SCANVAULT_SKIP_E2E=1: skipped (real Trivy e2e test)");
            None
        }
        _ => panic!(
            "E2E_TRIVY, E2E_TRIVY_CACHE, E2E_REGISTRY and E2E_IMAGE_ALPINE are not set: run \
             these tests via the project's test script `bash scripts/test.sh` (it starts the e2e \
             kit's registry and exports them), or set SCANVAULT_SKIP_E2E=1 to skip them"
        ),
    }
}

/// Trivy holds an exclusive flock on the cache's DB while scanning: one copy per test.
fn copy_cache(src: &Path) -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dst = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &dst);
            } else {
                std::fs::copy(e.path(), &dst).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src.join("db"), &dir.path().join("db"));
    dir
}

fn offline(kit: &Kit, cache: &Path) -> Trivy {
    Trivy::new(TrivyConfig {
        path: kit.trivy.clone(),
        server_url: None,
        timeout: Duration::from_secs(120),
        cache_dir: Some(cache.to_path_buf()),
        extra_args: TrivyConfig::parse_extra_args("--skip-db-update --offline-scan").unwrap(),
    })
}

/// (VulnerabilityID, PkgName) pairs of a report.
fn findings(report: &[u8]) -> (serde_json::Value, BTreeSet<(String, String)>) {
    let v: serde_json::Value = serde_json::from_slice(report).expect("report is JSON");
    let mut out = BTreeSet::new();
    for r in v["Results"].as_array().expect("Results") {
        for vuln in r["Vulnerabilities"].as_array().into_iter().flatten() {
            out.insert((
                vuln["VulnerabilityID"].as_str().unwrap().to_string(),
                vuln["PkgName"].as_str().unwrap().to_string(),
            ));
        }
    }
    (v, out)
}

fn assert_alpine_findings(found: &BTreeSet<(String, String)>) {
    for (id, pkg) in [
        ("CVE-2099-0001", "libssl3"),
        ("CVE-2099-0001", "libcrypto3"),
        ("CVE-2099-0002", "busybox"),
        ("CVE-2099-0003", "zlib"),
        ("RUSTSEC-2099-0001", "smallvec"),
        ("GHSA-e2e0-0000-0001", "lodash"),
    ] {
        assert!(
            found.contains(&(id.to_string(), pkg.to_string())),
            "{id} for {pkg} missing from {found:?}"
        );
    }
    assert!(
        found.iter().any(|(id, _)| id == "CVE-2099-0005"),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|(id, _)| id == "CVE-2099-0004"),
        "negative control CVE-2099-0004 reported: {found:?}"
    );
}

#[tokio::test]
async fn version_of_the_real_binary() {
    let Some(kit) = kit() else { return };
    let v = Trivy::new(TrivyConfig {
        path: kit.trivy.clone(),
        ..TrivyConfig::default()
    })
    .version()
    .await
    .expect("trivy --version");
    eprintln!("trivy version {v}");
    let parts: Vec<&str> = v.split('.').collect();
    assert_eq!(parts.len(), 3, "{v}");
    assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()), "{v}");
}

#[tokio::test]
async fn scan_alpine_by_tag_and_by_digest() {
    let Some(kit) = kit() else { return };
    let cache = copy_cache(&kit.cache);
    let trivy = offline(&kit, cache.path());
    let cancel = CancellationToken::new();

    let start = Instant::now();
    let report = trivy
        .scan(
            ScanRequest {
                image: &kit.alpine,
                insecure: true,
                auth: None,
            },
            &cancel,
        )
        .await
        .expect("scan by tag");
    eprintln!("tag scan: {:?}, {} bytes", start.elapsed(), report.len());
    let (json, found) = findings(&report);
    assert_alpine_findings(&found);

    // The service scans `registry/repo@sha256:...`: use the digest Trivy just reported.
    let digest_ref = json["Metadata"]["RepoDigests"][0]
        .as_str()
        .expect("RepoDigests")
        .to_string();
    assert!(digest_ref.contains("@sha256:"), "{digest_ref}");
    let report2 = trivy
        .scan(
            ScanRequest {
                image: &digest_ref,
                insecure: true,
                auth: None,
            },
            &cancel,
        )
        .await
        .expect("scan by digest");
    let (json2, found2) = findings(&report2);
    assert_eq!(found, found2);
    assert_eq!(json2["ArtifactName"].as_str(), Some(digest_ref.as_str()));
}

#[tokio::test]
async fn missing_image_is_permanent() {
    let Some(kit) = kit() else { return };
    let cache = copy_cache(&kit.cache);
    let trivy = offline(&kit, cache.path());
    for image in [
        format!("{}/e2e/does-not-exist:1.0", kit.registry),
        format!("{}/e2e/alpine-app@sha256:{}", kit.registry, "0".repeat(64)),
    ] {
        let err = trivy
            .scan(
                ScanRequest {
                    image: &image,
                    insecure: true,
                    auth: None,
                },
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        eprintln!("{image}: {err}");
        match &err {
            ScanError::Failed {
                class,
                message,
                exit_code,
            } => {
                assert_eq!(*class, ErrorClass::Permanent, "{message}");
                assert_eq!(*exit_code, Some(1));
                assert!(
                    message.starts_with("unable to find the specified image"),
                    "{message}"
                );
                assert!(message.contains(&image), "{message}");
                assert!(
                    message.contains("MANIFEST_UNKNOWN: manifest unknown"),
                    "{message}"
                );
                assert!(!message.contains("FATAL"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn registry_down_is_transient() {
    let Some(kit) = kit() else { return };
    let cache = copy_cache(&kit.cache);
    // A port on which nothing listens.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let image = format!("127.0.0.1:{port}/e2e/alpine-app:1.0");
    let err = offline(&kit, cache.path())
        .scan(
            ScanRequest {
                image: &image,
                insecure: true,
                auth: None,
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    eprintln!("{err}");
    match &err {
        ScanError::Failed { class, message, .. } => {
            assert_eq!(*class, ErrorClass::Transient, "{message}");
            assert!(message.contains("connection refused"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// A locked cache DB makes Trivy wait forever (its own `--timeout` does not cover that):
/// our wall-clock timeout must kill it.
#[tokio::test]
async fn real_trivy_blocked_on_db_lock_times_out() {
    let Some(kit) = kit() else { return };
    let cache = copy_cache(&kit.cache);
    let db = cache.path().join("db/trivy.db");
    // The shell opens the DB as fd 9, flock(1) locks it, then the shell becomes `sleep`:
    // the lock is held by our direct child, so killing it releases the lock.
    let mut locker = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(r#"exec 9>>"$1" && flock -x 9 && exec sleep 30"#)
        .arg("sh")
        .arg(&db)
        .kill_on_drop(true)
        .spawn()
        .expect("sh + flock(1) from util-linux");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut trivy = offline(&kit, cache.path());
    let mut cfg = trivy.config().clone();
    cfg.timeout = Duration::from_secs(3);
    trivy = Trivy::new(cfg);
    let start = Instant::now();
    let err = trivy
        .scan(
            ScanRequest {
                image: &kit.alpine,
                insecure: true,
                auth: None,
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    locker.start_kill().ok();
    let _ = locker.wait().await;
    assert!(matches!(err, ScanError::Timeout { .. }), "{err:?}");
    assert_eq!(err.to_string(), "trivy did not finish within 3s; killed");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // No process is left running with this cache dir on its command line.
    let needle = cache.path().to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !(cmdline.contains(&needle) && cmdline.contains("image")),
            "still running: {cmdline}"
        );
    }
}

/// Client/server mode (`TRIVY_SERVER_URL`): a real `trivy server` on its own cache copy.
#[tokio::test]
async fn client_server_mode() {
    let Some(kit) = kit() else { return };
    let server_cache = copy_cache(&kit.cache);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = tokio::process::Command::new(&kit.trivy)
        .args([
            "server",
            "--listen",
            &listen,
            "--skip-db-update",
            "--cache-dir",
        ])
        .arg(server_cache.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("trivy server");
    wait_healthy(&listen, Duration::from_secs(20));

    let client_cache = tempfile::tempdir().unwrap();
    let trivy = Trivy::new(TrivyConfig {
        path: kit.trivy.clone(),
        server_url: Some(format!("http://{listen}")),
        timeout: Duration::from_secs(120),
        cache_dir: Some(client_cache.path().to_path_buf()),
        extra_args: vec![],
    });
    let report = trivy
        .scan(
            ScanRequest {
                image: &kit.alpine,
                insecure: true,
                auth: None,
            },
            &CancellationToken::new(),
        )
        .await;
    server.start_kill().ok();
    let _ = server.wait().await;
    let (_, found) = findings(&report.expect("client/server scan"));
    assert_alpine_findings(&found);

    // The server is gone now: a transient failure.
    let err = trivy
        .scan(
            ScanRequest {
                image: &kit.alpine,
                insecure: true,
                auth: None,
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    eprintln!("server down: {err}");
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
}

fn wait_healthy(addr: &str, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = write!(s, "GET /healthz HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            let mut resp = String::new();
            let _ = s.read_to_string(&mut resp);
            if resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("trivy server on {addr} not healthy within {limit:?}");
}
