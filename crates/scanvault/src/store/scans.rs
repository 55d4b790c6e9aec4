//! Scans: ingest (one report = one transaction), lookups, lists, deletion.

use super::analytics::IngestChange;
use super::batch::{Val, WriteBatch};
use super::rowset::{self, ArrayWriter, Column, SetRow};
use super::{from_micros, micros, Backend, OptF64, Store, StoreError};
use anyhow::Context;
use chrono::{DateTime, Utc};
use scanvault_core::report::{
    Finding, ParsedReport, Severity, SeverityCounts, VulnerabilityDetail,
};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use uuid::Uuid;

/// Finding keys per multi-row delete (3 parameters each, under SQLite's 32,766 and
/// PostgreSQL's 65,535 bind-parameter limits). Inserts send their rows as a row set
/// instead (`rowset`).
const CHUNK_ROWS: usize = 1000;
/// Ids per `IN (…)` list.
const CHUNK_IDS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanSource {
    Ingest,
    Job,
}

impl ScanSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanSource::Ingest => "ingest",
            ScanSource::Job => "job",
        }
    }
}

/// A parsed report with its identity resolved, ready to store.
#[derive(Debug, Clone)]
pub struct NewScan {
    pub report: ParsedReport,
    /// The body exactly as received (kept compressed, served byte-for-byte). Shared, not
    /// copied, with the HTTP request that carried it.
    pub raw: bytes::Bytes,
    pub image_name: String,
    pub image_tag: String,
    pub image_digest: String,
    pub image_id: String,
    pub source: ScanSource,
    pub scanned_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// The lowest severity that makes a scan non-compliant.
    pub compliance_fail_on: Severity,
    pub created_by: Option<String>,
}

impl NewScan {
    /// Content identity used for de-duplication: manifest digest, else image id.
    pub fn identity(&self) -> Option<&str> {
        [self.image_digest.as_str(), self.image_id.as_str()]
            .into_iter()
            .find(|s| !s.is_empty())
    }
}

/// What an ingest did.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub scan: ScanRow,
    /// A new scan (201) rather than an update of a stored one (200).
    pub created: bool,
    pub findings_added: usize,
    pub findings_removed: usize,
    /// The report was older than the stored scan of the same content: only its tag was recorded.
    pub stale: bool,
    /// Findings of a vulnerability the report no longer has were removed: its catalog entry
    /// may be referenced by no finding now. The caller marks the catalog sweep due once the
    /// transaction has committed ([`Store::mark_catalog_sweep_due`]).
    pub catalog_orphans: bool,
}

/// One stored scan (summary, no findings).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScanRow {
    pub id: String,
    pub image_name: String,
    pub image_tag: String,
    pub image_digest: String,
    pub image_id: String,
    pub repo_tags: String,
    pub repo_digests: String,
    pub artifact_name: Option<String>,
    pub artifact_type: Option<String>,
    pub os_family: Option<String>,
    pub os_name: Option<String>,
    pub scanner: String,
    pub scanner_version: Option<String>,
    pub report_format: String,
    pub source: String,
    pub created_at: i64,
    pub scanned_at: i64,
    pub updated_at: i64,
    pub vuln_critical: i64,
    pub vuln_high: i64,
    pub vuln_medium: i64,
    pub vuln_low: i64,
    pub vuln_unknown: i64,
    pub fixable_count: i64,
    pub risk_score: i64,
    pub cvss_score: Option<f64>,
    pub is_compliant: i64,
    pub created_by: Option<String>,
    #[sqlx(skip)]
    pub tags: Vec<String>,
}

impl ScanRow {
    pub fn counts(&self) -> SeverityCounts {
        SeverityCounts {
            critical: self.vuln_critical,
            high: self.vuln_high,
            medium: self.vuln_medium,
            low: self.vuln_low,
            unknown: self.vuln_unknown,
        }
    }
    pub fn created_at(&self) -> DateTime<Utc> {
        from_micros(self.created_at)
    }
    pub fn scanned_at(&self) -> DateTime<Utc> {
        from_micros(self.scanned_at)
    }
    pub fn updated_at(&self) -> DateTime<Utc> {
        from_micros(self.updated_at)
    }
    pub fn repo_tags(&self) -> Vec<String> {
        serde_json::from_str(&self.repo_tags).unwrap_or_default()
    }
    pub fn repo_digests(&self) -> Vec<String> {
        serde_json::from_str(&self.repo_digests).unwrap_or_default()
    }
}

pub(crate) const SCAN_COLUMNS: &str = "id, image_name, image_tag, image_digest, image_id, repo_tags, \
    repo_digests, artifact_name, artifact_type, os_family, os_name, scanner, scanner_version, \
    report_format, source, created_at, scanned_at, updated_at, vuln_critical, vuln_high, \
    vuln_medium, vuln_low, vuln_unknown, fixable_count, risk_score, cvss_score, is_compliant, created_by";

/// A stored finding with its catalog details.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FindingRow {
    pub vulnerability_id: String,
    pub pkg_name: String,
    pub pkg_version: String,
    pub fixed_version: Option<String>,
    pub severity: i64,
    pub status: Option<String>,
    pub pkg_type: Option<String>,
    pub class: Option<String>,
    pub target: Option<String>,
    pub pkg_path: Option<String>,
    pub purl: Option<String>,
    pub cvss_score: Option<f64>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub primary_url: Option<String>,
}

/// Filters of the scan lists.
#[derive(Debug, Clone, Default)]
pub struct ScanFilter {
    pub image: Option<String>,
    pub tag: Option<String>,
    /// Only scans with at least one finding of this severity.
    pub severity: Option<Severity>,
    pub limit: i64,
    pub offset: i64,
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
/// The loser of a race is retried, not answered with a conflict.
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
        match transaction().await {
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

impl Store {
    /// Store a report: one transaction. A report for an `(image_name, identity)` already
    /// stored updates that scan in place, writing only the findings that changed.
    pub async fn ingest(&self, new: NewScan) -> Result<IngestOutcome, StoreError> {
        let body = StoredBody::of(&new.raw)?;
        self.ingest_with_body(new, body).await
    }

    /// [`Store::ingest`] with the body already prepared (the HTTP handler compresses it on
    /// one core while the report is parsed on the other). `body` must be of `new.raw`.
    pub async fn ingest_with_body(
        &self,
        new: NewScan,
        body: StoredBody,
    ) -> Result<IngestOutcome, StoreError> {
        let (new, body) = (&new, &body);
        let outcome = retry_conflicts(
            |e| matches!(e, StoreError::Conflict(_)),
            || async move {
                let mut tx = self.write_pool().begin().await?;
                let outcome = self.ingest_in_tx(&mut tx, new, body).await?;
                tx.commit().await?;
                Ok(outcome)
            },
        )
        .await?;
        if outcome.catalog_orphans {
            self.mark_catalog_sweep_due();
        }
        if outcome.created {
            metrics::counter!("scanvault_ingest_scans_total", "result" => "created").increment(1);
        } else {
            metrics::counter!("scanvault_ingest_scans_total", "result" => "updated").increment(1);
        }
        metrics::counter!("scanvault_ingest_findings_written_total")
            .increment((outcome.findings_added + outcome.findings_removed) as u64);
        Ok(outcome)
    }

    pub(crate) async fn ingest_in_tx(
        &self,
        conn: &mut AnyConnection,
        new: &NewScan,
        body: &StoredBody,
    ) -> Result<IngestOutcome, StoreError> {
        let now = micros(new.now);
        let scanned_at = micros(new.scanned_at);
        let identity = new.identity().map(str::to_string);

        // 1. Find or create the scan row. `after` is the row as this ingest leaves it,
        // returned by the statement that wrote it.
        let mut after: Option<ScanRow> = None;
        let existing = match &identity {
            Some(ident) => self.find_by_identity(conn, &new.image_name, ident).await?,
            None => None,
        };
        let (scan_id, prior_scanned_at) = match existing {
            Some(found) => found,
            None => {
                let id = Uuid::now_v7().to_string();
                match self
                    .insert_scan(conn, &id, new, identity.as_deref())
                    .await?
                {
                    Some(row) => {
                        after = Some(row);
                        (id, scanned_at)
                    }
                    None => {
                        // Lost a race with a concurrent ingest of the same content: it is
                        // committed now, so update it.
                        let ident = identity.as_deref().unwrap_or_default();
                        self.find_by_identity(conn, &new.image_name, ident)
                            .await?
                            .ok_or_else(|| {
                                StoreError::Conflict("concurrent ingest of the same image".into())
                            })?
                    }
                }
            }
        };

        let is_new = after.is_some();
        let before = if is_new {
            None
        } else {
            fetch_scan(conn, &scan_id).await?
        };

        // 2. Record the reference (name, tag) the report was stored under.
        let tag_added = if is_new && self.backend().is_postgres() {
            // The new scan's statement has recorded it (`insert_scan`).
            true
        } else {
            sqlx::query(
                "INSERT INTO scan_tags (scan_id, image_name, image_tag, first_seen_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (scan_id, image_tag) DO NOTHING",
            )
            .bind(&scan_id)
            .bind(&new.image_name)
            .bind(&new.image_tag)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected()
                > 0
        };

        // An older report of content we already hold a newer scan of: keep the newer findings.
        let stale = !is_new && scanned_at < prior_scanned_at;
        // Writes nobody reads back in this transaction go out together at the end.
        let mut writes = WriteBatch::new(self.backend());
        let mut added_findings: Vec<&Finding> = vec![];
        let mut removed_keys: Vec<FindingKey> = vec![];
        let mut catalog_orphans = false;
        if !stale {
            // 3. Catalog entries not stored yet (or with newer details).
            self.upsert_catalog(conn, &new.report.vulnerabilities, now)
                .await?;

            // 4. Findings: everything for a new scan, the set difference for an update.
            let all: Vec<&Finding> = new.report.findings.iter().collect();
            if is_new {
                write_findings(conn, &mut writes, self.backend(), &scan_id, &all, None).await?;
                added_findings = all;
            } else {
                let (to_add, to_remove) =
                    diff_findings(conn, &scan_id, &new.report.findings).await?;
                write_findings(
                    conn,
                    &mut writes,
                    self.backend(),
                    &scan_id,
                    &all,
                    Some((&to_add, &to_remove)),
                )
                .await?;
                // Catalog entries only the removed findings referenced are left to the
                // catalog sweep (store/catalog.rs). An unchanged re-ingest removes nothing
                // and builds no set.
                if !to_remove.is_empty() {
                    let still: HashSet<&str> = new
                        .report
                        .findings
                        .iter()
                        .map(|f| f.vulnerability_id.as_str())
                        .collect();
                    catalog_orphans = to_remove
                        .iter()
                        .any(|(v, _, _)| !still.contains(v.as_str()));
                }
                added_findings = to_add;
                removed_keys = to_remove;
                after = Some(self.update_scan(conn, &scan_id, new).await?);
            }

            // 5. The raw report.
            writes
                .add(
                    conn,
                    "INSERT INTO scan_reports (scan_id, encoding, size_bytes, sha256, body) VALUES ($1, $5, $2, $3, $4) \
                     ON CONFLICT (scan_id) DO UPDATE SET encoding = excluded.encoding, size_bytes = excluded.size_bytes, \
                     sha256 = excluded.sha256, body = excluded.body WHERE scan_reports.sha256 <> excluded.sha256"
                        .to_string(),
                    vec![
                        Val::S(scan_id.clone()),
                        Val::I(new.raw.len() as i64),
                        Val::S(body.sha256.clone()),
                        Val::B(body.compressed.clone()),
                        Val::S(BODY_ENCODING.to_string()),
                    ],
                )
                .await?;
        }

        // A stale report left the scan row as it was.
        let mut scan = after.or_else(|| before.clone()).ok_or_else(|| {
            StoreError::Other(anyhow::anyhow!(
                "scan {scan_id} vanished inside its transaction"
            ))
        })?;
        self.analytics_after_ingest(
            conn,
            &mut writes,
            &IngestChange {
                before: before.as_ref(),
                after: &scan,
                image_tag: &new.image_tag,
                tag_added,
                added: &added_findings,
                removed: &removed_keys,
                stale,
                findings: (!stale).then_some(new.report.findings.as_slice()),
                now,
            },
        )
        .await?;
        writes.flush(conn).await?;
        if !is_new {
            attach_tags(conn, std::slice::from_mut(&mut scan)).await?;
        } else if !new.image_tag.is_empty() {
            // A new scan's one tag is the one just recorded.
            scan.tags = vec![new.image_tag.clone()];
        }
        Ok(IngestOutcome {
            scan,
            created: is_new,
            findings_added: added_findings.len(),
            findings_removed: removed_keys.len(),
            stale,
            catalog_orphans,
        })
    }

    async fn find_by_identity(
        &self,
        conn: &mut AnyConnection,
        image_name: &str,
        identity: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let sql = format!(
            "SELECT id, scanned_at FROM scans WHERE image_name = $1 AND identity = $2{}",
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(image_name)
            .bind(identity)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1))))
    }

    /// Insert the scan row and return it as stored; `None` when a concurrent ingest
    /// inserted the same identity first. On PostgreSQL the same statement records the
    /// scan's reference in `scan_tags` (a data-modifying `WITH`).
    async fn insert_scan(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        new: &NewScan,
        identity: Option<&str>,
    ) -> Result<Option<ScanRow>, StoreError> {
        let s = ScanValues::of(new);
        let insert = format!(
            "INSERT INTO scans (id, image_name, image_tag, image_digest, image_id, identity, repo_tags, repo_digests, \
             artifact_name, artifact_type, os_family, os_name, scanner, scanner_version, report_format, source, \
             created_at, scanned_at, updated_at, vuln_critical, vuln_high, vuln_medium, vuln_low, vuln_unknown, \
             fixable_count, risk_score, cvss_score, is_compliant, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23, $24, $25, $26, $27, $28, $29) \
             ON CONFLICT (image_name, identity) WHERE identity IS NOT NULL DO NOTHING RETURNING {SCAN_COLUMNS}"
        );
        let sql = if self.backend().is_postgres() {
            format!(
                "WITH s AS ({insert}), t AS (INSERT INTO scan_tags (scan_id, image_name, image_tag, first_seen_at) \
                 SELECT id, image_name, image_tag, created_at FROM s) SELECT {SCAN_COLUMNS} FROM s"
            )
        } else {
            insert
        };
        let q = sqlx::query_as::<Any, ScanRow>(&sql)
            .bind(id)
            .bind(&new.image_name)
            .bind(&new.image_tag)
            .bind(&new.image_digest)
            .bind(&new.image_id)
            .bind(identity);
        let q = s
            .bind_report(new, q)
            .bind(new.source.as_str())
            .bind(micros(new.now))
            .bind(micros(new.scanned_at))
            .bind(micros(new.now));
        Ok(s.bind_counts(q)
            .bind(&new.created_by)
            .fetch_optional(&mut *conn)
            .await?)
    }

    /// Update a stored scan with a newer report of the same content, and return it as
    /// stored. The scan keeps its id, first tag and creation time: its history is not
    /// rewritten.
    async fn update_scan(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        new: &NewScan,
    ) -> Result<ScanRow, StoreError> {
        let s = ScanValues::of(new);
        let sql = format!(
            "UPDATE scans SET repo_tags = $2, repo_digests = $3, artifact_name = $4, artifact_type = $5, \
             os_family = $6, os_name = $7, scanner = $8, scanner_version = $9, report_format = $10, \
             scanned_at = $11, updated_at = $12, vuln_critical = $13, vuln_high = $14, vuln_medium = $15, \
             vuln_low = $16, vuln_unknown = $17, fixable_count = $18, risk_score = $19, cvss_score = $20, \
             is_compliant = $21, image_id = CASE WHEN image_id = '' THEN $22 ELSE image_id END, \
             image_digest = CASE WHEN image_digest = '' THEN $23 ELSE image_digest END \
             WHERE id = $1 RETURNING {SCAN_COLUMNS}"
        );
        let q = s
            .bind_report(new, sqlx::query_as::<Any, ScanRow>(&sql).bind(id))
            .bind(micros(new.scanned_at))
            .bind(micros(new.now));
        Ok(s.bind_counts(q)
            .bind(&new.image_id)
            .bind(&new.image_digest)
            .fetch_one(&mut *conn)
            .await?)
    }

    /// Insert catalog entries that are not stored yet, and refresh those whose details
    /// the report has newer (`LastModifiedDate`). Existing rows are read, not locked:
    /// the most widespread CVE is in most reports, and a lock on it would serialise ingest.
    /// New and refreshed rows are written in id order: two ingests bringing the same new
    /// ids in different orders would otherwise each wait for a row the other inserted
    /// (on PostgreSQL, a deadlock that fails one of them).
    async fn upsert_catalog(
        &self,
        conn: &mut AnyConnection,
        vulns: &[VulnerabilityDetail],
        now: i64,
    ) -> Result<(), StoreError> {
        let backend = self.backend();
        let mut vulns: Vec<&VulnerabilityDetail> = vulns.iter().collect();
        vulns.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut stored: HashMap<String, Option<i64>> = HashMap::new();
        if !vulns.is_empty() {
            let ids: Vec<&str> = vulns.iter().map(|v| v.id.as_str()).collect();
            let sql = format!(
                "SELECT id, modified_at FROM vulnerabilities WHERE {}",
                rowset::in_list(backend, "id", 1)
            );
            for row in sqlx::query(&sql)
                .bind(rowset::list_param(backend, &ids)?)
                .fetch_all(&mut *conn)
                .await?
            {
                stored.insert(row.get::<String, _>(0), row.get::<Option<i64>, _>(1));
            }
        }
        let missing: Vec<CatalogJson> = vulns
            .iter()
            .copied()
            .filter(|v| !stored.contains_key(&v.id))
            .map(|v| CatalogJson::of(v, now))
            .collect();
        if !missing.is_empty() {
            let sql = format!(
                "INSERT INTO vulnerabilities (id, title, description, severity, cvss_score, cvss_vector, primary_url, \
                 refs, published_at, modified_at, updated_at) SELECT id, title, description, severity, cvss_score, \
                 cvss_vector, primary_url, refs, published_at, modified_at, updated_at FROM {} \
                 WHERE true ON CONFLICT (id) DO NOTHING",
                rowset::source(backend, 1, CATALOG_COLUMNS, "x")
            );
            let mut q = sqlx::query(&sql);
            for p in rowset::params(backend, &missing, CATALOG_COLUMNS)? {
                q = q.bind(p);
            }
            q.execute(&mut *conn).await?;
        }
        for v in vulns {
            let newer = match (stored.get(&v.id), v.modified_at) {
                (Some(Some(old)), Some(m)) => micros(m) > *old,
                (Some(None), Some(_)) => true,
                _ => false,
            };
            if newer {
                let q = sqlx::query(
                    "UPDATE vulnerabilities SET title = $2, description = $3, severity = $4, cvss_score = $5, \
                     cvss_vector = $6, primary_url = $7, refs = $8, published_at = $9, modified_at = $10, \
                     updated_at = $11 WHERE id = $1",
                );
                CatalogJson::of(v, now).bind(q).execute(&mut *conn).await?;
            }
        }
        Ok(())
    }

    /// One scan with its tags.
    pub async fn find_scan(&self, id: &str) -> Result<Option<ScanRow>, StoreError> {
        let mut conn = self.read_pool().acquire().await?;
        let Some(scan) = fetch_scan(&mut conn, id).await? else {
            return Ok(None);
        };
        let mut v = vec![scan];
        attach_tags(&mut conn, &mut v).await?;
        Ok(v.pop())
    }

    /// Scans matching a filter, newest first. Fetches `limit + 1` rows so the caller can
    /// tell whether there is another page.
    pub async fn list_scans(&self, f: &ScanFilter) -> Result<Vec<ScanRow>, StoreError> {
        let mut conds: Vec<String> = vec![];
        let mut args: Vec<String> = vec![];
        if let Some(image) = &f.image {
            args.push(image.clone());
            conds.push(format!("image_name = ${}", args.len()));
        }
        if let Some(tag) = &f.tag {
            args.push(tag.clone());
            let n = args.len();
            conds.push(match &f.image {
                Some(_) => format!(
                    "id IN (SELECT scan_id FROM scan_tags WHERE image_name = $1 AND image_tag = ${n})"
                ),
                None => format!("id IN (SELECT scan_id FROM scan_tags WHERE image_tag = ${n})"),
            });
        }
        if let Some(sev) = f.severity {
            conds.push(format!("{} > 0", severity_column(sev)));
        }
        let where_sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {SCAN_COLUMNS} FROM scans {where_sql} ORDER BY scanned_at DESC, created_at DESC, id DESC \
             LIMIT ${} OFFSET ${}",
            args.len() + 1,
            args.len() + 2
        );
        let mut q = sqlx::query_as::<Any, ScanRow>(&sql);
        for a in &args {
            q = q.bind(a);
        }
        let mut conn = self.read_pool().acquire().await?;
        let mut rows = q
            .bind(f.limit + 1)
            .bind(f.offset)
            .fetch_all(&mut *conn)
            .await?;
        attach_tags(&mut conn, &mut rows).await?;
        Ok(rows)
    }

    /// The newest scan of an image (and tag, when given), by scan time.
    pub async fn latest_scan(
        &self,
        image: &str,
        tag: Option<&str>,
    ) -> Result<Option<ScanRow>, StoreError> {
        let mut rows = self
            .list_scans(&ScanFilter {
                image: Some(image.to_string()),
                tag: tag.map(str::to_string),
                limit: 1,
                ..Default::default()
            })
            .await?;
        rows.truncate(1);
        Ok(rows.pop())
    }

    /// Findings of a scan with catalog details, most severe first.
    pub async fn scan_findings(
        &self,
        scan_id: &str,
        severity: Option<Severity>,
        pkg: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<FindingRow>, StoreError> {
        let mut sql = String::from(
            "SELECT f.vulnerability_id, f.pkg_name, f.pkg_version, f.fixed_version, f.severity, f.status, \
             f.pkg_type, f.class, f.target, f.pkg_path, f.purl, f.cvss_score, v.title, v.description, v.primary_url \
             FROM findings f LEFT JOIN vulnerabilities v ON v.id = f.vulnerability_id WHERE f.scan_id = $1",
        );
        let mut n = 1;
        if severity.is_some() {
            n += 1;
            sql.push_str(&format!(" AND f.severity = ${n}"));
        }
        if pkg.is_some() {
            n += 1;
            sql.push_str(&format!(" AND LOWER(f.pkg_name) = LOWER(${n})"));
        }
        sql.push_str(&format!(
            " ORDER BY f.severity DESC, f.vulnerability_id, f.pkg_name, f.pkg_version LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        ));
        let mut q = sqlx::query_as::<Any, FindingRow>(&sql).bind(scan_id);
        if let Some(s) = severity {
            q = q.bind(s.rank());
        }
        if let Some(p) = pkg {
            q = q.bind(p);
        }
        Ok(q.bind(limit)
            .bind(offset)
            .fetch_all(self.read_pool())
            .await?)
    }

    /// The raw report as received.
    pub async fn scan_report(&self, scan_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT encoding, body FROM scan_reports WHERE scan_id = $1")
            .bind(scan_id)
            .fetch_optional(self.read_pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let encoding: String = row.get(0);
        let body: Vec<u8> = row.get(1);
        Ok(Some(
            decompress(&encoding, &body).context("decoding a stored report")?,
        ))
    }

    /// Delete a scan with its findings, tags and report (catalog entries no longer
    /// referenced by any finding go at the next catalog sweep). `false` if there was no
    /// such scan.
    pub async fn delete_scan(&self, scan_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_pool().begin().await?;
        let n = self
            .delete_scans_in_tx(&mut tx, &[scan_id.to_string()])
            .await?;
        tx.commit().await?;
        if n > 0 {
            self.mark_catalog_sweep_due();
        }
        Ok(n > 0)
    }

    /// Delete scans (children cascade). Catalog entries they alone referenced stay until
    /// the catalog sweep: the caller marks it due once the transaction has committed.
    pub(crate) async fn delete_scans_in_tx(
        &self,
        conn: &mut AnyConnection,
        ids: &[String],
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for chunk in ids.chunks(CHUNK_IDS) {
            let list = placeholders(1, chunk.len());
            self.analytics_before_delete(conn, chunk).await?;
            // Findings go explicitly (PostgreSQL has no foreign key on them, see its
            // migrations). Catalog entries they alone referenced are left to the catalog
            // sweep (store/catalog.rs).
            let findings = match self.backend() {
                Backend::Postgres => format!("DELETE FROM scan_findings WHERE scan_id IN ({list})"),
                Backend::Sqlite => format!("DELETE FROM findings WHERE scan_id IN ({list})"),
            };
            execute_with_ids(conn, &findings, chunk).await?;
            let scans = format!("DELETE FROM scans WHERE id IN ({list})");
            deleted += execute_with_ids(conn, &scans, chunk).await?;
        }
        Ok(deleted)
    }

    /// Every table's row count and a SHA-256 over its rows (sorted), to prove that a
    /// request changed nothing (tests and diagnostics).
    pub async fn content_fingerprint(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        use sha2::Digest;
        let list = match self.backend() {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
            Backend::Postgres => "SELECT CAST(tablename AS TEXT) FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
        };
        let tables: Vec<String> = sqlx::query(list)
            .fetch_all(self.read_pool())
            .await?
            .iter()
            .map(|r| r.get(0))
            .filter(|t: &String| !t.starts_with("_sqlx"))
            .collect();
        let mut out = vec![];
        for t in tables {
            // PostgreSQL's arrays have no type in the `Any` driver: its rows are read as
            // their text form, whole.
            let sql = match self.backend() {
                Backend::Sqlite => format!("SELECT * FROM {t}"),
                Backend::Postgres => format!("SELECT CAST(t AS TEXT) FROM {t} t"),
            };
            let rows = sqlx::query(&sql).fetch_all(self.read_pool()).await?;
            let mut lines: Vec<String> = rows
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                                format!("{v:?}")
                            } else if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                                format!("{v:?}")
                            } else if let Ok(v) = r.try_get::<Option<f64>, _>(i) {
                                format!("{v:?}")
                            } else if let Ok(v) = r.try_get::<Option<Vec<u8>>, _>(i) {
                                format!("{v:?}")
                            } else if let Ok(v) = r.try_get::<Option<bool>, _>(i) {
                                format!("{v:?}")
                            } else {
                                "?".into()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            lines.sort();
            let mut h = sha2::Sha256::new();
            for l in &lines {
                h.update(l.as_bytes());
                h.update(b"\n");
            }
            let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            out.push((t, lines.len() as i64, digest));
        }
        Ok(out)
    }

    /// Number of rows in each table (for tests and diagnostics).
    pub async fn table_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = vec![];
        for t in [
            "scans",
            "scan_tags",
            "scan_reports",
            "vulnerabilities",
            "findings",
            "scan_jobs",
            "scan_audit_log",
        ] {
            let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {t}"))
                .fetch_one(self.read_pool())
                .await?
                .get(0);
            out.push((t.to_string(), n));
        }
        Ok(out)
    }
}

/// Values derived from a report, shared by insert and update.
struct ScanValues {
    counts: SeverityCounts,
    fixable: i64,
    cvss: Option<f64>,
    compliant: i64,
    repo_tags: String,
    repo_digests: String,
}

/// The scan-returning statements of [`Store::insert_scan`] and [`Store::update_scan`].
type ScanQuery<'q> = sqlx::query::QueryAs<'q, Any, ScanRow, sqlx::any::AnyArguments<'q>>;

impl ScanValues {
    /// Bind what the report says about the artifact, in the column order both statements
    /// use: repo tags and digests, artifact name and type, OS family and name, scanner and
    /// its version, report format.
    fn bind_report<'q>(&'q self, new: &'q NewScan, q: ScanQuery<'q>) -> ScanQuery<'q> {
        let r = &new.report;
        q.bind(&self.repo_tags)
            .bind(&self.repo_digests)
            .bind(&r.artifact_name)
            .bind(&r.artifact_type)
            .bind(&r.os_family)
            .bind(&r.os_name)
            .bind(&r.scanner)
            .bind(&r.scanner_version)
            .bind(r.format.as_str())
    }

    /// Bind the counts, in the column order both statements use: the five severities,
    /// fixable, risk score, CVSS score, compliance.
    fn bind_counts<'q>(&self, q: ScanQuery<'q>) -> ScanQuery<'q> {
        q.bind(self.counts.critical)
            .bind(self.counts.high)
            .bind(self.counts.medium)
            .bind(self.counts.low)
            .bind(self.counts.unknown)
            .bind(self.fixable)
            .bind(self.counts.risk_score())
            .bind(OptF64(self.cvss))
            .bind(self.compliant)
    }

    fn of(new: &NewScan) -> ScanValues {
        let counts = new.report.counts();
        let compliant = !new
            .report
            .findings
            .iter()
            .any(|f| f.severity >= new.compliance_fail_on);
        ScanValues {
            counts,
            fixable: new.report.fixable_count(),
            cvss: new.report.max_cvss(),
            compliant: i64::from(compliant),
            repo_tags: serde_json::to_string(&new.report.image.repo_tags)
                .unwrap_or_else(|_| "[]".into()),
            repo_digests: serde_json::to_string(&new.report.image.repo_digests)
                .unwrap_or_else(|_| "[]".into()),
        }
    }
}

pub(crate) fn severity_column(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "vuln_critical",
        Severity::High => "vuln_high",
        Severity::Medium => "vuln_medium",
        Severity::Low => "vuln_low",
        Severity::Unknown => "vuln_unknown",
    }
}

pub(crate) async fn fetch_scan(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ScanRow>, StoreError> {
    Ok(
        sqlx::query_as::<Any, ScanRow>(&format!("SELECT {SCAN_COLUMNS} FROM scans WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

pub(crate) async fn attach_tags(
    conn: &mut AnyConnection,
    scans: &mut [ScanRow],
) -> Result<(), StoreError> {
    if scans.is_empty() {
        return Ok(());
    }
    let mut by_id: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    let ids: Vec<&str> = scans.iter().map(|s| s.id.as_str()).collect();
    for chunk in ids.chunks(CHUNK_IDS) {
        let sql = format!(
            "SELECT scan_id, image_tag, first_seen_at FROM scan_tags WHERE scan_id IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            by_id
                .entry(row.get(0))
                .or_default()
                .push((row.get::<i64, _>(2), row.get::<String, _>(1)));
        }
    }
    for s in scans.iter_mut() {
        let mut tags = by_id.remove(&s.id).unwrap_or_default();
        tags.sort();
        s.tags = tags
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| !t.is_empty())
            .collect();
    }
    Ok(())
}

/// A finding's key: (vulnerability id, package, installed version).
pub(crate) type FindingKey = (String, String, String);

/// Findings to add and keys to remove to turn the stored findings into `new`.
async fn diff_findings<'a>(
    conn: &mut AnyConnection,
    scan_id: &str,
    new: &'a [Finding],
) -> Result<(Vec<&'a Finding>, Vec<FindingKey>), StoreError> {
    let rows: Vec<AnyRow> = sqlx::query(
        "SELECT vulnerability_id, pkg_name, pkg_version, fixed_version, severity, status, pkg_type, class, \
         target, pkg_path, purl, cvss_score FROM findings WHERE scan_id = $1",
    )
    .bind(scan_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut stored: HashMap<FindingKey, StoredFinding> = HashMap::with_capacity(rows.len());
    for r in rows {
        stored.insert(
            (r.get(0), r.get(1), r.get(2)),
            StoredFinding {
                fixed_version: r.get(3),
                severity: r.get(4),
                status: r.get(5),
                pkg_type: r.get(6),
                class: r.get(7),
                target: r.get(8),
                pkg_path: r.get(9),
                purl: r.get(10),
                cvss_score: r.get(11),
            },
        );
    }
    let mut to_add = vec![];
    let mut keep: HashSet<FindingKey> = HashSet::with_capacity(new.len());
    let mut to_remove = vec![];
    for f in new {
        let key = (
            f.vulnerability_id.clone(),
            f.pkg_name.clone(),
            f.installed_version.clone(),
        );
        match stored.get(&key) {
            Some(s) if s.same_as(f) => {
                keep.insert(key);
            }
            Some(_) => {
                // Changed (new severity, a fix appeared, …): replace the row.
                to_remove.push(key.clone());
                keep.insert(key);
                to_add.push(f);
            }
            None => to_add.push(f),
        }
    }
    for key in stored.into_keys() {
        if !keep.contains(&key) {
            to_remove.push(key);
        }
    }
    Ok((to_add, to_remove))
}

struct StoredFinding {
    fixed_version: Option<String>,
    severity: i64,
    status: Option<String>,
    pkg_type: Option<String>,
    class: Option<String>,
    target: Option<String>,
    pkg_path: Option<String>,
    purl: Option<String>,
    cvss_score: Option<f64>,
}

impl StoredFinding {
    fn same_as(&self, f: &Finding) -> bool {
        self.fixed_version == f.fixed_version
            && self.severity == f.severity.rank()
            && self.status == f.status
            && self.pkg_type == f.pkg_type
            && self.class == f.class
            && self.target == f.target
            && self.pkg_path == f.pkg_path
            && self.purl == f.purl
            && self.cvss_score == f.cvss_score
    }
}

/// Store a scan's findings: `all` of them for a new scan (`diff` is `None`), or the change
/// `diff` = (findings to add, keys to remove) that turns the stored ones into `all`.
///
/// - PostgreSQL keeps a scan's findings as one row of arrays (`scan_findings`, read as rows
///   through the view `findings`): the row is written whole, and rewritten whole when a
///   re-ingest changed anything.
/// - SQLite keeps one row per finding: the removed keys go, the added findings come.
async fn write_findings(
    conn: &mut AnyConnection,
    writes: &mut WriteBatch,
    backend: Backend,
    scan_id: &str,
    all: &[&Finding],
    diff: Option<(&[&Finding], &[FindingKey])>,
) -> Result<(), StoreError> {
    if diff.is_some_and(|(added, removed)| added.is_empty() && removed.is_empty()) {
        return Ok(());
    }
    let (sql, rows) = match backend {
        Backend::Postgres => {
            if all.is_empty() {
                if diff.is_some() {
                    let sql = "DELETE FROM scan_findings WHERE scan_id = $1".to_string();
                    writes
                        .add(conn, sql, vec![Val::S(scan_id.to_string())])
                        .await?;
                }
                return Ok(());
            }
            let values = FINDING_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, (_, t))| format!("${}::{t}[]", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let mut sql = format!(
                "INSERT INTO scan_findings ({SCAN_FINDINGS_COLUMNS}) VALUES ($1, {values})"
            );
            if diff.is_some() {
                let set = SCAN_FINDINGS_COLUMNS
                    .split(", ")
                    .skip(1)
                    .map(|c| format!("{c} = excluded.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                sql.push_str(&format!(" ON CONFLICT (scan_id) DO UPDATE SET {set}"));
            }
            (sql, all)
        }
        Backend::Sqlite => {
            let added = match diff {
                None => all,
                Some((added, removed)) => {
                    delete_findings(conn, scan_id, removed).await?;
                    added
                }
            };
            if added.is_empty() {
                return Ok(());
            }
            let sql = format!(
                "INSERT INTO findings (scan_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity, \
                 status, pkg_type, class, target, pkg_path, purl, cvss_score) SELECT $1, v, p, iv, fv, sev, st, pt, \
                 cl, tg, pp, pu, cv FROM {}",
                rowset::source(backend, 2, FINDING_COLUMNS, "x")
            );
            (sql, added)
        }
    };
    let rows: Vec<FindingJson> = rows.iter().map(|f| FindingJson::of(f)).collect();
    let mut vals = vec![Val::S(scan_id.to_string())];
    vals.extend(
        rowset::params(backend, &rows, FINDING_COLUMNS)?
            .into_iter()
            .map(Val::S),
    );
    writes.add(conn, sql, vals).await
}

/// The columns of `scan_findings` (PostgreSQL), in the order of [`FINDING_COLUMNS`].
const SCAN_FINDINGS_COLUMNS: &str =
    "scan_id, vulnerability_ids, pkg_names, pkg_versions, fixed_versions, \
     severities, statuses, pkg_types, classes, targets, pkg_paths, purls, cvss_scores";

/// The columns of [`FindingJson`], in order.
const FINDING_COLUMNS: &[Column] = &[
    ("v", "TEXT"),
    ("p", "TEXT"),
    ("iv", "TEXT"),
    ("fv", "TEXT"),
    ("sev", "BIGINT"),
    ("st", "TEXT"),
    ("pt", "TEXT"),
    ("cl", "TEXT"),
    ("tg", "TEXT"),
    ("pp", "TEXT"),
    ("pu", "TEXT"),
    ("cv", "DOUBLE PRECISION"),
];

/// A finding as a row of [`write_findings`]' row set.
#[derive(serde::Serialize)]
struct FindingJson<'a> {
    v: &'a str,
    p: &'a str,
    iv: &'a str,
    fv: Option<&'a str>,
    sev: i64,
    st: Option<&'a str>,
    pt: Option<&'a str>,
    cl: Option<&'a str>,
    tg: Option<&'a str>,
    pp: Option<&'a str>,
    pu: Option<&'a str>,
    cv: Option<f64>,
}

impl SetRow for FindingJson<'_> {
    fn write(&self, w: &mut ArrayWriter) {
        w.put(self.v);
        w.put(self.p);
        w.put(self.iv);
        w.put(&self.fv);
        w.put(&self.sev);
        w.put(&self.st);
        w.put(&self.pt);
        w.put(&self.cl);
        w.put(&self.tg);
        w.put(&self.pp);
        w.put(&self.pu);
        w.put(&self.cv);
    }
}

impl<'a> FindingJson<'a> {
    fn of(f: &'a Finding) -> FindingJson<'a> {
        FindingJson {
            v: &f.vulnerability_id,
            p: &f.pkg_name,
            iv: &f.installed_version,
            fv: f.fixed_version.as_deref(),
            sev: f.severity.rank(),
            st: f.status.as_deref(),
            pt: f.pkg_type.as_deref(),
            cl: f.class.as_deref(),
            tg: f.target.as_deref(),
            pp: f.pkg_path.as_deref(),
            pu: f.purl.as_deref(),
            cv: f.cvss_score,
        }
    }
}

/// The columns of [`CatalogJson`], in order.
const CATALOG_COLUMNS: &[Column] = &[
    ("id", "TEXT"),
    ("title", "TEXT"),
    ("description", "TEXT"),
    ("severity", "BIGINT"),
    ("cvss_score", "DOUBLE PRECISION"),
    ("cvss_vector", "TEXT"),
    ("primary_url", "TEXT"),
    ("refs", "TEXT"),
    ("published_at", "BIGINT"),
    ("modified_at", "BIGINT"),
    ("updated_at", "BIGINT"),
];

/// A catalog entry as a row of the catalog insert's row set.
#[derive(serde::Serialize)]
struct CatalogJson<'a> {
    id: &'a str,
    title: Option<&'a str>,
    description: Option<&'a str>,
    severity: i64,
    cvss_score: Option<f64>,
    cvss_vector: Option<&'a str>,
    primary_url: Option<&'a str>,
    refs: String,
    published_at: Option<i64>,
    modified_at: Option<i64>,
    updated_at: i64,
}

impl SetRow for CatalogJson<'_> {
    fn write(&self, w: &mut ArrayWriter) {
        w.put(self.id);
        w.put(&self.title);
        w.put(&self.description);
        w.put(&self.severity);
        w.put(&self.cvss_score);
        w.put(&self.cvss_vector);
        w.put(&self.primary_url);
        w.put(&self.refs);
        w.put(&self.published_at);
        w.put(&self.modified_at);
        w.put(&self.updated_at);
    }
}

impl<'a> CatalogJson<'a> {
    fn of(v: &'a VulnerabilityDetail, now: i64) -> CatalogJson<'a> {
        CatalogJson {
            id: &v.id,
            title: v.title.as_deref(),
            description: v.description.as_deref(),
            severity: v.severity.rank(),
            cvss_score: v.cvss_score,
            cvss_vector: v.cvss_vector.as_deref(),
            primary_url: v.primary_url.as_deref(),
            refs: serde_json::to_string(&v.references).unwrap_or_else(|_| "[]".into()),
            published_at: v.published_at.map(micros),
            modified_at: v.modified_at.map(micros),
            updated_at: now,
        }
    }

    /// Bind the entry's values in column order, id first (`$1` … `$11`).
    fn bind(
        self,
        q: sqlx::query::Query<'a, Any, sqlx::any::AnyArguments<'a>>,
    ) -> sqlx::query::Query<'a, Any, sqlx::any::AnyArguments<'a>> {
        q.bind(self.id)
            .bind(self.title)
            .bind(self.description)
            .bind(self.severity)
            .bind(OptF64(self.cvss_score))
            .bind(self.cvss_vector)
            .bind(self.primary_url)
            .bind(self.refs)
            .bind(self.published_at)
            .bind(self.modified_at)
            .bind(self.updated_at)
    }
}

/// Run `sql` with `ids` bound as `$1`, `$2`, …; the number of rows it affected.
async fn execute_with_ids(
    conn: &mut AnyConnection,
    sql: &str,
    ids: &[String],
) -> Result<u64, StoreError> {
    let mut q = sqlx::query(sql);
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.execute(&mut *conn).await?.rows_affected())
}

/// Delete findings by key (SQLite, whose findings are rows).
async fn delete_findings(
    conn: &mut AnyConnection,
    scan_id: &str,
    keys: &[FindingKey],
) -> Result<(), StoreError> {
    for chunk in keys.chunks(CHUNK_ROWS) {
        let sql = format!(
            "DELETE FROM findings WHERE scan_id = $1 AND (vulnerability_id, pkg_name, pkg_version) IN (VALUES {})",
            row_placeholders_from(2, 3, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(scan_id);
        for (v, p, ver) in chunk {
            q = q.bind(v).bind(p).bind(ver);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `$start, $start+1, …` (n of them).
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($start, …), (…)`: `rows` rows of `cols` placeholders.
pub(crate) fn row_placeholders_from(start: usize, cols: usize, rows: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        s.push_str(&placeholders(start + r * cols, cols));
        s.push(')');
    }
    s
}

/// How new report bodies are stored (`scan_reports.encoding`). Bodies stored as `gzip` by
/// earlier versions are still read.
const BODY_ENCODING: &str = "zstd";

/// A report body as stored: compressed ([`BODY_ENCODING`]), and the SHA-256 of the bytes
/// received.
#[derive(Debug)]
pub struct StoredBody {
    compressed: Vec<u8>,
    sha256: String,
}

impl StoredBody {
    pub fn of(raw: &[u8]) -> Result<StoredBody, StoreError> {
        Ok(StoredBody {
            compressed: compress(raw).context("compressing the report")?,
            sha256: sha256_hex(raw),
        })
    }
}

/// Zstandard, level 1. On the benchmark's typical reports it stores about 40 % fewer bytes
/// than gzip's fast level, for about a quarter less CPU. The compression context (its
/// tables) is kept per thread, not allocated for every report.
fn compress(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static ZSTD: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    }
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        let compressor = match z.as_mut() {
            Some(c) => c,
            None => z.insert(zstd::bulk::Compressor::new(1)?),
        };
        compressor.compress(raw)
    })
}

/// A stored body back to the bytes received, by its `encoding`.
fn decompress(encoding: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    match encoding {
        "zstd" => zstd::stream::decode_all(body),
        "gzip" => {
            let mut out = Vec::with_capacity(body.len() * 8);
            flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
            Ok(out)
        }
        other => Err(std::io::Error::other(format!(
            "unknown report encoding {other}"
        ))),
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

impl Backend {
    /// Used by analytics to pick the dialect of a few expressions.
    pub fn is_postgres(self) -> bool {
        self == Backend::Postgres
    }
}

#[cfg(test)]
mod compress_tests {
    use super::{compress, decompress, BODY_ENCODING};
    use std::io::Write;

    fn samples() -> Vec<Vec<u8>> {
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        vec![
            b"".to_vec(),
            b"{}".to_vec(),
            big,
            b"{\"again\": true}".to_vec(),
        ]
    }

    #[test]
    fn bodies_round_trip_and_reuse_the_compression_context() {
        for raw in samples() {
            let stored = compress(&raw).unwrap();
            // A zstd frame (RFC 8878), read back by its encoding.
            assert_eq!(&stored[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
            assert_eq!(decompress(BODY_ENCODING, &stored).unwrap(), raw);
        }
    }

    #[test]
    fn gzip_bodies_of_earlier_versions_still_read() {
        for raw in samples() {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).unwrap();
            assert_eq!(decompress("gzip", &gz.finish().unwrap()).unwrap(), raw);
        }
        assert!(decompress("brotli", b"x").is_err());
    }
}
