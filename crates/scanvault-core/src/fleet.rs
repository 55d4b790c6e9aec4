//! The fleet model, as plain arithmetic: what an image reference's history contributes to the
//! fleet's counts day by day, how the counts change when observations come or go, what the
//! current fleet's rows contribute per vulnerability, and when a ranking of vulnerabilities
//! read in part is complete. The store keeps its aggregates with these functions; nothing
//! here does I/O.
//!
//! **Observations.** Every ingest of a report is an observation of its content at the
//! report's scan time, with the findings it had, also when it updates a stored scan in
//! place. An image reference (name, tag) sees the observations of every content stored under
//! it, from the first report that named it on: its *chain*, ordered by scan time and then by
//! observation id (ingest order). The fleet as of T takes each reference's latest observation
//! at or before T. So the fleet's counts as of the end of day D are the sum, over every
//! chain, of `+counts(o)` on the day of each observation `o` and `-counts(o)` on the day of
//! the observation after it ([`chain_events`]): trends are prefix sums of per-day changes,
//! and an observation changes only the days from its own on.

use std::collections::{BTreeMap, HashMap};

/// One day in microseconds.
pub const DAY_US: i64 = 86_400_000_000;

/// `[images, fixable, critical, high, medium, low, unknown]`: the counts every aggregate keeps.
pub type Counts = [i64; 7];
/// Index of the number of image references in [`Counts`].
pub const IMAGES: usize = 0;
/// Index of the number of fixable findings in [`Counts`].
pub const FIXABLE: usize = 1;

/// Index in [`Counts`] of the findings of severity `rank` (0 = UNKNOWN … 4 = CRITICAL).
pub fn sev_index(rank: i64) -> usize {
    2 + (4 - rank.clamp(0, 4)) as usize
}

/// `a += sign · b`, column by column.
pub fn add(a: &mut Counts, b: &Counts, sign: i64) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += sign * y;
    }
}

pub fn is_zero(c: &Counts) -> bool {
    c.iter().all(|x| *x == 0)
}

/// The highest severity rank with a non-zero count (0 when none).
pub fn max_severity(c: &Counts) -> i64 {
    (0..=4).rev().find(|r| c[sev_index(*r)] > 0).unwrap_or(0)
}

/// The counts one image reference contributes when it shows a scan with these findings:
/// one image, its fixable findings and its findings per severity (`by_rank[r]` = findings
/// of rank `r`).
pub fn image_counts(fixable: i64, by_rank: [i64; 5]) -> Counts {
    let mut c = [0; 7];
    c[IMAGES] = 1;
    c[FIXABLE] = fixable;
    for (rank, n) in by_rank.iter().enumerate() {
        c[sev_index(rank as i64)] = *n;
    }
    c
}

/// The day (since the epoch, UTC) of a time in microseconds.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY_US)
}

/// One observation as a reference's chain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainObs {
    /// The observation's id: ingest order, which breaks ties of scan time.
    pub id: i64,
    pub scan_id: String,
    /// The version of the scan's findings this observation had.
    pub version: i64,
    /// Scan time, microseconds.
    pub scanned_at: i64,
    /// What a reference showing this observation counts ([`image_counts`]).
    pub counts: Counts,
}

impl ChainObs {
    /// The chain's order: scan time, then ingest order.
    pub fn key(&self) -> (i64, i64) {
        (self.scanned_at, self.id)
    }
}

/// Per-day changes of the fleet's counts from one chain: `sign · counts(o)` on the day of
/// each observation and `-sign · counts(o)` on the day of the next one. The fleet as of the
/// end of day D is the sum of every change on days <= D.
pub fn chain_events(chain: &[ChainObs], sign: i64, out: &mut BTreeMap<i64, Counts>) {
    let mut sorted: Vec<&ChainObs> = chain.iter().collect();
    sorted.sort_by_key(|o| o.key());
    for (i, o) in sorted.iter().enumerate() {
        add(
            out.entry(day_of(o.scanned_at)).or_default(),
            &o.counts,
            sign,
        );
        if let Some(next) = sorted.get(i + 1) {
            add(
                out.entry(day_of(next.scanned_at)).or_default(),
                &o.counts,
                -sign,
            );
        }
    }
}

/// What one image reference's change of chain does to the fleet: the per-day changes of its
/// counts, the observation it shows now, and whether its current-fleet rows must be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainChange {
    /// `events(after) - events(before)`, days with no change left out.
    pub daily: BTreeMap<i64, Counts>,
    /// The latest observation of the chain after the change (`None`: no observation left).
    pub tip: Option<ChainObs>,
    /// The reference shows other findings than before (another scan or another version of
    /// the same scan's findings): its current-fleet rows must be replaced.
    pub replace_rows: bool,
}

/// The change from chain `before` to chain `after` of one reference whose stored latest
/// observation is `stored_tip`.
///
/// Only the observations next to a change matter: a chain's events depend on each
/// observation and its successor alone, so `before` may be a window of the chain holding the
/// observations adjacent to every one inserted or removed (for an observation newer than
/// the reference's latest, the window is that latest one), with `after` the same window
/// changed.
pub fn chain_change(
    stored_tip: Option<&ChainObs>,
    before: &[ChainObs],
    after: &[ChainObs],
) -> ChainChange {
    let mut daily = BTreeMap::new();
    chain_events(before, -1, &mut daily);
    chain_events(after, 1, &mut daily);
    daily.retain(|_, c| !is_zero(c));
    let tip = after.iter().max_by_key(|o| o.key()).cloned();
    let shows = |o: Option<&ChainObs>| o.map(|o| (o.scan_id.clone(), o.version));
    let replace_rows = shows(tip.as_ref()) != shows(stored_tip);
    ChainChange {
        daily,
        tip,
        replace_rows,
    }
}

/// One row of the current fleet: a finding of the scan an image reference shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetRow {
    /// The reference's number.
    pub ref_id: i64,
    pub vulnerability_id: String,
    pub severity: i64,
    pub fixable: bool,
}

/// Per-vulnerability and fleet-wide changes of the counts when the current fleet loses the
/// rows `removed` and gains the rows `added`. A vulnerability's image count changes when a
/// reference gains its first row of it or loses its last one.
pub fn row_deltas(removed: &[FleetRow], added: &[FleetRow]) -> (BTreeMap<String, Counts>, Counts) {
    let mut cves: BTreeMap<String, Counts> = BTreeMap::new();
    let mut totals: Counts = [0; 7];
    // bit 1: the reference had the vulnerability before, bit 2: it has it after.
    let mut presence: HashMap<(i64, &str), u8> = HashMap::new();
    for (rows, sign) in [(removed, -1), (added, 1)] {
        for r in rows {
            let c = cves.entry(r.vulnerability_id.clone()).or_default();
            c[sev_index(r.severity)] += sign;
            c[FIXABLE] += sign * i64::from(r.fixable);
            totals[sev_index(r.severity)] += sign;
            totals[FIXABLE] += sign * i64::from(r.fixable);
            *presence
                .entry((r.ref_id, r.vulnerability_id.as_str()))
                .or_default() |= if sign < 0 { 1 } else { 2 };
        }
    }
    for ((_, vuln), p) in presence {
        let d = match p {
            1 => -1,
            2 => 1,
            _ => 0,
        };
        if let (true, Some(c)) = (d != 0, cves.get_mut(vuln)) {
            c[IMAGES] += d;
        }
    }
    cves.retain(|_, c| !is_zero(c));
    (cves, totals)
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

    /// Start (microseconds) of the bucket holding `t` (microseconds).
    pub fn bucket_start(self, t: i64) -> i64 {
        self.bucket_start_day(day_of(t)) * DAY_US
    }

    pub fn days(self) -> i64 {
        match self {
            Interval::Day => 1,
            Interval::Week => 7,
        }
    }

    /// Number of buckets from the one holding `from` to the one holding `to` (microseconds).
    pub fn bucket_count(self, from: i64, to: i64) -> i64 {
        let a = self.bucket_start_day(day_of(from));
        let b = self.bucket_start_day(day_of(to));
        (b - a) / self.days() + 1
    }
}

/// Totals over the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    pub fn from_counts(c: &Counts) -> FleetSummary {
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

/// A trend point: the fleet as of the end of a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendPoint {
    /// Bucket start, microseconds.
    pub bucket: i64,
    pub summary: FleetSummary,
}

/// Sample the running sum of per-day changes at the end of each bucket, from the bucket
/// starting on day `first` to the one starting on day `last`.
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
        while let Some((_, c)) = it.next_if(|(d, _)| **d < end) {
            add(&mut running, c, 1);
        }
        points.push(TrendPoint {
            bucket: b * DAY_US,
            summary: FleetSummary::from_counts(&running),
        });
        b = end;
    }
    points
}

/// One vulnerability id over the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct TopCve {
    pub vulnerability_id: String,
    /// Highest severity of its findings in the fleet.
    pub severity: i64,
    pub title: Option<String>,
    pub cvss_score: Option<f64>,
    /// Image references whose latest observation has it.
    pub images: i64,
    /// Its findings in the fleet (per reference, package and installed version).
    pub findings: i64,
    /// Findings with a fixed version.
    pub fixable: i64,
}

impl TopCve {
    pub fn from_counts(vulnerability_id: String, c: &Counts) -> TopCve {
        TopCve {
            vulnerability_id,
            severity: max_severity(c),
            title: None,
            cvss_score: None,
            images: c[IMAGES],
            findings: c[2..].iter().sum(),
            fixable: c[FIXABLE],
        }
    }

    /// The ranking: most images first, then the most severe, then by id.
    pub fn rank_key(&self) -> (std::cmp::Reverse<i64>, std::cmp::Reverse<i64>, &str) {
        (
            std::cmp::Reverse(self.images),
            std::cmp::Reverse(self.severity),
            &self.vulnerability_id,
        )
    }
}

/// The first `limit` vulnerabilities of a ranking read in part, or `None` when the part read
/// cannot tell them yet.
///
/// `candidates` are vulnerabilities with exact counts: those with changes not folded into
/// the compacted ranking yet, and the first compacted rows without such changes. Every
/// vulnerability not among them ranks no better than `cutoff`, the last compacted row read
/// (`None` when none was read); `exhausted` says the compacted ranking was read to its end.
/// The answer is complete when it is, or when it has `limit` entries and its last entry
/// ranks no worse than the cutoff.
pub fn complete_ranking(
    mut candidates: Vec<TopCve>,
    severity: Option<i64>,
    limit: usize,
    cutoff: Option<&TopCve>,
    exhausted: bool,
) -> Option<Vec<TopCve>> {
    candidates.retain(|c| c.images > 0 && severity.is_none_or(|s| c.severity == s));
    candidates.sort_by(|a, b| a.rank_key().cmp(&b.rank_key()));
    candidates.truncate(limit);
    let complete = exhausted
        || match (cutoff, candidates.last()) {
            (Some(cut), Some(last)) => {
                candidates.len() == limit && last.rank_key() <= cut.rank_key()
            }
            _ => false,
        };
    complete.then_some(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(id: i64, scan: &str, version: i64, day: i64, critical: i64) -> ChainObs {
        ChainObs {
            id,
            scan_id: scan.into(),
            version,
            scanned_at: day * DAY_US + 3_600_000_000,
            counts: image_counts(0, [0, 0, 0, 0, critical]),
        }
    }

    fn fleet_on(events: &BTreeMap<i64, Counts>, day: i64) -> Counts {
        let mut c = [0; 7];
        for (_, e) in events.range(..=day) {
            add(&mut c, e, 1);
        }
        c
    }

    #[test]
    fn a_chain_counts_its_latest_observation_on_each_day() {
        let chain = [
            obs(1, "a", 1, 10, 2),
            obs(2, "a", 2, 12, 5),
            obs(3, "b", 1, 15, 1),
        ];
        let mut ev = BTreeMap::new();
        chain_events(&chain, 1, &mut ev);
        assert_eq!(fleet_on(&ev, 9), [0; 7]);
        for (day, critical) in [(10, 2), (11, 2), (12, 5), (14, 5), (15, 1), (99, 1)] {
            let c = fleet_on(&ev, day);
            assert_eq!((c[IMAGES], c[sev_index(4)]), (1, critical), "day {day}");
        }
    }

    #[test]
    fn an_observation_changes_only_the_days_from_its_own_on() {
        let before = [obs(1, "a", 1, 10, 2), obs(3, "a", 1, 20, 2)];
        // A late observation (day 15, a later id) with other findings.
        let late = obs(7, "a", 2, 15, 9);
        let after = [before[0].clone(), late.clone(), before[1].clone()];
        let full = chain_change(Some(&before[1]), &before, &after);
        assert!(full.daily.keys().all(|d| *d >= 15), "{:?}", full.daily);
        assert_eq!(
            full.tip.as_ref(),
            Some(&before[1]),
            "the newest stays the tip"
        );
        assert!(!full.replace_rows);
        let mut ev = BTreeMap::new();
        chain_events(&before, 1, &mut ev);
        for (d, c) in &full.daily {
            add(ev.entry(*d).or_default(), c, 1);
        }
        assert_eq!(fleet_on(&ev, 16)[sev_index(4)], 9);
        assert_eq!(fleet_on(&ev, 20)[sev_index(4)], 2);
    }

    #[test]
    fn a_window_around_the_change_gives_the_same_change_as_the_whole_chain() {
        let chain: Vec<ChainObs> = (0..6).map(|i| obs(i, "a", i, 10 + 2 * i, i)).collect();
        let new = obs(100, "b", 1, 30, 7);
        let mut after = chain.clone();
        after.push(new.clone());
        let whole = chain_change(chain.last(), &chain, &after);
        let window = chain_change(chain.last(), &chain[5..], &[chain[5].clone(), new.clone()]);
        assert_eq!(whole, window);
        assert!(whole.replace_rows, "another scan is shown now");
        assert_eq!(whole.tip, Some(new));
    }

    #[test]
    fn a_rescan_with_the_same_counts_on_a_later_day_changes_nothing() {
        let tip = obs(1, "a", 1, 10, 3);
        let again = obs(2, "a", 1, 11, 3);
        let c = chain_change(
            Some(&tip),
            std::slice::from_ref(&tip),
            &[tip.clone(), again.clone()],
        );
        assert!(c.daily.is_empty());
        assert!(!c.replace_rows, "same scan, same findings");
        assert_eq!(c.tip, Some(again));
        let changed = obs(3, "a", 2, 11, 3);
        assert!(
            chain_change(
                Some(&tip),
                std::slice::from_ref(&tip),
                &[tip.clone(), changed]
            )
            .replace_rows
        );
    }

    #[test]
    fn removing_every_observation_empties_the_reference() {
        let chain = [obs(1, "a", 1, 10, 2)];
        let c = chain_change(chain.first(), &chain, &[]);
        assert_eq!(c.tip, None);
        assert!(c.replace_rows);
        assert_eq!(c.daily.values().map(|v| v[IMAGES]).sum::<i64>(), -1);
    }

    fn row(r: i64, v: &str, sev: i64, fixable: bool) -> FleetRow {
        FleetRow {
            ref_id: r,
            vulnerability_id: v.into(),
            severity: sev,
            fixable,
        }
    }

    #[test]
    fn row_deltas_count_images_once_per_reference() {
        let removed = [
            row(1, "CVE-1", 2, false),
            row(1, "CVE-1", 3, true),
            row(1, "CVE-2", 1, false),
        ];
        let added = [
            row(1, "CVE-1", 3, true),
            row(2, "CVE-1", 4, false),
            row(1, "CVE-3", 0, false),
        ];
        let (cves, totals) = row_deltas(&removed, &added);
        let c1 = cves["CVE-1"];
        assert_eq!(c1[IMAGES], 1, "reference 2 gained it, reference 1 kept it");
        assert_eq!(c1[sev_index(2)], -1);
        assert_eq!(c1[sev_index(4)], 1);
        assert_eq!(cves["CVE-2"][IMAGES], -1);
        assert_eq!(cves["CVE-3"][IMAGES], 1);
        assert_eq!(totals[FIXABLE], 0);
        assert_eq!(
            totals[2..].iter().sum::<i64>(),
            0,
            "three rows out, three in"
        );
    }

    #[test]
    fn prefix_points_carry_forward_and_fill_every_bucket() {
        let mut days = BTreeMap::new();
        days.insert(10, image_counts(1, [0, 1, 0, 0, 0]));
        days.insert(13, image_counts(0, [0, 0, 0, 0, 1]));
        let pts = prefix_points(&days, Interval::Day, 9, 14);
        let images: Vec<i64> = pts.iter().map(|p| p.summary.images).collect();
        assert_eq!(images, [0, 1, 1, 1, 2, 2]);
        assert_eq!(pts[1].bucket, 10 * DAY_US);
        assert_eq!(
            Interval::Week.bucket_start_day(0),
            -3,
            "weeks start on Monday"
        );
        assert_eq!(Interval::Week.bucket_count(0, 7 * DAY_US), 2);
    }

    fn cve(id: &str, images: i64, sev: i64) -> TopCve {
        let mut c = [0; 7];
        c[IMAGES] = images;
        c[sev_index(sev)] = images;
        TopCve::from_counts(id.into(), &c)
    }

    #[test]
    fn a_ranking_is_complete_only_when_nothing_unread_can_rank_ahead() {
        let cut = cve("CVE-9", 5, 2);
        let got = complete_ranking(
            vec![cve("CVE-2", 3, 4), cve("CVE-1", 7, 1)],
            None,
            2,
            Some(&cut),
            false,
        );
        assert_eq!(
            got, None,
            "CVE-2 (3 images) may be behind an unread CVE with 5"
        );
        let got = complete_ranking(
            vec![cve("CVE-2", 6, 4), cve("CVE-1", 7, 1)],
            None,
            2,
            Some(&cut),
            false,
        )
        .unwrap();
        assert_eq!(got[0].vulnerability_id, "CVE-1");
        let got = complete_ranking(
            vec![cve("CVE-2", 3, 4), cve("CVE-0", 0, 4)],
            Some(4),
            5,
            None,
            true,
        )
        .unwrap();
        assert_eq!(got.len(), 1, "no image, no row; exhausted: complete");
    }
}
