//! The binary itself: `serve` on a fresh directory with the embedded default, the first
//! admin key, graceful shutdown, configuration errors, `apikey`, `ingest`, `openapi`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scanvault"));
    for (k, _) in std::env::vars() {
        // The test runner's own settings must not leak into the child.
        if [
            "DATABASE_URL",
            "SERVER_PORT",
            "AUTH_DISABLED",
            "DATA_DIR",
            "LOG_FORMAT",
            "LOG_LEVEL",
        ]
        .contains(&k.as_str())
            || k.starts_with("OTEL_")
        {
            c.env_remove(k);
        }
    }
    c.env("WORKER_CONCURRENCY", "0");
    c
}

#[test]
fn serve_starts_on_a_fresh_directory_prints_one_admin_key_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin()
        .arg("serve")
        .env("DATA_DIR", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let mut key = None;
    let mut lines = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    while (addr.is_none() || key.is_none()) && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(k) = line.split_whitespace().find(|w| w.starts_with("svk_")) {
            key = Some(k.to_string());
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v["message"] == "listening" {
                addr = v["addr"].as_str().map(str::to_string);
            }
        }
        lines.push(line);
    }
    let addr = addr.unwrap_or_else(|| panic!("no listening line: {lines:#?}"));
    let key = key.expect("the first admin key is printed");
    // The key comes after the start-up lines, in a banner that says how to make more.
    let at = |pred: &dyn Fn(&String) -> bool| lines.iter().position(pred).unwrap();
    let key_line = at(&|l| l.contains(&key));
    assert!(
        key_line > at(&|l| l.contains("\"listening\"")),
        "{lines:#?}"
    );
    assert!(
        lines[key_line.saturating_sub(4)..key_line]
            .iter()
            .any(|l| l.starts_with("=====")),
        "{lines:#?}"
    );
    // The rest of the banner, up to its closing rule.
    while !lines[key_line + 1..].iter().any(|l| l.starts_with("=====")) {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("the banner does not end: {lines:#?}"),
        }
    }
    let rest = lines[key_line..].join("\n");
    assert!(rest.contains("scanvault apikey create --role"), "{rest}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"setting\":\"DATABASE_URL\"")),
        "configuration is logged"
    );
    assert!(
        dir.path().join("scanvault.db").exists(),
        "embedded SQLite file created"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let health = http
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let r = http
            .get(format!("http://{addr}/scans/all"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let report = std::fs::read(
            crate::support::corpus_dir().join("trivy/alpine-3.10_trivy-dev-head.json"),
        )
        .unwrap();
        let r = http
            .post(format!("http://{addr}/scans"))
            .bearer_auth(&key)
            .body(report)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        assert!(
            r.headers().contains_key("x-request-id"),
            "request id on every response"
        );
        let m = http
            .get(format!("http://{addr}/metrics"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            m.contains(
                "scanvault_http_requests_total{method=\"POST\",route=\"/scans\",status=\"201\"}"
            ),
            "{m}"
        );
        let ui = http
            .get(format!("http://{addr}/swagger/"))
            .send()
            .await
            .unwrap();
        assert_eq!(ui.status(), 200);
        let body = ui.text().await.unwrap();
        assert!(body.contains("swagger-ui"), "{body}");
    });

    // SIGTERM: graceful stop, exit 0, and the key is not printed again on the next start.
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    let again = bin()
        .arg("apikey")
        .arg("list")
        .env("DATA_DIR", dir.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&again.stdout);
    assert_eq!(listing.lines().count(), 2, "{listing}");
    // The whole secret (base64url, so it may hold `_` itself), as the service splits a key.
    let (_, secret) = scanvault::store::keys::split_key(&key).expect("a well-formed key");
    assert!(!listing.contains(secret), "a secret is listed");
}

pub(crate) fn wait_with_timeout(
    child: &mut std::process::Child,
    t: Duration,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + t;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not stop within {t:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_start_that_cannot_bind_makes_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = bin()
        .arg("serve")
        .env("DATA_DIR", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", &port)
        .env("LOG_FORMAT", "console")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("binding 127.0.0.1:{port}")), "{err}");
    assert!(
        !err.contains("svk_"),
        "a key was made by a start that failed: {err}"
    );
    assert!(!err.contains('\u{1b}'), "colour codes on a pipe: {err}");
    let listing = bin()
        .args(["apikey", "list"])
        .env("DATA_DIR", dir.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(listing.lines().count(), 1, "no key yet: {listing}");
}

#[test]
fn an_unreachable_database_is_named_with_the_reason() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = refused.local_addr().unwrap().port();
    drop(refused);
    let mut cases = vec![
        (
            format!("postgres://u:pw@127.0.0.1:{port}/db"),
            vec![format!("127.0.0.1:{port}"), "connection refused".into()],
        ),
        (
            "postgres://u:pw@no-such-host.invalid:5432/db".into(),
            vec![
                "no-such-host.invalid:5432".into(),
                "does not resolve".into(),
            ],
        ),
    ];
    if let Some(admin) = crate::support::admin_url() {
        // The test server's address, with a user that does not exist.
        let url = url::Url::parse(&admin).unwrap();
        let at = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        cases.push((
            format!("postgres://no_such_user:pw@{at}/postgres"),
            vec![at, "authentication failed".into(), "no_such_user".into()],
        ));
    }
    for (db, wanted) in cases {
        let started = Instant::now();
        let out = bin()
            .arg("serve")
            .env("DATABASE_URL", &db)
            .env("SERVER_PORT", "0")
            .env("LOG_FORMAT", "console")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{db}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{db}: too slow"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default();
        for w in wanted {
            assert!(last.contains(&w), "{db}: {w:?} missing from {last:?}");
        }
        assert!(!err.contains(":pw@"), "the password leaked: {err}");
    }
}

#[test]
fn https_with_a_certificate_and_key_from_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    let mut child = bin()
        .arg("serve")
        .env("DATA_DIR", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("TLS_CERT_FILE", &cert_file)
        .env("TLS_KEY_FILE", &key_file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut port = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v["message"] == "listening" {
                assert_eq!(v["scheme"], "https");
                port = v["addr"]
                    .as_str()
                    .and_then(|a| a.rsplit(':').next()?.parse::<u16>().ok());
                break;
            }
        }
    }
    let port = port.expect("the server listens");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (health, plain) = rt.block_on(async {
        let https = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let health = https
            .get(format!("https://localhost:{port}/health"))
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| format!("{e:?}"));
        let plain = reqwest::get(format!("http://localhost:{port}/health")).await;
        (health, plain.is_err())
    });
    let _ = child.kill();
    let _ = child.wait();
    let log: Vec<String> = rx.try_iter().collect();
    assert_eq!(health, Ok(reqwest::StatusCode::OK), "{log:#?}");
    assert!(plain, "plain HTTP on the HTTPS port got an answer");

    for (cert, key, wanted) in [
        (Some(cert_file.as_path()), None, "TLS_KEY_FILE"),
        (
            Some(key_file.as_path()),
            Some(key_file.as_path()),
            "TLS_CERT_FILE",
        ),
        (
            Some(cert_file.as_path()),
            Some(cert_file.as_path()),
            "TLS_KEY_FILE",
        ),
    ] {
        let mut c = bin();
        c.arg("serve")
            .env("DATA_DIR", dir.path())
            .env("SERVER_PORT", "0");
        if let Some(cert) = cert {
            c.env("TLS_CERT_FILE", cert);
        }
        if let Some(key) = key {
            c.env("TLS_KEY_FILE", key);
        }
        let out = c.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines().last().unwrap_or_default().contains(wanted),
            "{wanted}: {err}"
        );
    }
}

/// The keys of one JSON object, in order, repeats included (serde_json keeps the last).
fn json_keys(line: &str) -> Option<Vec<String>> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = vec![];
                    while let Some(k) = m.next_key::<String>()? {
                        m.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(line).ok().map(|k| k.0)
}

/// A server's standard error, line by line, until `done` says so or `limit` passes.
pub(crate) fn serve_until(
    c: &mut Command,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> (std::process::Child, Vec<String>) {
    let mut child = c
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = vec![];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let stop = done(&line);
            lines.push(line);
            if stop {
                break;
            }
        }
    }
    (child, lines)
}

#[test]
fn worker_log_lines_have_each_key_once_and_a_broken_trivy_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("trivy");
    std::fs::write(&fake, "#!/bin/sh\necho 'Version: 0.59.1'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let registry = closed.local_addr().unwrap();
    drop(closed);
    let mut c = bin();
    c.arg("serve")
        .env("DATA_DIR", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("AUTH_DISABLED", "true")
        .env("WORKER_CONCURRENCY", "1")
        .env("JOB_BACKOFF_BASE", "60s")
        .env("TRIVY_PATH", &fake);
    // Request a scan of an image on a registry that refuses connections: the worker's
    // retry line carries a code, an error and a delay.
    let (mut child, lines) = serve_until(&mut c, Duration::from_secs(60), |line| {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if v["message"] == "listening" {
                let addr = v["addr"].as_str().unwrap().to_string();
                let image = format!("{registry}/app:1");
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Runtime::new().unwrap();
                    rt.block_on(async {
                        let r = reqwest::Client::new()
                            .post(format!("http://{addr}/scan-jobs"))
                            .json(&serde_json::json!({ "image": image }))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 202);
                    });
                });
            }
        }
        line.contains("scan job will be retried")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains("scan job will be retried")),
        "{lines:#?}"
    );
    for line in &lines {
        let keys = json_keys(line).unwrap_or_else(|| panic!("not a JSON object: {line}"));
        let mut seen = std::collections::BTreeSet::new();
        for k in &keys {
            assert!(seen.insert(k), "{k:?} twice in {line}");
        }
    }

    // A Trivy that cannot start: said once, at start, with the setting to fix.
    let mut c = bin();
    c.arg("serve")
        .env("DATA_DIR", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("AUTH_DISABLED", "true")
        .env("WORKER_CONCURRENCY", "1")
        .env("TRIVY_PATH", dir.path().join("missing-trivy"));
    // Past one re-check (every 10 s): still said once.
    let (mut child, lines) = serve_until(&mut c, Duration::from_secs(12), |_| false);
    let _ = child.kill();
    let _ = child.wait();
    let told: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("trivy cannot run"))
        .collect();
    assert_eq!(told.len(), 1, "{lines:#?}");
    assert!(
        told[0].contains("TRIVY_PATH") && told[0].contains("missing-trivy"),
        "{}",
        told[0]
    );
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    // `scanvault openapi | head -c 10`: the document is larger than a pipe's buffer, so the
    // command writes after its reader has gone.
    let mut child = bin()
        .arg("openapi")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "{err}");
    assert_eq!(out.status.code(), Some(141), "SIGPIPE's status");
}

#[test]
fn invalid_configuration_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("SERVER_PORT", "eighty"),
        ("CLEANUP_INTERVAL", "soon"),
        ("HTTP_READ_TIMEOUT", "15 parsecs"),
        ("DB_MAX_CONNS", "0"),
        ("LOG_FORMAT", "xml"),
        ("HTTP_MAX_BODY_SIZE", "lots"),
        ("COMPLIANCE_FAIL_SEVERITY", "SEVERE"),
        ("DATABASE_URL", "mysql://x"),
        ("JOB_MAX_ATTEMPTS", "0"),
    ] {
        let out = bin()
            .arg("serve")
            .env("DATA_DIR", dir.path())
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(var) || (var == "DATABASE_URL" && err.contains("DATABASE_URL")),
            "{var}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn secrets_are_masked_in_the_logged_configuration_and_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("db-url");
    std::fs::write(&url_file, "postgres://scanvault:hunter2@127.0.0.1:1/none\n").unwrap();
    let out = bin()
        .arg("serve")
        .env("DATABASE_URL_FILE", &url_file)
        .env("SERVER_PORT", "0")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(!out.status.success(), "nothing listens on port 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scanvault:***@127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}

#[test]
fn apikey_create_prints_the_key_last_and_ingest_and_openapi_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["apikey", "create", "--role", "ingester", "--expires", "30d"])
        .env("DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.split_whitespace().last().unwrap();
    assert!(key.starts_with("svk_"), "{text}");
    let bad = bin()
        .args(["apikey", "create", "--role", "root"])
        .env("DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let report =
        crate::support::corpus_dir().join("trivy/juice-shop-v10.2.0_alpine-node-secret_2024.json");
    let out = bin()
        .arg("ingest")
        .arg(&report)
        .env("DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("created\tbkimminich/juice-shop:v10.2.0\t197 findings"));

    let out = bin().arg("openapi").output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/scan-jobs/{id}/events"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[test]
fn metrics_can_move_to_a_port_of_their_own_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (api, metrics) = (free(), free());
    let mut child = bin()
        .arg("serve")
        .env("DATA_DIR", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", api.to_string())
        .env("METRICS_PORT", metrics.to_string())
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http
                .get(format!("http://127.0.0.1:{metrics}/metrics"))
                .send()
                .await
            {
                assert_eq!(r.status(), 200);
                let api_metrics = http
                    .get(format!("http://127.0.0.1:{api}/metrics"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(api_metrics.status(), 401, "the API port still needs a key");
                break r.text().await.unwrap();
            }
            assert!(Instant::now() < deadline, "metrics port never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(body.contains("scanvault_scan_jobs_queue_depth"), "{body}");
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(wait_with_timeout(&mut child, Duration::from_secs(30)).success());
}

#[test]
fn a_worker_answers_probes_and_metrics_on_the_metrics_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .arg("worker")
        .env("DATA_DIR", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("METRICS_PORT", port.to_string())
        .env("TRIVY_PATH", "/nonexistent/trivy")
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(url("/health")).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the worker's metrics port never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let health = http.get(url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready: serde_json::Value = http
            .get(url("/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["status"], "ok", "{ready}");
        let metrics = http.get(url("/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        let body = metrics.text().await.unwrap();
        assert!(body.contains("scanvault_jobs_queued"), "{body}");
    });
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(wait_with_timeout(&mut child, Duration::from_secs(30)).success());
}

/// The README's API examples (the block that starts with `KEY=` and the one under
/// "Requesting a scan"), as written.
fn readme_examples() -> String {
    let readme = include_str!("../../../../README.md");
    let block = |from: &str| -> String {
        let start = readme
            .find(from)
            .unwrap_or_else(|| panic!("{from:?} not in the README"));
        let body = &readme[start..];
        body[..body.find("\n```").unwrap()].to_string()
    };
    let api = block("```sh\nKEY=svk_");
    let scan = &readme[readme.find("### Requesting a scan").unwrap()..];
    let job = &scan[scan.find("```sh\n").unwrap()..];
    let job = &job[..job[6..].find("\n```").unwrap() + 6];
    [api.as_str(), job]
        .iter()
        .map(|b| b.trim_start_matches("```sh\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_examples_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = bin();
    c.arg("serve")
        .env("DATA_DIR", dir.path())
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("LOG_FORMAT", "json");
    let (mut child, lines) = serve_until(&mut c, Duration::from_secs(60), |l| l.contains("svk_"));
    let key = lines
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("svk_")))
        .unwrap_or_else(|| panic!("no key: {lines:#?}"))
        .to_string();
    let addr = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "listening")
        .and_then(|v| v["addr"].as_str().map(str::to_string))
        .unwrap();
    // The key line stays as the reader's; the key comes from the environment instead.
    let examples: String = readme_examples()
        .lines()
        .filter(|l| !l.starts_with("KEY="))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("localhost:8080", &addr);
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl --fail-with-body \"$@\"; }}\n{examples}\n"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("KEY", &key)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CVE-2024-2961"), "{stdout}");
    assert!(
        stdout.contains(r#""Added":[{"VulnerabilityID":"CVE-2024-33599""#),
        "{stdout}"
    );
    assert!(stdout.contains("\"Status\":\"queued\""), "{stdout}");
}
