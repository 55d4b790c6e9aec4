//! `scanvault ingest` as a client: files, directories and standard input into the
//! database; the same into a running service with `--server`, retrying 429/503 after
//! `Retry-After`; a summary, and exit code 0 only when every file was stored.

use crate::cli::{bin, serve_until};
use crate::support::corpus_dir;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(c: &mut Command, stdin: Option<&[u8]>) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(b) = stdin {
        input.write_all(b).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn copy(rel: &str, to: &Path) {
    std::fs::write(to, std::fs::read(corpus_dir().join(rel)).unwrap()).unwrap();
}

/// A directory of reports: two at the top, a cluster report below, a file that is not
/// JSON by name (left alone) and one that is broken.
fn reports(broken: bool) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("k8s")).unwrap();
    copy(
        "trivy/alpine-3.10_trivy-dev-head.json",
        &d.path().join("alpine.json"),
    );
    copy(
        "grype/busybox-1.32.1_epss_grype-0.94.0.json",
        &d.path().join("busybox.json"),
    );
    copy(
        "trivy/k8s-cluster_local_resources.json",
        &d.path().join("k8s/cluster.json"),
    );
    std::fs::write(d.path().join("notes.txt"), "not a report").unwrap();
    if broken {
        std::fs::write(d.path().join("broken.json"), "{\"SchemaVersion\": 2,").unwrap();
    }
    d
}

fn summary(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(" files: "))
        .unwrap_or_else(|| panic!("no summary: {}", String::from_utf8_lossy(&out.stdout)))
        .to_string()
}

#[test]
fn files_directories_and_stdin_into_the_database() {
    let data = tempfile::tempdir().unwrap();
    let dir = reports(true);
    let stdin =
        std::fs::read(corpus_dir().join("cyclonedx/ubuntu-22.04_trivy-0.48.1_cdx-1.5.json"))
            .unwrap();
    let out = run(
        bin()
            .arg("ingest")
            .arg(dir.path())
            .arg("-")
            .env("DATA_DIR", data.path()),
        Some(&stdin),
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused file fails the run: {text}"
    );
    // Four files read (notes.txt is not *.json); the broken one refused with its reason.
    assert!(summary(&out).starts_with("5 files: "), "{text}");
    assert!(summary(&out).ends_with("1 files refused"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("refused\t") && l.contains("broken.json") && l.contains("JSON")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("-\tcreated\tubuntu")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("cluster.json\tcreated\t")),
        "{text}"
    );
    // Not a terminal: no progress bar on standard error.
    assert!(!String::from_utf8_lossy(&out.stderr).contains('█'));

    // Again without the broken file: every scan is known, and the run succeeds.
    std::fs::remove_file(dir.path().join("broken.json")).unwrap();
    let out = run(
        bin()
            .arg("ingest")
            .arg(dir.path())
            .env("DATA_DIR", data.path()),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert!(
        s.contains(" 0 scans created") && s.ends_with(" 0 files refused"),
        "{s}"
    );
}

#[test]
fn the_same_reports_into_a_running_service() {
    let data = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["apikey", "create", "--role", "ingester"])
        .env("DATA_DIR", data.path())
        .output()
        .unwrap();
    let key = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let key_file = data.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let (mut server, lines) = serve_until(
        bin()
            .arg("serve")
            .env("DATA_DIR", data.path())
            .env("SERVER_HOST", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("LOG_FORMAT", "json"),
        Duration::from_secs(60),
        |l| l.contains("\"listening\""),
    );
    let addr = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "listening")
        .and_then(|v| v["addr"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let url = format!("http://{addr}");
    let dir = reports(false);

    let out = run(
        bin()
            .args(["ingest", "--server", &url, "--api-key-file"])
            .arg(&key_file)
            .arg(dir.path()),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let s = summary(&out);
    assert!(
        s.starts_with("3 files: ") && s.ends_with(" 0 files refused"),
        "{s}"
    );
    // The key from the environment works too; a wrong key is refused with the reason.
    let out = run(
        bin()
            .args(["ingest", "--server", &url])
            .arg(dir.path().join("alpine.json"))
            .env("SCANVAULT_API_KEY", &key),
        None,
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\tupdated\t"));
    let out = run(
        bin()
            .args(["ingest", "--server", &url])
            .arg(dir.path().join("alpine.json"))
            .env("SCANVAULT_API_KEY", "svk_wrong"),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("401"));
    let _ = Command::new("kill").arg(server.id().to_string()).status();
    let _ = server.wait();
}

#[test]
fn busy_answers_are_retried_after_retry_after() {
    // A stand-in service: 503 with `Retry-After: 1`, then 429 with `Retry-After: 1`,
    // then 201.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut times = vec![];
        let answer = |status: &str, extra: &str, body: &str| {
            format!(
                "HTTP/1.1 {status}\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        for answer in [
            answer(
                "503 Service Unavailable",
                "Retry-After: 1\r\n",
                r#"{"error":"busy","code":"busy"}"#,
            ),
            answer(
                "429 Too Many Requests",
                "Retry-After: 1\r\n",
                r#"{"error":"slow","code":"slow"}"#,
            ),
            answer(
                "201 Created",
                "",
                r#"{"ID":"x","ImageName":"app","ImageTag":"1","VulnTotal":3}"#,
            ),
        ] {
            let (mut s, _) = listener.accept().unwrap();
            times.push(Instant::now());
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            s.write_all(answer.as_bytes()).unwrap();
        }
        times
    });
    let report = corpus_dir().join("trivy/alpine-3.10_trivy-dev-head.json");
    let out = run(
        bin()
            .args(["ingest", "--server", &format!("http://{addr}")])
            .arg(&report),
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("created\tapp:1\t3 findings\tx"), "{text}");
    let times = server.join().unwrap();
    assert!(times[1] - times[0] >= Duration::from_millis(950));
    assert!(times[2] - times[1] >= Duration::from_millis(950));
}

#[test]
fn a_terminal_gets_a_progress_bar() {
    // `script` runs the command on a pseudo-terminal (its output and error both go there).
    let data = tempfile::tempdir().unwrap();
    let dir = reports(false);
    let cmd = format!(
        "{} ingest {}",
        env!("CARGO_BIN_EXE_scanvault"),
        dir.path().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("DATA_DIR", data.path())
        .env_remove("DATABASE_URL")
        .output()
        .expect("script (util-linux) runs a command on a terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // The bar is drawn and cleared with terminal control sequences; the lines and the
    // summary are printed above it.
    assert!(text.contains("\u{1b}["), "{text:?}");
    assert!(text.contains("3 files: "), "{text}");
    assert!(text.contains("alpine.json\tcreated\t"), "{text}");
}

/// A package inventory (SPDX, or CycloneDX without vulnerabilities) is stored as the
/// inventory of the image it names, and its re-match queued.
#[test]
fn an_sbom_is_stored_as_an_inventory() {
    let data = tempfile::tempdir().unwrap();
    let sbom = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scanvault-core/testdata/sbom/alpine.trivy.spdx.json");
    let out = run(
        bin().arg("ingest").arg(&sbom).env("DATA_DIR", data.path()),
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines().any(|l| l.contains(
            "inventory\t127.0.0.1:38809/e2e/alpine-app:1.0\t11 packages\tsha256:f623f5a4534ac6e8d52362c863a40d43b6017bf6aef9f1ba393226669aae4427"
        )),
        "{text}"
    );
}
