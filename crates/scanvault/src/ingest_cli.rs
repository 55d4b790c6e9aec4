//! `scanvault ingest PATH…`: reports from files, directories and standard input, stored in
//! the database or posted to a running service (`--server`), with a progress bar on a
//! terminal, a line per file otherwise, and a summary.

use anyhow::Context;
use secrecy::ExposeSecret;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::IngestArgs;
use crate::ingest::{IngestOverrides, IngestSettings, IngestedBody};
use crate::store::scans::{ScanRow, ScanSource};
use crate::store::Store;

/// One input: a file, or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "-".into(),
        }
    }

    fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Input::File(p) => std::fs::read(p),
            Input::Stdin => {
                let mut b = vec![];
                std::io::stdin().read_to_end(&mut b)?;
                Ok(b)
            }
        }
    }
}

/// The inputs the arguments name: files as given, every `*.json` below a directory (in
/// name order), `-` once. A path that cannot be read is kept, to be refused with its reason.
pub fn inputs(paths: &[PathBuf]) -> Vec<Input> {
    fn walk(dir: &Path, out: &mut Vec<Input>) {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => {
                out.push(Input::File(dir.to_path_buf()));
                return;
            }
        };
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            {
                out.push(Input::File(p));
            }
        }
    }
    let mut out = vec![];
    for p in paths {
        if p.as_os_str() == "-" {
            if !out.contains(&Input::Stdin) {
                out.push(Input::Stdin);
            }
        } else if p.is_dir() {
            walk(p, &mut out);
        } else {
            out.push(Input::File(p.clone()));
        }
    }
    out
}

/// What became of one input.
#[derive(Debug, Clone, Default)]
pub struct FileOutcome {
    pub created: usize,
    pub updated: usize,
    /// Why it was not stored.
    pub refused: Option<String>,
    /// One line per scan: `created|updated <image:tag> <n> findings <id>`.
    pub scans: Vec<String>,
}

fn scan_line(created: bool, image: &str, tag: &str, findings: i64, id: &str) -> String {
    let what = if created { "created" } else { "updated" };
    let reference = scanvault_core::image::name_and_tag(image, tag);
    format!("{what}\t{reference}\t{findings} findings\t{id}")
}

/// A stored inventory (SBOM), as a summary line.
fn inventory_line(image: &str, tag: &str, packages: i64, digest: &str) -> String {
    let reference = scanvault_core::image::name_and_tag(image, tag);
    format!("inventory\t{reference}\t{packages} packages\t{digest}")
}

fn row_line(created: bool, s: &ScanRow) -> String {
    scan_line(
        created,
        &s.image_name,
        &s.image_tag,
        s.counts().total(),
        &s.id,
    )
}

/// Where reports go.
enum Sink {
    Store {
        store: Store,
        settings: IngestSettings,
    },
    Server {
        client: reqwest::Client,
        url: String,
        key: Option<String>,
        attempts: u32,
    },
}

impl Sink {
    async fn send(&self, raw: Vec<u8>, overrides: &IngestOverrides) -> FileOutcome {
        let inventory = crate::inventory::is_inventory(&raw);
        match self {
            Sink::Store { store, .. } if inventory => {
                let mut o = FileOutcome::default();
                let stored = crate::inventory::store(
                    store,
                    &raw,
                    overrides.image.as_deref().unwrap_or_default(),
                    overrides.tag.as_deref().unwrap_or_default(),
                    overrides.digest.as_deref().unwrap_or_default(),
                    crate::store::monitor::InventorySource::Ingest,
                )
                .await;
                match stored {
                    Ok(s) => {
                        if let Err(e) = crate::inventory::queue_rematch(store, &s, None, 3).await {
                            o.refused =
                                Some(format!("stored, but its re-match was not queued: {e}"));
                            return o;
                        }
                        o.record(
                            true,
                            inventory_line(
                                &s.image_name,
                                &s.image_tag,
                                s.inventory.components.len() as i64,
                                &s.image_digest,
                            ),
                        );
                    }
                    Err(e) => o.refused = Some(e.to_string()),
                }
                o
            }
            Sink::Store { store, settings } => {
                let r = crate::ingest::ingest_body(
                    store,
                    settings,
                    raw.into(),
                    overrides.clone(),
                    ScanSource::Ingest,
                    None,
                )
                .await;
                let mut o = FileOutcome::default();
                match r {
                    Ok(IngestedBody::One(i)) => o.record(
                        i.outcome.created,
                        row_line(i.outcome.created, &i.outcome.scan),
                    ),
                    Ok(IngestedBody::Cluster { images, .. }) => {
                        for (i, _) in images {
                            o.record(
                                i.outcome.created,
                                row_line(i.outcome.created, &i.outcome.scan),
                            );
                        }
                    }
                    Err(e) => o.refused = Some(format!("{:#}", anyhow::Error::new(e))),
                }
                o
            }
            Sink::Server {
                client,
                url,
                key,
                attempts,
            } => {
                let path = if inventory { "sboms" } else { "scans" };
                post(client, url, path, key.as_deref(), *attempts, raw, overrides).await
            }
        }
    }
}

impl FileOutcome {
    fn record(&mut self, created: bool, line: String) {
        if created {
            self.created += 1;
        } else {
            self.updated += 1;
        }
        self.scans.push(line);
    }
}

/// How long to wait before attempt `n` (1-based) after a 429/503 or a connection error:
/// the answer's `Retry-After` (seconds, at most a minute), else 1, 2, 4, … seconds.
pub fn retry_delay(retry_after: Option<&str>, attempt: u32) -> Duration {
    retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(60)))
        .unwrap_or_else(|| Duration::from_secs(1 << attempt.saturating_sub(1).min(5)))
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    key: Option<&str>,
    attempts: u32,
    raw: Vec<u8>,
    overrides: &IngestOverrides,
) -> FileOutcome {
    let mut query: Vec<(&str, &str)> = vec![];
    for (k, v) in [
        ("image", &overrides.image),
        ("tag", &overrides.tag),
        ("digest", &overrides.digest),
    ] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    let endpoint = format!("{}/{path}", url.trim_end_matches('/'));
    let body = bytes::Bytes::from(raw);
    let mut o = FileOutcome::default();
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        let mut req = client
            .post(&endpoint)
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (status, retry_after, text) = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                (
                    Some(status),
                    retry_after,
                    resp.text().await.unwrap_or_default(),
                )
            }
            Err(e) => (None, None, format!("cannot reach {url}: {e}")),
        };
        let retry = match status {
            None => true,
            Some(s) => s.as_u16() == 429 || s.as_u16() == 503,
        };
        if !retry {
            let s = status.unwrap_or_default();
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if s.is_success() {
                let created = s.as_u16() == 201;
                let lines = |v: &serde_json::Value, created: bool| {
                    scan_line(
                        created,
                        v["ImageName"].as_str().unwrap_or_default(),
                        v["ImageTag"].as_str().unwrap_or_default(),
                        v["VulnTotal"].as_i64().unwrap_or_default(),
                        v["ID"].as_str().unwrap_or_default(),
                    )
                };
                if doc.get("Packages").is_some() {
                    o.record(
                        true,
                        inventory_line(
                            doc["ImageName"].as_str().unwrap_or_default(),
                            doc["ImageTag"].as_str().unwrap_or_default(),
                            doc["Packages"].as_i64().unwrap_or_default(),
                            doc["ImageDigest"].as_str().unwrap_or_default(),
                        ),
                    );
                    return o;
                }
                match doc["Scans"].as_array() {
                    // A cluster report: which scans are new is not told one by one.
                    Some(scans) => {
                        o.created = doc["Created"].as_u64().unwrap_or(0) as usize;
                        o.updated = doc["Updated"].as_u64().unwrap_or(0) as usize;
                        o.scans = scans.iter().map(|v| lines(v, created)).collect();
                    }
                    None => o.record(created, lines(&doc, created)),
                }
            } else {
                let why = doc["error"].as_str().map_or(text.clone(), str::to_string);
                o.refused = Some(format!("{s}: {why}"));
            }
            return o;
        }
        last = match status {
            Some(s) => format!("{s}: {}", text.trim()),
            None => text,
        };
        if attempt < attempts {
            tokio::time::sleep(retry_delay(retry_after.as_deref(), attempt)).await;
        }
    }
    o.refused = Some(format!("gave up after {attempts} attempts: {last}"));
    o
}

/// `scanvault ingest`: every input in turn; an error only when some input was not stored.
pub async fn run(args: IngestArgs) -> anyhow::Result<()> {
    let inputs = inputs(&args.files);
    let overrides = IngestOverrides {
        image: args
            .image
            .clone()
            .map(|s| scanvault_core::image::familiar_name(s.trim())),
        tag: args.tag.clone(),
        digest: args.digest.clone(),
    };
    let sink = match &args.server {
        Some(url) => {
            let key = client_key(&args.api_key, &args.api_key_file)?;
            Sink::Server {
                client: reqwest::Client::builder()
                    .user_agent(concat!("scanvault/", env!("CARGO_PKG_VERSION")))
                    .timeout(Duration::from_secs(300))
                    .build()?,
                url: url.clone(),
                key,
                attempts: args.attempts,
            }
        }
        None => {
            args.db.validate().map_err(anyhow::Error::msg)?;
            let store = Store::connect(&args.db.store_options()).await?;
            store.migrate().await?;
            Sink::Store {
                store,
                settings: IngestSettings {
                    compliance_fail_on: args.ingest.compliance_fail_severity,
                    max_findings: args.ingest.max_findings_per_report,
                },
            }
        }
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new(inputs.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let mut outcomes: Vec<(String, FileOutcome)> = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let name = input.name();
        if let Some(pb) = &bar {
            pb.set_message(name.clone());
        }
        let outcome = match input.read() {
            Ok(raw) => sink.send(raw, &overrides).await,
            Err(e) => FileOutcome {
                refused: Some(format!("cannot read it: {e}")),
                ..Default::default()
            },
        };
        let lines: Vec<String> = match &outcome.refused {
            Some(why) => vec![format!("{name}\trefused\t{why}")],
            None => outcome
                .scans
                .iter()
                .map(|l| format!("{name}\t{l}"))
                .collect(),
        };
        for l in lines {
            match &bar {
                Some(pb) => pb.println(&l),
                None => crate::outln!("{l}"),
            }
        }
        if let Some(pb) = &bar {
            pb.inc(1);
        }
        outcomes.push((name, outcome));
    }
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    if let Sink::Store { store, .. } = sink {
        store.close().await;
    }
    let created: usize = outcomes.iter().map(|(_, o)| o.created).sum();
    let updated: usize = outcomes.iter().map(|(_, o)| o.updated).sum();
    let refused: Vec<&(String, FileOutcome)> = outcomes
        .iter()
        .filter(|(_, o)| o.refused.is_some())
        .collect();
    crate::outln!(
        "{} files: {created} scans created, {updated} updated, {} files refused",
        outcomes.len(),
        refused.len()
    );
    for (name, o) in &refused {
        crate::outln!(
            "refused\t{name}\t{}",
            o.refused.as_deref().unwrap_or_default()
        );
    }
    if outcomes.is_empty() {
        anyhow::bail!("no report files found in the paths given");
    }
    if !refused.is_empty() {
        anyhow::bail!(
            "{} of {} files were not stored",
            refused.len(),
            outcomes.len()
        );
    }
    Ok(())
}

/// The API key a client command sends: the file's content (trimmed) if given, else
/// SCANVAULT_API_KEY.
pub fn client_key(
    key: &Option<secrecy::SecretString>,
    file: &Option<std::path::PathBuf>,
) -> anyhow::Result<Option<String>> {
    Ok(match file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("reading the API key file {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => key.as_ref().map(|k| k.expose_secret().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_and_capped_else_backoff() {
        assert_eq!(retry_delay(Some("3"), 1), Duration::from_secs(3));
        assert_eq!(retry_delay(Some("3600"), 1), Duration::from_secs(60));
        assert_eq!(retry_delay(None, 1), Duration::from_secs(1));
        assert_eq!(retry_delay(Some("soon"), 3), Duration::from_secs(4));
    }

    #[test]
    fn directories_give_their_json_files_in_order() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        for f in ["b.json", "a.JSON", "notes.txt", "sub/c.json"] {
            std::fs::write(d.path().join(f), "{}").unwrap();
        }
        let got = inputs(&[d.path().to_path_buf(), "-".into(), "-".into()]);
        let names: Vec<String> = got
            .iter()
            .map(|i| match i {
                Input::File(p) => p.strip_prefix(d.path()).unwrap().display().to_string(),
                Input::Stdin => "-".into(),
            })
            .collect();
        assert_eq!(names, ["a.JSON", "b.json", "sub/c.json", "-"]);
    }
}
