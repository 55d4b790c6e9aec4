//! Periodic download of the exploit feeds from `KEV_URL` and `EPSS_URL` (off unless set).
//! A feed is fetched when its last import (by any process, any way) is older than
//! `FEEDS_INTERVAL`, so replicas sharing a database do not all download it; a download that
//! fails or does not parse changes nothing and is tried again at the next round.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::store::{micros, Store};

#[derive(Debug, Clone)]
pub struct FeedSources {
    pub kev_url: Option<String>,
    pub epss_url: Option<String>,
    pub interval: Duration,
}

impl FeedSources {
    pub fn is_enabled(&self) -> bool {
        self.kev_url.is_some() || self.epss_url.is_some()
    }
}

/// The most a feed download may be.
const MAX_DOWNLOAD: usize = 128 << 20;

/// Refresh the feeds whose last import is older than the interval; which were imported.
pub async fn refresh_once(
    store: &Store,
    client: &reqwest::Client,
    sources: &FeedSources,
) -> anyhow::Result<Vec<&'static str>> {
    let now = chrono::Utc::now();
    let due_before = micros(now) - sources.interval.as_micros() as i64;
    let imported = store.feeds().feeds().await?;
    let due = |feed: &str| {
        !imported
            .iter()
            .any(|f| f.feed == feed && f.imported_at > due_before)
    };
    let mut done = vec![];
    if let (Some(url), true) = (&sources.kev_url, due("kev")) {
        let body = download(client, url).await?;
        let catalog = scanvault_core::feeds::parse_kev(&body)?;
        store
            .feeds()
            .replace_kev(&catalog, micros(now), Some("KEV_URL"))
            .await?;
        tracing::info!(entries = catalog.entries.len(), version = %catalog.catalog_version, "KEV catalog downloaded");
        done.push("kev");
    }
    if let (Some(url), true) = (&sources.epss_url, due("epss")) {
        let body = download(client, url).await?;
        let feed = scanvault_core::feeds::parse_epss(&body)?;
        store
            .feeds()
            .replace_epss(&feed, micros(now), Some("EPSS_URL"))
            .await?;
        tracing::info!(entries = feed.entries.len(), model = %feed.model_version, "EPSS scores downloaded");
        done.push("epss");
    }
    Ok(done)
}

async fn download(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let mut resp = client.get(url).send().await?.error_for_status()?;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
        anyhow::ensure!(
            body.len() <= MAX_DOWNLOAD,
            "the feed is larger than {} MiB",
            MAX_DOWNLOAD >> 20
        );
    }
    Ok(body)
}

/// Refresh every `interval / 24` (at least a minute) until `shutdown`.
pub async fn refresh_loop(store: Store, sources: FeedSources, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("ScanVault/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the feed download client cannot be built");
            return;
        }
    };
    let tick = (sources.interval / 24).max(Duration::from_secs(60));
    loop {
        if let Err(e) = refresh_once(&store, &client, &sources).await {
            tracing::warn!(error = %crate::redact::redact_error(&format!("{e:#}")), "downloading an exploit feed failed; the imported one stays");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}
