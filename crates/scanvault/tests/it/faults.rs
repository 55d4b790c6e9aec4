//! Fault tests: PostgreSQL goes away under load and comes back.
//!
//! Each test starts its own private PostgreSQL cluster with `scripts/lib/pg.sh` (the test
//! script's own helper: initdb + pg_ctl on a free loopback port, run as the `postgres` OS
//! user when root), so it can stop it (`pg_ctl stop -m immediate`, a crash) and start it
//! again without disturbing any other test. They skip only when `SCANVAULT_SKIP_PG=1`.
//!
//! - `ingest_survives_a_postgres_outage`: the real binary under 4 ingesting clients; while
//!   PostgreSQL is down every answer is a quick 503 JSON error (never a hang, never a 500),
//!   nothing partial is stored, the service recovers by itself once PostgreSQL is back,
//!   and every report that got a 2xx is stored with all its findings.
//! - `worker_jobs_survive_a_postgres_outage` (`faults_worker.rs`): scan jobs in flight when
//!   the database goes away go back to the queue and complete; none is lost or stuck.

use crate::support::{digest, Report};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ a private cluster

pub(crate) fn skip_pg() -> bool {
    std::env::var("SCANVAULT_SKIP_PG").is_ok_and(|v| v == "1")
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Defines what `scripts/lib/pg.sh` expects from its caller, then sources it.
const PG_PRELUDE: &str = r#"set -euo pipefail
sv_log() { printf 'pg.sh: %s\n' "$*" >&2; }
sv_die() { printf 'pg.sh: ERROR: %s\n' "$*" >&2; exit 1; }
APT_GUARD=""
. "$SV_REPO/scripts/lib/pg.sh"
"#;

/// A throwaway PostgreSQL cluster of this test only; stopped and deleted on drop.
///
/// pg.sh tunes its clusters for speed (`fsync = off`, `synchronous_commit = off`). This one
/// gets `synchronous_commit = on` back: with it off, a crash loses the last ~200 ms of
/// commits that PostgreSQL had already acknowledged, and "every 2xx is stored" would be
/// false by configuration. `fsync = off` stays: the crash here kills processes, not the
/// kernel, so WAL written at commit survives it.
pub(crate) struct Cluster {
    tmp: String,
    port: u16,
    bin: String,
    os_user: String,
    log_dir: tempfile::TempDir,
}

impl Cluster {
    /// `None` (skip) only with SCANVAULT_SKIP_PG=1; panics when the cluster cannot start.
    pub(crate) fn start() -> Option<Cluster> {
        if skip_pg() {
            eprintln!("SKIPPED: SCANVAULT_SKIP_PG=1 (no PostgreSQL for the fault tests)");
            return None;
        }
        let log_dir = tempfile::tempdir().unwrap();
        let script = format!(
            "{PG_PRELUDE}pg_start_throwaway\n\
             echo 'synchronous_commit = on' | pg_as sh -c \"cat >>'$PG_TMP/data/postgresql.conf'\"\n\
             pg_as \"$PG_BIN/pg_ctl\" -D \"$PG_TMP/data\" reload >&2\n\
             for _ in $(seq 1 100); do\n\
               [ \"$(\"$PG_BIN/psql\" -h 127.0.0.1 -p \"$PG_PORT\" -U postgres -XAtc 'SHOW synchronous_commit')\" = on ] && break\n\
               sleep 0.1\n\
             done\n\
             [ \"$(\"$PG_BIN/psql\" -h 127.0.0.1 -p \"$PG_PORT\" -U postgres -XAtc 'SHOW synchronous_commit')\" = on ] || sv_die 'synchronous_commit is not on'\n\
             printf 'PG_TMP=%s\\nPG_PORT=%s\\nPG_BIN=%s\\nPG_OS_USER=%s\\n' \"$PG_TMP\" \"$PG_PORT\" \"$PG_BIN\" \"$PG_OS_USER\"\n"
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("SV_REPO", repo_root())
            .env("LOG_DIR", log_dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_default()
                .to_string()
        };
        let cluster = Cluster {
            tmp: get("PG_TMP"),
            port: get("PG_PORT").parse().unwrap_or(0),
            bin: get("PG_BIN"),
            os_user: get("PG_OS_USER"),
            log_dir,
        };
        assert!(
            out.status.success() && cluster.port != 0 && !cluster.tmp.is_empty(),
            "could not start a private PostgreSQL cluster with scripts/lib/pg.sh \
             (set SCANVAULT_SKIP_PG=1 to skip the PostgreSQL tests on a machine without it):\n{}\n{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        Some(cluster)
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Run `CMD` (bash) with pg.sh's functions and this cluster's variables.
    fn sh(&self, cmd: &str) -> std::process::Output {
        let script = format!(
            "{PG_PRELUDE}PG_TMP=\"$SV_PG_TMP\"; PG_PORT=\"$SV_PG_PORT\"; PG_BIN=\"$SV_PG_BIN\"; PG_OS_USER=\"$SV_PG_OS_USER\"\n{cmd}\n"
        );
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("SV_REPO", repo_root())
            .env("LOG_DIR", self.log_dir.path())
            .env("SV_PG_TMP", &self.tmp)
            .env("SV_PG_PORT", self.port.to_string())
            .env("SV_PG_BIN", &self.bin)
            .env("SV_PG_OS_USER", &self.os_user)
            .stdin(Stdio::null())
            .output()
            .expect("run bash")
    }

    /// The crash: `pg_ctl stop -m immediate` (no checkpoint, every backend killed).
    pub(crate) fn stop_immediate(&self) {
        let out = self.sh(r#"pg_as "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w -t 30 stop"#);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start it again on the same port; returns once it accepts connections.
    pub(crate) fn start_again(&self) {
        let out = self.sh(
            r#"pg_as "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/postgres.log" -w -t 60 start"#,
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.sh("pg_stop_throwaway");
    }
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

// ------------------------------------------------------------------ the real binary

pub(crate) fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scanvault"));
    for (k, _) in std::env::vars() {
        // The test runner's own settings must not leak into the child.
        if [
            "DATABASE_URL",
            "DATABASE_URL_FILE",
            "DATA_DIR",
            "SERVER_PORT",
            "SERVER_HOST",
            "AUTH_DISABLED",
            "LOG_FORMAT",
            "LOG_LEVEL",
            "RUST_LOG",
            "BOOTSTRAP_ADMIN_KEY",
            "BOOTSTRAP_ADMIN_KEY_FILE",
            "METRICS_PORT",
        ]
        .contains(&k.as_str())
        {
            c.env_remove(k);
        }
    }
    c.env("WORKER_CONCURRENCY", "0");
    c
}

/// `scanvault serve` on 127.0.0.1:<any port>; SIGTERM (then SIGKILL) on drop.
pub(crate) struct Server {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(database_url: &str) -> Server {
        let mut child = bin()
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("RATE_LIMIT_PER_SECOND", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "listening" {
                        if let Some(a) = v["addr"].as_str() {
                            let _ = tx.send(a.to_string());
                        }
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "scanvault serve did not log 'listening' within 60 s:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
        };
        Server { child, addr, lines }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log_tail(&self, n: usize) -> String {
        let l = self.lines.lock().unwrap();
        l[l.len().saturating_sub(n)..].join("\n")
    }

    fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn create_key(database_url: &str, role: &str) -> String {
    let out = bin()
        .args(["apikey", "create", "--role", role, "--name", "faults"])
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "apikey create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = text
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(key.starts_with("svk_"), "{text}");
    key
}

// ------------------------------------------------------------------ a. ingest

/// The 503 bound: the pool waits DB_ACQUIRE_TIMEOUT (5 s) for a connection, plus slack.
const MAX_ANSWER: Duration = Duration::from_secs(6);
/// How long the service may take to serve again once PostgreSQL accepts connections.
const MAX_RECOVERY: Duration = Duration::from_secs(15);
const CLIENTS: usize = 4;
pub(crate) const SEVERITIES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];

/// Report number `n`: its own manifest digest, `1 + n % 5` findings.
fn findings_of(n: u64) -> usize {
    1 + (n % 5) as usize
}

fn report(n: u64) -> Vec<u8> {
    let mut r = Report::image(&format!("fault/app:{n}"), &digest(n as u32));
    for j in 0..findings_of(n) {
        r = r.vuln(
            &format!("CVE-2099-{j:04}"),
            &format!("pkg{j}"),
            "1.0",
            SEVERITIES[j % 5],
            (j % 2 == 0).then_some("1.1"),
        );
    }
    r.bytes()
}

#[derive(Debug, Clone)]
struct Answer {
    client: usize,
    n: u64,
    sent: Instant,
    took: Duration,
    /// 0: no HTTP answer at all (connection error or the client's 30 s timeout).
    status: u16,
    body: String,
}

async fn ingest_client(
    client: usize,
    http: reqwest::Client,
    base: String,
    key: String,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..2000 {
        if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
            break;
        }
        let n = next.fetch_add(1, Ordering::SeqCst);
        let sent = Instant::now();
        let r = http
            .post(format!("{base}/scans"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(report(n))
            .send()
            .await;
        let (status, body) = match r {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, format!("{e:#}")),
        };
        answers.lock().unwrap().push(Answer {
            client,
            n,
            sent,
            took: sent.elapsed(),
            status,
            body,
        });
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

fn since(t0: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_survives_a_postgres_outage() {
    let Some(pg) = blocking(Cluster::start).await else {
        return;
    };
    let url = pg.url();
    let key = {
        let url = url.clone();
        blocking(move || create_key(&url, "ingester")).await
    };
    let server = {
        let url = url.clone();
        blocking(move || Server::start(&url)).await
    };
    let base = server.base();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let t0 = Instant::now();
    let next = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(ingest_client(
                c,
                http.clone(),
                base.clone(),
                key.clone(),
                next.clone(),
                stop.clone(),
                answers.clone(),
            ))
        })
        .collect();

    // Phase 1: PostgreSQL up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ok_before = answers
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.status == 201)
        .count();
    assert!(
        ok_before > 0,
        "no report was stored before the outage: {:?}\n{}",
        answers.lock().unwrap().first(),
        server.log_tail(30)
    );

    // Phase 2: the crash.
    let t_stop = Instant::now();
    let pg = Arc::new(pg);
    {
        let pg = pg.clone();
        blocking(move || pg.stop_immediate()).await;
    }
    let t_stopped = Instant::now();
    // Readiness says so; liveness does not.
    let ready = http.get(format!("{base}/ready")).send().await.unwrap();
    let ready_status = ready.status().as_u16();
    let ready_body: serde_json::Value = ready.json().await.unwrap_or_default();
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    let health_status = health.status().as_u16();
    tokio::time::sleep(Duration::from_secs(7)).await;

    // Phase 3: PostgreSQL back; the same service process must recover by itself.
    let t_restart = Instant::now();
    {
        let pg = pg.clone();
        blocking(move || pg.start_again()).await;
    }
    let t_up = Instant::now();
    let recovered_at = loop {
        let first = answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.sent >= t_up && (a.status == 201 || a.status == 200))
            .map(|a| a.sent + a.took)
            .min();
        if let Some(t) = first {
            break Some(t);
        }
        if t_up.elapsed() > MAX_RECOVERY + MAX_ANSWER {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        tokio::time::timeout(Duration::from_secs(40), c)
            .await
            .expect("a client hung")
            .unwrap();
    }
    let answers = answers.lock().unwrap().clone();

    // ---- what the clients saw
    let mut problems: Vec<String> = vec![];
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for a in &answers {
        *by_status.entry(a.status).or_default() += 1;
    }
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    let unavailable: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    let slowest_503 = unavailable.iter().map(|a| a.took).max().unwrap_or_default();
    let fastest_503 = unavailable.iter().map(|a| a.took).min().unwrap_or_default();
    let mean_503 = if unavailable.is_empty() {
        0.0
    } else {
        unavailable
            .iter()
            .map(|a| a.took.as_secs_f64())
            .sum::<f64>()
            / unavailable.len() as f64
    };
    for a in &answers {
        match a.status {
            200 | 201 => {}
            503 => {
                let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
                let code = v["code"].as_str().unwrap_or_default();
                let message = v["error"].as_str().unwrap_or_default();
                if code != "database_unavailable" || message.is_empty() {
                    problems.push(format!(
                        "report {}: 503 without the database_unavailable JSON error: {}",
                        a.n, a.body
                    ));
                }
            }
            s => problems.push(format!(
                "report {} (client {}, sent at {:.2} s, took {:.2} s): status {s} (expected 2xx or 503): {}",
                a.n,
                a.client,
                since(t0, a.sent),
                a.took.as_secs_f64(),
                a.body.chars().take(300).collect::<String>()
            )),
        }
        if a.took >= MAX_ANSWER {
            problems.push(format!(
                "report {} (client {}, status {}, sent at {:.2} s): answered after {:.2} s (bound {MAX_ANSWER:?})",
                a.n,
                a.client,
                a.status,
                since(t0, a.sent),
                a.took.as_secs_f64()
            ));
        }
        // Sent once PostgreSQL was down and answered before it was started again.
        if a.sent >= t_stopped && a.sent + a.took <= t_restart && a.status != 503 {
            problems.push(format!(
                "report {}: status {} while PostgreSQL was down",
                a.n, a.status
            ));
        }
    }
    if unavailable.is_empty() {
        problems.push("no client got a 503 while PostgreSQL was down".into());
    }
    for c in 0..CLIENTS {
        if !unavailable.iter().any(|a| a.client == c) {
            problems.push(format!("client {c} never got a 503 during the outage"));
        }
    }
    if ready_status != 503 {
        problems.push(format!(
            "/ready answered {ready_status} with PostgreSQL down"
        ));
    }
    // It says where and why: the host and port, refused.
    let why = ready_body["error"].as_str().unwrap_or_default();
    if !(why.contains(&format!(":{}", pg.port)) && why.contains("connection refused")) {
        problems.push(format!("/ready does not say where and why: {ready_body}"));
    }
    if health_status != 200 {
        problems.push(format!(
            "/health answered {health_status} with PostgreSQL down"
        ));
    }
    let recovery = recovered_at.map(|t| t.saturating_duration_since(t_up));
    match (recovered_at, recovery) {
        (Some(t_rec), Some(rec)) => {
            if rec > MAX_RECOVERY {
                problems.push(format!(
                    "first success {:.2} s after PostgreSQL was back (bound {MAX_RECOVERY:?})",
                    rec.as_secs_f64()
                ));
            }
            // Once one request succeeded again, every later one must.
            for a in answers.iter().filter(|a| a.sent >= t_rec) {
                if a.status != 201 && a.status != 200 {
                    problems.push(format!(
                        "report {} sent {:.2} s after recovery: status {}: {}",
                        a.n,
                        a.sent.saturating_duration_since(t_rec).as_secs_f64(),
                        a.status,
                        a.body.chars().take(200).collect::<String>()
                    ));
                }
            }
        }
        _ => problems.push(format!(
            "the service did not recover within {:?} of PostgreSQL being back (no restart); statuses after: {:?}",
            MAX_RECOVERY + MAX_ANSWER,
            answers
                .iter()
                .filter(|a| a.sent >= t_up)
                .map(|a| a.status)
                .collect::<Vec<_>>()
        )),
    }

    // ---- what was stored: every 2xx, complete; nothing partial.
    let sent: BTreeMap<String, u64> = answers.iter().map(|a| (digest(a.n as u32), a.n)).collect();
    let acked: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == 201 || a.status == 200)
        .collect();
    let mut acked_ids = BTreeSet::new();
    for a in &acked {
        let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
        let Some(id) = v["ID"].as_str() else {
            problems.push(format!("report {}: 2xx without an ID: {}", a.n, a.body));
            continue;
        };
        acked_ids.insert(id.to_string());
        let scan = http
            .get(format!("{base}/scans/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if scan.status() != 200 {
            problems.push(format!(
                "report {} (client {}, sent at {:.3} s, took {:.3} s; PostgreSQL stopped at {:.3}-{:.3} s) \
                 was answered {} (scan {id}) but GET /scans/{id} is {}",
                a.n,
                a.client,
                since(t0, a.sent),
                a.took.as_secs_f64(),
                since(t0, t_stop),
                since(t0, t_stopped),
                a.status,
                scan.status()
            ));
            continue;
        }
        let scan: Value = scan.json().await.unwrap();
        if scan["ImageDigest"] != digest(a.n as u32) || scan["VulnTotal"] != findings_of(a.n) {
            problems.push(format!(
                "report {} (scan {id}): stored digest {} with {} findings, sent {} with {}",
                a.n,
                scan["ImageDigest"],
                scan["VulnTotal"],
                digest(a.n as u32),
                findings_of(a.n)
            ));
        }
    }
    // Every stored scan (incl. any whose commit raced the crash) is whole.
    let mut stored = 0usize;
    let mut offset = 0;
    loop {
        let page: Value = http
            .get(format!("{base}/scans/all?limit=500&offset={offset}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["Items"].as_array().cloned().unwrap_or_default();
        for s in &items {
            stored += 1;
            let id = s["ID"].as_str().unwrap_or_default();
            let d = s["ImageDigest"].as_str().unwrap_or_default();
            let Some(&n) = sent.get(d) else {
                problems.push(format!("scan {id} has a digest no client sent: {d}"));
                continue;
            };
            let v: Value = http
                .get(format!("{base}/scans/{id}/vulnerabilities"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let findings = v["Count"].as_u64().unwrap_or(u64::MAX) as usize;
            if findings != findings_of(n) || s["VulnTotal"] != findings_of(n) {
                problems.push(format!(
                    "partial scan {id} (report {n}): VulnTotal {} and {findings} findings stored, {} sent",
                    s["VulnTotal"],
                    findings_of(n)
                ));
            }
            let raw = http
                .get(format!("{base}/scans/{id}/report"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            if raw.status() != 200 {
                problems.push(format!(
                    "scan {id}: its raw report is missing ({})",
                    raw.status()
                ));
            }
        }
        if page["HasMore"] != true || items.is_empty() {
            break;
        }
        offset += items.len();
    }
    if stored < acked_ids.len() {
        problems.push(format!(
            "{} reports got a 2xx but only {stored} scans are stored",
            acked_ids.len()
        ));
    }
    let panics = server
        .log_lines()
        .iter()
        .filter(|l| l.contains("panicked"))
        .count();
    if panics > 0 {
        problems.push(format!("the server panicked {panics} times"));
    }

    eprintln!(
        "faults/ingest: {} requests by {CLIENTS} clients, statuses {by_status:?}; PostgreSQL stopped at {:.2} s \
         (pg_ctl took {:.2} s), /ready {ready_status}, /health {health_status}; 503s: {} (fastest {:.3} s, mean {:.3} s, \
         slowest {:.3} s); slowest answer {:.3} s; restarted at {:.2} s (pg_ctl start took {:.2} s); \
         first success {} after; {} acknowledged, {stored} stored ({} answered 503 but committed)",
        answers.len(),
        since(t0, t_stop),
        t_stopped.duration_since(t_stop).as_secs_f64(),
        unavailable.len(),
        fastest_503.as_secs_f64(),
        mean_503,
        slowest_503.as_secs_f64(),
        slowest.as_secs_f64(),
        since(t0, t_restart),
        t_up.duration_since(t_restart).as_secs_f64(),
        recovery
            .map(|r| format!("{:.3} s", r.as_secs_f64()))
            .unwrap_or_else(|| "never".into()),
        acked_ids.len(),
        stored.saturating_sub(acked_ids.len()),
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n--- server log (tail) ---\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        server.log_tail(40)
    );
    drop(server);
}
