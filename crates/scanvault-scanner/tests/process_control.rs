//! Process control with small shell scripts standing in for the trivy binary: timeouts,
//! cancellation, killing and reaping, pipe handling, exit-code handling. (What Trivy itself
//! prints is tested against the real binary in `e2e_trivy.rs` and on real samples in the unit
//! tests.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scanvault_scanner::{ErrorClass, ScanError, ScanRequest, Trivy, TrivyConfig};
use tokio_util::sync::CancellationToken;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/trivy-0.59.1");

const IMAGE: ScanRequest<'static> = ScanRequest {
    image: "127.0.0.1:5000/e2e/app@sha256:f623f5a4534ac6e8d52362c863a40d43b6017bf6aef9f1ba393226669aae4427",
    insecure: true,
    auth: None,
};

/// A fake trivy: a shell script in its own temp dir (removed when the test ends). The script
/// body can use `$D` for that dir (pid files etc.).
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new(body: &str) -> Fake {
        let dir = tempfile::Builder::new()
            .prefix("fake-trivy-")
            .tempdir()
            .expect("tempdir");
        let script = format!("#!/bin/sh\nD='{}'\n{body}", dir.path().display());
        let path = dir.path().join("trivy");
        std::fs::write(&path, script).expect("write script");
        let mut perm = std::fs::metadata(&path).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&path, perm).expect("chmod");
        Fake { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("trivy")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn trivy(&self, timeout: Duration) -> Trivy {
        Trivy::new(TrivyConfig {
            path: self.path(),
            timeout,
            ..TrivyConfig::default()
        })
    }
}

/// `scan` that retries when exec fails with ETXTBSY: under `cargo test` another test thread
/// may fork while this test's script is still open for writing (its child then holds the
/// write fd until it execs). Only a test artefact; nothing else is retried.
async fn scan(
    t: &Trivy,
    req: ScanRequest<'_>,
    cancel: &CancellationToken,
) -> Result<Vec<u8>, ScanError> {
    for _ in 0..50 {
        match t.scan(req, cancel).await {
            Err(ScanError::Spawn { cause, .. }) if cause.raw_os_error() == Some(26) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
    panic!("ETXTBSY 50 times");
}

async fn read_pid(path: &Path) -> i32 {
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} was not written", path.display());
}

/// `None` when /proc/<pid> does not exist, else the state letter (`Z` = zombie).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// Waits until `pid` is dead. Our direct child must be reaped (gone); processes it left behind
/// are reparented and may stay zombies until the container's PID 1 reaps them.
async fn assert_dead(pid: i32, must_be_reaped: bool) {
    for _ in 0..100 {
        match proc_state(pid) {
            None => return,
            Some('Z') if !must_be_reaped => return,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("process {pid} still exists: state {:?}", proc_state(pid));
}

const SLEEPER: &str = "echo $$ > \"$D/pid\"\nexec sleep 60\n";
/// A wrapper that does not exec: its child keeps the pipes open.
const WRAPPER: &str = "echo $$ > \"$D/pid\"\nsleep 60 &\necho $! > \"$D/child.pid\"\nwait\n";

#[tokio::test]
async fn timeout_kills_and_reaps() {
    let fake = Fake::new(SLEEPER);
    let start = Instant::now();
    let err = scan(
        &fake.trivy(Duration::from_secs(1)),
        IMAGE,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(err, ScanError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(err.code(), "trivy_timeout");
    assert_eq!(err.to_string(), "trivy did not finish within 1s; killed");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
    let pid = read_pid(&fake.file("pid")).await;
    // Reaped before scan() returned: no /proc entry at all, not even a zombie.
    assert_eq!(proc_state(pid), None, "pid {pid}");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let fake = Fake::new(WRAPPER);
    let start = Instant::now();
    let err = scan(
        &fake.trivy(Duration::from_secs(1)),
        IMAGE,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ScanError::Timeout { .. }), "{err:?}");
    // The grandchild held stdout/stderr open; we must not wait for it.
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(proc_state(read_pid(&fake.file("pid")).await), None);
    assert_dead(read_pid(&fake.file("child.pid")).await, false).await;
}

#[tokio::test]
async fn cancel_kills_and_reaps() {
    let fake = Fake::new(SLEEPER);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let start = Instant::now();
    let err = scan(&fake.trivy(Duration::from_secs(30)), IMAGE, &cancel)
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(err, ScanError::Cancelled), "{err:?}");
    assert_eq!(err.code(), "cancelled");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert_eq!(proc_state(read_pid(&fake.file("pid")).await), None);
}

#[tokio::test]
async fn already_cancelled_does_not_start_trivy() {
    let fake = Fake::new("touch \"$D/ran\"\necho '{}'\n");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = scan(&fake.trivy(Duration::from_secs(5)), IMAGE, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::Cancelled), "{err:?}");
    assert!(!fake.file("ran").exists());
}

#[tokio::test]
async fn dropping_the_scan_future_kills_the_group() {
    let fake = Fake::new(WRAPPER);
    let t = fake.trivy(Duration::from_secs(30));
    let task = tokio::spawn(async move {
        let _ = scan(&t, IMAGE, &CancellationToken::new()).await;
    });
    let pid = read_pid(&fake.file("pid")).await;
    let child = read_pid(&fake.file("child.pid")).await;
    task.abort();
    let _ = task.await;
    // kill_on_drop + the group guard killed both; tokio reaps the direct child in the
    // background, so a short-lived zombie is acceptable here.
    assert_dead(pid, false).await;
    assert_dead(child, false).await;
}

#[tokio::test]
async fn manifest_unknown_is_permanent() {
    let fake = Fake::new(&format!(
        "cat {SAMPLES}/notfound_digest.stderr >&2\nexit 1\n"
    ));
    let err = scan(
        &fake.trivy(Duration::from_secs(10)),
        IMAGE,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    match &err {
        ScanError::Failed {
            class,
            message,
            exit_code,
        } => {
            assert_eq!(*class, ErrorClass::Permanent);
            assert_eq!(*exit_code, Some(1));
            assert!(
                message.contains("MANIFEST_UNKNOWN: manifest unknown"),
                "{message}"
            );
            assert!(
                message.starts_with("unable to find the specified image"),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "trivy_failed");
    assert!(err
        .to_string()
        .starts_with("trivy failed (exit code 1): unable to find"));
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let fake = Fake::new(&format!("cat {SAMPLES}/conn_refused.stderr >&2\nexit 1\n"));
    let err = scan(
        &fake.trivy(Duration::from_secs(10)),
        IMAGE,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ScanError::Failed {
                class: ErrorClass::Transient,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn silent_failure_has_a_message() {
    let fake = Fake::new("exit 3\n");
    let err = scan(
        &fake.trivy(Duration::from_secs(10)),
        IMAGE,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    match err {
        ScanError::Failed {
            class,
            message,
            exit_code,
        } => {
            assert_eq!((class, exit_code), (ErrorClass::Permanent, Some(3)));
            assert_eq!(
                message,
                "trivy exited with code 3 and printed no error message"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn killed_by_signal_is_transient() {
    let fake = Fake::new("echo '{'\nkill -9 $$\n");
    let err = scan(
        &fake.trivy(Duration::from_secs(10)),
        IMAGE,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    match &err {
        ScanError::Failed {
            class,
            message,
            exit_code,
        } => {
            assert_eq!((*class, *exit_code), (ErrorClass::Transient, None));
            assert_eq!(message, "trivy was killed by signal 9");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "trivy failed (killed by a signal): trivy was killed by signal 9"
    );
}

#[tokio::test]
async fn garbage_output_is_invalid() {
    for body in ["echo 'this is not json'\nexit 0\n", "exit 0\n"] {
        let fake = Fake::new(body);
        let err = scan(
            &fake.trivy(Duration::from_secs(10)),
            IMAGE,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, ScanError::InvalidOutput { .. }),
            "{body}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert_eq!(err.code(), "invalid_output");
    }
}

#[tokio::test]
async fn big_output_is_read_fully_while_stderr_is_drained() {
    // 1 MiB of stderr first (far more than a pipe buffer), then 20 MiB of stdout.
    let fake = Fake::new(
        "head -c 1048576 /dev/zero | tr '\\0' e >&2\n\
         printf '{\"pad\":\"'\n\
         head -c 20971520 /dev/zero | tr '\\0' a\n\
         printf '\"}'\n",
    );
    let start = Instant::now();
    let out = scan(
        &fake.trivy(Duration::from_secs(60)),
        IMAGE,
        &CancellationToken::new(),
    )
    .await
    .expect("scan");
    let n = 20 * 1024 * 1024;
    assert_eq!(out.len(), n + "{\"pad\":\"\"}".len());
    assert!(out.starts_with(b"{\"pad\":\"aaa"));
    assert!(out.ends_with(b"aaa\"}"));
    assert!(out[8..8 + n].iter().all(|&b| b == b'a'));
    eprintln!("20 MiB report read in {:?}", start.elapsed());
}

#[tokio::test]
async fn huge_stderr_keeps_the_tail() {
    let fake = Fake::new(&format!(
        "head -c 1048576 /dev/zero | tr '\\0' e >&2\necho >&2\n\
         cat {SAMPLES}/reg_429.stderr >&2\nexit 1\n"
    ));
    let err = scan(
        &fake.trivy(Duration::from_secs(60)),
        IMAGE,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    match err {
        ScanError::Failed { class, message, .. } => {
            assert_eq!(class, ErrorClass::Transient);
            assert!(message.contains("TOOMANYREQUESTS"), "{message}");
            assert!(!message.contains("eeee"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn missing_binary_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trivy::new(TrivyConfig {
        path: dir.path().join("does-not-exist"),
        ..TrivyConfig::default()
    });
    let err = t.scan(IMAGE, &CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, ScanError::Spawn { .. }), "{err:?}");
    assert_eq!(err.code(), "trivy_not_found");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let v = t.version().await.unwrap_err();
    assert_eq!(v.code(), "trivy_not_found");

    let not_executable = dir.path().join("trivy");
    std::fs::write(&not_executable, "#!/bin/sh\necho '{}'\n").unwrap();
    let t = Trivy::new(TrivyConfig {
        path: not_executable,
        ..TrivyConfig::default()
    });
    let err = t.scan(IMAGE, &CancellationToken::new()).await.unwrap_err();
    assert_eq!(err.code(), "trivy_spawn_failed", "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn argv_is_passed_verbatim_and_stdin_is_null() {
    let fake = Fake::new(
        "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$D/argv.txt\"\n\
         cat > \"$D/stdin.txt\"\necho '[]'\n",
    );
    let t = Trivy::new(TrivyConfig {
        path: fake.path(),
        server_url: None,
        timeout: Duration::from_millis(4500),
        cache_dir: Some(PathBuf::from("/tmp/cache dir")),
        extra_args: TrivyConfig::parse_extra_args("--skip-db-update --ignorefile 'a b.yaml'")
            .unwrap(),
    });
    let out = scan(&t, IMAGE, &CancellationToken::new()).await.unwrap();
    assert_eq!(out, b"[]\n");
    let argv = std::fs::read_to_string(fake.file("argv.txt")).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(
        argv,
        [
            "image",
            "--format",
            "json",
            "--quiet",
            "--list-all-pkgs",
            "--image-src",
            "remote",
            "--cache-dir",
            "/tmp/cache dir",
            "--insecure",
            "--timeout",
            "4500ms",
            "--skip-db-update",
            "--ignorefile",
            "a b.yaml",
            IMAGE.image,
        ]
    );
    assert_eq!(std::fs::read(fake.file("stdin.txt")).unwrap(), b"");
}

#[tokio::test]
async fn rejects_flag_like_image_without_running_trivy() {
    let fake = Fake::new("touch \"$D/ran\"\necho '{}'\n");
    let req = ScanRequest {
        image: "--output=/tmp/x",
        insecure: false,
        auth: None,
    };
    let err = scan(
        &fake.trivy(Duration::from_secs(5)),
        req,
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "invalid_request");
    assert!(!fake.file("ran").exists());
}
