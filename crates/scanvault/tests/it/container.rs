//! The container image's runtime constraints, proved without a container engine: the
//! binary starts, migrates, ingests and answers as an unprivileged UID (65534 when the
//! tests run as root, through `setpriv`; otherwise as the current user), from a working
//! directory it cannot write, with only `DATA_DIR` and `TMPDIR` writable.

use crate::cli::serve_until;
use crate::support::corpus_dir;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn serves_unprivileged_with_only_data_dir_and_tmpdir_writable() {
    let root = is_root();
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    for d in [data.path(), tmp.path()] {
        if root {
            std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_scanvault");
    let mut c = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            bin,
        ]);
        c
    } else {
        Command::new(bin)
    };
    c.arg("serve")
        .current_dir(work.path())
        .env_remove("DATABASE_URL")
        .env("DATA_DIR", data.path())
        .env("TMPDIR", tmp.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("AUTH_DISABLED", "true")
        .env("WORKER_CONCURRENCY", "0")
        .env("LOG_FORMAT", "json");
    let (mut server, lines) = serve_until(&mut c, Duration::from_secs(60), |l| {
        l.contains("\"listening\"")
    });
    let addr = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "listening")
        .and_then(|v| v["addr"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    if root {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        // setpriv execs the service in place: the process is the service.
        assert!(
            uid.split_whitespace().skip(1).all(|u| u == "65534"),
            "{uid}"
        );
    }
    let report = corpus_dir().join("trivy/alpine-3.10_trivy-dev-head.json");
    let posted = curl(&[
        "--data-binary",
        &format!("@{}", report.display()),
        &format!("http://{addr}/scans"),
    ]);
    assert!(posted.ends_with("\n201"), "{posted}");
    let v: serde_json::Value = serde_json::from_str(posted.rsplit_once('\n').unwrap().0).unwrap();
    let id = v["ID"].as_str().unwrap();
    assert!(curl(&[&format!("http://{addr}/scans/{id}/vulnerabilities")]).ends_with("\n200"));
    assert!(curl(&[&format!("http://{addr}/ready")]).ends_with("\n200"));
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
    // Nothing was written outside DATA_DIR and TMPDIR.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    assert!(data.path().join("scanvault.db").exists());
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}
