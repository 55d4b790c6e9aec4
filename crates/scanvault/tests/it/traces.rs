//! OpenTelemetry traces end to end: the release binary exports to a real OTLP/HTTP receiver
//! (an HTTP server here decoding the protobuf `ExportTraceServiceRequest` it is sent), and
//! the spans form the promised trees: an ingest under the caller's W3C `traceparent`, with
//! parsing, the transaction and its storage steps; a scan job attempt as one trace from the
//! claim through resolve, Trivy and store. The trace id is in the request's log lines.

use crate::cli::{bin, wait_with_timeout};
use crate::support::corpus_file;
use crate::worker::kit;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i32,
    attributes: HashMap<String, String>,
}

type Received = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP receiver on loopback: `POST /v1/traces` with a protobuf body.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, Received) {
    let spans: Received = Arc::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let sink = sink.clone();
            async move {
                assert_eq!(
                    headers.get("content-type").unwrap(),
                    "application/x-protobuf"
                );
                let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
                let mut got = sink.lock().unwrap();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|kv| kv.key == "service.name")
                        .map(|kv| format!("{:?}", kv.value));
                    assert!(service.unwrap_or_default().contains("scanvault"));
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            got.push(Span {
                                trace_id: hex(&s.trace_id),
                                span_id: hex(&s.span_id),
                                parent: hex(&s.parent_span_id),
                                name: s.name,
                                kind: s.kind,
                                attributes: s
                                    .attributes
                                    .into_iter()
                                    .map(|kv| (kv.key, format!("{:?}", kv.value)))
                                    .collect(),
                            });
                        }
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Wait until `done` holds for the spans received so far; give them back.
fn wait_for(spans: &Received, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = spans.lock().unwrap().clone();
        if done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not received; spans so far: {:#?}",
            got.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one span of `trace` named `name`.
fn one<'a>(spans: &'a [Span], trace: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == trace && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "{name} in {spans:#?}");
    found[0]
}

fn children<'a>(spans: &'a [Span], of: &Span) -> Vec<&'a str> {
    let mut names: Vec<&str> = spans
        .iter()
        .filter(|s| s.trace_id == of.trace_id && s.parent == of.span_id)
        .map(|s| s.name.as_str())
        .collect();
    names.sort_unstable();
    names
}

fn serve(endpoint: &str, dir: &std::path::Path) -> Command {
    let mut c = bin();
    c.arg("serve")
        .env("DATA_DIR", dir)
        .env("SERVER_HOST", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("AUTH_DISABLED", "true")
        .env("LOG_FORMAT", "json")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    c
}

/// Start the service; every line it writes to standard error is collected. Returns once it
/// listens, with its address.
pub(crate) fn start(c: &mut Command) -> (std::process::Child, Arc<Mutex<Vec<String>>>, String) {
    use std::io::BufRead as _;
    let mut child = c
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let addr = lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "listening")
            .and_then(|v| v["addr"].as_str().map(str::to_string));
        if addr.is_some() || Instant::now() > deadline {
            break addr;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("not listening: {:?}", lines.lock().unwrap());
    };
    (child, lines, addr)
}

pub(crate) fn stop(child: &mut std::process::Child) {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(wait_with_timeout(child, Duration::from_secs(30)).success());
}

#[test]
fn an_ingest_is_one_trace_under_the_callers_traceparent() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (endpoint, spans) = receiver(&rt);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, addr) = start(&mut serve(&endpoint, dir.path()));
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{addr}/scans"))
            .header("traceparent", format!("00-{trace}-{caller}-01"))
            .body(corpus_file("trivy/alpine-3.10_trivy-dev-head.json"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 201);
    let got = wait_for(&spans, "the ingest's spans", |s| {
        s.iter()
            .any(|s| s.trace_id == trace && s.name == "POST /scans")
    });
    let request = one(&got, trace, "POST /scans");
    assert_eq!(request.parent, caller, "a child of the caller's span");
    assert_eq!(request.kind, 2, "SPAN_KIND_SERVER");
    assert!(request.attributes["http.response.status_code"].contains("201"));
    assert_eq!(
        children(&got, request),
        ["compress", "parse", "store"],
        "{got:#?}"
    );
    let store = one(&got, trace, "store");
    assert_eq!(children(&got, store), ["db.transaction"]);
    let tx = one(&got, trace, "db.transaction");
    assert_eq!(children(&got, tx), ["store.new_scan"]);
    let new_scan = one(&got, trace, "store.new_scan");
    assert_eq!(
        children(&got, new_scan),
        ["store.catalog", "store.chains", "store.fleet"]
    );
    assert_eq!(
        children(&got, one(&got, trace, "store.fleet")),
        ["store.write"]
    );

    // The request's log line carries the trace id; a request without traceparent starts a
    // trace of its own.
    stop(&mut child);
    let lines = lines.lock().unwrap();
    let stored = lines
        .iter()
        .find(|l| l.contains("\"report stored\""))
        .unwrap_or_else(|| panic!("no 'report stored' line in {lines:?}"));
    assert!(
        stored.contains(&format!("\"trace_id\":\"{trace}\"")),
        "{stored}"
    );
}

#[test]
fn a_scan_job_attempt_is_one_trace_from_claim_to_store() {
    let Some(kit) = kit() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (endpoint, spans) = receiver(&rt);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("trivy-cache");
    crate::worker::copy_dir(&kit.cache, &cache);
    let mut cmd = serve(&endpoint, dir.path());
    cmd.env("WORKER_CONCURRENCY", "1")
        .env("JOB_POLL_INTERVAL", "200ms")
        .env("TRIVY_PATH", &kit.trivy)
        .env("TRIVY_CACHE_DIR", &cache)
        .env("TRIVY_EXTRA_ARGS", "--skip-db-update --offline-scan")
        .env("REGISTRY_INSECURE_HOSTS", &kit.registry);
    let (mut child, _lines, addr) = start(&mut cmd);
    let job: serde_json::Value = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{addr}/scan-jobs"))
            .json(&serde_json::json!({ "image": kit.alpine }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let id = job["ID"].as_str().unwrap_or_else(|| panic!("{job}"));
    // The attempt that stored the scan (an earlier one may have met a registry hiccup).
    let stored_by = |spans: &[Span]| -> Option<Span> {
        spans
            .iter()
            .find(|r| {
                r.name == "scan job"
                    && r.attributes.get("job").is_some_and(|j| j.contains(id))
                    && spans
                        .iter()
                        .any(|s| s.name == "ingest" && s.parent == r.span_id)
            })
            .cloned()
    };
    let got = wait_for(&spans, "the job's trace", |s| {
        stored_by(s).is_some_and(|root| {
            s.iter()
                .any(|x| x.trace_id == root.trace_id && x.name == "db.transaction")
        })
    });
    let root = &stored_by(&got).unwrap();
    assert_eq!(root.parent, "", "a trace of its own");
    let trace = root.trace_id.clone();
    assert_eq!(
        children(&got, root),
        ["claim", "ingest", "inventory", "resolve", "trivy"],
        "{got:#?}"
    );
    let ingest = one(&got, &trace, "ingest");
    assert_eq!(children(&got, ingest), ["compress", "parse", "store"]);
    assert_eq!(
        children(&got, one(&got, &trace, "store")),
        ["db.transaction"]
    );
    stop(&mut child);
}
