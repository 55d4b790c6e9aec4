//! The ingest transaction and the deletion of scans, written once for both backends.
//!
//! Each backend provides its statements as an [`IngestTx`] (a transaction's primitive
//! reads and writes, `postgres/ingest.rs` and `sqlite/ingest.rs`); this module decides what
//! to read and write, with the fleet arithmetic of `scanvault_core::fleet`.
//!
//! An ingest, in order:
//! 1. find the scan of the report's content (locked), or insert it with its first tag,
//!    findings version and observation;
//! 2. for a stored scan: record the tag, read the findings it has now, and
//!    - a report newer than the scan's latest observation updates the scan in place: a new
//!      findings version when they differ, and an observation;
//!    - the same report as the latest again adds nothing but maybe its tag;
//!    - an older report is an observation in the past, with the version of its findings
//!      (its predecessor's or the current one when equal, else a new one);
//! 3. the fleet: each image reference the observation belongs to gets it in its chain
//!    (references are locked in name order, so concurrent ingests serialise per reference);
//!    the chain's change gives the per-day deltas, the observation the reference shows, and
//!    whether its current-fleet rows are replaced; the rows that went and came give the
//!    per-CVE and fleet-wide deltas;
//! 4. the writes nobody reads back, together ([`Finish`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use scanvault_core::fleet::{self, ChainChange, ChainObs, Counts, FleetRow, IMAGES};
use scanvault_core::report::{Finding, FindingChanges, VulnerabilityDetail};
use uuid::Uuid;

use super::scans::{IngestOutcome, NewScan, ScanRow, ScanValues};
use super::{micros, StoreError, StoredBody};

/// A stored scan, found by its content and locked.
#[derive(Debug, Clone)]
pub(crate) struct StoredScan {
    pub row: ScanRow,
    /// The highest version number of its findings (versions are never reused).
    pub last_version: i64,
}

/// A tag of a scan: the reference `(image name, tag)` sees the scan's observations from
/// `since` (the scan time of the first report under it) on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagRow {
    pub tag: String,
    pub since: i64,
    pub first_seen_at: i64,
}

/// An observation to record.
#[derive(Debug, Clone)]
pub(crate) struct NewObservation<'a> {
    pub scan_id: &'a str,
    pub image_tag: &'a str,
    pub scanned_at: i64,
    pub observed_at: i64,
    pub source: &'a str,
    pub version: i64,
    pub counts: Counts,
    pub added: i64,
    pub removed: i64,
}

/// A reference of the fleet, locked for the transaction: its number and the observation it
/// shows (`None`: none, a placeholder made by the lock).
#[derive(Debug, Clone)]
pub(crate) struct LockedRef {
    pub id: i64,
    pub image_tag: String,
    pub tip: Option<ChainObs>,
}

/// A reference's current-fleet rows as a copy of one version of a scan's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSource {
    pub ref_id: i64,
    pub scan_id: String,
    pub version: i64,
}

/// A new version of a scan's findings.
#[derive(Debug, Clone)]
pub(crate) struct NewVersion<'a> {
    pub scan_id: &'a str,
    pub version: i64,
    pub findings: &'a [Finding],
}

/// The writes that end an ingest or a deletion, which nothing in the transaction reads
/// back: PostgreSQL sends them as one statement, SQLite one by one.
#[derive(Debug, Default)]
pub(crate) struct Finish<'a> {
    pub version: Option<NewVersion<'a>>,
    /// The raw report of the scan's latest observation: (scan, body, size in bytes).
    pub report: Option<(&'a str, &'a StoredBody, i64)>,
    /// References that show another observation now.
    pub tips: Vec<(i64, ChainObs)>,
    /// References left with no observation.
    pub gone: Vec<i64>,
    /// References whose rows are `findings` (the report in hand).
    pub rows: Option<(Vec<i64>, &'a [Finding])>,
    pub cves: BTreeMap<String, Counts>,
    pub totals: Counts,
    pub daily: BTreeMap<i64, Counts>,
}

/// One transaction's primitive statements.
pub(crate) trait IngestTx: Send {
    /// The scan of `(image_name, identity)`, locked.
    async fn find_scan(
        &mut self,
        image_name: &str,
        identity: &str,
    ) -> Result<Option<StoredScan>, StoreError>;

    /// Insert a new scan with its tag, findings version 1 and first observation; the row
    /// and the observation's id. `None` when a concurrent ingest inserted the same
    /// identity first.
    async fn insert_scan(
        &mut self,
        id: &str,
        new: &NewScan,
        identity: Option<&str>,
        values: &ScanValues,
    ) -> Result<Option<(ScanRow, i64)>, StoreError>;

    /// Record `tag` on the scan, or move its start to `since` if earlier; the scan's tags
    /// as they were before.
    async fn record_tag(
        &mut self,
        scan_id: &str,
        image_name: &str,
        tag: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<TagRow>, StoreError>;

    /// The findings of one version of a scan's findings.
    async fn findings(&mut self, scan_id: &str, version: i64) -> Result<Vec<Finding>, StoreError>;

    /// Every observation of a scan.
    async fn observations(&mut self, scan_id: &str) -> Result<Vec<ChainObs>, StoreError>;

    /// Update the scan with a newer report (findings `version`) and record the observation;
    /// the row as stored and the observation's id. The scan keeps its id, first tag and
    /// creation time.
    async fn update_scan(
        &mut self,
        scan_id: &str,
        new: &NewScan,
        values: &ScanValues,
        version: i64,
        changes: &FindingChanges,
    ) -> Result<(ScanRow, i64), StoreError>;

    async fn insert_observation(&mut self, o: &NewObservation<'_>) -> Result<i64, StoreError>;

    /// Note that the scan's findings have a version `version` now (its highest), without
    /// changing the version it has.
    async fn add_version(&mut self, scan_id: &str, version: i64) -> Result<(), StoreError>;

    /// Set what an observation changed from the one before it.
    async fn set_observation_changes(
        &mut self,
        id: i64,
        changes: &FindingChanges,
    ) -> Result<(), StoreError>;

    /// Insert catalog entries not stored yet, and refresh those the report has newer
    /// (`LastModifiedDate`). Existing rows are read, not locked: the most widespread CVE is
    /// in most reports, and a lock on it would serialise ingest.
    async fn upsert_catalog(
        &mut self,
        vulns: &[VulnerabilityDetail],
        now: i64,
    ) -> Result<(), StoreError>;

    /// Lock the references `(image_name, tag)` for each of `tags` (making placeholders),
    /// in name order.
    async fn lock_refs(
        &mut self,
        image_name: &str,
        tags: &[String],
    ) -> Result<Vec<LockedRef>, StoreError>;

    /// Lock the references of every tag of the scans `ids`, in name order.
    async fn lock_refs_of(&mut self, ids: &[String]) -> Result<Vec<LockedRef>, StoreError>;

    /// The chains of `refs`: every observation each reference sees, with its number.
    async fn chains(&mut self, refs: &[LockedRef]) -> Result<Vec<(i64, ChainObs)>, StoreError>;

    /// Delete the current-fleet rows copied from `sources`; the rows deleted.
    async fn remove_rows(&mut self, sources: &[RowSource]) -> Result<Vec<FleetRow>, StoreError>;

    /// Copy the findings of `sources` into the current fleet; the rows inserted.
    async fn copy_rows(&mut self, sources: &[RowSource]) -> Result<Vec<FleetRow>, StoreError>;

    /// The writes nobody reads back.
    async fn finish(&mut self, w: &Finish<'_>) -> Result<(), StoreError>;

    /// Lock the scans among `ids` that exist; their ids.
    async fn lock_scans(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError>;

    /// Write events (name, data) to the outbox: one delivery per subscribed webhook each,
    /// in one statement.
    async fn emit(
        &mut self,
        events: &[(&str, serde_json::Value)],
        now: i64,
    ) -> Result<u64, StoreError>;

    /// Remember what the fleet has seen: `criticals`, and those of `others` the KEV catalog
    /// lists, as vulnerabilities carried at CRITICAL or known exploited (giving back the
    /// ones never carried before), and `fixes` (vulnerability, package)
    /// as having a fixed version (when first seen: the age of a fix for policies).
    async fn remember(
        &mut self,
        criticals: &[&str],
        others: &[&str],
        fixes: &[(&str, &str)],
        now: i64,
    ) -> Result<Vec<String>, StoreError>;

    /// Delete scans with their observations, findings, tags and reports.
    async fn delete_scans(&mut self, ids: &[String]) -> Result<u64, StoreError>;
}

/// Store a report in the transaction `tx`.
pub(crate) async fn ingest<T: IngestTx>(
    tx: &mut T,
    new: &NewScan,
    body: &StoredBody,
) -> Result<IngestOutcome, StoreError> {
    let values = ScanValues::of(new);
    let identity = new.identity();
    let mut found = match identity {
        Some(ident) => tx.find_scan(&new.image_name, ident).await?,
        None => None,
    };
    if found.is_none() {
        let id = Uuid::now_v7().to_string();
        if let Some((scan, observation)) = tx.insert_scan(&id, new, identity, &values).await? {
            let outcome = ingest_new(tx, new, body, &values, scan, observation).await?;
            events(tx, new, &outcome).await?;
            return Ok(outcome);
        }
        // Lost a race with a concurrent ingest of the same content: it is committed now.
        found = tx
            .find_scan(&new.image_name, identity.unwrap_or_default())
            .await?;
    }
    let stored =
        found.ok_or_else(|| StoreError::Conflict("concurrent ingest of the same image".into()))?;
    let outcome = ingest_stored(tx, new, body, stored, &values).await?;
    events(tx, new, &outcome).await?;
    Ok(outcome)
}

/// What the fleet remembers of a stored report (fixes first seen, vulnerabilities first
/// carried at CRITICAL), and the events it causes, in its transaction: `fleet.new_critical` for each
/// vulnerability it brings at CRITICAL that the fleet never carried before,
/// `image.new_vulnerabilities` when a newer report of a stored scan carries vulnerabilities
/// its findings did not (a re-scan or a re-match), and `scan.noncompliant` when the scan is new or its findings changed and it is not
/// compliant. A report older than the scan's latest (recorded in the past) causes none.
async fn events<T: IngestTx>(
    tx: &mut T,
    new: &NewScan,
    outcome: &IngestOutcome,
) -> Result<(), StoreError> {
    if outcome.stale || outcome.observation.is_none() {
        return Ok(());
    }
    let now = micros(new.now);
    let scan = &outcome.scan;
    let mut events: Vec<(&str, serde_json::Value)> = vec![];
    let is_critical = |f: &&scanvault_core::report::Finding| {
        f.severity == scanvault_core::report::Severity::Critical
    };
    let mut critical: Vec<&str> = new
        .report
        .findings
        .iter()
        .filter(is_critical)
        .map(|f| f.vulnerability_id.as_str())
        .collect();
    critical.sort_unstable();
    critical.dedup();
    let mut others: Vec<&str> = new
        .report
        .findings
        .iter()
        .filter(|f| !is_critical(f))
        .map(|f| f.vulnerability_id.as_str())
        .filter(|id| critical.binary_search(id).is_err())
        .collect();
    others.sort_unstable();
    others.dedup();
    let mut fixes: Vec<(&str, &str)> = new
        .report
        .findings
        .iter()
        .filter(|f| f.fixed_version.is_some())
        .map(|f| (f.vulnerability_id.as_str(), f.pkg_name.as_str()))
        .collect();
    fixes.sort_unstable();
    fixes.dedup();
    if !new.report.findings.is_empty() {
        for id in tx.remember(&critical, &others, &fixes, now).await? {
            let critical = critical.binary_search(&id.as_str()).is_ok();
            let severity = new
                .report
                .findings
                .iter()
                .filter(|f| f.vulnerability_id == id)
                .map(|f| f.severity)
                .max_by_key(|s| s.rank())
                .unwrap_or_default();
            events.push((
                "fleet.new_critical",
                serde_json::json!({
                    "VulnerabilityID": id,
                    "Severity": severity.as_str(),
                    "Reason": if critical { "CRITICAL" } else { "KEV" },
                    "ScanID": scan.id,
                    "ImageName": scan.image_name,
                    "ImageTag": new.image_tag,
                    "ImageDigest": scan.image_digest,
                }),
            ));
        }
    }
    if !outcome.new_vulnerabilities.is_empty() {
        let ids = &outcome.new_vulnerabilities;
        let mut by_severity: BTreeMap<&str, usize> = BTreeMap::new();
        for id in ids {
            let severity = new
                .report
                .findings
                .iter()
                .filter(|f| &f.vulnerability_id == id)
                .map(|f| f.severity)
                .max_by_key(|s| s.rank())
                .unwrap_or_default();
            *by_severity.entry(severity.as_str()).or_default() += 1;
        }
        events.push((
            "image.new_vulnerabilities",
            serde_json::json!({
                "ScanID": scan.id,
                "ImageName": scan.image_name,
                "ImageTag": new.image_tag,
                "ImageDigest": scan.image_digest,
                "Source": new.source.as_str(),
                "Count": ids.len(),
                "BySeverity": by_severity,
                "VulnerabilityIDs": ids.iter().take(NEW_VULNERABILITIES_LISTED).collect::<Vec<_>>(),
            }),
        ));
    }
    let changed = outcome.created || outcome.findings_added + outcome.findings_removed > 0;
    if scan.is_compliant == 0 && changed {
        let c = scan.counts();
        events.push((
            "scan.noncompliant",
            serde_json::json!({
                "ScanID": scan.id,
                "ImageName": scan.image_name,
                "ImageTag": new.image_tag,
                "ImageDigest": scan.image_digest,
                "Critical": c.critical,
                "High": c.high,
                "Medium": c.medium,
                "Low": c.low,
                "Unknown": c.unknown,
                "FindingsAdded": outcome.findings_added,
                "FindingsRemoved": outcome.findings_removed,
            }),
        ));
    }
    tx.emit(&events, now).await?;
    Ok(())
}

/// The most vulnerability ids an `image.new_vulnerabilities` event lists (`Count` has
/// them all).
const NEW_VULNERABILITIES_LISTED: usize = 1000;

/// What a reference showing this report counts.
fn counts_of(values: &ScanValues) -> Counts {
    let c = &values.counts;
    fleet::image_counts(
        values.fixable,
        [c.unknown, c.low, c.medium, c.high, c.critical],
    )
}

/// A new scan: its one tag sees its one observation.
#[tracing::instrument(name = "store.new_scan", level = "info", skip_all)]
async fn ingest_new<T: IngestTx>(
    tx: &mut T,
    new: &NewScan,
    body: &StoredBody,
    values: &ScanValues,
    mut scan: ScanRow,
    observation: i64,
) -> Result<IngestOutcome, StoreError> {
    let findings = &new.report.findings;
    tracing::Instrument::instrument(
        tx.upsert_catalog(&new.report.vulnerabilities, micros(new.now)),
        tracing::info_span!("store.catalog"),
    )
    .await?;
    let obs = ChainObs {
        id: observation,
        scan_id: scan.id.clone(),
        version: 1,
        scanned_at: scan.scanned_at,
        counts: counts_of(values),
    };
    let refs = tx
        .lock_refs(&new.image_name, std::slice::from_ref(&new.image_tag))
        .await?;
    let inserted = HashMap::from([(new.image_tag.clone(), vec![obs])]);
    let changes = chain_changes(tx, refs, &inserted).await?;
    let finish = Finish {
        version: Some(NewVersion {
            scan_id: &scan.id,
            version: 1,
            findings,
        }),
        report: Some((&scan.id, body, new.raw.len() as i64)),
        ..Default::default()
    };
    apply_changes(tx, changes, Some((&scan.id, 1, findings)), finish).await?;
    scan.tags = [new.image_tag.clone()]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect();
    Ok(IngestOutcome {
        scan,
        created: true,
        observation: Some(observation),
        findings_added: findings.len(),
        findings_removed: 0,
        stale: false,
        new_vulnerabilities: vec![],
    })
}

/// A report of stored content.
#[tracing::instrument(name = "store.known_scan", level = "info", skip_all)]
async fn ingest_stored<T: IngestTx>(
    tx: &mut T,
    new: &NewScan,
    body: &StoredBody,
    stored: StoredScan,
    values: &ScanValues,
) -> Result<IngestOutcome, StoreError> {
    let t = micros(new.scanned_at);
    let now = micros(new.now);
    let findings = &new.report.findings;
    let StoredScan {
        row: scan,
        last_version,
    } = stored;
    let tags = tx
        .record_tag(&scan.id, &new.image_name, &new.image_tag, t, now)
        .await?;
    let prev_since = tags
        .iter()
        .find(|x| x.tag == new.image_tag)
        .map(|x| x.since);
    let latest_before = scan.scanned_at;
    let current = tx.findings(&scan.id, scan.findings_version).await?;
    let to_current = FindingChanges::between(&current, findings);
    let new_vulnerabilities = if t > scan.scanned_at && to_current.added > 0 {
        let before: HashSet<&str> = current
            .iter()
            .map(|f| f.vulnerability_id.as_str())
            .collect();
        let mut ids: Vec<String> = findings
            .iter()
            .map(|f| f.vulnerability_id.as_str())
            .filter(|id| !before.contains(id))
            .map(str::to_string)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    } else {
        vec![]
    };
    let mut observations: Option<Vec<ChainObs>> = None;

    let mut version_write = None;
    let mut report = None;
    let (row, obs, changes, stale) = if t >= scan.scanned_at {
        if t == scan.scanned_at && to_current.is_empty() {
            // The same report as the latest observation again.
            (scan, None, FindingChanges::default(), false)
        } else {
            let version = if to_current.is_empty() {
                scan.findings_version
            } else {
                version_write = Some(last_version + 1);
                last_version + 1
            };
            let (row, id) = tx
                .update_scan(&scan.id, new, values, version, &to_current)
                .await?;
            tracing::Instrument::instrument(
                tx.upsert_catalog(&new.report.vulnerabilities, now),
                tracing::info_span!("store.catalog"),
            )
            .await?;
            report = Some(());
            let obs = ChainObs {
                id,
                scan_id: row.id.clone(),
                version,
                scanned_at: t,
                counts: counts_of(values),
            };
            (row, Some(obs), to_current, false)
        }
    } else {
        let all = tx.observations(&scan.id).await?;
        let (obs, changes) = observe_in_the_past(
            tx,
            new,
            &scan,
            last_version,
            &current,
            &all,
            values,
            &mut version_write,
        )
        .await?;
        observations = Some(all);
        (scan, obs, changes, true)
    };

    // The references the observation belongs to, and what each gains.
    let since = prev_since.map_or(t, |p| p.min(t));
    let moved = prev_since.is_none_or(|p| t < p);
    let mut inserted: HashMap<String, Vec<ChainObs>> = HashMap::new();
    for tag in &tags {
        if tag.tag != new.image_tag && t >= tag.since {
            inserted.insert(tag.tag.clone(), obs.iter().cloned().collect());
        }
    }
    let mut gained: Vec<ChainObs> = obs.iter().cloned().collect();
    if moved && t <= latest_before {
        // The reference now starts earlier (or is new): it also gains the scan's
        // observations from `since` up to where it started (none when the report is newer
        // than all of them).
        let all = match observations.take() {
            Some(all) => all,
            None => tx.observations(&row.id).await?,
        };
        let until = prev_since.unwrap_or(i64::MAX);
        let have: HashSet<i64> = gained.iter().map(|o| o.id).collect();
        gained
            .extend(all.into_iter().filter(|o| {
                o.scanned_at >= since && o.scanned_at < until && !have.contains(&o.id)
            }));
    }
    inserted.insert(new.image_tag.clone(), gained);
    inserted.retain(|_, v| !v.is_empty());

    let version = version_write.map(|v| NewVersion {
        scan_id: &row.id,
        version: v,
        findings,
    });
    if !inserted.is_empty() || version.is_some() || report.is_some() {
        let mut names: Vec<String> = inserted.keys().cloned().collect();
        names.sort();
        let refs = if names.is_empty() {
            vec![]
        } else {
            tx.lock_refs(&new.image_name, &names).await?
        };
        let changed = chain_changes(tx, refs, &inserted).await?;
        let known_version = obs.as_ref().map_or(row.findings_version, |o| o.version);
        let finish = Finish {
            version,
            report: report.map(|()| (row.id.as_str(), body, new.raw.len() as i64)),
            ..Default::default()
        };
        apply_changes(
            tx,
            changed,
            Some((&row.id, known_version, findings)),
            finish,
        )
        .await?;
    }

    let mut row = row;
    let mut all_tags = tags;
    if prev_since.is_none() {
        all_tags.push(TagRow {
            tag: new.image_tag.clone(),
            since,
            first_seen_at: now,
        });
    }
    all_tags.sort_by(|a, b| (a.first_seen_at, &a.tag).cmp(&(b.first_seen_at, &b.tag)));
    row.tags = all_tags
        .into_iter()
        .map(|t| t.tag)
        .filter(|t| !t.is_empty())
        .collect();
    Ok(IngestOutcome {
        scan: row,
        created: false,
        observation: obs.map(|o| o.id),
        findings_added: changes.added + changes.changed,
        findings_removed: changes.removed + changes.changed,
        stale,
        new_vulnerabilities,
    })
}

/// Record a report older than the scan's latest observation: an observation in the past,
/// with the version of its findings. The version is its predecessor's when the findings are
/// the same, else the current one's when the same, else a new one (`version_write`). The
/// same report again at the same time adds nothing (`None`). The observation after it now
/// follows it: its changes are counted from it.
#[allow(clippy::too_many_arguments)]
async fn observe_in_the_past<T: IngestTx>(
    tx: &mut T,
    new: &NewScan,
    scan: &ScanRow,
    last_version: i64,
    current: &[Finding],
    all: &[ChainObs],
    values: &ScanValues,
    version_write: &mut Option<i64>,
) -> Result<(Option<ChainObs>, FindingChanges), StoreError> {
    let t = micros(new.scanned_at);
    let findings = &new.report.findings;
    // Existing observations at `t` come before the new one (it gets a larger id).
    let pred = all
        .iter()
        .filter(|o| o.scanned_at <= t)
        .max_by_key(|o| o.key());
    let succ = all
        .iter()
        .filter(|o| o.scanned_at > t)
        .min_by_key(|o| o.key());
    let read = |v: i64| v == scan.findings_version;
    let pred_findings = match pred {
        Some(p) if read(p.version) => Some(current.to_vec()),
        Some(p) => Some(tx.findings(&scan.id, p.version).await?),
        None => None,
    };
    let vs_pred =
        |f: &[Finding]| FindingChanges::between(pred_findings.as_deref().unwrap_or(&[]), f);
    let changes = vs_pred(findings);
    let version = match (pred, changes.is_empty()) {
        (Some(p), true) => p.version,
        _ if FindingChanges::between(current, findings).is_empty() => scan.findings_version,
        _ => {
            *version_write = Some(last_version + 1);
            last_version + 1
        }
    };
    if version_write.is_none()
        && all
            .iter()
            .any(|o| o.scanned_at == t && o.version == version)
    {
        return Ok((None, FindingChanges::default()));
    }
    if version_write.is_some() {
        tx.add_version(&scan.id, version).await?;
        tracing::Instrument::instrument(
            tx.upsert_catalog(&new.report.vulnerabilities, micros(new.now)),
            tracing::info_span!("store.catalog"),
        )
        .await?;
    }
    let counts = counts_of(values);
    let id = tx
        .insert_observation(&NewObservation {
            scan_id: &scan.id,
            image_tag: &new.image_tag,
            scanned_at: t,
            observed_at: micros(new.now),
            source: new.source.as_str(),
            version,
            counts,
            added: (changes.added + changes.changed) as i64,
            removed: (changes.removed + changes.changed) as i64,
        })
        .await?;
    if let Some(s) = succ {
        let succ_findings = if read(s.version) {
            current.to_vec()
        } else {
            tx.findings(&scan.id, s.version).await?
        };
        let c = FindingChanges::between(findings, &succ_findings);
        tx.set_observation_changes(s.id, &c).await?;
    }
    let obs = ChainObs {
        id,
        scan_id: scan.id.clone(),
        version,
        scanned_at: t,
        counts,
    };
    Ok((Some(obs), changes))
}

/// Each locked reference's change when it gains the observations `inserted[tag]`.
///
/// A reference without an observation gains them as its chain; one whose latest
/// observation is older than the one it gains changes only there (its window is that
/// latest observation); any other reads its whole chain.
#[tracing::instrument(name = "store.chains", level = "info", skip_all)]
async fn chain_changes<T: IngestTx>(
    tx: &mut T,
    refs: Vec<LockedRef>,
    inserted: &HashMap<String, Vec<ChainObs>>,
) -> Result<Vec<(LockedRef, ChainChange)>, StoreError> {
    let mut out = vec![];
    let mut whole = vec![];
    for r in refs {
        let Some(gain) = inserted.get(&r.image_tag).filter(|g| !g.is_empty()) else {
            continue;
        };
        match &r.tip {
            None => {
                let c = fleet::chain_change(None, &[], gain);
                out.push((r, c));
            }
            Some(tip) if gain.len() == 1 && gain[0].key() > tip.key() => {
                let before = std::slice::from_ref(tip);
                let c = fleet::chain_change(Some(tip), before, &[tip.clone(), gain[0].clone()]);
                out.push((r, c));
            }
            Some(_) => whole.push(r),
        }
    }
    if whole.is_empty() {
        return Ok(out);
    }
    let mut chains: HashMap<i64, Vec<ChainObs>> = HashMap::new();
    for (ref_id, o) in tx.chains(&whole).await? {
        chains.entry(ref_id).or_default().push(o);
    }
    for r in whole {
        let gain = &inserted[&r.image_tag];
        let new_ids: HashSet<i64> = gain.iter().map(|o| o.id).collect();
        let before: Vec<ChainObs> = chains
            .remove(&r.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|o| !new_ids.contains(&o.id))
            .collect();
        let mut after = before.clone();
        after.extend(gain.iter().cloned());
        let c = fleet::chain_change(r.tip.as_ref(), &before, &after);
        out.push((r, c));
    }
    Ok(out)
}

/// Write what the references' changes mean for the current fleet, with `finish`'s other
/// writes. `known` is a version of a scan's findings in hand (the report's): references
/// that show it now get their rows from it instead of a copy of the stored findings.
#[tracing::instrument(name = "store.fleet", level = "info", skip_all)]
async fn apply_changes<T: IngestTx>(
    tx: &mut T,
    changes: Vec<(LockedRef, ChainChange)>,
    known: Option<(&str, i64, &[Finding])>,
    mut finish: Finish<'_>,
) -> Result<(), StoreError> {
    let mut removed_from = vec![];
    let mut copied_from = vec![];
    let mut from_memory = vec![];
    let mut images = 0;
    for (r, c) in changes {
        for (day, counts) in &c.daily {
            fleet::add(finish.daily.entry(*day).or_default(), counts, 1);
        }
        images += i64::from(c.tip.is_some()) - i64::from(r.tip.is_some());
        if c.replace_rows {
            if let Some(old) = &r.tip {
                removed_from.push(RowSource {
                    ref_id: r.id,
                    scan_id: old.scan_id.clone(),
                    version: old.version,
                });
            }
            match (&c.tip, known) {
                (Some(tip), Some((scan, version, _)))
                    if tip.scan_id == scan && tip.version == version =>
                {
                    from_memory.push(r.id)
                }
                (Some(tip), _) => copied_from.push(RowSource {
                    ref_id: r.id,
                    scan_id: tip.scan_id.clone(),
                    version: tip.version,
                }),
                (None, _) => {}
            }
        }
        match (c.tip, &r.tip) {
            (None, Some(_)) => finish.gone.push(r.id),
            (Some(tip), old) if old.as_ref().map(|o| o.id) != Some(tip.id) => {
                finish.tips.push((r.id, tip))
            }
            _ => {}
        }
    }
    // Old rows out before new ones in: both are found by (vulnerability, reference).
    let removed = if removed_from.is_empty() {
        vec![]
    } else {
        tx.remove_rows(&removed_from).await?
    };
    let mut added = if copied_from.is_empty() {
        vec![]
    } else {
        tx.copy_rows(&copied_from).await?
    };
    if let (Some((_, _, findings)), false) = (known, from_memory.is_empty()) {
        for r in &from_memory {
            added.extend(findings.iter().map(|f| FleetRow {
                ref_id: *r,
                vulnerability_id: f.vulnerability_id.clone(),
                severity: f.severity.rank(),
                fixable: f.fixed_version.is_some(),
            }));
        }
        if !findings.is_empty() {
            finish.rows = Some((from_memory, findings));
        }
    }
    let (cves, mut totals) = fleet::row_deltas(&removed, &added);
    totals[IMAGES] += images;
    finish.cves = cves;
    finish.totals = totals;
    finish.daily.retain(|_, c| !fleet::is_zero(c));
    tracing::Instrument::instrument(tx.finish(&finish), tracing::info_span!("store.write")).await
}

/// Delete the scans `ids` (those that exist) in the transaction `tx`, keeping every
/// aggregate consistent: each reference they were stored under loses their observations.
pub(crate) async fn delete<T: IngestTx>(tx: &mut T, ids: &[String]) -> Result<u64, StoreError> {
    let ids = tx.lock_scans(ids).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let refs = tx.lock_refs_of(&ids).await?;
    let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut chains: HashMap<i64, Vec<ChainObs>> = HashMap::new();
    if !refs.is_empty() {
        for (ref_id, o) in tx.chains(&refs).await? {
            chains.entry(ref_id).or_default().push(o);
        }
    }
    let mut changes = vec![];
    for r in refs {
        let before = chains.remove(&r.id).unwrap_or_default();
        let after: Vec<ChainObs> = before
            .iter()
            .filter(|o| !gone.contains(o.scan_id.as_str()))
            .cloned()
            .collect();
        let c = fleet::chain_change(r.tip.as_ref(), &before, &after);
        changes.push((r, c));
    }
    apply_changes(tx, changes, None, Finish::default()).await?;
    tx.delete_scans(&ids).await
}

/// Attempts of one ingest transaction before a conflict is answered (409).
const INGEST_ATTEMPTS: u32 = 4;

/// The pause before retry `attempt` (1-based): 10, 20, 40 ms, each plus up to as much
/// again at random, so that the two sides of a deadlock do not meet again in step.
fn retry_pause(attempt: u32) -> std::time::Duration {
    let base = 10u64 << (attempt - 1);
    std::time::Duration::from_millis(base + rand::Rng::gen_range(&mut rand::thread_rng(), 0..=base))
}

/// Run `transaction` (a whole transaction, begun and committed inside it) again while it
/// loses to a concurrent write (deadlock, serialization failure, unique key taken
/// meanwhile; `is_conflict` tells such an error), up to [`INGEST_ATTEMPTS`] attempts in all.
pub(crate) async fn retry_conflicts<T, E, F>(
    is_conflict: impl Fn(&E) -> bool,
    mut transaction: impl FnMut() -> F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        let span = tracing::info_span!("db.transaction", attempt);
        match tracing::Instrument::instrument(transaction(), span).await {
            Err(e) if attempt < INGEST_ATTEMPTS && is_conflict(&e) => {
                tracing::debug!(attempt, conflict = %e, "ingest lost to a concurrent write; retrying");
                metrics::counter!("scanvault_ingest_retries_total").increment(1);
                tokio::time::sleep(retry_pause(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A catalog entry's references as stored (a JSON array).
pub(crate) fn references_json(v: &VulnerabilityDetail) -> String {
    serde_json::to_string(&v.references).unwrap_or_else(|_| "[]".into())
}

/// Whether the report's details of a vulnerability are newer than the stored ones
/// (`stored`: the stored entry's `modified_at`, `None` when there is no entry).
pub(crate) fn newer_details(v: &VulnerabilityDetail, stored: Option<&Option<i64>>) -> bool {
    match (stored, v.modified_at) {
        (Some(Some(old)), Some(m)) => micros(m) > *old,
        (Some(None), Some(_)) => true,
        _ => false,
    }
}
