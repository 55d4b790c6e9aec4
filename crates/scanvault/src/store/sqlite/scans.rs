//! Scans on SQLite: the ingest transaction (its statements are in `ingest.rs`),
//! lookups, deletion.

use async_trait::async_trait;
use scanvault_core::k8s::Workload;
use scanvault_core::report::Finding;
use sqlx::SqliteConnection;

use super::ingest::SqliteTx;
use super::rows::{read_version, KeyedFindingRow, READ_VERSIONS};
use super::{jobs, SqliteStore};
use crate::store::body::decompress;
use crate::store::ingest::{self, retry_conflicts};
use crate::store::jobs::{JobCompletion, JobError};
use crate::store::scans::{
    namespaces_of, set_tags, set_workloads, workloads_by_scan, CatalogRow, FindingFilter,
    FindingRow, IngestError, IngestOutcome, NewScan, ObservationRow, ReferenceObservation,
    ScanFilter, ScanRow, ScanStore,
};
use crate::store::{micros, sql, StoreError, StoredBody};
use std::collections::HashMap;

/// The findings of each scan `s` as it has them now.
const CURRENT_FINDINGS: &str =
    "scans s JOIN findings f ON f.scan_id = s.id AND f.first_version <= s.findings_version \
     AND (f.last_version IS NULL OR f.last_version > s.findings_version)";

/// A scan's findings as it has them now, with catalog details, filtered by
/// [`sql::FINDING_FILTER`]; the page follows.
const SCAN_FINDINGS: &str = const_format::concatcp!(
    "SELECT ",
    sql::FINDING_COLUMNS,
    " FROM ",
    CURRENT_FINDINGS,
    " LEFT JOIN vulnerabilities v ON v.id = f.vulnerability_id ",
    sql::FINDING_FILTER,
    " ORDER BY f.severity DESC, f.vulnerability_id, f.pkg_name, f.pkg_version LIMIT $4 OFFSET $5"
);

/// How many findings [`SCAN_FINDINGS`] has over all pages.
const COUNT_FINDINGS: &str = const_format::concatcp!(
    "SELECT COUNT(*) FROM ",
    CURRENT_FINDINGS,
    " ",
    sql::FINDING_FILTER
);

/// The findings the scans `$1` have now, with catalog details.
const FINDINGS_OF: &str = const_format::concatcp!(
    "SELECT s.id, ",
    sql::FINDING_COLUMNS,
    " FROM ",
    CURRENT_FINDINGS,
    " LEFT JOIN vulnerabilities v ON v.id = f.vulnerability_id WHERE s.id IN (SELECT value FROM json_each($1)) \
     ORDER BY s.id, f.severity DESC, f.vulnerability_id, f.pkg_name, f.pkg_version"
);

const TAGS_OF: &str = "SELECT scan_id, image_tag, first_seen_at FROM scan_tags \
     WHERE scan_id IN (SELECT value FROM json_each($1))";

const WORKLOADS_OF: &str =
    "SELECT scan_id, cluster, namespace, kind, name FROM scan_workloads WHERE scan_id IN (SELECT value FROM json_each($1))";

#[async_trait]
impl ScanStore for SqliteStore {
    async fn ingest(
        &self,
        new: &NewScan,
        body: &StoredBody,
        job: Option<&JobCompletion>,
    ) -> Result<IngestOutcome, IngestError> {
        retry_conflicts(
            |e| {
                matches!(
                    e,
                    IngestError::Store(StoreError::Conflict(_))
                        | IngestError::Job(JobError::Store(StoreError::Conflict(_)))
                )
            },
            || async move {
                let mut tx = self.write.begin().await.map_err(StoreError::from)?;
                if let Some(job) = job {
                    if !jobs::hold_job(&mut tx, &job.job_id, job.attempt).await? {
                        return Err(JobError::Lost.into());
                    }
                }
                let outcome = ingest::ingest(&mut SqliteTx(&mut tx), new, body).await?;
                if let Some(job) = job {
                    let total = outcome.scan.counts().total();
                    let t = job.stored(&outcome.scan.id, total, micros(new.now));
                    jobs::apply_transition(&mut tx, &t).await?;
                }
                tx.commit().await.map_err(StoreError::from)?;
                Ok(outcome)
            },
        )
        .await
    }

    async fn find(&self, id: &str) -> Result<Option<ScanRow>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let scan: Option<ScanRow> = sqlx::query_as(sql::FETCH_SCAN)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        let mut scans: Vec<ScanRow> = scan.into_iter().collect();
        attach_tags(&mut conn, &mut scans).await?;
        Ok(scans.pop())
    }

    async fn list(&self, f: &ScanFilter) -> Result<Vec<ScanRow>, StoreError> {
        let sev = f.severity.map_or(-1, |s| s.rank());
        let limit = f.limit + 1;
        let statement = f.order.apply(match (&f.image, &f.tag) {
            (None, None) => sql::LIST_SCANS,
            (Some(_), None) => sql::LIST_SCANS_OF_IMAGE,
            (None, Some(_)) => sql::LIST_SCANS_OF_TAG,
            (Some(_), Some(_)) => sql::LIST_SCANS_OF_REF,
        });
        let q = match (&f.image, &f.tag) {
            (None, None) => sqlx::query_as(&statement),
            (Some(image), None) => sqlx::query_as(&statement).bind(image),
            (None, Some(tag)) => sqlx::query_as(&statement).bind(tag),
            (Some(image), Some(tag)) => sqlx::query_as(&statement).bind(image).bind(tag),
        };
        let mut conn = self.read.acquire().await?;
        let mut rows: Vec<ScanRow> = q
            .bind(sev)
            .bind(limit)
            .bind(f.offset)
            .fetch_all(&mut *conn)
            .await?;
        attach_tags(&mut conn, &mut rows).await?;
        Ok(rows)
    }

    async fn count(&self, f: &ScanFilter) -> Result<i64, StoreError> {
        let sev = f.severity.map_or(-1, |s| s.rank());
        let q = match (&f.image, &f.tag) {
            (None, None) => sqlx::query_scalar(sql::COUNT_SCANS),
            (Some(image), None) => sqlx::query_scalar(sql::COUNT_SCANS_OF_IMAGE).bind(image),
            (None, Some(tag)) => sqlx::query_scalar(sql::COUNT_SCANS_OF_TAG).bind(tag),
            (Some(image), Some(tag)) => sqlx::query_scalar(sql::COUNT_SCANS_OF_REF)
                .bind(image)
                .bind(tag),
        };
        Ok(q.bind(sev).fetch_one(&self.read).await?)
    }

    async fn findings_of(
        &self,
        scan_ids: &[String],
    ) -> Result<Vec<(String, FindingRow)>, StoreError> {
        if scan_ids.is_empty() {
            return Ok(vec![]);
        }
        let rows: Vec<ScanFindingRow> = sqlx::query_as(FINDINGS_OF)
            .bind(super::rows::json(scan_ids)?)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|r| (r.scan_id, r.finding)).collect())
    }

    async fn findings(
        &self,
        scan_id: &str,
        f: &FindingFilter,
    ) -> Result<Vec<FindingRow>, StoreError> {
        Ok(sqlx::query_as(SCAN_FINDINGS)
            .bind(scan_id)
            .bind(f.severity.map_or(-1, |s| s.rank()))
            .bind(f.pkg.as_deref().unwrap_or_default())
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(&self.read)
            .await?)
    }

    async fn count_findings(&self, scan_id: &str, f: &FindingFilter) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(COUNT_FINDINGS)
            .bind(scan_id)
            .bind(f.severity.map_or(-1, |s| s.rank()))
            .bind(f.pkg.as_deref().unwrap_or_default())
            .fetch_one(&self.read)
            .await?)
    }

    async fn version(&self, scan_id: &str, version: i64) -> Result<Vec<Finding>, StoreError> {
        let mut conn = self.read.acquire().await?;
        read_version(&mut conn, scan_id, version).await
    }

    async fn versions(
        &self,
        pairs: &[(String, i64)],
    ) -> Result<HashMap<(String, i64), Vec<Finding>>, StoreError> {
        let keys: Vec<serde_json::Value> = pairs
            .iter()
            .map(|(s, v)| serde_json::json!({"s": s, "v": v}))
            .collect();
        let rows: Vec<KeyedFindingRow> = sqlx::query_as(READ_VERSIONS)
            .bind(super::rows::json(&keys)?)
            .fetch_all(&self.read)
            .await?;
        let mut out: HashMap<(String, i64), Vec<Finding>> =
            pairs.iter().map(|p| (p.clone(), vec![])).collect();
        for r in rows {
            out.entry((r.scan_id, r.version))
                .or_default()
                .push(Finding::from(r.row));
        }
        for findings in out.values_mut() {
            findings.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
        }
        Ok(out)
    }

    async fn report(&self, scan_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(String, Vec<u8>)> = sqlx::query_as(sql::SCAN_REPORT)
            .bind(scan_id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|(encoding, body)| decompress(&encoding, &body))
            .transpose()
            .map_err(|e| {
                StoreError::Other(anyhow::Error::new(e).context("decoding a stored report"))
            })
    }

    async fn vulnerability(&self, id: &str) -> Result<Option<CatalogRow>, StoreError> {
        Ok(sqlx::query_as(sql::CATALOG_ENTRY)
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn workloads_of(
        &self,
        scan_ids: &[String],
    ) -> Result<HashMap<String, Vec<Workload>>, StoreError> {
        if scan_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query_as(WORKLOADS_OF)
            .bind(super::rows::json(scan_ids)?)
            .fetch_all(&self.read)
            .await?;
        Ok(workloads_by_scan(rows))
    }

    async fn observations(&self, scan_id: &str) -> Result<Vec<ObservationRow>, StoreError> {
        Ok(sqlx::query_as(sql::SCAN_OBSERVATIONS)
            .bind(scan_id)
            .fetch_all(&self.read)
            .await?)
    }

    async fn delete(&self, ids: &[String]) -> Result<u64, StoreError> {
        let n = retry_conflicts(
            |e| matches!(e, StoreError::Conflict(_)),
            || async move {
                let mut tx = self.write.begin().await?;
                let n = ingest::delete(&mut SqliteTx(&mut tx), ids).await?;
                tx.commit().await?;
                Ok(n)
            },
        )
        .await?;
        if n > 0 {
            self.sweep.mark();
        }
        Ok(n)
    }

    async fn history(
        &self,
        image: &str,
        tag: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ReferenceObservation>, StoreError> {
        let q = match tag {
            Some(tag) => sqlx::query_as(sql::REFERENCE_HISTORY).bind(image).bind(tag),
            None => sqlx::query_as(sql::IMAGE_HISTORY).bind(image),
        };
        Ok(q.bind(limit).bind(offset).fetch_all(&self.read).await?)
    }

    async fn newest_observations(
        &self,
        scan_id: &str,
    ) -> Result<Vec<ReferenceObservation>, StoreError> {
        Ok(sqlx::query_as(sql::SCAN_NEWEST_OBSERVATIONS)
            .bind(scan_id)
            .fetch_all(&self.read)
            .await?)
    }

    async fn count_history(&self, image: &str, tag: Option<&str>) -> Result<i64, StoreError> {
        let q = match tag {
            Some(tag) => sqlx::query_scalar(sql::COUNT_REFERENCE_HISTORY)
                .bind(image)
                .bind(tag),
            None => sqlx::query_scalar(sql::COUNT_IMAGE_HISTORY).bind(image),
        };
        Ok(q.fetch_one(&self.read).await?)
    }

    async fn observation_before(
        &self,
        image: &str,
        tag: &str,
        scanned_at: i64,
        id: i64,
    ) -> Result<Option<ReferenceObservation>, StoreError> {
        Ok(sqlx::query_as(sql::REFERENCE_BEFORE)
            .bind(image)
            .bind(tag)
            .bind(scanned_at)
            .bind(id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn record_workloads(
        &self,
        cluster: &str,
        runs: &[(String, Workload)],
        seen_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        for (cluster, namespace) in namespaces_of(cluster, runs) {
            sqlx::query(sql::FORGET_NAMESPACE_WORKLOADS)
                .bind(cluster)
                .bind(namespace)
                .execute(&mut *tx)
                .await?;
        }
        for (scan_id, w) in runs {
            sqlx::query(sql::RECORD_WORKLOAD)
                .bind(scan_id)
                .bind(cluster)
                .bind(&w.namespace)
                .bind(&w.kind)
                .bind(&w.name)
                .bind(seen_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn fresh(
        &self,
        image_name: &str,
        digest: &str,
        since: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(sql::FRESH_SCAN)
            .bind(image_name)
            .bind(digest)
            .bind(since)
            .fetch_optional(&self.read)
            .await?)
    }
}

/// A finding of one of several scans.
#[derive(sqlx::FromRow)]
struct ScanFindingRow {
    #[sqlx(rename = "id")]
    scan_id: String,
    #[sqlx(flatten)]
    finding: FindingRow,
}

/// Every tag each scan was stored under, in the order they were first seen, and the
/// workloads that run its image.
async fn attach_tags(conn: &mut SqliteConnection, scans: &mut [ScanRow]) -> Result<(), StoreError> {
    if scans.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = scans.iter().map(|s| s.id.clone()).collect();
    let rows = sqlx::query_as(TAGS_OF)
        .bind(super::rows::json(&ids)?)
        .fetch_all(&mut *conn)
        .await?;
    set_tags(scans, rows);
    let rows = sqlx::query_as(WORKLOADS_OF)
        .bind(super::rows::json(&ids)?)
        .fetch_all(&mut *conn)
        .await?;
    set_workloads(scans, rows);
    Ok(())
}
