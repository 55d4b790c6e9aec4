//! Load generator for ScanVault's HTTP API (see docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p scanvault --example bench -- load   --url URL --file fleet.ndjson [--clients 8] [--rename P [--scans-per-image 3]]
//! cargo run --release -p scanvault --example bench -- ingest --url URL --file typical.ndjson [--clients 8] [--prefix p]
//! cargo run --release -p scanvault --example bench -- single --url URL --file big.ndjson [--repeat 10]
//! cargo run --release -p scanvault --example bench -- query  --url URL [--clients 16] [--seconds 10] [--to RFC3339]
//! cargo run --release -p scanvault --example bench -- mixed  --url URL --file typical.ndjson [--clients 8] [--readers 4] [--prefix p]
//! cargo run --release -p scanvault --example bench -- parse  --file typical.ndjson [--rounds 5]
//! cargo run --release -p scanvault --example bench -- ui     --url URL [--clients 4] [--seconds 10] [--only LABEL]
//! ```
//!
//! `load` streams NDJSON reports (one per line; `-` = stdin, e.g. piped from
//! `gen_fleet.py --ndjson`) to `POST /scans`. `ingest` reads the file into memory first and
//! stores every report under a fresh image name (`?image=<prefix>-<n>`), so it measures the
//! ingest path only. `single` posts the first report sequentially under fresh names and
//! prints each latency. `query` drives each analytics endpoint in turn with concurrent
//! clients for a fixed time. `mixed` runs `ingest` while `--readers` clients request the
//! five analytics endpoints in turn until the last report is stored, and prints the
//! latencies of both. `parse` runs the report parser alone over every report of the
//! file, in one thread, `--rounds` times (no server; with the system allocator, where the
//! service uses mimalloc). `ui` requests each dashboard page in turn (a service with
//! `AUTH_DISABLED=true`, so no session is needed), the image and CVE pages over the newest
//! scans and the most widespread CVEs. Every command prints throughput and p50/p95/p99.

use std::io::BufRead;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name)
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn report(label: &str, mut lat: Vec<Duration>, wall: Duration, errors: usize) {
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    println!(
        "{label:<28} n={:<7} errors={errors:<4} {:>9.1}/s  p50={:>7.2}ms  p95={:>7.2}ms  p99={:>7.2}ms  max={:>7.2}ms",
        lat.len(),
        lat.len() as f64 / wall.as_secs_f64(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        lat.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
    );
}

/// A query string and a body to POST.
type Post = (String, Vec<u8>);

async fn post_all(
    client: reqwest::Client,
    url: String,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Post>>>,
) -> (Vec<Duration>, usize) {
    let mut lat = vec![];
    let mut errors = 0;
    loop {
        let next = rx.lock().await.recv().await;
        let Some((query, body)) = next else { break };
        let t = Instant::now();
        let r = client
            .post(format!("{url}/scans{query}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes().await;
                lat.push(t.elapsed());
            }
            Ok(resp) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!(
                        "POST failed: {} {}",
                        resp.status(),
                        resp.text().await.unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("POST failed: {e}");
                }
            }
        }
    }
    (lat, errors)
}

async fn run_posts(
    url: &str,
    clients: usize,
    label: &str,
    feed: impl FnOnce(tokio::sync::mpsc::Sender<(String, Vec<u8>)>) + Send + 'static,
) {
    let client = reqwest::Client::new();
    let (tx, rx) = tokio::sync::mpsc::channel(clients * 4);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let start = Instant::now();
    let feeder = tokio::task::spawn_blocking(move || feed(tx));
    let mut tasks = vec![];
    for _ in 0..clients {
        tasks.push(tokio::spawn(post_all(
            client.clone(),
            url.to_string(),
            rx.clone(),
        )));
    }
    let mut lat = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    feeder.await.unwrap();
    report(label, lat, start.elapsed(), errors);
}

/// Posts every body under a fresh image name, `<prefix>-<n>`, and prints the report.
async fn ingest_fresh(url: &str, clients: usize, bodies: Vec<Vec<u8>>, prefix: String) {
    run_posts(url, clients, "ingest POST /scans", move |tx| {
        for (i, b) in bodies.into_iter().enumerate() {
            if tx
                .blocking_send((format!("?image={prefix}-{i}"), b))
                .is_err()
            {
                break;
            }
        }
    })
    .await;
}

fn read_lines(path: &str) -> Box<dyn BufRead + Send> {
    if path == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(path).expect("open --file"),
        ))
    }
}

/// Every non-empty line of an NDJSON file (`-` = stdin): one report each.
fn read_reports(path: &str) -> Vec<Vec<u8>> {
    read_lines(path)
        .lines()
        .map(|l| l.expect("read").into_bytes())
        .filter(|l| !l.is_empty())
        .collect()
}

async fn query_endpoint(
    client: &reqwest::Client,
    label: &str,
    uris: Vec<String>,
    clients: usize,
    seconds: u64,
) {
    let uris = Arc::new(uris);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = vec![];
    for c in 0..clients {
        let client = client.clone();
        let uris = uris.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            let mut errors = 0;
            let mut i = c;
            while Instant::now() < deadline {
                let uri = &uris[i % uris.len()];
                i += 1;
                timed_get(&client, uri, &mut lat, &mut errors).await;
            }
            (lat, errors)
        }));
    }
    let mut lat = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    report(label, lat, start.elapsed(), errors);
}

/// One GET: its latency goes to `lat` when it succeeds; otherwise it counts in `errors`
/// (the first two are printed).
async fn timed_get(
    client: &reqwest::Client,
    uri: &str,
    lat: &mut Vec<Duration>,
    errors: &mut usize,
) {
    let t = Instant::now();
    let failure = match client.get(uri).send().await {
        Ok(r) if r.status().is_success() => {
            let _ = r.bytes().await;
            lat.push(t.elapsed());
            return;
        }
        Ok(r) => r.status().to_string(),
        Err(e) => e.to_string(),
    };
    *errors += 1;
    if *errors <= 2 {
        eprintln!("GET {uri}: {failure}");
    }
}

/// The five analytics requests the benchmark times, each with the URIs it cycles through
/// (`cve images` asks for each of the 20 most widespread CVEs in turn). `--to` (RFC 3339)
/// ends the 90-day trend.
async fn analytics_uris(
    client: &reqwest::Client,
    url: &str,
    args: &[String],
) -> Vec<(&'static str, Vec<String>)> {
    let to = arg(args, "--to").unwrap_or_else(|| "2025-02-15T00:00:00Z".into());
    let to_t = chrono::DateTime::parse_from_rfc3339(&to).expect("--to RFC 3339");
    let from = (to_t - chrono::Duration::days(90)).to_rfc3339();
    let a = format!("{url}/analytics/vulnerabilities");
    let top: serde_json::Value = client
        .get(format!("{a}/top-cves?limit=20"))
        .send()
        .await
        .expect("top-cves")
        .json()
        .await
        .expect("json");
    let ids: Vec<String> = top["CVEs"]
        .as_array()
        .expect("CVEs")
        .iter()
        .map(|c| c["CVEID"].as_str().unwrap().to_string())
        .collect();
    println!(
        "most widespread CVE {} in {} images",
        ids.first().cloned().unwrap_or_default(),
        top["CVEs"][0]["ImageCount"]
    );
    let enc = |s: &str| s.replace(':', "%3A").replace('+', "%2B");
    // Scans of the fleet (the newest 200) for the diff and history requests.
    let scans: serde_json::Value = client
        .get(format!("{url}/scans/all?limit=200&include=summary"))
        .send()
        .await
        .expect("scans")
        .json()
        .await
        .expect("json");
    let scans = scans["Items"].as_array().cloned().unwrap_or_default();
    let findings: Vec<i64> = scans
        .iter()
        .filter_map(|s| s["VulnTotal"].as_i64())
        .collect();
    println!(
        "diff and history over {} scans of {} findings on average",
        scans.len(),
        findings.iter().sum::<i64>() / (findings.len().max(1) as i64)
    );
    let diffs: Vec<String> = scans
        .iter()
        .map(|s| {
            format!(
                "{url}/scans/{}/diff?against=previous",
                s["ID"].as_str().unwrap()
            )
        })
        .collect();
    let histories: Vec<String> = scans
        .iter()
        .map(|s| {
            format!(
                "{url}/images/history?image={}&tag={}&limit=20",
                s["ImageName"].as_str().unwrap(),
                s["ImageTag"].as_str().unwrap()
            )
        })
        .collect();
    vec![
        ("summary", vec![format!("{a}/summary")]),
        ("top-cves limit=20", vec![format!("{a}/top-cves?limit=20")]),
        (
            "cve images limit=100",
            ids.iter()
                .map(|id| format!("{a}/cve/{id}/images?limit=100"))
                .collect(),
        ),
        ("fixable limit=100", vec![format!("{a}/fixable?limit=100")]),
        (
            "trends day 90 days",
            vec![format!(
                "{a}/trends?interval=day&from={}&to={}",
                enc(&from),
                enc(&to)
            )],
        ),
        ("diff against previous", diffs),
        ("history limit=20", histories),
    ]
}

/// The dashboard's pages, with the images and CVEs the fleet has.
async fn ui_uris(client: &reqwest::Client, url: &str) -> Vec<(&'static str, Vec<String>)> {
    let get = |path: String| {
        let client = client.clone();
        async move {
            client
                .get(path)
                .send()
                .await
                .expect("GET")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    let top = get(format!("{url}/analytics/vulnerabilities/top-cves?limit=20")).await;
    let cves: Vec<String> = top["CVEs"]
        .as_array()
        .expect("CVEs")
        .iter()
        .map(|c| format!("{url}/ui/cve/{}", c["CVEID"].as_str().unwrap()))
        .collect();
    let scans = get(format!("{url}/scans/all?limit=200&include=summary")).await;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let images: Vec<String> = scans["Items"]
        .as_array()
        .expect("Items")
        .iter()
        .map(|s| {
            format!(
                "{url}/ui/image?name={}&tag={}",
                enc(s["ImageName"].as_str().unwrap()),
                enc(s["ImageTag"].as_str().unwrap())
            )
        })
        .collect();
    let ui = format!("{url}/ui");
    vec![
        (
            "ui fleet",
            vec![format!("{ui}/"), format!("{ui}/?interval=week")],
        ),
        ("ui fleet by risk", vec![format!("{ui}/?order=risk")]),
        (
            "ui images",
            ["newest", "name", "critical", "risk"]
                .iter()
                .map(|s| format!("{ui}/images?sort={s}"))
                .collect(),
        ),
        ("ui image", images),
        ("ui cve", cves),
        ("ui jobs", vec![format!("{ui}/jobs")]),
        ("ui suppressions", vec![format!("{ui}/suppressions")]),
        ("ui policies", vec![format!("{ui}/policies")]),
        ("ui compliance", vec![format!("{ui}/compliance")]),
    ]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cmd = args.get(1).cloned().unwrap_or_default();
    let url = arg(&args, "--url").unwrap_or_else(|| "http://127.0.0.1:8080".into());
    match cmd.as_str() {
        "load" => {
            let file = arg(&args, "--file").expect("--file");
            let clients = num(&args, "--clients", 8) as usize;
            // `--rename P`: store the reports of the file's n-th image (its lines come in runs
            // of `--scans-per-image`) as image `P-n`, so one generated fleet can be loaded
            // several times as distinct images (a larger fleet with the same distributions).
            let rename = arg(&args, "--rename");
            let per_image = num(&args, "--scans-per-image", 3).max(1) as usize;
            run_posts(&url, clients, "load POST /scans", move |tx| {
                let mut n = 0usize;
                for line in read_lines(&file).lines() {
                    let line = line.expect("read");
                    if line.trim().is_empty() {
                        continue;
                    }
                    let query = match &rename {
                        Some(p) => format!("?image={p}-{}", n / per_image),
                        None => String::new(),
                    };
                    n += 1;
                    if tx.blocking_send((query, line.into_bytes())).is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        "ingest" => {
            let file = arg(&args, "--file").expect("--file");
            let clients = num(&args, "--clients", 8) as usize;
            let prefix = arg(&args, "--prefix").unwrap_or_else(|| "bench-ingest".into());
            let bodies = read_reports(&file);
            let findings: usize = bodies
                .iter()
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .matches("\"VulnerabilityID\"")
                        .count()
                })
                .sum();
            println!(
                "{} reports in memory, {:.0} findings each on average",
                bodies.len(),
                findings as f64 / bodies.len().max(1) as f64
            );
            ingest_fresh(&url, clients, bodies, prefix).await;
        }
        "single" => {
            let file = arg(&args, "--file").expect("--file");
            let repeat = num(&args, "--repeat", 10);
            let prefix = arg(&args, "--prefix").unwrap_or_else(|| "bench-single".into());
            let body = read_lines(&file)
                .lines()
                .next()
                .expect("one report")
                .expect("read")
                .into_bytes();
            let client = reqwest::Client::new();
            let mut lat = vec![];
            let start = Instant::now();
            for i in 0..repeat {
                let t = Instant::now();
                let r = client
                    .post(format!("{url}/scans?image={prefix}-{i}"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("POST");
                let status = r.status();
                let _ = r.bytes().await;
                assert!(status.is_success(), "POST failed: {status}");
                lat.push(t.elapsed());
                println!(
                    "  {:>3}: {:.1} ms",
                    i,
                    lat.last().unwrap().as_secs_f64() * 1000.0
                );
            }
            report("single POST /scans", lat, start.elapsed(), 0);
        }
        "parse" => {
            let file = arg(&args, "--file").expect("--file");
            let rounds = num(&args, "--rounds", 5).max(1);
            let bodies = read_reports(&file);
            let bytes: usize = bodies.iter().map(Vec::len).sum();
            let mut lat = Vec::with_capacity(bodies.len() * rounds as usize);
            let start = Instant::now();
            for _ in 0..rounds {
                for b in &bodies {
                    let t = Instant::now();
                    let r = scanvault_core::trivy::parse(b).expect("a report the parser accepts");
                    std::hint::black_box(r);
                    lat.push(t.elapsed());
                }
            }
            let wall = start.elapsed();
            println!(
                "{} reports, {:.0} KB each on average: {:.0} MB/s",
                bodies.len(),
                bytes as f64 / bodies.len().max(1) as f64 / 1024.0,
                (bytes as f64 * rounds as f64) / wall.as_secs_f64() / 1e6
            );
            report("parse", lat, wall, 0);
        }
        "query" => {
            let clients = num(&args, "--clients", 16) as usize;
            let seconds = num(&args, "--seconds", 10);
            let client = reqwest::Client::new();
            let endpoints = analytics_uris(&client, &url, &args).await;
            println!("{clients} clients, {seconds} s per endpoint");
            let only = arg(&args, "--only");
            for (label, uris) in endpoints {
                if only.as_deref().is_some_and(|o| !label.starts_with(o)) {
                    continue;
                }
                query_endpoint(&client, label, uris, clients, seconds).await;
            }
        }
        "ui" => {
            let clients = num(&args, "--clients", 4) as usize;
            let seconds = num(&args, "--seconds", 10);
            let client = reqwest::Client::new();
            println!("{clients} clients, {seconds} s per page");
            let only = arg(&args, "--only");
            for (label, uris) in ui_uris(&client, &url).await {
                if only.as_deref().is_some_and(|o| !label.starts_with(o)) {
                    continue;
                }
                query_endpoint(&client, label, uris, clients, seconds).await;
            }
        }
        "mixed" => {
            let file = arg(&args, "--file").expect("--file");
            let clients = num(&args, "--clients", 8) as usize;
            let readers = num(&args, "--readers", 4) as usize;
            let prefix = arg(&args, "--prefix").unwrap_or_else(|| "bench-mixed".into());
            let client = reqwest::Client::new();
            let endpoints = Arc::new(analytics_uris(&client, &url, &args).await);
            let bodies = read_reports(&file);
            println!(
                "{} reports with {clients} clients, while {readers} clients read the five endpoints in turn",
                bodies.len()
            );
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut tasks = vec![];
            for c in 0..readers {
                let (client, endpoints, stop) = (client.clone(), endpoints.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat: Vec<(Vec<Duration>, usize)> = vec![(vec![], 0); endpoints.len()];
                    let mut i = c;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let e = i % endpoints.len();
                        let uris = &endpoints[e].1;
                        let uri = &uris[(i / endpoints.len()) % uris.len()];
                        i += 1;
                        let (l, errors) = &mut lat[e];
                        timed_get(&client, uri, l, errors).await;
                    }
                    lat
                }));
            }
            let start = Instant::now();
            ingest_fresh(&url, clients, bodies, prefix).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let wall = start.elapsed();
            let mut all: Vec<(Vec<Duration>, usize)> = vec![(vec![], 0); endpoints.len()];
            for t in tasks {
                for (sum, (l, e)) in all.iter_mut().zip(t.await.unwrap()) {
                    sum.0.extend(l);
                    sum.1 += e;
                }
            }
            for ((label, _), (lat, errors)) in endpoints.iter().zip(all) {
                report(label, lat, wall, errors);
            }
        }
        _ => {
            eprintln!(
                "usage: bench load|ingest|single|query|mixed|parse [options]; see the file's docs"
            );
            std::process::exit(2);
        }
    }
}
