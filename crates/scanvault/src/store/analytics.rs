//! Fleet analytics (DESIGN.md, "Analytics semantics"): the capability, and the background
//! compaction.
//!
//! The fleet is the set of image references `(image_name, image_tag)`, each at its latest
//! observation (`scanvault_core::fleet`). Counting that from the findings per request takes
//! seconds at 10,000 images, so ingest and deletion keep, in their own transaction
//! (`store/ingest.rs`, ADR 0005):
//!
//! - `fleet_refs`: each reference's latest observation (its scan, findings version, time and
//!   counts). Its row is also the per-reference lock: every change of a reference first
//!   upserts the row, so concurrent changes of one reference serialise. Each reference has
//!   a number (`id`), given when it joins the fleet (ADR 0007).
//! - `fleet_findings`: the findings each reference shows, replaced when it shows another
//!   scan or another version of its scan's findings. On PostgreSQL one index serves both
//!   listings (ADR 0009).
//! - append-only deltas (`fleet_cve_deltas`, `fleet_total_deltas`, `fleet_daily_deltas`):
//!   per-CVE and fleet-wide counts, and the per-day changes of the fleet's counts that trends
//!   sum. Ingests only insert them, so the most widespread CVE is not a hot row. Reads add
//!   the pending deltas to the compacted tables (`fleet_cves`, `fleet_totals`,
//!   `fleet_daily`) in one snapshot, so answers are exact; [`AnalyticsStore::compact`]
//!   folds them in and [`compaction_loop`] runs it in the background (ADR 0006).
//!
//! Questions about the past (`to` earlier than the newest observation) or scoped to images
//! or to `from` read the observations, and the findings versions they had: correct, slower.

use async_trait::async_trait;
use scanvault_core::report::Severity;
use std::time::Duration;

pub use scanvault_core::fleet::{Counts, FleetSummary, Interval, TopCve, TrendPoint, DAY_US};

use super::{Store, StoreError};

/// How often the background compactor folds deltas in (ADR 0006).
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(2);
/// Delta tables larger than this (in pages) are truncated once ingest is quiet (ADR 0014).
pub const SHRINK_PAGES: i64 = 16;
/// The pause after an attempt to shrink the delta tables that failed or left one large.
pub(crate) const SHRINK_RETRY: Duration = Duration::from_secs(60);

/// Which part of the fleet a question is about.
#[derive(Debug, Clone, Default)]
pub struct FleetScope {
    pub image: Option<String>,
    /// Leave out references whose latest observation is older (microseconds).
    pub from: Option<i64>,
    /// As of this time (microseconds); `None` = now.
    pub to: Option<i64>,
}

impl FleetScope {
    /// The whole current fleet, which the maintained tables answer.
    pub fn is_whole_current_fleet(&self) -> bool {
        self.image.is_none() && self.from.is_none() && self.to.is_none()
    }
}

/// One finding of a fleet reference.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetFinding {
    pub image_name: String,
    pub image_tag: String,
    pub scan_id: String,
    pub scanned_at: i64,
    pub vulnerability_id: String,
    pub pkg_name: String,
    pub pkg_version: String,
    pub fixed_version: Option<String>,
    pub severity: i64,
    pub title: Option<String>,
}

/// What a listing shows of the findings suppressions cover (`?suppressed=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuppressedMode {
    /// Leave them out (the default).
    #[default]
    Exclude,
    /// Only them.
    Only,
    /// Everything.
    Include,
}

/// The suppressions applying at `now`, in `mode`.
#[derive(Debug, Clone, Copy)]
pub struct Suppressed {
    pub mode: SuppressedMode,
    pub now: i64,
}

impl Suppressed {
    /// Everything, testing no suppression.
    pub const ALL: Suppressed = Suppressed {
        mode: SuppressedMode::Include,
        now: 0,
    };

    /// The `$mode` bind of [`crate::suppression_filter_sql`].
    pub fn mode_bind(&self) -> i64 {
        match self.mode {
            SuppressedMode::Exclude => 0,
            SuppressedMode::Only => 1,
            SuppressedMode::Include => 2,
        }
    }
}

/// A finding of a fleet reference whose vulnerability some suppression names, for the
/// counts of what suppressions leave out (`crate::triage`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SuppressibleRow {
    pub image_name: String,
    pub image_tag: String,
    pub vulnerability_id: String,
    pub pkg_name: String,
    pub pkg_version: String,
    pub fixable: bool,
    pub severity: i64,
}

/// Which findings of the current fleet a workload-filtered listing shows.
#[derive(Debug, Clone)]
pub struct WorkloadQuery {
    /// A glob (`*` any text) over `cluster/namespace/kind/name`.
    pub workload: String,
    /// Only this vulnerability (the CVE's images listing), else every one.
    pub vulnerability: Option<String>,
    /// Only fixable findings, most severe first (the fixable listing).
    pub fixable: bool,
    pub limit: i64,
    pub offset: i64,
    pub suppressed: Suppressed,
}

impl WorkloadQuery {
    /// The glob as a `LIKE` pattern with `\\` escaping.
    pub fn like_pattern(&self) -> String {
        let mut p = String::with_capacity(self.workload.len() + 4);
        for c in self.workload.chars() {
            match c {
                '%' | '_' | '\\' => {
                    p.push('\\');
                    p.push(c);
                }
                '*' => p.push('%'),
                c => p.push(c),
            }
        }
        p
    }
}

/// A row of [`super::sql::WORKLOAD_FINDINGS`].
pub(crate) type WorkloadFindingRow = (
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
);

/// A row of [`super::sql::REFERENCE_CHAINS`]: name, tag, then the observation.
pub(crate) type ChainRow = (
    String,
    String,
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// Each reference's observations.
pub(crate) fn chains_of(
    rows: Vec<ChainRow>,
) -> std::collections::HashMap<(String, String), Vec<scanvault_core::fleet::ChainObs>> {
    let mut chains: std::collections::HashMap<(String, String), Vec<_>> =
        std::collections::HashMap::new();
    for (name, tag, id, scan_id, version, at, fx, unk, low, med, high, crit) in rows {
        chains
            .entry((name, tag))
            .or_default()
            .push(scanvault_core::fleet::ChainObs {
                id,
                scan_id,
                version,
                scanned_at: at,
                counts: scanvault_core::fleet::image_counts(fx, [unk, low, med, high, crit]),
            });
    }
    chains
}

pub(crate) fn workload_finding(r: WorkloadFindingRow) -> FleetFinding {
    FleetFinding {
        image_name: r.0,
        image_tag: r.1,
        scan_id: r.2,
        scanned_at: r.3,
        vulnerability_id: r.4,
        pkg_name: r.5,
        pkg_version: r.6,
        fixed_version: r.7,
        severity: r.8,
        title: r.9,
    }
}

#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Findings of the current fleet's references whose image runs in a matching workload:
    /// the page (up to `limit + 1` rows), the rows over all pages and the references.
    async fn workload_findings(
        &self,
        q: &WorkloadQuery,
    ) -> Result<(Vec<FleetFinding>, i64, i64), StoreError>;

    /// Images, findings per severity and fixable findings of the fleet.
    async fn summary(&self, scope: &FleetScope) -> Result<FleetSummary, StoreError>;

    /// Vulnerability ids by affected images, then severity, then id.
    async fn top_cves(
        &self,
        scope: &FleetScope,
        severity: Option<Severity>,
        limit: i64,
    ) -> Result<Vec<TopCve>, StoreError>;

    /// Image references of the current fleet that show `vuln_id`, with the package found,
    /// by reference number (the order in which references joined the fleet), package,
    /// version. The page (up to `limit + 1` rows, so the caller can tell whether more
    /// follow) and the number of affected references.
    async fn cve_images(
        &self,
        vuln_id: &str,
        limit: i64,
        offset: i64,
        suppressed: Suppressed,
    ) -> Result<(Vec<FleetFinding>, i64), StoreError>;

    /// How many items [`AnalyticsStore::cve_images`] has for `vuln_id`, over all pages.
    async fn cve_items(&self, vuln_id: &str) -> Result<i64, StoreError>;

    /// Fixable findings of the fleet, most severe first, then by vulnerability id, then by
    /// reference (the current fleet: by reference number; a question about the past or
    /// scoped to images: by image name and tag), package, version; with catalog titles; up
    /// to `limit + 1` rows.
    async fn fixable(
        &self,
        scope: &FleetScope,
        limit: i64,
        offset: i64,
        suppressed: Suppressed,
    ) -> Result<Vec<FleetFinding>, StoreError>;

    /// Every observation of `image`'s references, by tag.
    async fn image_chains(
        &self,
        image: &str,
    ) -> Result<std::collections::HashMap<String, Vec<scanvault_core::fleet::ChainObs>>, StoreError>
    {
        Ok(self
            .reference_chains(Some(image))
            .await?
            .into_iter()
            .map(|((_, tag), chain)| (tag, chain))
            .collect())
    }

    /// Every observation each reference (name, tag) sees, of `image`'s references or of all.
    async fn reference_chains(
        &self,
        image: Option<&str>,
    ) -> Result<
        std::collections::HashMap<(String, String), Vec<scanvault_core::fleet::ChainObs>>,
        StoreError,
    >;

    /// Titles and CVSS scores from the catalog.
    async fn attach_catalog(&self, cves: &mut [TopCve]) -> Result<(), StoreError>;

    /// The findings of the scope's references (the current fleet: the maintained rows)
    /// whose vulnerability is one of `vulnerabilities`.
    async fn suppressible(
        &self,
        scope: &FleetScope,
        vulnerabilities: &[String],
    ) -> Result<Vec<SuppressibleRow>, StoreError>;

    /// For vulnerabilities suppressed in every image and package: their counts over the
    /// current fleet (as [`Counts`]) and the references (name, tag) that carry any of them.
    async fn wholly_suppressed(
        &self,
        vulnerabilities: &[String],
    ) -> Result<(Vec<(String, Counts)>, Vec<(String, String)>), StoreError>;

    /// The newest observation id and suppression change id ([`super::sql::TRIAGE_FINGERPRINT`]).
    async fn triage_fingerprint(&self) -> Result<(Option<i64>, Option<i64>), StoreError>;

    /// Record what suppressions leave out of the current fleet on `day`.
    async fn record_suppressed_day(&self, day: i64, counts: &Counts) -> Result<(), StoreError>;

    /// The recorded days before `before` (a day), oldest first.
    async fn suppressed_days(&self, before: i64) -> Result<Vec<(i64, Counts)>, StoreError>;

    /// One point per bucket from the bucket holding `from` to the one holding `to`: the
    /// fleet as of the end of each bucket (values carry forward).
    async fn trend(
        &self,
        image: Option<&str>,
        interval: Interval,
        from: i64,
        to: i64,
    ) -> Result<Vec<TrendPoint>, StoreError>;

    /// The scan time of the first observation of the fleet (of `image`'s references when
    /// given), where a trend with no `from` starts; `None` when there is none.
    async fn first_observation(&self, image: Option<&str>) -> Result<Option<i64>, StoreError>;

    /// Fold the pending deltas into the compacted tables. Additive, so concurrent
    /// compactors (several API replicas) commute; returns the number of delta rows folded.
    async fn compact(&self) -> Result<u64, StoreError>;

    /// Give the delta tables' emptied pages back once ingest is quiet (ADR 0014); whether
    /// they shrank. Nothing to do on SQLite, which frees an emptied table's pages itself.
    async fn shrink_quiet_deltas(&self) -> Result<bool, StoreError>;

    /// Each delta table with the pages it occupies (PostgreSQL; empty on SQLite).
    async fn delta_pages(&self) -> Result<Vec<(String, i64)>, StoreError>;
}

/// Fold analytics deltas in every [`COMPACTION_INTERVAL`] until `shutdown`. After a round
/// with nothing to fold, [`AnalyticsStore::shrink_quiet_deltas`] runs beside the loop (a
/// busy table can keep the attempt going for seconds).
pub async fn compaction_loop(store: Store, shutdown: tokio_util::sync::CancellationToken) {
    let mut every = crate::periodic::Every::new(COMPACTION_INTERVAL, &shutdown);
    while every.next().await {
        match store.analytics().compact().await {
            Ok(0) => {
                let store = store.clone();
                tokio::spawn(async move {
                    match store.analytics().shrink_quiet_deltas().await {
                        Ok(true) => tracing::debug!("analytics delta tables truncated"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "truncating the analytics delta tables failed")
                        }
                    }
                });
            }
            Ok(n) => tracing::debug!(rows = n, "analytics deltas compacted"),
            Err(e) => tracing::warn!(error = %e, "analytics compaction failed"),
        }
    }
}
