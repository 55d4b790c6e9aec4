//! Exploit feeds (KEV, EPSS): each import replaces its table whole in one transaction;
//! lookups by vulnerability id join them to findings and CVE listings.

use async_trait::async_trait;
use scanvault_core::feeds::{EpssFeed, KevCatalog};
use std::collections::HashMap;

use super::StoreError;

/// What the KEV catalog says about a vulnerability.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KevRow {
    pub vulnerability_id: String,
    pub date_added: String,
    pub due_date: Option<String>,
    pub known_ransomware: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EpssRow {
    pub vulnerability_id: String,
    pub score: f64,
    pub percentile: f64,
}

/// The exploit data of one vulnerability.
#[derive(Debug, Clone, Default)]
pub struct Exploit {
    pub kev: Option<KevRow>,
    pub epss: Option<EpssRow>,
}

/// The last import of a feed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedRow {
    pub feed: String,
    pub version: String,
    pub released: String,
    pub entries: i64,
    pub imported_at: i64,
    pub imported_by: Option<String>,
}

#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Replace the KEV table with `catalog`.
    async fn replace_kev(
        &self,
        catalog: &KevCatalog,
        now: i64,
        by: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Replace the EPSS table with `feed`.
    async fn replace_epss(
        &self,
        feed: &EpssFeed,
        now: i64,
        by: Option<&str>,
    ) -> Result<(), StoreError>;
    async fn feeds(&self) -> Result<Vec<FeedRow>, StoreError>;
    /// KEV and EPSS of the vulnerabilities `ids` (those the feeds name).
    async fn exploits(&self, ids: &[String]) -> Result<HashMap<String, Exploit>, StoreError>;
}

/// Rows per insert statement.
pub(crate) const CHUNK: usize = 5_000;

pub(crate) const UPSERT_IMPORT: &str =
    "INSERT INTO feed_imports (feed, version, released, entries, \
     imported_at, imported_by) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (feed) DO UPDATE SET \
     version = excluded.version, released = excluded.released, entries = excluded.entries, \
     imported_at = excluded.imported_at, imported_by = excluded.imported_by";
pub(crate) const LIST_FEEDS: &str =
    "SELECT feed, version, released, entries, imported_at, imported_by FROM feed_imports ORDER BY feed";

pub(crate) fn merge(kev: Vec<KevRow>, epss: Vec<EpssRow>) -> HashMap<String, Exploit> {
    let mut out: HashMap<String, Exploit> = HashMap::new();
    for k in kev {
        let id = k.vulnerability_id.clone();
        out.entry(id).or_default().kev = Some(k);
    }
    for e in epss {
        let id = e.vulnerability_id.clone();
        out.entry(id).or_default().epss = Some(e);
    }
    out
}
