//! The statements of an ingest or a deletion on PostgreSQL ([`IngestTx`]). Sets of rows
//! travel as one array per column, read by `unnest`, so a statement's text does not depend
//! on the number of rows and is prepared once per connection.

use scanvault_core::fleet::{self, ChainObs, FleetRow, FIXABLE, IMAGES};
use scanvault_core::report::{Finding, FindingChanges, VulnerabilityDetail};
use sqlx::PgConnection;
use std::collections::HashMap;

use super::rows::{
    chain_obs, count_columns, fleet_rows, read_version, source_columns, ChainRow, FindingColumns,
    Found, ObsRow, RefRow, Written,
};
use crate::store::ingest::{
    newer_details, references_json, Finish, IngestTx, LockedRef, NewObservation, RowSource,
    StoredScan, TagRow,
};
use crate::store::scans::{NewScan, ScanRow, ScanValues};
use crate::store::{micros, sql, StoreError};
use const_format::concatcp;

/// The key PostgreSQL's one listing index of `fleet_findings` leads with (ADR 0009): the
/// severity of a fixable finding, -1 for a finding without a fix. Queries spell it as
/// migration `20261207000002` writes the index's expression, so that PostgreSQL uses it.
pub(super) const LISTING_KEY: &str = "(CASE WHEN fixed_version IS NULL THEN -1 ELSE severity END)";
const LISTING_KEY_OF_F: &str = "(CASE WHEN f.fixed_version IS NULL THEN -1 ELSE f.severity END)";

const FIND_SCAN: &str = concatcp!(sql::FIND_SCAN, " FOR UPDATE");

/// The new scan's row, its tag and its first observation (`$30` its source): one statement.
const INSERT_SCAN: &str = concatcp!(
    "WITH s AS (",
    sql::INSERT_SCAN_ROW,
    "), t AS (INSERT INTO scan_tags (scan_id, image_name, image_tag, first_seen_at, observed_from) \
     SELECT id, image_name, image_tag, created_at, scanned_at FROM s), \
     o AS (INSERT INTO observations (scan_id, image_tag, scanned_at, observed_at, source, version, fixable, \
     n_critical, n_high, n_medium, n_low, n_unknown, findings_added, findings_removed) \
     SELECT id, image_tag, scanned_at, created_at, $30, 1, fixable_count, vuln_critical, vuln_high, \
     vuln_medium, vuln_low, vuln_unknown, vuln_critical + vuln_high + vuln_medium + vuln_low + vuln_unknown, \
     0 FROM s RETURNING id) SELECT s.*, o.id AS observation_id FROM s CROSS JOIN o"
);

/// The scan's row and its new observation (`$25` tag, `$26` source, `$27`/`$28` findings
/// added and removed): one statement.
const UPDATE_SCAN: &str = concatcp!(
    "WITH u AS (",
    sql::UPDATE_SCAN_ROW,
    "), o AS (INSERT INTO observations (scan_id, image_tag, scanned_at, observed_at, source, version, \
     fixable, n_critical, n_high, n_medium, n_low, n_unknown, findings_added, findings_removed) \
     SELECT id, $25, scanned_at, updated_at, $26, findings_version, fixable_count, vuln_critical, \
     vuln_high, vuln_medium, vuln_low, vuln_unknown, $27, $28 FROM u RETURNING id) \
     SELECT u.*, o.id AS observation_id FROM u CROSS JOIN o"
);

/// Record a tag; the tags as they were before (the `SELECT` sees the statement's snapshot).
const RECORD_TAG: &str = concatcp!("WITH up AS (", sql::UPSERT_TAG, ") ", sql::SCAN_TAGS);

const CATALOG_STORED: &str = "SELECT id, modified_at FROM vulnerabilities WHERE id = ANY($1)";

const CATALOG_INSERT: &str = "INSERT INTO vulnerabilities (id, title, description, severity, cvss_score, \
     cvss_vector, primary_url, refs, published_at, modified_at, updated_at) SELECT * FROM \
     unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[], $6::text[], $7::text[], \
     $8::text[], $9::bigint[], $10::bigint[], $11::bigint[]) ON CONFLICT (id) DO NOTHING";

/// What a locked reference returns: its number, tag and the observation it shows.
const REF_COLUMNS: &str = "id, image_tag, scan_id, version, observation_id, scanned_at, \
     fixable, n_unknown, n_low, n_medium, n_high, n_critical";

const LOCK_REFS: &str = concatcp!(
    "INSERT INTO fleet_refs (image_name, image_tag) SELECT $1, t FROM unnest($2::text[]) AS t ORDER BY t \
     ON CONFLICT (image_name, image_tag) DO UPDATE SET image_name = excluded.image_name RETURNING ",
    REF_COLUMNS
);

const LOCK_REFS_OF: &str = concatcp!(
    "INSERT INTO fleet_refs (image_name, image_tag) SELECT DISTINCT image_name, image_tag FROM scan_tags \
     WHERE scan_id = ANY($1) ORDER BY 1, 2 \
     ON CONFLICT (image_name, image_tag) DO UPDATE SET image_name = excluded.image_name RETURNING ",
    REF_COLUMNS
);

const CHAINS: &str = concatcp!(
    "SELECT r.id, ",
    sql::CHAIN_COLUMNS,
    " FROM fleet_refs r JOIN scan_tags t ON t.image_name = r.image_name AND t.image_tag = r.image_tag \
     JOIN observations o ON o.scan_id = t.scan_id AND o.scanned_at >= t.observed_from WHERE r.id = ANY($1)"
);

/// The rows a reference copied from a version of a scan's findings, found through the
/// listing index by (key, vulnerability, reference).
const REMOVE_ROWS: &str = concatcp!(
    "DELETE FROM fleet_findings WHERE (",
    LISTING_KEY,
    ", vulnerability_id, ref_id) IN (SELECT ",
    LISTING_KEY_OF_F,
    ", f.vulnerability_id, r.ref_id FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS r(ref_id, scan_id, version) \
     JOIN findings_brief f ON f.scan_id = r.scan_id AND f.version = r.version) \
     RETURNING ref_id, vulnerability_id, severity, fixed_version IS NOT NULL"
);

const COPY_ROWS: &str = "INSERT INTO fleet_findings (ref_id, vulnerability_id, pkg_name, pkg_version, \
     fixed_version, severity) SELECT r.ref_id, f.vulnerability_id, f.pkg_name, f.pkg_version, \
     f.fixed_version, f.severity FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS r(ref_id, scan_id, version) \
     JOIN findings_brief f ON f.scan_id = r.scan_id AND f.version = r.version \
     RETURNING ref_id, vulnerability_id, severity, fixed_version IS NOT NULL";

/// The writes that end an ingest or a deletion, as one statement: each write a
/// data-modifying `WITH` clause (PostgreSQL runs every one exactly once, to completion), a
/// part with nothing to write given empty arrays or a false condition. One round trip and
/// one statement's overhead instead of eight.
const FINISH: &str = "WITH \
     v AS (INSERT INTO scan_findings (scan_id, version, vulnerability_ids, pkg_names, pkg_versions, \
       fixed_versions, severities, statuses, pkg_types, classes, targets, pkg_paths, purls, cvss_scores, extras) \
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $62 WHERE $2 > 0), \
     r AS (INSERT INTO scan_reports (scan_id, encoding, size_bytes, sha256, body) \
       SELECT $15, $16, $17, $18, $19 WHERE $15 <> '' \
       ON CONFLICT (scan_id) DO UPDATE SET encoding = excluded.encoding, size_bytes = excluded.size_bytes, \
       sha256 = excluded.sha256, body = excluded.body WHERE scan_reports.sha256 <> excluded.sha256), \
     tips AS (UPDATE fleet_refs SET scan_id = u.scan_id, version = u.version, observation_id = u.observation_id, \
       scanned_at = u.scanned_at, fixable = u.fixable, n_critical = u.n_critical, n_high = u.n_high, \
       n_medium = u.n_medium, n_low = u.n_low, n_unknown = u.n_unknown \
       FROM unnest($20::bigint[], $21::text[], $22::bigint[], $23::bigint[], $24::bigint[], $25::bigint[], \
       $26::bigint[], $27::bigint[], $28::bigint[], $29::bigint[], $30::bigint[]) \
       AS u(id, scan_id, version, observation_id, scanned_at, fixable, n_critical, n_high, n_medium, n_low, n_unknown) \
       WHERE fleet_refs.id = u.id), \
     gone AS (DELETE FROM fleet_refs WHERE id = ANY($31::bigint[])), \
     rows AS (INSERT INTO fleet_findings (ref_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity) \
       SELECT r.id, x.v, x.p, x.iv, x.fv, x.sev FROM unnest($32::bigint[]) AS r(id) CROSS JOIN \
       unnest($33::text[], $34::text[], $35::text[], $36::text[], $37::bigint[]) AS x(v, p, iv, fv, sev)), \
     cves AS (INSERT INTO fleet_cve_deltas (vulnerability_id, images, fixable, n_critical, n_high, n_medium, \
       n_low, n_unknown) SELECT * FROM unnest($38::text[], $39::bigint[], $40::bigint[], $41::bigint[], \
       $42::bigint[], $43::bigint[], $44::bigint[], $45::bigint[])), \
     totals AS (INSERT INTO fleet_total_deltas (images, fixable, n_critical, n_high, n_medium, n_low, n_unknown) \
       SELECT $46, $47, $48, $49, $50, $51, $52 WHERE $53), \
     days AS (INSERT INTO fleet_daily_deltas (day, images, fixable, n_critical, n_high, n_medium, n_low, n_unknown) \
       SELECT * FROM unnest($54::bigint[], $55::bigint[], $56::bigint[], $57::bigint[], $58::bigint[], \
       $59::bigint[], $60::bigint[], $61::bigint[])) \
     SELECT 1";

/// Fixed versions first seen per (vulnerability, package), in the statement that records
/// vulnerabilities first carried at CRITICAL or listed as known exploited.
const REMEMBER: &str =
    "WITH fixes AS (INSERT INTO fix_first_seen (vulnerability_id, pkg_name, first_seen_at) \
     SELECT v, p, $2 FROM unnest($3::text[], $4::text[]) AS f(v, p) \
     ON CONFLICT (vulnerability_id, pkg_name) DO NOTHING) \
     INSERT INTO fleet_critical_seen (vulnerability_id, first_seen_at) \
     SELECT v, $2 FROM (SELECT unnest($1::text[]) AS v UNION \
     SELECT vulnerability_id FROM kev WHERE vulnerability_id = ANY($5)) c \
     ON CONFLICT (vulnerability_id) DO NOTHING RETURNING vulnerability_id";
const LOCK_SCANS: &str = "SELECT id FROM scans WHERE id = ANY($1) ORDER BY id FOR UPDATE";

/// Findings have no foreign key (ADR 0004): they go explicitly; observations, tags and
/// reports go with their scan.
const DELETE_SCANS: &str = "WITH f AS (DELETE FROM scan_findings WHERE scan_id = ANY($1)) \
     DELETE FROM scans WHERE id = ANY($1)";

/// A transaction's connection, as the ingest sees it.
pub(super) struct PgTx<'c>(pub &'c mut PgConnection);

impl IngestTx for PgTx<'_> {
    async fn find_scan(
        &mut self,
        image_name: &str,
        identity: &str,
    ) -> Result<Option<StoredScan>, StoreError> {
        let found: Option<Found> = sqlx::query_as(FIND_SCAN)
            .bind(image_name)
            .bind(identity)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(found.map(|f| StoredScan {
            row: f.row,
            last_version: f.last_version,
        }))
    }

    async fn insert_scan(
        &mut self,
        id: &str,
        new: &NewScan,
        identity: Option<&str>,
        v: &ScanValues,
    ) -> Result<Option<(ScanRow, i64)>, StoreError> {
        let r = &new.report;
        let now = micros(new.now);
        let written: Option<Written> = sqlx::query_as(INSERT_SCAN)
            .bind(id)
            .bind(&new.image_name)
            .bind(&new.image_tag)
            .bind(&new.image_digest)
            .bind(&new.image_id)
            .bind(identity)
            .bind(&v.repo_tags)
            .bind(&v.repo_digests)
            .bind(&r.artifact_name)
            .bind(&r.artifact_type)
            .bind(&r.os_family)
            .bind(&r.os_name)
            .bind(&r.scanner)
            .bind(&r.scanner_version)
            .bind(r.format.as_str())
            .bind(new.source.scan_origin())
            .bind(now)
            .bind(micros(new.scanned_at))
            .bind(now)
            .bind(v.counts.critical)
            .bind(v.counts.high)
            .bind(v.counts.medium)
            .bind(v.counts.low)
            .bind(v.counts.unknown)
            .bind(v.fixable)
            .bind(v.counts.risk_score())
            .bind(v.cvss)
            .bind(v.compliant)
            .bind(&new.created_by)
            .bind(new.source.as_str())
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(written.map(|w| (w.row, w.observation_id)))
    }

    async fn record_tag(
        &mut self,
        scan_id: &str,
        image_name: &str,
        tag: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<TagRow>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(RECORD_TAG)
            .bind(scan_id)
            .bind(image_name)
            .bind(tag)
            .bind(now)
            .bind(since)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(tag, since, first_seen_at)| TagRow {
                tag,
                since,
                first_seen_at,
            })
            .collect())
    }

    async fn findings(&mut self, scan_id: &str, version: i64) -> Result<Vec<Finding>, StoreError> {
        read_version(self.0, scan_id, version).await
    }

    async fn observations(&mut self, scan_id: &str) -> Result<Vec<ChainObs>, StoreError> {
        let rows: Vec<ObsRow> = sqlx::query_as(sql::SCAN_CHAIN)
            .bind(scan_id)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(chain_obs).collect())
    }

    async fn update_scan(
        &mut self,
        scan_id: &str,
        new: &NewScan,
        v: &ScanValues,
        version: i64,
        changes: &FindingChanges,
    ) -> Result<(ScanRow, i64), StoreError> {
        let r = &new.report;
        let w: Written = sqlx::query_as(UPDATE_SCAN)
            .bind(scan_id)
            .bind(&v.repo_tags)
            .bind(&v.repo_digests)
            .bind(&r.artifact_name)
            .bind(&r.artifact_type)
            .bind(&r.os_family)
            .bind(&r.os_name)
            .bind(&r.scanner)
            .bind(&r.scanner_version)
            .bind(r.format.as_str())
            .bind(micros(new.scanned_at))
            .bind(micros(new.now))
            .bind(v.counts.critical)
            .bind(v.counts.high)
            .bind(v.counts.medium)
            .bind(v.counts.low)
            .bind(v.counts.unknown)
            .bind(v.fixable)
            .bind(v.counts.risk_score())
            .bind(v.cvss)
            .bind(v.compliant)
            .bind(version)
            .bind(&new.image_id)
            .bind(&new.image_digest)
            .bind(&new.image_tag)
            .bind(new.source.as_str())
            .bind((changes.added + changes.changed) as i64)
            .bind((changes.removed + changes.changed) as i64)
            .fetch_one(&mut *self.0)
            .await?;
        Ok((w.row, w.observation_id))
    }

    async fn insert_observation(&mut self, o: &NewObservation<'_>) -> Result<i64, StoreError> {
        let c = &o.counts;
        Ok(sqlx::query_scalar(sql::INSERT_OBSERVATION)
            .bind(o.scan_id)
            .bind(o.image_tag)
            .bind(o.scanned_at)
            .bind(o.observed_at)
            .bind(o.source)
            .bind(o.version)
            .bind(c[FIXABLE])
            .bind(c[fleet::sev_index(4)])
            .bind(c[fleet::sev_index(3)])
            .bind(c[fleet::sev_index(2)])
            .bind(c[fleet::sev_index(1)])
            .bind(c[fleet::sev_index(0)])
            .bind(o.added)
            .bind(o.removed)
            .fetch_one(&mut *self.0)
            .await?)
    }

    async fn add_version(&mut self, scan_id: &str, version: i64) -> Result<(), StoreError> {
        sqlx::query(sql::ADD_VERSION)
            .bind(scan_id)
            .bind(version)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn set_observation_changes(
        &mut self,
        id: i64,
        changes: &FindingChanges,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::SET_OBSERVATION_CHANGES)
            .bind(id)
            .bind((changes.added + changes.changed) as i64)
            .bind((changes.removed + changes.changed) as i64)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// New and refreshed rows are written in id order: two ingests bringing the same new ids
    /// in different orders would otherwise each wait for a row the other inserted.
    async fn upsert_catalog(
        &mut self,
        vulns: &[VulnerabilityDetail],
        now: i64,
    ) -> Result<(), StoreError> {
        if vulns.is_empty() {
            return Ok(());
        }
        let mut vulns: Vec<&VulnerabilityDetail> = vulns.iter().collect();
        vulns.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = vulns.iter().map(|v| v.id.as_str()).collect();
        let stored: HashMap<String, Option<i64>> = sqlx::query_as(CATALOG_STORED)
            .bind(&ids)
            .fetch_all(&mut *self.0)
            .await?
            .into_iter()
            .collect();
        let missing: Vec<&VulnerabilityDetail> = vulns
            .iter()
            .copied()
            .filter(|v| !stored.contains_key(&v.id))
            .collect();
        if !missing.is_empty() {
            let refs: Vec<String> = missing.iter().map(|v| references_json(v)).collect();
            sqlx::query(CATALOG_INSERT)
                .bind(missing.iter().map(|v| v.id.as_str()).collect::<Vec<_>>())
                .bind(
                    missing
                        .iter()
                        .map(|v| v.title.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    missing
                        .iter()
                        .map(|v| v.description.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    missing
                        .iter()
                        .map(|v| v.severity.rank())
                        .collect::<Vec<_>>(),
                )
                .bind(missing.iter().map(|v| v.cvss_score).collect::<Vec<_>>())
                .bind(
                    missing
                        .iter()
                        .map(|v| v.cvss_vector.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    missing
                        .iter()
                        .map(|v| v.primary_url.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(&refs)
                .bind(
                    missing
                        .iter()
                        .map(|v| v.published_at.map(micros))
                        .collect::<Vec<_>>(),
                )
                .bind(
                    missing
                        .iter()
                        .map(|v| v.modified_at.map(micros))
                        .collect::<Vec<_>>(),
                )
                .bind(vec![now; missing.len()])
                .execute(&mut *self.0)
                .await?;
        }
        for v in vulns
            .into_iter()
            .filter(|v| newer_details(v, stored.get(&v.id)))
        {
            sqlx::query(sql::REFRESH_CATALOG)
                .bind(&v.id)
                .bind(&v.title)
                .bind(&v.description)
                .bind(v.severity.rank())
                .bind(v.cvss_score)
                .bind(&v.cvss_vector)
                .bind(&v.primary_url)
                .bind(references_json(v))
                .bind(v.published_at.map(micros))
                .bind(v.modified_at.map(micros))
                .bind(now)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn lock_refs(
        &mut self,
        image_name: &str,
        tags: &[String],
    ) -> Result<Vec<LockedRef>, StoreError> {
        let rows: Vec<RefRow> = sqlx::query_as(LOCK_REFS)
            .bind(image_name)
            .bind(tags)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(LockedRef::from).collect())
    }

    async fn lock_refs_of(&mut self, ids: &[String]) -> Result<Vec<LockedRef>, StoreError> {
        let rows: Vec<RefRow> = sqlx::query_as(LOCK_REFS_OF)
            .bind(ids)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(LockedRef::from).collect())
    }

    async fn chains(&mut self, refs: &[LockedRef]) -> Result<Vec<(i64, ChainObs)>, StoreError> {
        let ids: Vec<i64> = refs.iter().map(|r| r.id).collect();
        let rows: Vec<ChainRow> = sqlx::query_as(CHAINS)
            .bind(&ids)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(r, id, scan, version, at, fx, unk, low, med, high, crit)| {
                    (
                        r,
                        chain_obs((id, scan, version, at, fx, unk, low, med, high, crit)),
                    )
                },
            )
            .collect())
    }

    async fn remove_rows(&mut self, sources: &[RowSource]) -> Result<Vec<FleetRow>, StoreError> {
        let (refs, scans, versions) = source_columns(sources);
        let rows = sqlx::query_as(REMOVE_ROWS)
            .bind(&refs)
            .bind(&scans)
            .bind(&versions)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(fleet_rows(rows))
    }

    async fn copy_rows(&mut self, sources: &[RowSource]) -> Result<Vec<FleetRow>, StoreError> {
        let (refs, scans, versions) = source_columns(sources);
        let rows = sqlx::query_as(COPY_ROWS)
            .bind(&refs)
            .bind(&scans)
            .bind(&versions)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(fleet_rows(rows))
    }

    async fn finish(&mut self, w: &Finish<'_>) -> Result<(), StoreError> {
        let (version_scan, version, findings) = match &w.version {
            Some(v) => (v.scan_id, v.version, v.findings),
            None => ("", 0, &[][..]),
        };
        let f = FindingColumns::of(findings);
        let (report_scan, encoding, size, sha, body) = match &w.report {
            Some((scan, b, size)) => (
                *scan,
                crate::store::body::BODY_ENCODING,
                *size,
                b.sha256.as_str(),
                b.compressed.as_slice(),
            ),
            None => ("", "", 0, "", &[][..]),
        };
        let tip_counts = count_columns(w.tips.iter().map(|(_, o)| &o.counts));
        let (row_refs, row_findings) = match &w.rows {
            Some((refs, findings)) => (refs.clone(), *findings),
            None => (vec![], &[][..]),
        };
        let rows = FindingColumns::of(row_findings);
        let cve_counts = count_columns(w.cves.values());
        let day_counts = count_columns(w.daily.values());
        let t = &w.totals;
        sqlx::query(FINISH)
            .bind(version_scan)
            .bind(version)
            .bind(&f.vulnerability_ids)
            .bind(&f.pkg_names)
            .bind(&f.pkg_versions)
            .bind(&f.fixed_versions)
            .bind(&f.severities)
            .bind(&f.statuses)
            .bind(&f.pkg_types)
            .bind(&f.classes)
            .bind(&f.targets)
            .bind(&f.pkg_paths)
            .bind(&f.purls)
            .bind(&f.cvss_scores)
            .bind(report_scan)
            .bind(encoding)
            .bind(size)
            .bind(sha)
            .bind(body)
            .bind(w.tips.iter().map(|(r, _)| *r).collect::<Vec<_>>())
            .bind(
                w.tips
                    .iter()
                    .map(|(_, o)| o.scan_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(w.tips.iter().map(|(_, o)| o.version).collect::<Vec<_>>())
            .bind(w.tips.iter().map(|(_, o)| o.id).collect::<Vec<_>>())
            .bind(w.tips.iter().map(|(_, o)| o.scanned_at).collect::<Vec<_>>())
            .bind(&tip_counts[1])
            .bind(&tip_counts[2])
            .bind(&tip_counts[3])
            .bind(&tip_counts[4])
            .bind(&tip_counts[5])
            .bind(&tip_counts[6])
            .bind(&w.gone)
            .bind(&row_refs)
            .bind(&rows.vulnerability_ids)
            .bind(&rows.pkg_names)
            .bind(&rows.pkg_versions)
            .bind(&rows.fixed_versions)
            .bind(&rows.severities)
            .bind(w.cves.keys().map(String::as_str).collect::<Vec<_>>())
            .bind(&cve_counts[0])
            .bind(&cve_counts[1])
            .bind(&cve_counts[2])
            .bind(&cve_counts[3])
            .bind(&cve_counts[4])
            .bind(&cve_counts[5])
            .bind(&cve_counts[6])
            .bind(t[IMAGES])
            .bind(t[FIXABLE])
            .bind(t[fleet::sev_index(4)])
            .bind(t[fleet::sev_index(3)])
            .bind(t[fleet::sev_index(2)])
            .bind(t[fleet::sev_index(1)])
            .bind(t[fleet::sev_index(0)])
            .bind(!fleet::is_zero(t))
            .bind(w.daily.keys().copied().collect::<Vec<_>>())
            .bind(&day_counts[0])
            .bind(&day_counts[1])
            .bind(&day_counts[2])
            .bind(&day_counts[3])
            .bind(&day_counts[4])
            .bind(&day_counts[5])
            .bind(&day_counts[6])
            .bind(&f.extras)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn lock_scans(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(LOCK_SCANS)
            .bind(ids)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn delete_scans(&mut self, ids: &[String]) -> Result<u64, StoreError> {
        Ok(sqlx::query(DELETE_SCANS)
            .bind(ids)
            .execute(&mut *self.0)
            .await?
            .rows_affected())
    }

    async fn emit(
        &mut self,
        events: &[(&str, serde_json::Value)],
        now: i64,
    ) -> Result<u64, StoreError> {
        super::webhooks::emit(&mut *self.0, events, now).await
    }

    async fn remember(
        &mut self,
        criticals: &[&str],
        others: &[&str],
        fixes: &[(&str, &str)],
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let (vulns, pkgs): (Vec<&str>, Vec<&str>) = fixes.iter().copied().unzip();
        Ok(sqlx::query_scalar(REMEMBER)
            .bind(criticals)
            .bind(now)
            .bind(&vulns)
            .bind(&pkgs)
            .bind(others)
            .fetch_all(&mut *self.0)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::{LISTING_KEY, LISTING_KEY_OF_F};

    /// PostgreSQL uses an expression index only for a query that spells the expression as
    /// the index does: the key must be the migration's text.
    #[test]
    fn the_listing_key_is_spelled_as_the_migration_writes_the_index() {
        let migration =
            include_str!("../../../migrations/postgres/20261207000002_one_listing_index.sql");
        let index = migration
            .split("CREATE INDEX fleet_findings_listing ON fleet_findings")
            .nth(1)
            .expect("the migration creates the listing index");
        assert!(
            index
                .trim_start()
                .starts_with(&format!("({LISTING_KEY} DESC, vulnerability_id, ref_id)")),
            "{index}"
        );
        assert_eq!(
            LISTING_KEY_OF_F,
            LISTING_KEY
                .replace("fixed_version", "f.fixed_version")
                .replace("ELSE severity", "ELSE f.severity")
        );
    }
}
