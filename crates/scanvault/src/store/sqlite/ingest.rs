//! The statements of an ingest or a deletion on SQLite ([`IngestTx`]). Sets of rows travel
//! as one JSON array, read by `json_each`, so a statement's text does not depend on the
//! number of rows. A scan's findings are one row per finding, valid over a range of
//! versions (migration `20261208000001`): a new version closes the rows it changes or drops
//! and adds the rows it changes or brings.

use scanvault_core::fleet::{self, ChainObs, Counts, FleetRow, FIXABLE};
use scanvault_core::report::{Finding, FindingChanges, VulnerabilityDetail};
use serde::Serialize;
use sqlx::SqliteConnection;
use std::collections::HashMap;

use super::rows::{
    chain_obs, column_order, counted_json, findings_json, fleet_rows, json, read_version,
    sources_json, CatalogJson, ChainRow, Found, ObsRow, OpenRow, RefRow,
};
use crate::store::ingest::{
    newer_details, references_json, Finish, IngestTx, LockedRef, NewObservation, RowSource,
    StoredScan, TagRow,
};
use crate::store::scans::{NewScan, ScanRow, ScanValues};
use crate::store::{micros, sql, StoreError};

const INSERT_TAG: &str =
    "INSERT INTO scan_tags (scan_id, image_name, image_tag, first_seen_at, observed_from) \
     VALUES ($1, $2, $3, $4, $5)";

const CATALOG_STORED: &str =
    "SELECT id, modified_at FROM vulnerabilities WHERE id IN (SELECT value FROM json_each($1))";

const CATALOG_INSERT: &str = "INSERT INTO vulnerabilities (id, title, description, severity, cvss_score, \
     cvss_vector, primary_url, refs, published_at, modified_at, updated_at) SELECT \
     json_extract(value, '$.id'), json_extract(value, '$.title'), json_extract(value, '$.description'), \
     json_extract(value, '$.severity'), json_extract(value, '$.cvss_score'), json_extract(value, '$.cvss_vector'), \
     json_extract(value, '$.primary_url'), json_extract(value, '$.refs'), json_extract(value, '$.published_at'), \
     json_extract(value, '$.modified_at'), $2 FROM json_each($1) WHERE true ON CONFLICT (id) DO NOTHING";

const REF_COLUMNS: &str = "id, image_tag, scan_id, version, observation_id, scanned_at, \
     fixable, n_unknown, n_low, n_medium, n_high, n_critical";

const LOCK_REFS: &str = const_format::concatcp!(
    "INSERT INTO fleet_refs (image_name, image_tag) SELECT $1, value FROM json_each($2) WHERE true \
     ORDER BY value ON CONFLICT (image_name, image_tag) DO UPDATE SET image_name = excluded.image_name RETURNING ",
    REF_COLUMNS
);

const LOCK_REFS_OF: &str = const_format::concatcp!(
    "INSERT INTO fleet_refs (image_name, image_tag) SELECT DISTINCT image_name, image_tag FROM scan_tags \
     WHERE scan_id IN (SELECT value FROM json_each($1)) ORDER BY 1, 2 \
     ON CONFLICT (image_name, image_tag) DO UPDATE SET image_name = excluded.image_name RETURNING ",
    REF_COLUMNS
);

const CHAINS: &str = const_format::concatcp!(
    "SELECT r.id, ",
    sql::CHAIN_COLUMNS,
    " FROM fleet_refs r JOIN scan_tags t ON t.image_name = r.image_name AND t.image_tag = r.image_tag \
     JOIN observations o ON o.scan_id = t.scan_id AND o.scanned_at >= t.observed_from \
     WHERE r.id IN (SELECT value FROM json_each($1))"
);

/// Row sources (`{r, s, v}`: reference, scan, version) joined to the findings of each.
const SOURCES: &str = "(SELECT json_extract(value, '$.r') AS ref_id, json_extract(value, '$.s') AS scan_id, \
     json_extract(value, '$.v') AS version FROM json_each($1)) src JOIN findings f ON f.scan_id = src.scan_id \
     AND f.first_version <= src.version AND (f.last_version IS NULL OR f.last_version > src.version)";

/// The rows a reference copied from a version of a scan's findings, found through the index
/// by (vulnerability, reference); written as a join so that it probes the index once per key.
const REMOVE_ROWS: &str = const_format::concatcp!(
    "DELETE FROM fleet_findings WHERE rowid IN (SELECT ff.rowid FROM (SELECT DISTINCT f.vulnerability_id AS v, \
     src.ref_id AS r FROM ",
    SOURCES,
    ") k JOIN fleet_findings ff ON ff.vulnerability_id = k.v AND ff.ref_id = k.r) \
     RETURNING ref_id, vulnerability_id, severity, fixed_version IS NOT NULL"
);

const COPY_ROWS: &str = const_format::concatcp!(
    "INSERT INTO fleet_findings (ref_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity) \
     SELECT src.ref_id, f.vulnerability_id, f.pkg_name, f.pkg_version, f.fixed_version, f.severity FROM ",
    SOURCES,
    " RETURNING ref_id, vulnerability_id, severity, fixed_version IS NOT NULL"
);

/// The open rows of scan `$1` (those of its newest version), with their row ids.
const OPEN_ROWS: &str =
    "SELECT rowid, vulnerability_id, pkg_name, pkg_version, fixed_version, severity, \
     status, pkg_type, class, target, pkg_path, purl, cvss_score, extra FROM findings \
     WHERE scan_id = $1 AND last_version IS NULL";

/// Close the rows `$1` (row ids) at version `$2`.
const CLOSE_ROWS: &str =
    "UPDATE findings SET last_version = $2 WHERE rowid IN (SELECT value FROM json_each($1))";

/// Add the findings `$1` (by the names of [`super::rows::FindingJson`]) to scan `$2`, valid
/// from version `$3`.
const ADD_ROWS: &str = "INSERT INTO findings (scan_id, vulnerability_id, pkg_name, pkg_version, first_version, \
     last_version, fixed_version, severity, status, pkg_type, class, target, pkg_path, purl, cvss_score, extra) \
     SELECT $2, json_extract(value, '$.v'), json_extract(value, '$.p'), json_extract(value, '$.iv'), $3, NULL, \
     json_extract(value, '$.fv'), json_extract(value, '$.sev'), json_extract(value, '$.st'), \
     json_extract(value, '$.pt'), json_extract(value, '$.cl'), json_extract(value, '$.tg'), \
     json_extract(value, '$.pp'), json_extract(value, '$.pu'), json_extract(value, '$.cv'), \
     json_extract(value, '$.ex') FROM json_each($1)";

const UPSERT_REPORT: &str =
    "INSERT INTO scan_reports (scan_id, encoding, size_bytes, sha256, body) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scan_id) DO UPDATE SET encoding = excluded.encoding, \
     size_bytes = excluded.size_bytes, sha256 = excluded.sha256, body = excluded.body \
     WHERE scan_reports.sha256 <> excluded.sha256";

const UPDATE_TIPS: &str = "UPDATE fleet_refs SET scan_id = u.scan_id, version = u.version, \
     observation_id = u.observation_id, scanned_at = u.scanned_at, fixable = u.fixable, \
     n_critical = u.n_critical, n_high = u.n_high, n_medium = u.n_medium, n_low = u.n_low, \
     n_unknown = u.n_unknown FROM (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.scan_id') AS scan_id, \
     json_extract(value, '$.version') AS version, json_extract(value, '$.observation_id') AS observation_id, \
     json_extract(value, '$.scanned_at') AS scanned_at, json_extract(value, '$.c[1]') AS fixable, \
     json_extract(value, '$.c[2]') AS n_critical, json_extract(value, '$.c[3]') AS n_high, \
     json_extract(value, '$.c[4]') AS n_medium, json_extract(value, '$.c[5]') AS n_low, \
     json_extract(value, '$.c[6]') AS n_unknown FROM json_each($1)) u WHERE fleet_refs.id = u.id";

const DELETE_REFS: &str = "DELETE FROM fleet_refs WHERE id IN (SELECT value FROM json_each($1))";

const INSERT_ROWS: &str = "INSERT INTO fleet_findings (ref_id, vulnerability_id, pkg_name, pkg_version, \
     fixed_version, severity) SELECT r.value, json_extract(x.value, '$.v'), json_extract(x.value, '$.p'), \
     json_extract(x.value, '$.iv'), json_extract(x.value, '$.fv'), json_extract(x.value, '$.sev') \
     FROM json_each($1) r CROSS JOIN json_each($2) x";

/// Counted rows `{k, c}` (a key and the counts in column order) into a delta table.
macro_rules! insert_counts {
    ($table:literal, $key:literal) => {
        const_format::concatcp!(
            "INSERT INTO ",
            $table,
            " (",
            $key,
            ", images, fixable, n_critical, n_high, n_medium, n_low, n_unknown) SELECT json_extract(value, '$.k'), \
             json_extract(value, '$.c[0]'), json_extract(value, '$.c[1]'), json_extract(value, '$.c[2]'), \
             json_extract(value, '$.c[3]'), json_extract(value, '$.c[4]'), json_extract(value, '$.c[5]'), \
             json_extract(value, '$.c[6]') FROM json_each($1)"
        )
    };
}
const INSERT_CVE_DELTAS: &str = insert_counts!("fleet_cve_deltas", "vulnerability_id");
const INSERT_DAY_DELTAS: &str = insert_counts!("fleet_daily_deltas", "day");

const INSERT_TOTAL_DELTA: &str =
    "INSERT INTO fleet_total_deltas (images, fixable, n_critical, n_high, \
     n_medium, n_low, n_unknown) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Fixed versions first seen, per (vulnerability, package).
const REMEMBER_FIXES: &str = "INSERT INTO fix_first_seen (vulnerability_id, pkg_name, first_seen_at) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), $2 FROM json_each($1) WHERE true \
     ON CONFLICT (vulnerability_id, pkg_name) DO NOTHING";
/// Vulnerabilities first carried at CRITICAL or listed as known exploited (a
/// `fleet.new_critical` event each).
const FIRST_CRITICALS: &str = "INSERT INTO fleet_critical_seen (vulnerability_id, first_seen_at) \
     SELECT v, $2 FROM (SELECT value AS v FROM json_each($1) UNION SELECT vulnerability_id FROM kev \
     WHERE vulnerability_id IN (SELECT value FROM json_each($3))) WHERE true \
     ON CONFLICT (vulnerability_id) DO NOTHING RETURNING vulnerability_id";
const LOCK_SCANS: &str =
    "SELECT id FROM scans WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id";

/// Observations, findings, tags and reports go with their scan (foreign keys).
const DELETE_SCANS: &str = "DELETE FROM scans WHERE id IN (SELECT value FROM json_each($1))";

/// A transaction's connection, as the ingest sees it.
pub(super) struct SqliteTx<'c>(pub &'c mut SqliteConnection);

impl IngestTx for SqliteTx<'_> {
    async fn find_scan(
        &mut self,
        image_name: &str,
        identity: &str,
    ) -> Result<Option<StoredScan>, StoreError> {
        let found: Option<Found> = sqlx::query_as(sql::FIND_SCAN)
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
        let t = micros(new.scanned_at);
        let row: Option<ScanRow> = sqlx::query_as(sql::INSERT_SCAN_ROW)
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
            .bind(t)
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
            .fetch_optional(&mut *self.0)
            .await?;
        let Some(row) = row else { return Ok(None) };
        sqlx::query(INSERT_TAG)
            .bind(id)
            .bind(&new.image_name)
            .bind(&new.image_tag)
            .bind(now)
            .bind(t)
            .execute(&mut *self.0)
            .await?;
        let observation = self
            .insert_observation(&NewObservation {
                scan_id: id,
                image_tag: &new.image_tag,
                scanned_at: t,
                observed_at: now,
                source: new.source.as_str(),
                version: 1,
                counts: counts_of_row(&row),
                added: row.counts().total(),
                removed: 0,
            })
            .await?;
        Ok(Some((row, observation)))
    }

    async fn record_tag(
        &mut self,
        scan_id: &str,
        image_name: &str,
        tag: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<TagRow>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(sql::SCAN_TAGS)
            .bind(scan_id)
            .fetch_all(&mut *self.0)
            .await?;
        sqlx::query(sql::UPSERT_TAG)
            .bind(scan_id)
            .bind(image_name)
            .bind(tag)
            .bind(now)
            .bind(since)
            .execute(&mut *self.0)
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
        let row: ScanRow = sqlx::query_as(sql::UPDATE_SCAN_ROW)
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
            .fetch_one(&mut *self.0)
            .await?;
        let observation = self
            .insert_observation(&NewObservation {
                scan_id,
                image_tag: &new.image_tag,
                scanned_at: row.scanned_at,
                observed_at: row.updated_at,
                source: new.source.as_str(),
                version,
                counts: counts_of_row(&row),
                added: (changes.added + changes.changed) as i64,
                removed: (changes.removed + changes.changed) as i64,
            })
            .await?;
        Ok((row, observation))
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
            .bind(json(&ids)?)
            .fetch_all(&mut *self.0)
            .await?
            .into_iter()
            .collect();
        let missing: Vec<CatalogJson> = vulns
            .iter()
            .filter(|v| !stored.contains_key(&v.id))
            .map(|v| CatalogJson {
                id: &v.id,
                title: v.title.as_deref(),
                description: v.description.as_deref(),
                severity: v.severity.rank(),
                cvss_score: v.cvss_score,
                cvss_vector: v.cvss_vector.as_deref(),
                primary_url: v.primary_url.as_deref(),
                refs: references_json(v),
                published_at: v.published_at.map(micros),
                modified_at: v.modified_at.map(micros),
            })
            .collect();
        if !missing.is_empty() {
            sqlx::query(CATALOG_INSERT)
                .bind(json(&missing)?)
                .bind(now)
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
            .bind(json(tags)?)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(LockedRef::from).collect())
    }

    async fn lock_refs_of(&mut self, ids: &[String]) -> Result<Vec<LockedRef>, StoreError> {
        let rows: Vec<RefRow> = sqlx::query_as(LOCK_REFS_OF)
            .bind(json(ids)?)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(rows.into_iter().map(LockedRef::from).collect())
    }

    async fn chains(&mut self, refs: &[LockedRef]) -> Result<Vec<(i64, ChainObs)>, StoreError> {
        let ids: Vec<i64> = refs.iter().map(|r| r.id).collect();
        let rows: Vec<ChainRow> = sqlx::query_as(CHAINS)
            .bind(json(&ids)?)
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
        let rows = sqlx::query_as(REMOVE_ROWS)
            .bind(sources_json(sources)?)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(fleet_rows(rows))
    }

    async fn copy_rows(&mut self, sources: &[RowSource]) -> Result<Vec<FleetRow>, StoreError> {
        let rows = sqlx::query_as(COPY_ROWS)
            .bind(sources_json(sources)?)
            .fetch_all(&mut *self.0)
            .await?;
        Ok(fleet_rows(rows))
    }

    async fn finish(&mut self, w: &Finish<'_>) -> Result<(), StoreError> {
        let conn = &mut *self.0;
        if let Some(v) = &w.version {
            // Version `v.version` is the set `v.findings`: the open rows it does not store the
            // same are closed, and its findings no open row stores are added. Compared here by
            // key, not in SQL: a join over a JSON set has no index, and is quadratic.
            let open: Vec<OpenRow> = sqlx::query_as(OPEN_ROWS)
                .bind(v.scan_id)
                .fetch_all(&mut *conn)
                .await?;
            let mut open: HashMap<(String, String, String), (i64, Finding)> = open
                .into_iter()
                .map(|r| {
                    let f = Finding::from(r.finding);
                    let key = (
                        f.vulnerability_id.clone(),
                        f.pkg_name.clone(),
                        f.installed_version.clone(),
                    );
                    (key, (r.rowid, f))
                })
                .collect();
            let mut added = Vec::new();
            for f in v.findings {
                let (a, b, c) = f.key();
                let key = (a.to_owned(), b.to_owned(), c.to_owned());
                match open.get(&key) {
                    Some((_, stored)) if stored.stores_same(f) => {
                        open.remove(&key);
                    }
                    _ => added.push(f),
                }
            }
            let closed: Vec<i64> = open.into_values().map(|(rowid, _)| rowid).collect();
            if !closed.is_empty() {
                sqlx::query(CLOSE_ROWS)
                    .bind(json(&closed)?)
                    .bind(v.version)
                    .execute(&mut *conn)
                    .await?;
            }
            if !added.is_empty() {
                sqlx::query(ADD_ROWS)
                    .bind(findings_json(added)?)
                    .bind(v.scan_id)
                    .bind(v.version)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        if let Some((scan, body, size)) = &w.report {
            sqlx::query(UPSERT_REPORT)
                .bind(*scan)
                .bind(crate::store::body::BODY_ENCODING)
                .bind(*size)
                .bind(&body.sha256)
                .bind(&body.compressed)
                .execute(&mut *conn)
                .await?;
        }
        if !w.tips.is_empty() {
            #[derive(Serialize)]
            struct Tip<'a> {
                id: i64,
                scan_id: &'a str,
                version: i64,
                observation_id: i64,
                scanned_at: i64,
                c: [i64; 7],
            }
            let tips: Vec<Tip> = w
                .tips
                .iter()
                .map(|(id, o)| Tip {
                    id: *id,
                    scan_id: &o.scan_id,
                    version: o.version,
                    observation_id: o.id,
                    scanned_at: o.scanned_at,
                    c: column_order(&o.counts),
                })
                .collect();
            sqlx::query(UPDATE_TIPS)
                .bind(json(&tips)?)
                .execute(&mut *conn)
                .await?;
        }
        if !w.gone.is_empty() {
            sqlx::query(DELETE_REFS)
                .bind(json(&w.gone)?)
                .execute(&mut *conn)
                .await?;
        }
        if let Some((refs, findings)) = &w.rows {
            sqlx::query(INSERT_ROWS)
                .bind(json(refs)?)
                .bind(findings_json(*findings)?)
                .execute(&mut *conn)
                .await?;
        }
        if !w.cves.is_empty() {
            sqlx::query(INSERT_CVE_DELTAS)
                .bind(counted_json(w.cves.iter().map(|(k, c)| (k.as_str(), *c)))?)
                .execute(&mut *conn)
                .await?;
        }
        if !fleet::is_zero(&w.totals) {
            let t = column_order(&w.totals);
            let mut q = sqlx::query(INSERT_TOTAL_DELTA);
            for v in t {
                q = q.bind(v);
            }
            q.execute(&mut *conn).await?;
        }
        if !w.daily.is_empty() {
            sqlx::query(INSERT_DAY_DELTAS)
                .bind(counted_json(w.daily.iter().map(|(k, c)| (*k, *c)))?)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn lock_scans(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(LOCK_SCANS)
            .bind(json(ids)?)
            .fetch_all(&mut *self.0)
            .await?)
    }

    async fn delete_scans(&mut self, ids: &[String]) -> Result<u64, StoreError> {
        Ok(sqlx::query(DELETE_SCANS)
            .bind(json(ids)?)
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
        if !fixes.is_empty() {
            sqlx::query(REMEMBER_FIXES)
                .bind(json(fixes)?)
                .bind(now)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(sqlx::query_scalar(FIRST_CRITICALS)
            .bind(json(criticals)?)
            .bind(now)
            .bind(json(others)?)
            .fetch_all(&mut *self.0)
            .await?)
    }
}

/// What a reference showing this scan counts.
fn counts_of_row(row: &ScanRow) -> Counts {
    fleet::image_counts(
        row.fixable_count,
        [
            row.vuln_unknown,
            row.vuln_low,
            row.vuln_medium,
            row.vuln_high,
            row.vuln_critical,
        ],
    )
}
