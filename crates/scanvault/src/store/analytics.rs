//! Fleet analytics (see DESIGN.md, "Analytics semantics").
//!
//! The fleet is the set of image references `(image_name, image_tag)` of `scan_tags`; each
//! points at its latest scan (by `scanned_at`, then `created_at`, then id). Counting that
//! from the findings table per request takes seconds at 10,000 images, so ingest and
//! deletion keep, in their own transaction:
//!
//! - `fleet_refs`: each reference's latest scan. Its row is also the per-reference lock:
//!   every change of a reference first upserts the row (a no-op update, which takes the row
//!   lock on PostgreSQL), then reads the reference's scans in a fresh statement, so two
//!   concurrent ingests of one reference serialise and the second sees the first.
//!   Each reference also has a number (`id`), given when it joins the fleet.
//! - `fleet_findings`: the findings of each reference's latest scan, replaced when the
//!   reference moves to another scan or its scan's findings change. A row names its
//!   reference by number, which keeps the listing index keys, taken by every finding of
//!   every ingest, short. On PostgreSQL one index serves both listings: it leads with the
//!   listing key ([`listing_key`]: the severity of a fixable finding, -1 without a fix),
//!   then (vulnerability, number). `fixable` pages through its range >= 0; `cve/{id}/images`
//!   merges the CVE's six ranges in reference order. SQLite keeps one index per listing.
//!   Both read the name, tag and scan of the page's references from `fleet_refs`. Rows of
//!   references that now point at the scan being ingested are written from the report in
//!   hand; others are copied from `findings_brief`.
//! - append-only deltas (`fleet_cve_deltas`, `fleet_total_deltas`, `fleet_daily_deltas`):
//!   per-CVE and fleet-wide counts, and per-day changes of the fleet's counts (the events
//!   of each reference's chain of scans: `+counts(scan)` on the day it was scanned,
//!   `-counts(scan)` on the day its successor was). Ingests only insert them, so the most
//!   widespread CVE is not a hot row. Reads add the pending deltas to the compacted tables
//!   (`fleet_cves`, `fleet_totals`, `fleet_daily`) in one snapshot, so answers are exact;
//!   [`Store::compact_analytics`] folds deltas in (additively, so concurrent compactors
//!   commute) and [`compaction_loop`] runs it in the background.
//!
//! Questions about the past (`to` earlier than the newest scan) or with `from` use the
//! straightforward SQL over `scan_tags`, `scans` and `findings`: correct, slower.

use super::batch::{Val, WriteBatch};
use super::rowset::{self, ArrayWriter, Column, SetRow, SetValue};
use super::scans::{placeholders, FindingKey, ScanRow};
use super::{Backend, Store, StoreError};
use scanvault_core::report::{Finding, Severity};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// One day in microseconds.
pub const DAY_US: i64 = 86_400_000_000;
/// How often the background compactor folds deltas in.
///
/// Every 500 ms made reads while ingest runs faster (summary's p50 about 50 ms instead of
/// 66 ms at 10k × 3 with 8 writers) but cost typical ingest 3–4 % of its throughput (the
/// fold's fixed cost, its `VACUUM` and one upsert per pending CVE, four times as often):
/// ingest's target is the harder one (`docs/benchmarks.md`).
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(2);
const CHUNK: usize = 400;
/// Row counts the fixable listing's first page is fetched in (page sizes of 10, 20, 25,
/// 50, 100, 200, 500 and 1,000, plus the row that tells whether more follow): a few
/// statement texts, whatever page sizes clients ask for.
const PAGE_FETCH: [i64; 8] = [11, 21, 26, 51, 101, 201, 501, 1001];
/// Delta tables larger than this (in pages, 128 KiB at PostgreSQL's 8 KiB) are truncated
/// once ingest is quiet ([`Store::shrink_quiet_deltas`]).
pub const SHRINK_PAGES: i64 = 16;
/// The pause after an attempt to shrink the delta tables that failed or left one large.
const SHRINK_RETRY: Duration = Duration::from_secs(60);

/// What one ingest changed, handed to the analytics maintenance inside the ingest's
/// transaction.
#[derive(Debug)]
pub struct IngestChange<'a> {
    /// The scan row before this ingest (`None` when the scan was created by it).
    pub before: Option<&'a ScanRow>,
    /// The scan row after this ingest.
    pub after: &'a ScanRow,
    /// The tag the report was stored under ("" when none).
    pub image_tag: &'a str,
    /// The reference (image name, `image_tag`) was newly attached to this scan.
    pub tag_added: bool,
    /// Findings inserted by this ingest (all of them for a new scan).
    pub added: &'a [&'a Finding],
    /// Keys `(vulnerability_id, pkg_name, pkg_version)` of findings deleted by this ingest.
    pub removed: &'a [FindingKey],
    /// The report was older than the stored scan: only the tag may have changed.
    pub stale: bool,
    /// The scan's complete findings as stored after this ingest (`None` for a stale
    /// report, whose findings were not written).
    pub findings: Option<&'a [Finding]>,
    /// Time of the ingest, microseconds.
    pub now: i64,
}

/// `[images, fixable, critical, high, medium, low, unknown]`: the counts every aggregate keeps.
pub type Counts = [i64; 7];
const IMAGES: usize = 0;
const FIXABLE: usize = 1;

fn sev_index(rank: i64) -> usize {
    2 + (4 - rank.clamp(0, 4)) as usize
}

fn add(a: &mut Counts, b: &Counts, sign: i64) {
    for i in 0..7 {
        a[i] += sign * b[i];
    }
}

fn is_zero(c: &Counts) -> bool {
    c.iter().all(|x| *x == 0)
}

/// Highest severity rank with a non-zero count.
fn max_severity(c: &Counts) -> i64 {
    (0..=4).rev().find(|r| c[sev_index(*r)] > 0).unwrap_or(0)
}

/// [`max_severity`] in SQL, over the count columns as `col` spells them.
fn max_severity_sql(col: &dyn Fn(&str) -> String) -> String {
    format!(
        "CASE WHEN {} > 0 THEN 4 WHEN {} > 0 THEN 3 WHEN {} > 0 THEN 2 WHEN {} > 0 THEN 1 ELSE 0 END",
        col("n_critical"),
        col("n_high"),
        col("n_medium"),
        col("n_low")
    )
}

const COUNT_COLUMNS: &str = "images, fixable, n_critical, n_high, n_medium, n_low, n_unknown";

/// The sum of each count column, under the column's name: `CAST(SUM(images) AS BIGINT) AS
/// images, …`.
///
/// PostgreSQL sums `BIGINT` into a 128-bit state allocated per group, which made the sums
/// of the pending per-CVE deltas (tens of thousands of rows under steady ingest) spill to
/// disk and take a third of the time of a top-CVEs read. It sums in `DOUBLE PRECISION`
/// instead: a plain value per group, and exact for every integer below 2^53, far beyond
/// any count of findings. SQLite sums integers exactly as they are.
fn count_sums(backend: Backend) -> String {
    COUNT_COLUMNS
        .split(", ")
        .map(|c| {
            if backend.is_postgres() {
                format!("CAST(SUM(CAST({c} AS DOUBLE PRECISION)) AS BIGINT) AS {c}")
            } else {
                format!("CAST(SUM({c}) AS BIGINT) AS {c}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn counts_at(row: &AnyRow, start: usize) -> Counts {
    let mut c = [0; 7];
    for (i, v) in c.iter_mut().enumerate() {
        *v = row.get::<i64, _>(start + i);
    }
    c
}

/// Rows keyed by `key` with their counts as a row set: its parameters, and its columns.
fn counts_set<K: serde::Serialize + SetValue>(
    backend: Backend,
    key: Column,
    rows: &[(K, Counts)],
) -> Result<(Vec<String>, Vec<Column>), StoreError> {
    let mut cols = vec![key];
    cols.extend(COUNT_COLUMNS.split(", ").map(|c| (c, "BIGINT")));
    let set: Vec<CountsRow<K>> = rows
        .iter()
        .map(|(k, counts)| CountsRow {
            key: key.0,
            k,
            counts,
        })
        .collect();
    Ok((rowset::params(backend, &set, &cols)?, cols))
}

/// One row of [`counts_set`]: `{key: k, images: …, fixable: …, n_critical: …, …}`,
/// serialised without building a map per row.
struct CountsRow<'a, K> {
    key: &'static str,
    k: &'a K,
    counts: &'a Counts,
}

impl<K: serde::Serialize + SetValue> SetRow for CountsRow<'_, K> {
    fn write(&self, w: &mut ArrayWriter) {
        w.put(self.k);
        for v in self.counts {
            w.put(v);
        }
    }
}

impl<K: serde::Serialize> serde::Serialize for CountsRow<'_, K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1 + self.counts.len()))?;
        m.serialize_entry(self.key, self.k)?;
        for (name, v) in COUNT_COLUMNS.split(", ").zip(self.counts.iter()) {
            m.serialize_entry(name, v)?;
        }
        m.end()
    }
}

/// One compacted table and the append-only deltas folded into it.
struct Fold {
    deltas: &'static str,
    target: &'static str,
    /// The key column (`None`: one row, id 1).
    key: Option<&'static str>,
    /// Keep `severity`, the highest severity with a non-zero count.
    severity: bool,
}

impl Fold {
    /// Sum the pending deltas per key into the compacted table and delete them, in the
    /// database: no row travels to the service. Returns the number of delta rows folded.
    ///
    /// PostgreSQL deletes and sums in one statement, so exactly the rows it deleted are
    /// folded, whatever concurrent ingests commit meanwhile (a concurrent compactor waits
    /// for the rows this one deleted, then skips them). SQLite sums, then deletes, inside
    /// its single write transaction, which no ingest can interleave with.
    async fn run(&self, conn: &mut AnyConnection, backend: Backend) -> Result<u64, StoreError> {
        let (deltas, target) = (self.deltas, self.target);
        let cols: Vec<&str> = COUNT_COLUMNS.split(", ").collect();
        let (key_in, key_out, group) = match self.key {
            Some(k) => (format!("{k}, "), format!("{k}, "), format!(" GROUP BY {k}")),
            None => (
                String::new(),
                "CAST(1 AS BIGINT) AS id, ".to_string(),
                String::new(),
            ),
        };
        let key_col = self.key.unwrap_or("id");
        let source = if backend.is_postgres() { "d" } else { deltas };
        let sums = count_sums(backend);
        let nonzero = cols
            .iter()
            .map(|c| format!("{c} <> 0"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut set: Vec<String> = cols
            .iter()
            .map(|c| format!("{c} = {target}.{c} + excluded.{c}"))
            .collect();
        let (sev_col, sev_val) = if self.severity {
            set.push(format!(
                "severity = {}",
                max_severity_sql(&|c| format!("{target}.{c} + excluded.{c}"))
            ));
            (
                ", severity",
                format!(", {}", max_severity_sql(&|c| c.to_string())),
            )
        } else {
            ("", String::new())
        };
        let upsert = format!(
            "INSERT INTO {target} ({key_col}, {COUNT_COLUMNS}{sev_col}) \
             SELECT {key_col}, {COUNT_COLUMNS}{sev_val} FROM (SELECT {key_out}{sums} FROM {source}{group}) a \
             WHERE {nonzero} ON CONFLICT ({key_col}) DO UPDATE SET {}",
            set.join(", ")
        );
        if backend.is_postgres() {
            let sql = format!(
                "WITH d AS (DELETE FROM {deltas} RETURNING {key_in}{COUNT_COLUMNS}), \
                 u AS ({upsert} RETURNING 1) SELECT COUNT(*) FROM d"
            );
            let n: i64 = sqlx::query(&sql).fetch_one(&mut *conn).await?.get(0);
            Ok(n as u64)
        } else {
            sqlx::query(&upsert).execute(&mut *conn).await?;
            let n = sqlx::query(&format!("DELETE FROM {deltas}"))
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(n)
        }
    }
}

/// An image reference.
pub type RefKey = (String, String);

/// One scan in a reference's chain, with the counts it contributes.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainScan {
    pub scan_id: String,
    pub scanned_at: i64,
    pub created_at: i64,
    pub counts: Counts,
}

impl ChainScan {
    fn of(s: &ScanRow) -> ChainScan {
        ChainScan {
            scan_id: s.id.clone(),
            scanned_at: s.scanned_at,
            created_at: s.created_at,
            counts: [
                1,
                s.fixable_count,
                s.vuln_critical,
                s.vuln_high,
                s.vuln_medium,
                s.vuln_low,
                s.vuln_unknown,
            ],
        }
    }
}

fn sort_chain(chain: &mut [ChainScan]) {
    chain.sort_by(|a, b| {
        (a.scanned_at, a.created_at, &a.scan_id).cmp(&(b.scanned_at, b.created_at, &b.scan_id))
    });
}

/// Per-day changes of a reference's contribution: `+counts` on the day a scan became the
/// latest, `-counts` on the day its successor did. The fleet as of the end of day D is the
/// sum of every event on days <= D.
pub fn chain_events(chain: &[ChainScan], out: &mut BTreeMap<i64, Counts>, sign: i64) {
    let mut chain = chain.to_vec();
    sort_chain(&mut chain);
    for (i, s) in chain.iter().enumerate() {
        add(
            out.entry(s.scanned_at.div_euclid(DAY_US)).or_default(),
            &s.counts,
            sign,
        );
        if let Some(next) = chain.get(i + 1) {
            add(
                out.entry(next.scanned_at.div_euclid(DAY_US)).or_default(),
                &s.counts,
                -sign,
            );
        }
    }
}

/// Which part of the fleet a question is about.
#[derive(Debug, Clone, Default)]
pub struct FleetScope {
    pub image: Option<String>,
    /// Leave out references whose latest scan is older (microseconds).
    pub from: Option<i64>,
    /// As of this time (microseconds); `None` = now.
    pub to: Option<i64>,
}

/// Totals over the fleet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetSummary {
    pub images: i64,
    /// Findings per severity rank (index = rank).
    pub by_severity: [i64; 5],
    pub fixable: i64,
}

impl FleetSummary {
    pub fn total(&self) -> i64 {
        self.by_severity.iter().sum()
    }
    fn from_counts(c: &Counts) -> FleetSummary {
        let mut by_severity = [0; 5];
        for (r, v) in by_severity.iter_mut().enumerate() {
            *v = c[sev_index(r as i64)];
        }
        FleetSummary {
            images: c[IMAGES],
            by_severity,
            fixable: c[FIXABLE],
        }
    }
}

/// One vulnerability id over the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct TopCve {
    pub vulnerability_id: String,
    /// Highest severity of its findings in the fleet.
    pub severity: i64,
    pub title: Option<String>,
    pub cvss_score: Option<f64>,
    /// Image references whose latest scan has it.
    pub images: i64,
    /// Its findings in the fleet (per reference, package and installed version).
    pub findings: i64,
    /// Findings with a fixed version.
    pub fixable: i64,
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

/// A trend point: the fleet as of the end of a bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    /// Bucket start, microseconds.
    pub bucket: i64,
    pub summary: FleetSummary,
}

/// Trend bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Day,
    Week,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
        }
    }
    /// Start (in days since the epoch) of the bucket holding `day`; weeks start on Monday.
    pub fn bucket_start_day(self, day: i64) -> i64 {
        match self {
            Interval::Day => day,
            // 1970-01-01 was a Thursday: day -3 was a Monday.
            Interval::Week => day - (day + 3).rem_euclid(7),
        }
    }
    pub fn days(self) -> i64 {
        match self {
            Interval::Day => 1,
            Interval::Week => 7,
        }
    }
    /// Number of buckets from the one holding `from` to the one holding `to`.
    pub fn bucket_count(self, from: i64, to: i64) -> i64 {
        let a = self.bucket_start_day(from.div_euclid(DAY_US));
        let b = self.bucket_start_day(to.div_euclid(DAY_US));
        (b - a) / self.days() + 1
    }
}

#[derive(Debug, Clone)]
enum Arg {
    I(i64),
    S(String),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::I(i) => q.bind(*i),
            Arg::S(s) => q.bind(s.as_str()),
        };
    }
    q
}

/// `($1, $2), ($3, $4), …` for references.
fn ref_values(start: usize, n: usize) -> String {
    (0..n)
        .map(|i| format!("(${}, ${})", start + 2 * i, start + 2 * i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

const FINDING_DELTA_COLUMNS: &str = "ref_id, vulnerability_id, severity, \
    CAST(CASE WHEN fixed_version IS NULL THEN 0 ELSE 1 END AS BIGINT)";

/// Rows of `fleet_findings` removed or added, as (reference number, vulnerability,
/// severity, fixable).
type DeltaRow = (i64, String, i64, i64);

fn delta_rows(rows: Vec<AnyRow>) -> Vec<DeltaRow> {
    rows.into_iter()
        .map(|r| {
            (
                r.get::<i64, _>(0),
                r.get::<String, _>(1),
                r.get::<i64, _>(2),
                r.get::<i64, _>(3),
            )
        })
        .collect()
}

/// A reference's number (`fleet_refs.id`) as a row of a row set.
#[derive(serde::Serialize)]
struct RefId {
    r: i64,
}

impl SetRow for RefId {
    fn write(&self, w: &mut ArrayWriter) {
        w.put(&self.r);
    }
}

const REF_ID_COLUMNS: &[Column] = &[("r", "BIGINT")];

/// A reference's number with one more value: the scan its current-fleet rows were copied
/// from, or one vulnerability id its rows may hold.
#[derive(serde::Serialize)]
struct RefWith<'a> {
    r: i64,
    x: &'a str,
}

impl SetRow for RefWith<'_> {
    fn write(&self, w: &mut ArrayWriter) {
        w.put(&self.r);
        w.put(self.x);
    }
}

const REF_WITH_COLUMNS: &[Column] = &[("r", "BIGINT"), ("x", "TEXT")];

/// The columns of a finding that `fleet_findings` keeps, as a row of a row set.
#[derive(serde::Serialize)]
struct FleetJson<'a> {
    v: &'a str,
    p: &'a str,
    iv: &'a str,
    fv: Option<&'a str>,
    sev: i64,
}

impl SetRow for FleetJson<'_> {
    fn write(&self, w: &mut ArrayWriter) {
        w.put(self.v);
        w.put(self.p);
        w.put(self.iv);
        w.put(&self.fv);
        w.put(&self.sev);
    }
}

const FLEET_COLUMNS: &[Column] = &[
    ("v", "TEXT"),
    ("p", "TEXT"),
    ("iv", "TEXT"),
    ("fv", "TEXT"),
    ("sev", "BIGINT"),
];

impl<'a> FleetJson<'a> {
    fn of(f: &'a Finding) -> FleetJson<'a> {
        FleetJson {
            v: &f.vulnerability_id,
            p: &f.pkg_name,
            iv: &f.installed_version,
            fv: f.fixed_version.as_deref(),
            sev: f.severity.rank(),
        }
    }
}

impl Store {
    /// Keep analytics state current after an ingest, in the same transaction.
    pub(crate) async fn analytics_after_ingest(
        &self,
        conn: &mut AnyConnection,
        writes: &mut WriteBatch,
        change: &IngestChange<'_>,
    ) -> Result<(), StoreError> {
        let content_changed = !change.added.is_empty() || !change.removed.is_empty();
        let moved = match change.before {
            None => true,
            Some(b) => b.scanned_at != change.after.scanned_at,
        };
        if !change.tag_added && !content_changed && !moved {
            // A re-ingest that changed nothing the fleet sees (or a stale report under a known tag).
            return Ok(());
        }
        let s = change.after;
        let new_ref: RefKey = (s.image_name.clone(), change.image_tag.to_string());
        let before = change.before.map(ChainScan::of);
        let old_of = |key: &RefKey, current: &[ChainScan]| -> Vec<ChainScan> {
            let mut old: Vec<ChainScan> = current
                .iter()
                .filter(|c| c.scan_id != s.id)
                .cloned()
                .collect();
            let attached_before = !(change.tag_added && *key == new_ref);
            if let (Some(b), true) = (&before, attached_before) {
                old.push(b.clone());
            }
            old
        };
        self.maintain_refs(
            conn,
            writes,
            std::slice::from_ref(&s.id),
            true,
            &old_of,
            content_changed.then_some((s.id.as_str(), change.removed)),
            change.findings.map(|f| (s.id.as_str(), f)),
        )
        .await
    }

    /// Keep analytics state current before scans are deleted, in the same transaction.
    pub(crate) async fn analytics_before_delete(
        &self,
        conn: &mut AnyConnection,
        scan_ids: &[String],
    ) -> Result<(), StoreError> {
        if scan_ids.is_empty() {
            return Ok(());
        }
        let gone: HashSet<&str> = scan_ids.iter().map(String::as_str).collect();
        let new_of = |_: &RefKey, current: &[ChainScan]| -> Vec<ChainScan> {
            current
                .iter()
                .filter(|c| !gone.contains(c.scan_id.as_str()))
                .cloned()
                .collect()
        };
        let mut writes = WriteBatch::new(self.backend());
        self.maintain_refs(conn, &mut writes, scan_ids, false, &new_of, None, None)
            .await?;
        writes.flush(conn).await
    }

    /// The one maintenance routine. `scan_ids` are the scans whose references may have
    /// changed; the database holds the chains after the change when `current_is_new`
    /// (ingest) and before it otherwise (delete); `other` derives the other side.
    /// `changed_scan` is a scan whose findings changed, with the keys of the findings it
    /// lost: references pointing at it are refreshed even when their pointer stays.
    /// `known` is a scan with its complete stored findings, which the caller holds: the
    /// delta rows of references now pointing at it come from them instead of being read
    /// back.
    #[allow(clippy::too_many_arguments)]
    async fn maintain_refs(
        &self,
        conn: &mut AnyConnection,
        writes: &mut WriteBatch,
        scan_ids: &[String],
        current_is_new: bool,
        other: &(dyn Fn(&RefKey, &[ChainScan]) -> Vec<ChainScan> + Sync),
        changed_scan: Option<(&str, &[FindingKey])>,
        known: Option<(&str, &[Finding])>,
    ) -> Result<(), StoreError> {
        let changed_id = changed_scan.map(|c| c.0);
        // 1. Lock the references (creating placeholder rows) and read their stored pointers.
        let list = placeholders(1, scan_ids.len());
        let sql = format!(
            "INSERT INTO fleet_refs (image_name, image_tag, scan_id, scanned_at) \
             SELECT image_name, image_tag, CAST(NULL AS TEXT), CAST(NULL AS BIGINT) FROM \
             (SELECT DISTINCT image_name, image_tag FROM scan_tags WHERE scan_id IN ({list})) t WHERE true \
             ORDER BY image_name, image_tag \
             ON CONFLICT (image_name, image_tag) DO UPDATE SET image_name = excluded.image_name \
             RETURNING image_name, image_tag, scan_id, scanned_at, id"
        );
        let mut q = sqlx::query(&sql);
        for id in scan_ids {
            q = q.bind(id);
        }
        // Each reference's stored scan and scan time, and its number (which its
        // current-fleet rows carry).
        let mut stored: BTreeMap<RefKey, (Option<String>, Option<i64>, i64)> = BTreeMap::new();
        for r in q.fetch_all(&mut *conn).await? {
            stored.insert((r.get(0), r.get(1)), (r.get(2), r.get(3), r.get(4)));
        }
        let id_of = |key: &RefKey| stored[key].2;
        if stored.is_empty() {
            return Ok(());
        }

        // 2. The chains of those references, as the database holds them now.
        let sql = format!(
            "SELECT t.image_name, t.image_tag, s.id, s.scanned_at, s.created_at, s.fixable_count, \
             s.vuln_critical, s.vuln_high, s.vuln_medium, s.vuln_low, s.vuln_unknown \
             FROM scan_tags t JOIN scans s ON s.id = t.scan_id \
             WHERE (t.image_name, t.image_tag) IN (SELECT image_name, image_tag FROM scan_tags WHERE scan_id IN ({list}))"
        );
        let mut q = sqlx::query(&sql);
        for id in scan_ids {
            q = q.bind(id);
        }
        let mut current: BTreeMap<RefKey, Vec<ChainScan>> =
            stored.keys().map(|k| (k.clone(), vec![])).collect();
        for r in q.fetch_all(&mut *conn).await? {
            let key: RefKey = (r.get(0), r.get(1));
            let mut counts = [1; 7];
            for (i, c) in counts.iter_mut().enumerate().skip(1) {
                *c = r.get::<i64, _>(4 + i);
            }
            current.entry(key).or_default().push(ChainScan {
                scan_id: r.get(2),
                scanned_at: r.get(3),
                created_at: r.get(4),
                counts,
            });
        }

        // 3. Trend events, and which references need their findings replaced.
        let mut daily: BTreeMap<i64, Counts> = BTreeMap::new();
        let mut replace: Vec<RefKey> = vec![];
        let mut known_refs: HashSet<RefKey> = HashSet::new();
        // References that move, with the scan their current rows were copied from.
        let mut clear: Vec<(RefKey, String)> = vec![];
        let mut ref_writes: Vec<(RefKey, Option<(String, i64)>)> = vec![];
        let mut totals: Counts = [0; 7];
        for (key, cur) in &current {
            let Some((stored_scan, stored_at, _)) = stored.get(key).cloned() else {
                // A tag attached between the two statements above (a transaction that
                // committed in between): not locked here, so start again.
                return Err(StoreError::Conflict(format!(
                    "reference {}:{} appeared during the change",
                    key.0, key.1
                )));
            };
            let derived = other(key, cur);
            let (mut old, mut new) = if current_is_new {
                (derived, cur.clone())
            } else {
                (cur.clone(), derived)
            };
            sort_chain(&mut old);
            sort_chain(&mut new);
            chain_events(&old, &mut daily, -1);
            chain_events(&new, &mut daily, 1);
            let tip = new.last().map(|c| (c.scan_id.clone(), c.scanned_at));
            let tip_id = tip.as_ref().map(|t| t.0.as_str());
            if stored_scan.as_deref() != tip_id || (changed_id.is_some() && tip_id == changed_id) {
                replace.push(key.clone());
                if let Some(scan) = &stored_scan {
                    clear.push((key.clone(), scan.clone()));
                }
                if tip_id.is_some() && tip_id == known.map(|k| k.0) {
                    known_refs.insert(key.clone());
                }
            }
            totals[IMAGES] += i64::from(tip.is_some()) - i64::from(stored_scan.is_some());
            if stored_scan.as_deref() != tip_id || stored_at != tip.as_ref().map(|t| t.1) {
                ref_writes.push((key.clone(), tip));
            }
        }

        // 4. Replace the findings of references that moved (old rows out, new rows in).
        // A reference's rows are a copy of its stored scan's findings, so they are found
        // through the listing index by (vulnerability, reference number): the vulnerability
        // ids of that scan's findings, plus those of the findings a changed scan has just
        // lost. A superset is harmless; no index by reference is kept for this (it cost
        // ingest one more B-tree insertion per finding). On PostgreSQL the index leads with
        // the listing key ([`listing_key`]): a stored finding gives its own, and a lost one,
        // whose severity and fix are not at hand, is probed under all six.
        let mut removed_rows: Vec<DeltaRow> = vec![];
        if !clear.is_empty() {
            let backend = self.backend();
            let scans: Vec<RefWith> = clear
                .iter()
                .map(|(key, scan)| RefWith {
                    r: id_of(key),
                    x: scan,
                })
                .collect();
            let mut lost: Vec<RefWith> = vec![];
            if let Some((changed, removed)) = changed_scan {
                let vulns: BTreeSet<&str> = removed.iter().map(|(v, _, _)| v.as_str()).collect();
                for (key, _) in clear.iter().filter(|(_, scan)| scan == changed) {
                    lost.extend(vulns.iter().map(|x| RefWith { r: id_of(key), x }));
                }
            }
            let lost_at = 1 + rowset::param_count(backend, REF_WITH_COLUMNS);
            let scans_set = rowset::source(backend, 1, REF_WITH_COLUMNS, "r");
            let lost_set = rowset::source(backend, lost_at, REF_WITH_COLUMNS, "l");
            // Both probe the index once per key (PostgreSQL plans the semi-join that way;
            // SQLite would scan the table for a row-value `IN`, so it is given the join).
            let rows = match backend {
                Backend::Postgres => format!(
                    "({}, vulnerability_id, ref_id) IN (SELECT k, v, r FROM (\
                     SELECT {} AS k, f.vulnerability_id AS v, r.r AS r FROM {scans_set} \
                     JOIN findings_brief f ON f.scan_id = r.x UNION ALL SELECT s.k, l.x, l.r FROM {lost_set} \
                     CROSS JOIN (VALUES (-1), (0), (1), (2), (3), (4)) AS s(k)) k)",
                    listing_key(""),
                    listing_key("f.")
                ),
                Backend::Sqlite => format!(
                    "rowid IN (SELECT ff.rowid FROM (SELECT f.vulnerability_id AS v, r.r AS r FROM {scans_set} \
                     JOIN findings_brief f ON f.scan_id = r.x UNION ALL SELECT l.x, l.r FROM {lost_set}) k \
                     CROSS JOIN fleet_findings ff ON ff.vulnerability_id = k.v AND ff.ref_id = k.r)"
                ),
            };
            let sql = format!(
                "DELETE FROM fleet_findings WHERE {rows} RETURNING {FINDING_DELTA_COLUMNS}"
            );
            let mut q = sqlx::query(&sql);
            for p in rowset::params(backend, &scans, REF_WITH_COLUMNS)?
                .into_iter()
                .chain(rowset::params(backend, &lost, REF_WITH_COLUMNS)?)
            {
                q = q.bind(p);
            }
            removed_rows.extend(delta_rows(q.fetch_all(&mut *conn).await?));
        }
        let (gone, kept): (Vec<_>, Vec<_>) = ref_writes.into_iter().partition(|w| w.1.is_none());
        for chunk in kept.chunks(CHUNK) {
            let values = (0..chunk.len())
                .map(|i| {
                    format!(
                        "(${}, ${}, ${}, ${})",
                        4 * i + 1,
                        4 * i + 2,
                        4 * i + 3,
                        4 * i + 4
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO fleet_refs (image_name, image_tag, scan_id, scanned_at) VALUES {values} \
                 ON CONFLICT (image_name, image_tag) DO UPDATE SET scan_id = excluded.scan_id, \
                 scanned_at = excluded.scanned_at"
            );
            let mut vals = Vec::with_capacity(4 * chunk.len());
            for ((n, t), tip) in chunk {
                let (id, at) = tip.clone().unwrap_or_default();
                vals.extend([Val::S(n.clone()), Val::S(t.clone()), Val::S(id), Val::I(at)]);
            }
            writes.add(conn, sql, vals).await?;
        }
        for chunk in gone.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM fleet_refs WHERE (image_name, image_tag) IN (VALUES {})",
                ref_values(1, chunk.len())
            );
            let vals = chunk
                .iter()
                .flat_map(|((n, t), _)| [Val::S(n.clone()), Val::S(t.clone())])
                .collect();
            writes.add(conn, sql, vals).await?;
        }
        let gone_keys: HashSet<&RefKey> = gone.iter().map(|g| &g.0).collect();
        // References pointing at the `known` scan: their rows and delta rows come from
        // memory (neither read from `findings` nor returned).
        let (from_memory, read_back): (Vec<&RefKey>, Vec<&RefKey>) = replace
            .iter()
            .filter(|k| !gone_keys.contains(k))
            .partition(|k| known_refs.contains(*k));
        let mut added_rows: Vec<DeltaRow> = vec![];
        if let Some((_, findings)) = known.filter(|k| !from_memory.is_empty() && !k.1.is_empty()) {
            // From the caller's findings, not read back from `findings`: one statement for
            // every reference pointing at the scan.
            let refs: Vec<RefId> = from_memory.iter().map(|k| RefId { r: id_of(k) }).collect();
            let rows: Vec<FleetJson> = findings.iter().map(FleetJson::of).collect();
            let backend = self.backend();
            let rows_at = 1 + rowset::param_count(backend, REF_ID_COLUMNS);
            let sql = format!(
                "INSERT INTO fleet_findings (ref_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity) \
                 SELECT r.r, x.v, x.p, x.iv, x.fv, x.sev FROM {} CROSS JOIN {}",
                rowset::source(backend, 1, REF_ID_COLUMNS, "r"),
                rowset::source(backend, rows_at, FLEET_COLUMNS, "x")
            );
            let mut vals = vec![];
            for p in rowset::params(backend, &refs, REF_ID_COLUMNS)?
                .into_iter()
                .chain(rowset::params(backend, &rows, FLEET_COLUMNS)?)
            {
                vals.push(Val::S(p));
            }
            writes.add(conn, sql, vals).await?;
            for r in &refs {
                added_rows.extend(findings.iter().map(|f| {
                    (
                        r.r,
                        f.vulnerability_id.clone(),
                        f.severity.rank(),
                        i64::from(f.fixed_version.is_some()),
                    )
                }));
            }
        }
        // The other references' rows are copied from the stored findings of their scans
        // and read back (`RETURNING`) for the deltas. The copy joins `fleet_refs` as just
        // written.
        if !read_back.is_empty() {
            writes.flush(conn).await?;
        }
        for chunk in read_back.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO fleet_findings (ref_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity) \
                 SELECT r.id, f.vulnerability_id, f.pkg_name, f.pkg_version, f.fixed_version, f.severity \
                 FROM fleet_refs r JOIN findings_brief f ON f.scan_id = r.scan_id \
                 WHERE r.id IN ({}) RETURNING {FINDING_DELTA_COLUMNS}",
                placeholders(1, chunk.len()),
            );
            let mut q = sqlx::query(&sql);
            for key in chunk {
                q = q.bind(id_of(key));
            }
            added_rows.extend(delta_rows(q.fetch_all(&mut *conn).await?));
        }

        // 5. Per-CVE and fleet-wide deltas from the rows that went and came.
        let mut cves: BTreeMap<String, Counts> = BTreeMap::new();
        let mut presence: HashMap<(i64, &str), i64> = HashMap::new();
        for (rows, sign) in [(&removed_rows, -1), (&added_rows, 1)] {
            for (key, vuln, sev, fixable) in rows.iter() {
                let c = cves.entry(vuln.clone()).or_default();
                c[sev_index(*sev)] += sign;
                c[FIXABLE] += sign * fixable;
                totals[sev_index(*sev)] += sign;
                totals[FIXABLE] += sign * fixable;
                let p = presence.entry((*key, vuln.as_str())).or_insert(0);
                // bit 1: present before, bit 2: present after
                *p |= if sign < 0 { 1 } else { 2 };
            }
        }
        for ((_, vuln), p) in presence {
            let d = match p {
                1 => -1,
                2 => 1,
                _ => 0,
            };
            if d != 0 {
                if let Some(c) = cves.get_mut(vuln) {
                    c[IMAGES] += d;
                }
            }
        }
        cves.retain(|_, c| !is_zero(c));
        daily.retain(|_, c| !is_zero(c));
        if !cves.is_empty() {
            // One statement whatever the number of ids.
            let rows: Vec<(String, Counts)> = cves.into_iter().collect();
            let (set, cols) = counts_set(self.backend(), ("vulnerability_id", "TEXT"), &rows)?;
            let sql = format!(
                "INSERT INTO fleet_cve_deltas (vulnerability_id, {COUNT_COLUMNS}) \
                 SELECT vulnerability_id, {COUNT_COLUMNS} FROM {}",
                rowset::source(self.backend(), 1, &cols, "x")
            );
            writes
                .add(conn, sql, set.into_iter().map(Val::S).collect())
                .await?;
        }
        if !is_zero(&totals) {
            let sql = format!(
                "INSERT INTO fleet_total_deltas ({COUNT_COLUMNS}) VALUES ({})",
                placeholders(1, 7)
            );
            writes
                .add(conn, sql, totals.iter().map(|v| Val::I(*v)).collect())
                .await?;
        }
        if !daily.is_empty() {
            let rows: Vec<(i64, Counts)> = daily.into_iter().collect();
            let (set, cols) = counts_set(self.backend(), ("day", "BIGINT"), &rows)?;
            let sql = format!(
                "INSERT INTO fleet_daily_deltas (day, {COUNT_COLUMNS}) SELECT day, {COUNT_COLUMNS} FROM {}",
                rowset::source(self.backend(), 1, &cols, "x")
            );
            writes
                .add(conn, sql, set.into_iter().map(Val::S).collect())
                .await?;
        }
        Ok(())
    }

    /// Fold the pending deltas into the compacted tables. Additive, so concurrent
    /// compactors (several API replicas) commute; returns the number of delta rows folded.
    pub async fn compact_analytics(&self) -> Result<u64, StoreError> {
        let backend = self.backend();
        let mut tx = self.write_pool().begin().await?;
        let mut folded = 0u64;
        for fold in [
            Fold {
                deltas: "fleet_cve_deltas",
                target: "fleet_cves",
                key: Some("vulnerability_id"),
                severity: true,
            },
            Fold {
                deltas: "fleet_total_deltas",
                target: "fleet_totals",
                key: None,
                severity: false,
            },
            Fold {
                deltas: "fleet_daily_deltas",
                target: "fleet_daily",
                key: Some("day"),
                severity: false,
            },
        ] {
            folded += fold.run(&mut tx, backend).await?;
        }
        tx.commit().await?;
        if folded > 0 && backend.is_postgres() {
            // The delta tables are emptied every few seconds: without this, readers scan
            // their dead rows until autovacuum's next visit (a minute or more). Without
            // truncation: the emptied pages are refilled within seconds, and truncating
            // needs an exclusive lock that ingests, inserting deltas all the time, never
            // leave free; VACUUM then retries for its full 5 s before giving up, which held
            // up every compaction under steady ingest. `SKIP_LOCKED`: a table another
            // VACUUM holds (autovacuum, another replica's shrink) waits for the next round.
            sqlx::raw_sql(
                "VACUUM (TRUNCATE false, SKIP_LOCKED) fleet_cve_deltas, fleet_total_deltas, fleet_daily_deltas, \
                 fleet_cves, fleet_totals, fleet_daily",
            )
            .execute(self.write_pool())
            .await?;
        }
        Ok(folded)
    }

    /// Give the delta tables' emptied pages back to the file system once ingest has gone
    /// quiet (PostgreSQL; [`compaction_loop`] starts it, beside the compaction, after a
    /// round with nothing to fold). A burst of ingest grows the tables: at a few hundred
    /// reports a second they hold some 100,000 rows between two compactions. The compactor
    /// empties them, but their pages stay (its `VACUUM` cannot truncate under ingest, see
    /// [`Store::compact_analytics`]), and every summary, top-CVEs and CVE-images answer
    /// reads all of them. After a burst of 1,000 typical reports, 1,100 empty pages halved
    /// the throughput of summary and top-CVEs on a 10k-image fleet (docs/benchmarks.md).
    ///
    /// So the tables holding more than [`SHRINK_PAGES`] get a plain `VACUUM`, on a
    /// connection of its own, which truncates them. VACUUM's truncation is MVCC-safe (it
    /// only removes pages in which no snapshot can see a row; `TRUNCATE` is not). It never
    /// queues for its exclusive lock: it retries while anyone holds the table, for up to
    /// about 5 s per table, then gives up; once it holds the lock it lets go within some
    /// 20 ms of anyone waiting. One attempt runs at a time; after one that failed or left a
    /// table large (readers kept it busy), the next waits [`SHRINK_RETRY`]. Returns whether
    /// the tables shrank.
    pub async fn shrink_quiet_deltas(&self) -> Result<bool, StoreError> {
        let large: Vec<String> = self
            .delta_pages()
            .await?
            .into_iter()
            .filter(|(_, pages)| *pages > SHRINK_PAGES)
            .map(|(table, _)| table)
            .collect();
        if large.is_empty() {
            return Ok(false);
        }
        {
            let now = std::time::Instant::now();
            let mut next = self
                .inner
                .shrink_deltas_after
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if next.is_some_and(|t| now < t) {
                return Ok(false);
            }
            *next = Some(now + SHRINK_RETRY);
        }
        let mut conn = self.maintenance_connection().await?;
        let sql = format!("VACUUM {}", large.join(", "));
        let done = sqlx::query(&sql).persistent(false).execute(&mut conn).await;
        let _ = sqlx::Connection::close(conn).await;
        done?;
        let after = self.delta_pages().await?;
        let shrank = large.iter().all(|t| {
            after
                .iter()
                .any(|(a, pages)| a == t && *pages <= SHRINK_PAGES)
        });
        if shrank {
            // The next burst's pages may go as soon as it is over.
            *self
                .inner
                .shrink_deltas_after
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
        Ok(shrank)
    }

    /// Each delta table with the pages it occupies (PostgreSQL).
    pub async fn delta_pages(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query(
            "SELECT t, CAST(pg_relation_size(CAST(t AS regclass)) / CAST(current_setting('block_size') AS BIGINT) \
             AS BIGINT) FROM unnest(ARRAY['fleet_cve_deltas', 'fleet_total_deltas', 'fleet_daily_deltas']) t \
             ORDER BY t",
        )
        .fetch_all(self.read_pool())
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }

    /// A read transaction: one snapshot for the several statements of an answer
    /// (compacted table + pending deltas must be read together).
    async fn read_tx(&self) -> Result<sqlx::Transaction<'static, Any>, StoreError> {
        let tx = match self.backend() {
            Backend::Postgres => {
                self.read_pool()
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?
            }
            Backend::Sqlite => self.read_pool().begin().await?,
        };
        Ok(tx)
    }

    /// `true` when the fleet as of `to` is the current fleet (`to` absent, or no
    /// reference's latest scan is newer than it).
    async fn is_current(
        &self,
        conn: &mut AnyConnection,
        to: Option<i64>,
    ) -> Result<bool, StoreError> {
        let Some(to) = to else { return Ok(true) };
        let newest: Option<i64> = sqlx::query("SELECT MAX(scanned_at) FROM fleet_refs")
            .fetch_one(&mut *conn)
            .await?
            .get(0);
        Ok(newest.is_none_or(|n| n <= to))
    }

    /// SQL yielding `(image_name, image_tag, scan_id, scanned_at)` for each reference of
    /// the scope.
    fn fleet_sql(&self, scope: &FleetScope, current: bool, args: &mut Vec<Arg>) -> String {
        let mut conds: Vec<String> = vec![];
        if current {
            conds.push("scan_id IS NOT NULL".into());
            if let Some(img) = &scope.image {
                args.push(Arg::S(img.clone()));
                conds.push(format!("image_name = ${}", args.len()));
            }
            if let Some(from) = scope.from {
                args.push(Arg::I(from));
                conds.push(format!("scanned_at >= ${}", args.len()));
            }
            format!(
                "SELECT image_name, image_tag, scan_id, scanned_at FROM fleet_refs WHERE {}",
                conds.join(" AND ")
            )
        } else {
            args.push(Arg::I(scope.to.unwrap_or(i64::MAX)));
            let mut inner = format!("s.scanned_at <= ${}", args.len());
            if let Some(img) = &scope.image {
                args.push(Arg::S(img.clone()));
                inner.push_str(&format!(" AND t.image_name = ${}", args.len()));
            }
            let mut outer = "rn = 1".to_string();
            if let Some(from) = scope.from {
                args.push(Arg::I(from));
                outer.push_str(&format!(" AND scanned_at >= ${}", args.len()));
            }
            format!(
                "SELECT image_name, image_tag, scan_id, scanned_at FROM (SELECT t.image_name, t.image_tag, \
                 s.id AS scan_id, s.scanned_at, ROW_NUMBER() OVER (PARTITION BY t.image_name, t.image_tag \
                 ORDER BY s.scanned_at DESC, s.created_at DESC, s.id DESC) AS rn \
                 FROM scan_tags t JOIN scans s ON s.id = t.scan_id WHERE {inner}) w WHERE {outer}"
            )
        }
    }

    /// SQL yielding the findings of the scope's references:
    /// `(image_name, image_tag, scan_id, scanned_at, vulnerability_id, pkg_name, pkg_version,
    /// fixed_version, severity)`.
    fn fleet_findings_sql(&self, scope: &FleetScope, current: bool, args: &mut Vec<Arg>) -> String {
        // A reference's current-fleet rows are a copy of its scan's findings: read the
        // findings, by scan, in both cases.
        let fleet = self.fleet_sql(scope, current, args);
        format!(
            "SELECT fl.image_name, fl.image_tag, fl.scan_id, fl.scanned_at, f.vulnerability_id, f.pkg_name, \
             f.pkg_version, f.fixed_version, f.severity FROM ({fleet}) fl JOIN findings_brief f ON f.scan_id = fl.scan_id"
        )
    }

    /// Images, findings per severity and fixable findings of the fleet.
    pub async fn fleet_summary(&self, scope: &FleetScope) -> Result<FleetSummary, StoreError> {
        if scope.to.is_none() && scope.image.is_none() && scope.from.is_none() {
            // One statement: consistent without a transaction.
            let row = sqlx::query(&totals_sql())
                .fetch_one(self.read_pool())
                .await?;
            return Ok(FleetSummary::from_counts(&counts_at(&row, 0)));
        }
        let mut tx = self.read_tx().await?;
        let current = self.is_current(&mut tx, scope.to).await?;
        let out = if current && scope.image.is_none() && scope.from.is_none() {
            let row = sqlx::query(&totals_sql()).fetch_one(&mut *tx).await?;
            FleetSummary::from_counts(&counts_at(&row, 0))
        } else {
            let mut args = vec![];
            let fleet = self.fleet_sql(scope, current, &mut args);
            let images: i64 = bind_all(
                sqlx::query(&format!("SELECT COUNT(*) FROM ({fleet}) fl")),
                &args,
            )
            .fetch_one(&mut *tx)
            .await?
            .get(0);
            let mut args = vec![];
            let ff = self.fleet_findings_sql(scope, current, &mut args);
            let sql = format!(
                "SELECT severity, COUNT(*), CAST(SUM(CASE WHEN fixed_version IS NULL THEN 0 ELSE 1 END) AS BIGINT) \
                 FROM ({ff}) ff GROUP BY severity"
            );
            let mut s = FleetSummary {
                images,
                ..Default::default()
            };
            for r in bind_all(sqlx::query(&sql), &args)
                .fetch_all(&mut *tx)
                .await?
            {
                let sev = r.get::<i64, _>(0).clamp(0, 4) as usize;
                s.by_severity[sev] += r.get::<i64, _>(1);
                s.fixable += r.get::<i64, _>(2);
            }
            s
        };
        tx.commit().await?;
        Ok(out)
    }

    /// Vulnerability ids by affected images, then severity, then id.
    pub async fn top_cves(
        &self,
        scope: &FleetScope,
        severity: Option<Severity>,
        limit: i64,
    ) -> Result<Vec<TopCve>, StoreError> {
        if scope.to.is_none() && scope.image.is_none() && scope.from.is_none() {
            // Without pending deltas the ranking is one consistent index range: no transaction.
            let mut conn = self.read_pool().acquire().await?;
            if let Some(mut out) =
                top_cves_compacted(&mut conn, self.backend(), severity, limit, false).await?
            {
                attach_catalog(&mut conn, &mut out).await?;
                return Ok(out);
            }
        }
        let mut tx = self.read_tx().await?;
        let current = self.is_current(&mut tx, scope.to).await?;
        let mut out = if current && scope.image.is_none() && scope.from.is_none() {
            top_cves_compacted(&mut tx, self.backend(), severity, limit, true)
                .await?
                .unwrap_or_default()
        } else {
            let mut args = vec![];
            let ff = self.fleet_findings_sql(scope, current, &mut args);
            let having = match severity {
                Some(s) => {
                    args.push(Arg::I(s.rank()));
                    format!("HAVING MAX(sev) = ${}", args.len())
                }
                None => String::new(),
            };
            args.push(Arg::I(limit));
            let sql = format!(
                "SELECT vulnerability_id, COUNT(*) AS images, MAX(sev) AS sev, CAST(SUM(n) AS BIGINT), \
                 CAST(SUM(fx) AS BIGINT) FROM (SELECT vulnerability_id, image_name, image_tag, MAX(severity) AS sev, \
                 COUNT(*) AS n, SUM(CASE WHEN fixed_version IS NULL THEN 0 ELSE 1 END) AS fx FROM ({ff}) ff \
                 GROUP BY vulnerability_id, image_name, image_tag) per_ref GROUP BY vulnerability_id {having} \
                 ORDER BY images DESC, sev DESC, vulnerability_id LIMIT ${}",
                args.len()
            );
            bind_all(sqlx::query(&sql), &args)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| TopCve {
                    vulnerability_id: r.get(0),
                    images: r.get(1),
                    severity: r.get(2),
                    findings: r.get(3),
                    fixable: r.get(4),
                    title: None,
                    cvss_score: None,
                })
                .collect()
        };
        attach_catalog(&mut tx, &mut out).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Image references whose latest scan has `vuln_id`, with the package found, by
    /// reference number (the order in which references joined the fleet), package,
    /// version. Returns the page (up to `limit + 1` rows, so the caller can tell whether
    /// more follow) and the number of affected references.
    pub async fn cve_images(
        &self,
        vuln_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<FleetFinding>, i64), StoreError> {
        // One statement: the page (with each reference's scan time) and the number of
        // affected references come from one snapshot, in one round trip. A row with NULL
        // page columns carries the count when the page is empty.
        // The reference's name, tag, scan and scan time come from `fleet_refs`, for the
        // page's rows only (the current-fleet rows carry the reference's number).
        // On PostgreSQL the CVE's rows are six ranges of the listing index, one per listing
        // key; each is read in reference order only as far as the page reaches, and the
        // six are merged.
        const ROWS: &str =
            "SELECT ref_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity \
             FROM fleet_findings WHERE vulnerability_id = $1";
        const ORDER: &str = "ORDER BY ref_id, pkg_name, pkg_version";
        let cve_rows = match self.backend() {
            Backend::Postgres => {
                let key = listing_key("");
                (-1..=4)
                    .map(|k| format!("({ROWS} AND {key} = {k} {ORDER} LIMIT $2 + $3)"))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ")
            }
            Backend::Sqlite => ROWS.to_string(),
        };
        let sql = format!(
            "SELECT r.image_name, r.image_tag, r.scan_id, r.scanned_at, p.vulnerability_id, p.pkg_name, \
             p.pkg_version, p.fixed_version, p.severity, c.n FROM \
             (SELECT CAST(COALESCE(SUM(images), 0) AS BIGINT) AS n FROM (SELECT images FROM fleet_cves \
             WHERE vulnerability_id = $1 UNION ALL SELECT images FROM fleet_cve_deltas WHERE vulnerability_id = $1) x) c \
             LEFT JOIN (SELECT * FROM ({cve_rows}) u {ORDER} LIMIT $2 OFFSET $3) p ON true \
             {} ORDER BY p.ref_id, p.pkg_name, p.pkg_version",
            page_refs(self.backend(), true)
        );
        let rows = sqlx::query(&sql)
            .bind(vuln_id)
            .bind(limit + 1)
            .bind(offset)
            .fetch_all(self.read_pool())
            .await?;
        let images: i64 = rows.first().map(|r| r.get(9)).unwrap_or_default();
        let page: Vec<FleetFinding> = rows
            .iter()
            .filter(|r| r.get::<Option<String>, _>(0).is_some())
            .map(fleet_finding)
            .collect();
        Ok((page, images))
    }

    /// Fixable findings of the fleet, most severe first, then by vulnerability id, then by
    /// reference (the current fleet: by reference number, the order in which references
    /// joined the fleet; a question about the past or scoped to images: by image name and
    /// tag), package, version; with catalog titles; up to `limit + 1` rows.
    pub async fn fixable_findings(
        &self,
        scope: &FleetScope,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<FleetFinding>, StoreError> {
        if scope.to.is_none() && scope.image.is_none() && scope.from.is_none() {
            // The current fleet: one index range of one table, titles joined for the page.
            // One statement, so no transaction. The first page's bounds are written into
            // the statement, so that PostgreSQL plans it once (`literal_page`); the row
            // count is rounded up to one of a few sizes, so that clients choosing their
            // own page size cannot fill the connections' statement caches. Later pages
            // are planned at each request, as every page was before (not cached), so
            // they fetch just the page and the row after it.
            let fetch = PAGE_FETCH
                .iter()
                .copied()
                .find(|&n| n > limit)
                .filter(|_| offset == 0)
                .unwrap_or(limit + 1);
            // PostgreSQL: the listing key ([`listing_key`]) of a fixable row is its severity,
            // and the index's range of keys >= 0 holds those rows in this order.
            let (fixable, by_severity) = match self.backend() {
                Backend::Postgres => {
                    let key = listing_key("");
                    (format!("{key} >= 0"), key)
                }
                Backend::Sqlite => (
                    "fixed_version IS NOT NULL".to_string(),
                    "severity".to_string(),
                ),
            };
            let sql = format!(
                "SELECT r.image_name, r.image_tag, r.scan_id, CAST(NULL AS BIGINT), p.vulnerability_id, p.pkg_name, \
                 p.pkg_version, p.fixed_version, p.severity, v.title FROM (SELECT ref_id, vulnerability_id, pkg_name, \
                 pkg_version, fixed_version, severity FROM fleet_findings WHERE {fixable} \
                 ORDER BY {by_severity} DESC, vulnerability_id, ref_id, pkg_name, pkg_version {}) p \
                 {} LEFT JOIN vulnerabilities v ON v.id = p.vulnerability_id \
                 ORDER BY p.severity DESC, p.vulnerability_id, p.ref_id, p.pkg_name, p.pkg_version",
                literal_page(fetch, offset),
                page_refs(self.backend(), false)
            );
            let mut rows = sqlx::query(&sql)
                .persistent(offset == 0)
                .fetch_all(self.read_pool())
                .await?;
            rows.truncate((limit + 1) as usize);
            return Ok(rows.iter().map(fleet_finding_titled).collect());
        }
        let mut tx = self.read_tx().await?;
        let current = self.is_current(&mut tx, scope.to).await?;
        let mut args = vec![];
        let ff = self.fleet_findings_sql(scope, current, &mut args);
        let sql = format!(
            "SELECT ff.image_name, ff.image_tag, ff.scan_id, ff.scanned_at, ff.vulnerability_id, ff.pkg_name, \
             ff.pkg_version, ff.fixed_version, ff.severity, v.title FROM ({ff}) ff \
             LEFT JOIN vulnerabilities v ON v.id = ff.vulnerability_id WHERE ff.fixed_version IS NOT NULL \
             ORDER BY ff.severity DESC, ff.vulnerability_id, ff.image_name, ff.image_tag, ff.pkg_name, \
             ff.pkg_version LIMIT ${} OFFSET ${}",
            args.len() + 1,
            args.len() + 2
        );
        args.push(Arg::I(limit + 1));
        args.push(Arg::I(offset));
        let page = bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(fleet_finding_titled)
            .collect();
        tx.commit().await?;
        Ok(page)
    }

    /// One point per bucket from the bucket holding `from` to the one holding `to`: the
    /// fleet as of the end of each bucket (values carry forward).
    pub async fn fleet_trend(
        &self,
        image: Option<&str>,
        interval: Interval,
        from: i64,
        to: i64,
    ) -> Result<Vec<TrendPoint>, StoreError> {
        let first = interval.bucket_start_day(from.div_euclid(DAY_US));
        let last = interval.bucket_start_day(to.div_euclid(DAY_US));
        let end_day = last + interval.days();
        // One statement each: consistent without a transaction.
        let mut conn = self.read_pool().acquire().await?;
        let mut days: BTreeMap<i64, Counts> = BTreeMap::new();
        match image {
            None => {
                let sql = format!(
                    "SELECT day, {} FROM (SELECT day, {COUNT_COLUMNS} FROM fleet_daily WHERE day < $1 \
                     UNION ALL SELECT day, {COUNT_COLUMNS} FROM fleet_daily_deltas WHERE day < $1) x GROUP BY day",
                    count_sums(self.backend())
                );
                for r in sqlx::query(&sql)
                    .bind(end_day)
                    .fetch_all(&mut *conn)
                    .await?
                {
                    days.insert(r.get(0), counts_at(&r, 1));
                }
            }
            Some(img) => {
                let rows = sqlx::query(
                    "SELECT t.image_tag, s.id, s.scanned_at, s.created_at, s.fixable_count, s.vuln_critical, \
                     s.vuln_high, s.vuln_medium, s.vuln_low, s.vuln_unknown FROM scan_tags t \
                     JOIN scans s ON s.id = t.scan_id WHERE t.image_name = $1",
                )
                .bind(img)
                .fetch_all(&mut *conn)
                .await?;
                let mut chains: BTreeMap<String, Vec<ChainScan>> = BTreeMap::new();
                for r in rows {
                    let mut counts = [1; 7];
                    for (i, c) in counts.iter_mut().enumerate().skip(1) {
                        *c = r.get::<i64, _>(3 + i);
                    }
                    chains.entry(r.get(0)).or_default().push(ChainScan {
                        scan_id: r.get(1),
                        scanned_at: r.get(2),
                        created_at: r.get(3),
                        counts,
                    });
                }
                for chain in chains.values() {
                    chain_events(chain, &mut days, 1);
                }
            }
        }
        Ok(prefix_points(&days, interval, first, last))
    }
}

/// Fleet-wide counts: compacted plus pending.
fn totals_sql() -> String {
    format!(
        "SELECT {} FROM (SELECT {COUNT_COLUMNS} FROM fleet_totals UNION ALL \
         SELECT {COUNT_COLUMNS} FROM fleet_total_deltas) x",
        COUNT_COLUMNS
            .split(", ")
            .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Sample the running sum of per-day changes at the end of each bucket.
pub fn prefix_points(
    days: &BTreeMap<i64, Counts>,
    interval: Interval,
    first: i64,
    last: i64,
) -> Vec<TrendPoint> {
    let mut points = vec![];
    let mut running: Counts = [0; 7];
    let mut it = days.iter().peekable();
    let mut b = first;
    while b <= last {
        let end = b + interval.days();
        while let Some((d, c)) = it.peek() {
            if **d >= end {
                break;
            }
            add(&mut running, c, 1);
            it.next();
        }
        points.push(TrendPoint {
            bucket: b * DAY_US,
            summary: FleetSummary::from_counts(&running),
        });
        b = end;
    }
    points
}

fn fleet_finding(r: &AnyRow) -> FleetFinding {
    FleetFinding {
        image_name: r.get(0),
        image_tag: r.get(1),
        scan_id: r.get(2),
        scanned_at: r.get::<Option<i64>, _>(3).unwrap_or_default(),
        vulnerability_id: r.get(4),
        pkg_name: r.get(5),
        pkg_version: r.get(6),
        fixed_version: r.get(7),
        severity: r.get(8),
        title: None,
    }
}

fn fleet_finding_titled(r: &AnyRow) -> FleetFinding {
    FleetFinding {
        title: r.get(9),
        ..fleet_finding(r)
    }
}

fn sort_key(c: &TopCve) -> (std::cmp::Reverse<i64>, std::cmp::Reverse<i64>, String) {
    (
        std::cmp::Reverse(c.images),
        std::cmp::Reverse(c.severity),
        c.vulnerability_id.clone(),
    )
}

fn top_cve_of(id: String, c: &Counts) -> TopCve {
    TopCve {
        vulnerability_id: id,
        severity: max_severity(c),
        title: None,
        cvss_score: None,
        images: c[IMAGES],
        findings: c[2..].iter().sum(),
        fixable: c[FIXABLE],
    }
}

/// Top CVEs from the compacted ranking plus pending deltas, exactly: every CVE with a
/// pending delta is a candidate with its exact sum; every other CVE's compacted value is
/// exact and no better than the last ranked row fetched. Fetch more until the answer is
/// ahead of that row.
///
/// Outside a snapshot (`in_snapshot` false) it gives up (`None`) when deltas are pending:
/// a compaction between its statements could count them twice.
async fn top_cves_compacted(
    conn: &mut AnyConnection,
    backend: Backend,
    severity: Option<Severity>,
    limit: i64,
    in_snapshot: bool,
) -> Result<Option<Vec<TopCve>>, StoreError> {
    if limit <= 0 {
        return Ok(Some(vec![]));
    }
    // Whether anything is pending: one row tells.
    let pending = sqlx::query("SELECT 1 FROM fleet_cve_deltas LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if pending && !in_snapshot {
        return Ok(None);
    }
    let (filter, order) = match severity {
        Some(_) => ("AND severity = $1", "images DESC, vulnerability_id"),
        None => ("", "images DESC, severity DESC, vulnerability_id"),
    };
    // A power of two: the row count is written into the statement (see `literal_page`), so
    // this keeps the distinct statements few. More candidates than needed change nothing.
    let mut fetch = ((limit + 1) as u64).next_power_of_two() as i64;
    loop {
        let ranked_sql = format!(
            "SELECT vulnerability_id, {COUNT_COLUMNS} FROM fleet_cves WHERE images > 0 {filter} \
             ORDER BY {order} {}",
            literal_page(fetch, 0)
        );
        let mut q = sqlx::query(&ranked_sql);
        if let Some(s) = severity {
            q = q.bind(s.rank());
        }
        let ranked = q.fetch_all(&mut *conn).await?;
        let exhausted = (ranked.len() as i64) < fetch;
        let cutoff = ranked
            .last()
            .map(|r| top_cve_of(r.get(0), &counts_at(r, 1)));
        let rows = if pending {
            // The candidates are every CVE with a pending delta, with its exact counts
            // (compacted + pending), and the ranked rows without one, whose compacted
            // counts are exact. The database merges and ranks them and returns the first
            // `limit`: under steady ingest nearly every CVE has a delta, and shipping them
            // all to be merged here took a quarter of a second. (Two disjoint parts: a
            // UNION of the candidates' ids, joined to both tables, took a third longer.)
            let exact = |c: &str| format!("COALESCE(f.{c}, 0) + d.{c} AS {c}");
            let sev = max_severity_sql(&|c| c.to_string());
            let sql = format!(
                "WITH d AS (SELECT vulnerability_id, {sums} FROM fleet_cve_deltas GROUP BY vulnerability_id), \
                 x AS (SELECT d.vulnerability_id, {exact} FROM d \
                 LEFT JOIN fleet_cves f ON f.vulnerability_id = d.vulnerability_id \
                 UNION ALL SELECT vulnerability_id, {COUNT_COLUMNS} FROM ({ranked_sql}) t \
                 WHERE NOT EXISTS (SELECT 1 FROM d WHERE d.vulnerability_id = t.vulnerability_id)) \
                 SELECT vulnerability_id, {COUNT_COLUMNS} FROM x WHERE images > 0 {exact_filter} \
                 ORDER BY images DESC, {sev} DESC, vulnerability_id {}",
                literal_page(limit, 0),
                sums = count_sums(backend),
                exact = COUNT_COLUMNS
                    .split(", ")
                    .map(exact)
                    .collect::<Vec<_>>()
                    .join(", "),
                exact_filter = if severity.is_some() {
                    format!("AND {sev} = $1")
                } else {
                    String::new()
                },
            );
            let mut q = sqlx::query(&sql);
            if let Some(s) = severity {
                q = q.bind(s.rank());
            }
            q.fetch_all(&mut *conn).await?
        } else {
            ranked
        };
        let mut all: Vec<TopCve> = rows
            .iter()
            .map(|r| top_cve_of(r.get(0), &counts_at(r, 1)))
            .filter(|c| c.images > 0 && severity.is_none_or(|s| c.severity == s.rank()))
            .collect();
        all.sort_by_key(sort_key);
        all.truncate(limit as usize);
        let complete = exhausted
            || match (&cutoff, all.last()) {
                (Some(cut), Some(last)) => {
                    all.len() as i64 == limit && sort_key(last) <= sort_key(cut)
                }
                _ => false,
            };
        if complete {
            return Ok(Some(all));
        }
        fetch *= 4;
    }
}

/// `LIMIT n OFFSET m` as literals, for a statement PostgreSQL should plan once. With the
/// bounds as parameters it cannot: a generic plan must assume LIMIT keeps a tenth of the
/// rows the query would return, so it looks far costlier than the plan for the actual
/// bounds, and PostgreSQL plans every execution anew. Both are integers (validated ones,
/// where they come from a request), never text.
fn literal_page(limit: i64, offset: i64) -> String {
    if offset > 0 {
        format!("LIMIT {limit} OFFSET {offset}")
    } else {
        format!("LIMIT {limit}")
    }
}

/// The key PostgreSQL's one listing index of `fleet_findings` leads with, for the row whose
/// columns carry `prefix` (`""`, or `"f."`): the severity of a fixable finding (0 to 4), -1
/// for a finding without a fix (migration `20261207000002`). Queries must spell it as the
/// index does for PostgreSQL to use it.
fn listing_key(prefix: &str) -> String {
    format!("(CASE WHEN {prefix}fixed_version IS NULL THEN -1 ELSE {prefix}severity END)")
}

/// The join that gives the rows of a page (`p`, with `ref_id`) their reference's row of
/// `fleet_refs` (`r`); `left` keeps a page row of no reference (an empty page's count row).
/// PostgreSQL is made to look each one up by number (a lateral subquery with a `LIMIT`
/// is not flattened into a join): for a page of 100 rows it otherwise preferred hashing
/// the whole of `fleet_refs`, whose size grows with the fleet. SQLite looks them up anyway.
fn page_refs(backend: Backend, left: bool) -> String {
    let join = if left { "LEFT JOIN" } else { "JOIN" };
    match backend {
        Backend::Postgres => format!(
            "{join} LATERAL (SELECT image_name, image_tag, scan_id, scanned_at FROM fleet_refs \
             WHERE id = p.ref_id LIMIT 1) r ON true"
        ),
        Backend::Sqlite => format!("{join} fleet_refs r ON r.id = p.ref_id"),
    }
}

async fn attach_catalog(conn: &mut AnyConnection, cves: &mut [TopCve]) -> Result<(), StoreError> {
    if cves.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT id, title, cvss_score FROM vulnerabilities WHERE id IN ({})",
        placeholders(1, cves.len())
    );
    let mut q = sqlx::query(&sql);
    for c in cves.iter() {
        q = q.bind(c.vulnerability_id.as_str());
    }
    let mut found: HashMap<String, (Option<String>, Option<f64>)> = HashMap::new();
    for r in q.fetch_all(&mut *conn).await? {
        found.insert(r.get(0), (r.get(1), r.get(2)));
    }
    for c in cves.iter_mut() {
        if let Some((t, s)) = found.remove(&c.vulnerability_id) {
            c.title = t;
            c.cvss_score = s;
        }
    }
    Ok(())
}

/// Fold analytics deltas in every [`COMPACTION_INTERVAL`] until `shutdown`. After a round
/// with nothing to fold (PostgreSQL), [`Store::shrink_quiet_deltas`] runs beside the loop.
pub async fn compaction_loop(store: Store, shutdown: tokio_util::sync::CancellationToken) {
    let mut every = crate::periodic::Every::new(COMPACTION_INTERVAL, &shutdown);
    while every.next().await {
        match store.compact_analytics().await {
            Ok(0) if store.backend().is_postgres() => {
                // Quiet: give emptied delta pages back, beside the compaction rounds (a
                // busy table can keep the attempt going for seconds).
                let store = store.clone();
                tokio::spawn(async move {
                    match store.shrink_quiet_deltas().await {
                        Ok(true) => tracing::debug!("analytics delta tables truncated"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "truncating the analytics delta tables failed")
                        }
                    }
                });
            }
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(rows = n, "analytics deltas compacted");
                }
            }
            Err(e) => tracing::warn!(error = %e, "analytics compaction failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::listing_key;

    #[test]
    fn the_listing_key_is_spelled_as_the_index_and_takes_a_prefix() {
        // As migration 20261207000002 writes the index's expression.
        assert_eq!(
            listing_key(""),
            "(CASE WHEN fixed_version IS NULL THEN -1 ELSE severity END)"
        );
        assert_eq!(
            listing_key("f."),
            "(CASE WHEN f.fixed_version IS NULL THEN -1 ELSE f.severity END)"
        );
    }
}
