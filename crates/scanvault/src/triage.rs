//! What suppressions leave out of the answers (ADR 0026).
//!
//! Listings (a CVE's images, fixable findings, workload listings) leave suppressed rows out
//! in SQL, so their pages and counts are exact at once. The counts the analytics keep by
//! ingest (summary, top CVEs, trends, a CVE's image count) include every finding; what the
//! active suppressions cover is the [`Overlay`]: the current fleet's rows of the suppressed
//! vulnerabilities, split into kept and suppressed counts, subtracted from the maintained
//! counts. The overlay is computed again when the newest observation or the newest
//! suppression change moves (one indexed statement per answer tells), when a suppression
//! reaches its expiry, and at least every [`OVERLAY_MAX_AGE`]; while one answer computes it,
//! others use the previous one for up to [`OVERLAY_STALE`]. Questions about the past or
//! scoped to an image compute their own overlay from the scope's findings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanvault_core::fleet::{self, Counts, FleetSummary, TopCve, FIXABLE, IMAGES};
use scanvault_core::report::{Finding, Severity};

use crate::store::analytics::{FleetScope, SuppressedMode, SuppressibleRow};
use crate::store::suppressions::SuppressionRow;
use crate::store::{Store, StoreError};

/// How long another process's suppression change may take to reach answers that read the
/// active suppressions without asking the database (scan counts, verdicts).
pub const ACTIVE_TTL: Duration = Duration::from_secs(2);
/// How long after it was last known to hold answers may use an overlay while another
/// answer checks or rebuilds it.
pub const OVERLAY_STALE: Duration = Duration::from_secs(4);
/// How often answers ask the database whether the overlay still holds (changes through
/// this process are seen at once: [`Triage::fleet_changed`], [`Triage::forget`]).
pub const FINGERPRINT_EVERY: Duration = Duration::from_secs(1);

/// The suppressions applying at one time.
#[derive(Debug, Default)]
pub struct Active {
    rows: Vec<SuppressionRow>,
    globs: Vec<Option<wildmatch::WildMatch>>,
    by_vuln: HashMap<String, Vec<usize>>,
    /// The earliest expiry among them: the set changes then.
    pub valid_until: i64,
}

impl Active {
    pub fn new(rows: Vec<SuppressionRow>, now: i64) -> Active {
        let rows: Vec<SuppressionRow> = rows.into_iter().filter(|s| s.is_active(now)).collect();
        let mut by_vuln: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in rows.iter().enumerate() {
            by_vuln
                .entry(s.vulnerability_id.clone())
                .or_default()
                .push(i);
        }
        let globs = rows
            .iter()
            .map(|s| s.image.as_deref().map(wildmatch::WildMatch::new))
            .collect();
        let valid_until = rows
            .iter()
            .filter_map(|s| s.expires_at)
            .min()
            .unwrap_or(i64::MAX);
        Active {
            rows,
            globs,
            by_vuln,
            valid_until,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The vulnerability ids they name, sorted.
    pub fn vulnerabilities(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_vuln.keys().cloned().collect();
        v.sort_unstable();
        v
    }

    /// The suppression that covers a finding of `vuln` in `pkg` of an image named `image`
    /// (the oldest, when several do).
    pub fn covering(&self, vuln: &str, pkg: &str, image: &str) -> Option<&SuppressionRow> {
        self.by_vuln.get(vuln)?.iter().rev().find_map(|&i| {
            let s = &self.rows[i];
            let pkg_ok = s.package.as_deref().is_none_or(|p| p == pkg);
            let image_ok = self.globs[i].as_ref().is_none_or(|g| g.matches(image));
            (pkg_ok && image_ok).then_some(s)
        })
    }

    /// Whether a suppression covers `vuln` in every package of every image.
    pub fn whole(&self, vuln: &str) -> bool {
        self.by_vuln.get(vuln).is_some_and(|ix| {
            ix.iter()
                .any(|&i| self.rows[i].package.is_none() && self.rows[i].image.is_none())
        })
    }

    /// Whether any suppression names `vuln`.
    pub fn names(&self, vuln: &str) -> bool {
        self.by_vuln.contains_key(vuln)
    }
}

/// One vulnerability's counts over a scope: every finding, the ones kept, the suppressed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub all: Counts,
    pub kept: Counts,
    pub suppressed: Counts,
}

impl Split {
    pub fn of(&self, mode: SuppressedMode) -> &Counts {
        match mode {
            SuppressedMode::Exclude => &self.kept,
            SuppressedMode::Only => &self.suppressed,
            SuppressedMode::Include => &self.all,
        }
    }
}

/// What the suppressions leave out of a scope of the fleet.
#[derive(Debug, Default)]
pub struct Overlay {
    pub cves: HashMap<String, Split>,
    /// The suppressed findings over the scope; `IMAGES` = references with at least one.
    pub suppressed: Counts,
    /// The vulnerabilities with kept findings, ranked as top CVEs are (kept counts).
    pub ranked_kept: Vec<TopCve>,
    /// The vulnerabilities with suppressed findings, ranked by their suppressed counts.
    pub ranked_suppressed: Vec<TopCve>,
}

fn count_row(c: &mut Counts, r: &SuppressibleRow) {
    c[fleet::sev_index(r.severity)] += 1;
    if r.fixable {
        c[FIXABLE] += 1;
    }
}

impl Overlay {
    /// From the scope's rows of the suppressed vulnerabilities.
    pub fn compute(rows: &[SuppressibleRow], active: &Active) -> Overlay {
        Overlay::compute_with(rows, active, &[], &[])
    }

    /// With the vulnerabilities suppressed everywhere given as counts (`whole`) and the
    /// references that carry them (`whole_refs`), `rows` holding the others'.
    pub fn compute_with(
        rows: &[SuppressibleRow],
        active: &Active,
        whole: &[(String, Counts)],
        whole_refs: &[(String, String)],
    ) -> Overlay {
        let mut cves: HashMap<String, Split> = HashMap::new();
        // (vulnerability, reference) → (has a kept row, has a suppressed row)
        let mut per_ref: HashMap<(&str, &str, &str), (bool, bool)> = HashMap::new();
        let mut suppressed_refs: HashSet<(&str, &str)> = whole_refs
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let mut suppressed: Counts = [0; 7];
        for (id, c) in whole {
            cves.insert(
                id.clone(),
                Split {
                    all: *c,
                    kept: [0; 7],
                    suppressed: *c,
                },
            );
            let images = suppressed[IMAGES];
            fleet::add(&mut suppressed, c, 1);
            suppressed[IMAGES] = images;
        }
        for r in rows {
            if !cves.contains_key(&r.vulnerability_id) {
                cves.insert(r.vulnerability_id.clone(), Split::default());
            }
            let split = cves.get_mut(&r.vulnerability_id).expect("inserted above");
            let covered = active
                .covering(&r.vulnerability_id, &r.pkg_name, &r.image_name)
                .is_some();
            count_row(&mut split.all, r);
            let seen = per_ref
                .entry((&r.vulnerability_id, &r.image_name, &r.image_tag))
                .or_default();
            if covered {
                count_row(&mut split.suppressed, r);
                count_row(&mut suppressed, r);
                suppressed_refs.insert((&r.image_name, &r.image_tag));
                seen.1 = true;
            } else {
                count_row(&mut split.kept, r);
                seen.0 = true;
            }
        }
        for ((vuln, _, _), (kept, supp)) in per_ref {
            let split = cves.get_mut(vuln).expect("counted above");
            split.all[IMAGES] += 1;
            split.kept[IMAGES] += i64::from(kept);
            split.suppressed[IMAGES] += i64::from(supp);
        }
        suppressed[IMAGES] = suppressed_refs.len() as i64;
        let ranked = |pick: fn(&Split) -> &Counts| {
            let mut v: Vec<TopCve> = cves
                .iter()
                .filter(|(_, s)| pick(s)[IMAGES] > 0)
                .map(|(id, s)| TopCve::from_counts(id.clone(), pick(s)))
                .collect();
            v.sort_by(|a, b| a.rank_key().cmp(&b.rank_key()));
            v
        };
        let ranked_kept = ranked(|s| &s.kept);
        let ranked_suppressed = ranked(|s| &s.suppressed);
        Overlay {
            cves,
            suppressed,
            ranked_kept,
            ranked_suppressed,
        }
    }

    /// Suppressed findings (all severities).
    pub fn suppressed_findings(&self) -> i64 {
        self.suppressed[2..].iter().sum()
    }

    /// The summary in `mode` from the maintained one.
    pub fn summary(&self, raw: &FleetSummary, mode: SuppressedMode) -> FleetSummary {
        apply(raw, &self.suppressed, mode)
    }
}

/// A vulnerability's image references and items (reference, package, version) in `mode`,
/// from the maintained `images` and `items` and its [`Split`] (`None`: no suppression
/// names it). The maintained counts may be newer than the overlay: what the overlay found
/// suppressed, and the references it left without a kept item, come off them.
pub fn cve_totals(
    split: Option<&Split>,
    images: i64,
    items: i64,
    mode: SuppressedMode,
) -> (i64, i64) {
    let findings = |c: &Counts| c[2..].iter().sum::<i64>();
    match (split, mode) {
        (_, SuppressedMode::Include) | (None, SuppressedMode::Exclude) => (images, items),
        (None, SuppressedMode::Only) => (0, 0),
        (Some(s), SuppressedMode::Exclude) => (
            images - (s.all[IMAGES] - s.kept[IMAGES]),
            items - findings(&s.suppressed),
        ),
        (Some(s), SuppressedMode::Only) => (s.suppressed[IMAGES], findings(&s.suppressed)),
    }
}

/// A summary's counts as [`Counts`].
fn counts_of(s: &FleetSummary) -> Counts {
    let mut c = [0; 7];
    c[IMAGES] = s.images;
    c[FIXABLE] = s.fixable;
    for (rank, n) in s.by_severity.iter().enumerate() {
        c[fleet::sev_index(rank as i64)] = *n;
    }
    c
}

/// What an overlay was computed from: the newest observation and suppression change, the
/// fleet's maintained totals (they move when scans are deleted), this process's changes.
type OverlayKey = ((Option<i64>, Option<i64>), FleetSummary, u64);

struct CachedOverlay {
    overlay: Arc<Overlay>,
    key: OverlayKey,
    /// The earliest expiry of the suppressions it applies.
    valid_until: i64,
    /// When the database last said it still holds.
    checked: Mutex<Instant>,
}

impl CachedOverlay {
    fn holds(&self, now: i64) -> bool {
        now < self.valid_until
    }
}

/// The active suppressions, when they were read, and the newest suppression change then.
type CachedActive = (Arc<Active>, Instant, Option<i64>);

/// The active suppressions and the fleet overlay of this process.
#[derive(Default)]
pub struct Triage {
    active: Mutex<Option<CachedActive>>,
    overlay: Mutex<Option<Arc<CachedOverlay>>>,
    computing: tokio::sync::Mutex<()>,
    reading: tokio::sync::Mutex<()>,
    /// Changes through this process that the fingerprint does not show (deletions).
    generation: AtomicU64,
}

impl Triage {
    /// The fleet changed through this process (an ingest, a deletion): the next answer
    /// checks the overlay.
    pub fn fleet_changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A suppression or the fleet changed through this process: the next answer reads again.
    pub fn forget(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.active.lock().expect("lock") = None;
    }

    /// The suppressions applying now (read again after [`ACTIVE_TTL`], at the earliest
    /// expiry, or when `audit` shows a change it did not see).
    pub async fn active(&self, store: &Store) -> Result<Arc<Active>, StoreError> {
        self.active_seen(store, None).await
    }

    async fn active_seen(
        &self,
        store: &Store,
        audit: Option<Option<i64>>,
    ) -> Result<Arc<Active>, StoreError> {
        let now = crate::store::micros(chrono::Utc::now());
        let cached = self.active.lock().expect("lock").clone();
        if let Some((a, at, seen)) = &cached {
            let fresh = at.elapsed() < ACTIVE_TTL && now < a.valid_until;
            if fresh && audit.is_none_or(|x| x == *seen) {
                return Ok(a.clone());
            }
        }
        // One answer reads them again; while it does, the others keep the ones they have
        // when only their age (not an expiry or a change seen) says to read again.
        let _reading = match self.reading.try_lock() {
            Ok(g) => g,
            Err(_) => {
                if let Some((a, _, seen)) = &cached {
                    if now < a.valid_until && audit.is_none_or(|x| x == *seen) {
                        return Ok(a.clone());
                    }
                }
                let g = self.reading.lock().await;
                // Read meanwhile by the answer that held the lock?
                if let Some((a, at, seen)) = self.active.lock().expect("lock").as_ref() {
                    let fresh = at.elapsed() < ACTIVE_TTL && now < a.valid_until;
                    if fresh && audit.is_none_or(|x| x == *seen) {
                        return Ok(a.clone());
                    }
                }
                g
            }
        };
        let audit = match audit {
            Some(a) => a,
            None => store.analytics().triage_fingerprint().await?.1,
        };
        let rows = store.suppressions().suppressions(Some(now)).await?;
        let a = Arc::new(Active::new(rows, now));
        *self.active.lock().expect("lock") = Some((a.clone(), Instant::now(), audit));
        Ok(a)
    }

    /// The current fleet's overlay, `None` when no suppression applies.
    pub async fn fleet_overlay(&self, store: &Store) -> Result<Option<Arc<Overlay>>, StoreError> {
        let cheap = self.active(store).await?;
        if cheap.is_empty() && self.overlay.lock().expect("lock").is_none() {
            return Ok(None);
        }
        let now = crate::store::micros(chrono::Utc::now());
        let cached = self.overlay.lock().expect("lock").clone();
        if let Some(c) = &cached {
            let recent = c.checked.lock().expect("lock").elapsed() < FINGERPRINT_EVERY;
            if c.key.2 == self.generation.load(Ordering::SeqCst) && recent && c.holds(now) {
                return Ok(Some(c.overlay.clone()));
            }
        }
        // One answer checks (and rebuilds); meanwhile the others use the previous overlay
        // if it was known to hold a moment ago.
        let _guard = match self.computing.try_lock() {
            Ok(g) => g,
            Err(_) => {
                if let Some(c) = &cached {
                    let checked = c.checked.lock().expect("lock").elapsed();
                    if checked < OVERLAY_STALE && c.holds(now) {
                        return Ok(Some(c.overlay.clone()));
                    }
                }
                self.computing.lock().await
            }
        };
        let generation = self.generation.load(Ordering::SeqCst);
        let fp = store.analytics().triage_fingerprint().await?;
        let totals = store.analytics().summary(&FleetScope::default()).await?;
        let key = (fp, totals, generation);
        // Another answer may have rebuilt it while this one waited.
        let cached = self.overlay.lock().expect("lock").clone();
        if let Some(c) = &cached {
            if c.key == key && c.holds(now) {
                *c.checked.lock().expect("lock") = Instant::now();
                return Ok(Some(c.overlay.clone()));
            }
        }
        let active = self.active_seen(store, Some(fp.1)).await?;
        if active.is_empty() {
            *self.overlay.lock().expect("lock") = None;
            self.record_day(store, &[0; 7]).await;
            return Ok(None);
        }
        // Vulnerabilities suppressed everywhere are counted in the database; the others'
        // rows are read and matched here.
        let (whole, partial): (Vec<String>, Vec<String>) = active
            .vulnerabilities()
            .into_iter()
            .partition(|v| active.whole(v));
        let (counts, refs) = store.analytics().wholly_suppressed(&whole).await?;
        let rows = store
            .analytics()
            .suppressible(&FleetScope::default(), &partial)
            .await?;
        let overlay = Arc::new(Overlay::compute_with(&rows, &active, &counts, &refs));
        let previous = cached.map(|c| c.overlay.suppressed);
        if previous != Some(overlay.suppressed) {
            self.record_day(store, &overlay.suppressed).await;
        }
        *self.overlay.lock().expect("lock") = Some(Arc::new(CachedOverlay {
            overlay: overlay.clone(),
            key,
            valid_until: active.valid_until,
            checked: Mutex::new(Instant::now()),
        }));
        Ok(Some(overlay))
    }

    /// Keep what the suppressions leave out of the fleet today for the fleet trend.
    async fn record_day(&self, store: &Store, c: &Counts) {
        let day = fleet::day_of(crate::store::micros(chrono::Utc::now()));
        if let Err(e) = store.analytics().record_suppressed_day(day, c).await {
            tracing::warn!(error = %e, "recording what suppressions leave out failed");
        }
    }

    /// The overlay of a scope: the current fleet's (cached), or computed for the scope.
    pub async fn overlay(
        &self,
        store: &Store,
        scope: &FleetScope,
    ) -> Result<Option<Arc<Overlay>>, StoreError> {
        if scope.is_whole_current_fleet() {
            return self.fleet_overlay(store).await;
        }
        let active = self.active(store).await?;
        if active.is_empty() {
            return Ok(None);
        }
        let rows = store
            .analytics()
            .suppressible(scope, &active.vulnerabilities())
            .await?;
        Ok(Some(Arc::new(Overlay::compute(&rows, &active))))
    }
}

/// The summary of a scope in `mode` (`overlay`: the scope's).
pub async fn summary(
    store: &Store,
    scope: &FleetScope,
    mode: SuppressedMode,
    overlay: Option<&Overlay>,
) -> Result<FleetSummary, StoreError> {
    let raw = store.analytics().summary(scope).await?;
    Ok(match overlay {
        None if mode == SuppressedMode::Only => FleetSummary {
            images: 0,
            ..Default::default()
        },
        None => raw,
        Some(o) => o.summary(&raw, mode),
    })
}

/// Top CVEs of a scope in `mode`: the maintained ranking with the suppressed
/// vulnerabilities' counts replaced. Every vulnerability not fetched ranks behind every
/// one fetched; the answer is final once `limit` fetched ones are untouched by suppressions.
pub async fn top_cves(
    store: &Store,
    scope: &FleetScope,
    severity: Option<Severity>,
    limit: i64,
    mode: SuppressedMode,
    overlay: Option<&Overlay>,
) -> Result<Vec<TopCve>, StoreError> {
    let overlay = match (mode, overlay) {
        (SuppressedMode::Include, _) | (SuppressedMode::Exclude, None) => {
            return store.analytics().top_cves(scope, severity, limit).await
        }
        (SuppressedMode::Only, None) => return Ok(vec![]),
        (_, Some(o)) => o,
    };
    let sev = severity.map(|s| s.rank());
    let wanted = |c: &&TopCve| sev.is_none_or(|s| c.severity == s);
    let n = limit.max(0) as usize;
    let mut out: Vec<TopCve> = if mode == SuppressedMode::Only {
        overlay
            .ranked_suppressed
            .iter()
            .filter(wanted)
            .take(n)
            .cloned()
            .collect()
    } else {
        let mut fetch = limit * 2;
        loop {
            let raw = store.analytics().top_cves(scope, severity, fetch).await?;
            let exhausted = (raw.len() as i64) < fetch;
            let untouched = raw
                .iter()
                .filter(|c| !overlay.cves.contains_key(&c.vulnerability_id))
                .count() as i64;
            if exhausted || untouched >= limit {
                let mut titles: HashMap<String, (Option<String>, Option<f64>)> = HashMap::new();
                let mut out = vec![];
                for c in raw {
                    if overlay.cves.contains_key(&c.vulnerability_id) {
                        titles.insert(c.vulnerability_id.clone(), (c.title, c.cvss_score));
                    } else {
                        out.push(c);
                    }
                }
                // The touched ones, best first: only the first `limit` can be in the answer.
                for c in overlay.ranked_kept.iter().filter(wanted).take(n) {
                    let mut c = c.clone();
                    if let Some((t, score)) = titles.remove(&c.vulnerability_id) {
                        (c.title, c.cvss_score) = (t, score);
                    }
                    out.push(c);
                }
                break out;
            }
            fetch *= 4;
        }
    };
    out.retain(|c| c.images > 0 && sev.is_none_or(|s| c.severity == s));
    out.sort_by(|a, b| a.rank_key().cmp(&b.rank_key()));
    out.truncate(limit.max(0) as usize);
    let missing: Vec<usize> = (0..out.len()).filter(|&i| out[i].title.is_none()).collect();
    if !missing.is_empty() {
        let mut need: Vec<TopCve> = missing.iter().map(|&i| out[i].clone()).collect();
        store.analytics().attach_catalog(&mut need).await?;
        for (i, c) in missing.into_iter().zip(need) {
            out[i] = c;
        }
    }
    Ok(out)
}

/// A trend in `mode`: `raw` points of the fleet (`image` None) less what was recorded
/// left out on each bucket's last day (the latest record at or before it), the current
/// overlay for today; or an image's points from its observations with the suppressions
/// applying now.
pub async fn trend(
    triage: &Triage,
    store: &Store,
    image: Option<&str>,
    interval: fleet::Interval,
    from: i64,
    to: i64,
    mode: SuppressedMode,
) -> Result<Vec<fleet::TrendPoint>, StoreError> {
    let raw = store.analytics().trend(image, interval, from, to).await?;
    if mode == SuppressedMode::Include {
        return Ok(raw);
    }
    match image {
        None => {
            let overlay = triage.fleet_overlay(store).await?;
            let today = fleet::day_of(crate::store::micros(chrono::Utc::now()));
            let last = interval.bucket_start_day(fleet::day_of(to)) + interval.days();
            let mut days: BTreeMap<i64, Counts> = store
                .analytics()
                .suppressed_days(last)
                .await?
                .into_iter()
                .collect();
            days.insert(today, overlay.map(|o| o.suppressed).unwrap_or([0; 7]));
            Ok(raw
                .into_iter()
                .map(|mut p| {
                    let end = fleet::day_of(p.bucket) + interval.days() - 1;
                    let left_out = days
                        .range(..=end)
                        .next_back()
                        .map(|(_, c)| *c)
                        .unwrap_or([0; 7]);
                    p.summary = apply(&p.summary, &left_out, mode);
                    p
                })
                .collect())
        }
        Some(img) => {
            let active = triage.active(store).await?;
            if active.is_empty() && mode == SuppressedMode::Exclude {
                return Ok(raw);
            }
            let mut chains = store.analytics().image_chains(img).await?;
            let mut left_out: HashMap<(String, i64), Counts> = HashMap::new();
            for o in chains.values().flatten() {
                let key = (o.scan_id.clone(), o.version);
                if left_out.contains_key(&key) {
                    continue;
                }
                let findings = store.scans().version(&o.scan_id, o.version).await?;
                let c = suppressed_counts(&active, img, findings.iter());
                left_out.insert(key, c);
            }
            let mut days: BTreeMap<i64, Counts> = BTreeMap::new();
            for chain in chains.values_mut() {
                for o in chain.iter_mut() {
                    let c = left_out[&(o.scan_id.clone(), o.version)];
                    let s = FleetSummary::from_counts(&o.counts);
                    o.counts = counts_of(&apply(&s, &c, mode));
                }
                fleet::chain_events(chain, 1, &mut days);
            }
            let first = interval.bucket_start_day(fleet::day_of(from));
            let last = interval.bucket_start_day(fleet::day_of(to));
            Ok(fleet::prefix_points(&days, interval, first, last))
        }
    }
}

/// `s` with `left_out` taken away (`Exclude`) or only `left_out` (`Only`).
fn apply(s: &FleetSummary, left_out: &Counts, mode: SuppressedMode) -> FleetSummary {
    match mode {
        SuppressedMode::Include => s.clone(),
        SuppressedMode::Only => FleetSummary::from_counts(left_out),
        SuppressedMode::Exclude => {
            let mut c = counts_of(s);
            let images = c[IMAGES];
            fleet::add(&mut c, left_out, -1);
            c[IMAGES] = images;
            FleetSummary::from_counts(&c)
        }
    }
}

/// The findings of one image the suppressions cover, as counts (`IMAGES` 1 when any).
pub fn suppressed_counts<'a>(
    active: &Active,
    image: &str,
    findings: impl Iterator<Item = &'a Finding>,
) -> Counts {
    let mut c = [0; 7];
    for f in findings {
        if active
            .covering(&f.vulnerability_id, &f.pkg_name, image)
            .is_some()
        {
            c[fleet::sev_index(f.severity.rank())] += 1;
            if f.fixed_version.is_some() {
                c[FIXABLE] += 1;
            }
            c[IMAGES] = 1;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supp(vuln: &str, pkg: Option<&str>, image: Option<&str>) -> SuppressionRow {
        SuppressionRow {
            id: format!("{vuln}-{pkg:?}-{image:?}"),
            vulnerability_id: vuln.into(),
            package: pkg.map(Into::into),
            image: image.map(Into::into),
            state: "not_affected".into(),
            reason: "r".into(),
            expires_at: None,
            created_at: 0,
            created_by: None,
            source: "api".into(),
            deleted_at: None,
            deleted_by: None,
            expired_at: None,
        }
    }

    fn row(image: &str, vuln: &str, pkg: &str, sev: i64, fixable: bool) -> SuppressibleRow {
        SuppressibleRow {
            image_name: image.into(),
            image_tag: "1".into(),
            vulnerability_id: vuln.into(),
            pkg_name: pkg.into(),
            pkg_version: "1.0".into(),
            fixable,
            severity: sev,
        }
    }

    #[test]
    fn an_image_keeps_a_vulnerability_while_one_of_its_packages_is_not_suppressed() {
        let active = Active::new(vec![supp("CVE-1", Some("openssl"), Some("acme/*"))], 1);
        let rows = [
            row("acme/a", "CVE-1", "openssl", 4, true),
            row("acme/a", "CVE-1", "libssl", 4, false),
            row("acme/b", "CVE-1", "openssl", 4, false),
            row("other/c", "CVE-1", "openssl", 3, false),
        ];
        let o = Overlay::compute(&rows, &active);
        let s = &o.cves["CVE-1"];
        assert_eq!(s.all[IMAGES], 3);
        assert_eq!(s.kept[IMAGES], 2, "acme/a (libssl) and other/c");
        assert_eq!(s.suppressed[IMAGES], 2, "acme/a and acme/b");
        assert_eq!(s.suppressed[fleet::sev_index(4)], 2);
        assert_eq!(s.suppressed[FIXABLE], 1);
        assert_eq!(o.suppressed[IMAGES], 2);
        assert_eq!(o.suppressed_findings(), 2);
        // Maintained counts newer than the overlay keep their extra reference and item.
        let (images, items) = (s.all[IMAGES] + 1, 4 + 1);
        assert_eq!(
            cve_totals(Some(s), images, items, SuppressedMode::Exclude),
            (3, 3)
        );
        assert_eq!(
            cve_totals(Some(s), images, items, SuppressedMode::Only),
            (2, 2)
        );
    }

    #[test]
    fn an_expiry_bounds_the_active_set() {
        let mut s = supp("CVE-1", None, None);
        s.expires_at = Some(100);
        let mut gone = supp("CVE-2", None, None);
        gone.expires_at = Some(50);
        let a = Active::new(vec![s, gone], 60);
        assert_eq!(a.len(), 1);
        assert_eq!(a.valid_until, 100);
        assert!(a.covering("CVE-1", "x", "y").is_some());
        assert!(!a.names("CVE-2"));
    }
}
