//! Fleet analytics on PostgreSQL: the current fleet from the tables ingest maintains, the
//! past and scoped questions from the observations, and the compaction of the deltas.

use async_trait::async_trait;
use const_format::concatcp;
use scanvault_core::fleet::{self, Counts, FleetSummary, Interval, TopCve, TrendPoint};
use scanvault_core::report::Severity;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::ingest::LISTING_KEY;
use super::{close_quietly, PgStore};
use crate::store::analytics::{
    chains_of, workload_finding, AnalyticsStore, ChainRow, FleetFinding, FleetScope, Suppressed,
    SuppressibleRow, WorkloadFindingRow, WorkloadQuery, SHRINK_PAGES, SHRINK_RETRY,
};
use crate::store::{sql, StoreError};

/// PostgreSQL sums `BIGINT` into a 128-bit state per group, which spilled to disk under
/// steady ingest; it sums `DOUBLE PRECISION` instead, exact below 2^53 (ADR 0013).
const SUMS: &str = "CAST(SUM(CAST(images AS DOUBLE PRECISION)) AS BIGINT) AS images, \
    CAST(SUM(CAST(fixable AS DOUBLE PRECISION)) AS BIGINT) AS fixable, \
    CAST(SUM(CAST(n_critical AS DOUBLE PRECISION)) AS BIGINT) AS n_critical, \
    CAST(SUM(CAST(n_high AS DOUBLE PRECISION)) AS BIGINT) AS n_high, \
    CAST(SUM(CAST(n_medium AS DOUBLE PRECISION)) AS BIGINT) AS n_medium, \
    CAST(SUM(CAST(n_low AS DOUBLE PRECISION)) AS BIGINT) AS n_low, \
    CAST(SUM(CAST(n_unknown AS DOUBLE PRECISION)) AS BIGINT) AS n_unknown";

/// The highest severity with a non-zero count, over the count columns.
const MAX_SEVERITY: &str =
    "CASE WHEN n_critical > 0 THEN 4 WHEN n_high > 0 THEN 3 WHEN n_medium > 0 THEN 2 \
    WHEN n_low > 0 THEN 1 ELSE 0 END";

/// Fleet-wide counts: compacted plus pending.
const TOTALS: &str = concatcp!(
    "SELECT COALESCE(images, 0), COALESCE(fixable, 0), COALESCE(n_critical, 0), COALESCE(n_high, 0), \
     COALESCE(n_medium, 0), COALESCE(n_low, 0), COALESCE(n_unknown, 0) FROM (SELECT ",
    SUMS,
    " FROM (SELECT ",
    sql::COUNT_COLUMNS,
    " FROM fleet_totals UNION ALL SELECT ",
    sql::COUNT_COLUMNS,
    " FROM fleet_total_deltas) x) s"
);

// ---- the references of a scope: (image_name, image_tag, scan_id, version, scanned_at)
// and the counts of what each shows. `$1` image, `$2` from, `$3` to in every variant.

const CURRENT_REFS: &str = "SELECT image_name, image_tag, scan_id, version, scanned_at, fixable, n_critical, \
    n_high, n_medium, n_low, n_unknown FROM fleet_refs WHERE scan_id IS NOT NULL AND scanned_at >= $2";
const CURRENT_REFS_OF_IMAGE: &str = concatcp!(CURRENT_REFS, " AND image_name = $1");

macro_rules! past_refs {
    ($image:literal) => {
        concatcp!(
            "SELECT image_name, image_tag, scan_id, version, scanned_at, fixable, n_critical, n_high, n_medium, \
             n_low, n_unknown FROM (SELECT t.image_name, t.image_tag, o.scan_id, o.version, o.scanned_at, \
             o.fixable, o.n_critical, o.n_high, o.n_medium, o.n_low, o.n_unknown, ROW_NUMBER() OVER \
             (PARTITION BY t.image_name, t.image_tag ORDER BY o.scanned_at DESC, o.id DESC) AS rn \
             FROM scan_tags t JOIN observations o ON o.scan_id = t.scan_id AND o.scanned_at >= t.observed_from \
             WHERE o.scanned_at <= $3",
            $image,
            ") w WHERE rn = 1 AND scanned_at >= $2"
        )
    };
}
const PAST_REFS: &str = past_refs!("");
const PAST_REFS_OF_IMAGE: &str = past_refs!(" AND t.image_name = $1");

macro_rules! scoped_summary {
    ($refs:expr) => {
        concatcp!(
            "SELECT COUNT(*), COALESCE(SUM(fixable), 0)::BIGINT, COALESCE(SUM(n_critical), 0)::BIGINT, \
             COALESCE(SUM(n_high), 0)::BIGINT, COALESCE(SUM(n_medium), 0)::BIGINT, COALESCE(SUM(n_low), 0)::BIGINT, \
             COALESCE(SUM(n_unknown), 0)::BIGINT FROM (",
            $refs,
            ") fl"
        )
    };
}

/// Top CVEs of a scope's references: `$4` a severity rank (-1: any), `$5` the limit.
macro_rules! scoped_top_cves {
    ($refs:expr) => {
        concatcp!(
            "SELECT vulnerability_id, COUNT(*) AS images, MAX(sev) AS sev, CAST(SUM(n) AS BIGINT), \
             CAST(SUM(fx) AS BIGINT) FROM (SELECT f.vulnerability_id, fl.image_name, fl.image_tag, \
             MAX(f.severity) AS sev, COUNT(*) AS n, SUM(CASE WHEN f.fixed_version IS NULL THEN 0 ELSE 1 END) AS fx \
             FROM (",
            $refs,
            ") fl JOIN findings_brief f ON f.scan_id = fl.scan_id AND f.version = fl.version \
             GROUP BY f.vulnerability_id, fl.image_name, fl.image_tag) per_ref GROUP BY vulnerability_id \
             HAVING $4 < 0 OR MAX(sev) = $4 ORDER BY images DESC, sev DESC, vulnerability_id LIMIT $5"
        )
    };
}

/// Fixable findings of a scope's references, by name and tag: `$4` limit, `$5` offset.
macro_rules! scoped_fixable {
    ($refs:expr) => {
        concatcp!(
            "SELECT fl.image_name, fl.image_tag, fl.scan_id, fl.scanned_at, f.vulnerability_id, f.pkg_name, \
             f.pkg_version, f.fixed_version, f.severity, v.title FROM (",
            $refs,
            ") fl JOIN findings_brief f ON f.scan_id = fl.scan_id AND f.version = fl.version \
             LEFT JOIN vulnerabilities v ON v.id = f.vulnerability_id WHERE f.fixed_version IS NOT NULL AND ",
            crate::suppression_filter_sql!("$6", "f.vulnerability_id", "f.pkg_name", "fl.image_name", "$7"),
            " ORDER BY f.severity DESC, f.vulnerability_id, fl.image_name, fl.image_tag, f.pkg_name, f.pkg_version \
             LIMIT $4 OFFSET $5"
        )
    };
}

/// The findings of a scope's references whose vulnerability is one of `$4`.
macro_rules! scoped_suppressible {
    ($refs:expr) => {
        concatcp!(
            "SELECT fl.image_name, fl.image_tag, f.vulnerability_id, f.pkg_name, f.pkg_version, \
             f.fixed_version IS NOT NULL AS fixable, f.severity FROM (",
            $refs,
            ") fl JOIN findings_brief f ON f.scan_id = fl.scan_id AND f.version = fl.version \
             WHERE f.vulnerability_id = ANY($4)"
        )
    };
}

/// The statements of one kind of scope.
struct Scoped {
    summary: &'static str,
    top_cves: &'static str,
    fixable: &'static str,
    suppressible: &'static str,
}

const CURRENT: Scoped = Scoped {
    summary: scoped_summary!(CURRENT_REFS),
    top_cves: scoped_top_cves!(CURRENT_REFS),
    fixable: scoped_fixable!(CURRENT_REFS),
    suppressible: scoped_suppressible!(CURRENT_REFS),
};
const CURRENT_OF_IMAGE: Scoped = Scoped {
    summary: scoped_summary!(CURRENT_REFS_OF_IMAGE),
    top_cves: scoped_top_cves!(CURRENT_REFS_OF_IMAGE),
    fixable: scoped_fixable!(CURRENT_REFS_OF_IMAGE),
    suppressible: scoped_suppressible!(CURRENT_REFS_OF_IMAGE),
};
const PAST: Scoped = Scoped {
    summary: scoped_summary!(PAST_REFS),
    top_cves: scoped_top_cves!(PAST_REFS),
    fixable: scoped_fixable!(PAST_REFS),
    suppressible: scoped_suppressible!(PAST_REFS),
};
const PAST_OF_IMAGE: Scoped = Scoped {
    summary: scoped_summary!(PAST_REFS_OF_IMAGE),
    top_cves: scoped_top_cves!(PAST_REFS_OF_IMAGE),
    fixable: scoped_fixable!(PAST_REFS_OF_IMAGE),
    suppressible: scoped_suppressible!(PAST_REFS_OF_IMAGE),
};

fn scoped(current: bool, image: bool) -> &'static Scoped {
    match (current, image) {
        (true, false) => &CURRENT,
        (true, true) => &CURRENT_OF_IMAGE,
        (false, false) => &PAST,
        (false, true) => &PAST_OF_IMAGE,
    }
}

/// Binds a scope's `$1` … `$3`.
fn bind_scope<'q, O>(
    q: sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>,
    scope: &'q FleetScope,
) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(scope.image.as_deref().unwrap_or_default())
        .bind(scope.from.unwrap_or(i64::MIN))
        .bind(scope.to.unwrap_or(i64::MAX))
}

/// A CVE's references, with the number of references affected: the page's rows come from
/// the listing index's six ranges (one per key), each read in reference order only as far as
/// the page reaches, merged (ADR 0009); each page row's reference is looked up by number (a
/// lateral subquery with a `LIMIT` is not flattened into a hash join over every reference).
/// A row with NULL page columns carries the count when the page is empty.
macro_rules! cve_range {
    ($key:literal) => {
        concatcp!(
            "(SELECT ref_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity \
             FROM fleet_findings ff WHERE vulnerability_id = $1 AND ",
            LISTING_KEY,
            " = ",
            $key,
            " AND ",
            crate::suppression_filter_sql!(
                "$4",
                "ff.vulnerability_id",
                "ff.pkg_name",
                "(SELECT image_name FROM fleet_refs WHERE id = ff.ref_id)",
                "$5"
            ),
            " ORDER BY ref_id, pkg_name, pkg_version LIMIT $2 + $3)"
        )
    };
}
const CVE_IMAGES: &str = concatcp!(
    "SELECT r.image_name, r.image_tag, r.scan_id, r.scanned_at, p.vulnerability_id, p.pkg_name, \
     p.pkg_version, p.fixed_version, p.severity, c.n FROM \
     (SELECT CAST(COALESCE(SUM(images), 0) AS BIGINT) AS n FROM (SELECT images FROM fleet_cves \
     WHERE vulnerability_id = $1 UNION ALL SELECT images FROM fleet_cve_deltas WHERE vulnerability_id = $1) x) c \
     LEFT JOIN (SELECT * FROM (",
    cve_range!("-1"),
    " UNION ALL ",
    cve_range!("0"),
    " UNION ALL ",
    cve_range!("1"),
    " UNION ALL ",
    cve_range!("2"),
    " UNION ALL ",
    cve_range!("3"),
    " UNION ALL ",
    cve_range!("4"),
    ") u ORDER BY ref_id, pkg_name, pkg_version LIMIT $2 OFFSET $3) p ON true \
     LEFT JOIN LATERAL (SELECT image_name, image_tag, scan_id, scanned_at FROM fleet_refs \
     WHERE id = p.ref_id LIMIT 1) r ON true ORDER BY p.ref_id, p.pkg_name, p.pkg_version"
);

/// Row counts the fixable listing's first page is fetched in (ADR 0016): page sizes of 10,
/// 20, 25, 50, 100, 200, 500 and 1,000, plus the row that tells whether more follow.
const PAGE_FETCH: [i64; 8] = [11, 21, 26, 51, 101, 201, 501, 1001];

/// `images = t.images + excluded.images, …` for the compacted table `t`.
macro_rules! ADD_EXCLUDED {
    ($t:literal) => {
        concatcp!(
            "images = ",
            $t,
            ".images + excluded.images, fixable = ",
            $t,
            ".fixable + excluded.fixable, \
             n_critical = ",
            $t,
            ".n_critical + excluded.n_critical, n_high = ",
            $t,
            ".n_high + excluded.n_high, \
             n_medium = ",
            $t,
            ".n_medium + excluded.n_medium, n_low = ",
            $t,
            ".n_low + excluded.n_low, \
             n_unknown = ",
            $t,
            ".n_unknown + excluded.n_unknown"
        )
    };
}

const FOLD_CVES: &str = concatcp!(
    "WITH d AS (DELETE FROM fleet_cve_deltas RETURNING vulnerability_id, ",
    sql::COUNT_COLUMNS,
    "), u AS (INSERT INTO fleet_cves (vulnerability_id, ",
    sql::COUNT_COLUMNS,
    ", severity) SELECT vulnerability_id, ",
    sql::COUNT_COLUMNS,
    ", ",
    MAX_SEVERITY,
    " FROM (SELECT vulnerability_id, ",
    SUMS,
    " FROM d GROUP BY vulnerability_id) a WHERE ",
    NONZERO,
    " ON CONFLICT (vulnerability_id) DO UPDATE SET ",
    ADD_EXCLUDED!("fleet_cves"),
    ", severity = CASE WHEN fleet_cves.n_critical + excluded.n_critical > 0 THEN 4 \
     WHEN fleet_cves.n_high + excluded.n_high > 0 THEN 3 WHEN fleet_cves.n_medium + excluded.n_medium > 0 THEN 2 \
     WHEN fleet_cves.n_low + excluded.n_low > 0 THEN 1 ELSE 0 END RETURNING 1) SELECT COUNT(*) FROM d"
);

const FOLD_TOTALS: &str = concatcp!(
    "WITH d AS (DELETE FROM fleet_total_deltas RETURNING ",
    sql::COUNT_COLUMNS,
    "), u AS (INSERT INTO fleet_totals (id, ",
    sql::COUNT_COLUMNS,
    ") SELECT 1, ",
    sql::COUNT_COLUMNS,
    " FROM (SELECT ",
    SUMS,
    " FROM d) a WHERE ",
    NONZERO,
    " ON CONFLICT (id) DO UPDATE SET ",
    ADD_EXCLUDED!("fleet_totals"),
    " RETURNING 1) SELECT COUNT(*) FROM d"
);

const FOLD_DAYS: &str = concatcp!(
    "WITH d AS (DELETE FROM fleet_daily_deltas RETURNING day, ",
    sql::COUNT_COLUMNS,
    "), u AS (INSERT INTO fleet_daily (day, ",
    sql::COUNT_COLUMNS,
    ") SELECT day, ",
    sql::COUNT_COLUMNS,
    " FROM (SELECT day, ",
    SUMS,
    " FROM d GROUP BY day) a WHERE ",
    NONZERO,
    " ON CONFLICT (day) DO UPDATE SET ",
    ADD_EXCLUDED!("fleet_daily"),
    " RETURNING 1) SELECT COUNT(*) FROM d"
);

const NONZERO: &str =
    "images <> 0 OR fixable <> 0 OR n_critical <> 0 OR n_high <> 0 OR n_medium <> 0 \
    OR n_low <> 0 OR n_unknown <> 0";

/// The fleet's per-day changes before `$1` (a day), compacted plus pending.
const DAYS: &str = concatcp!(
    "SELECT day, ",
    SUMS,
    " FROM (SELECT day, ",
    sql::COUNT_COLUMNS,
    " FROM fleet_daily WHERE day < $1 UNION ALL SELECT day, ",
    sql::COUNT_COLUMNS,
    " FROM fleet_daily_deltas WHERE day < $1) x GROUP BY day"
);

const DELTA_PAGES: &str = "SELECT t, CAST(pg_relation_size(CAST(t AS regclass)) / \
    CAST(current_setting('block_size') AS BIGINT) AS BIGINT) FROM \
    unnest(ARRAY['fleet_cve_deltas', 'fleet_total_deltas', 'fleet_daily_deltas']) t ORDER BY t";

#[async_trait]
impl AnalyticsStore for PgStore {
    async fn workload_findings(
        &self,
        q: &WorkloadQuery,
    ) -> Result<(Vec<FleetFinding>, i64, i64), StoreError> {
        let pattern = q.like_pattern();
        let vuln = q.vulnerability.as_deref().unwrap_or_default();
        let fixable = i64::from(q.fixable);
        let rows: Vec<WorkloadFindingRow> = sqlx::query_as(sql::WORKLOAD_FINDINGS)
            .bind(&pattern)
            .bind(vuln)
            .bind(fixable)
            .bind(q.suppressed.mode_bind())
            .bind(q.suppressed.now)
            .bind(q.limit + 1)
            .bind(q.offset)
            .bind(fixable)
            .fetch_all(&self.pool)
            .await?;
        let (n, refs): (i64, i64) = sqlx::query_as(sql::COUNT_WORKLOAD_FINDINGS)
            .bind(&pattern)
            .bind(vuln)
            .bind(fixable)
            .bind(q.suppressed.mode_bind())
            .bind(q.suppressed.now)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.into_iter().map(workload_finding).collect(), n, refs))
    }

    async fn summary(&self, scope: &FleetScope) -> Result<FleetSummary, StoreError> {
        if scope.is_whole_current_fleet() {
            // One statement: consistent without a transaction.
            let row = sqlx::query(TOTALS).fetch_one(&self.pool).await?;
            return Ok(FleetSummary::from_counts(&counts_at(&row, 0)));
        }
        let mut tx = self.read_tx().await?;
        let current = is_current(&mut tx, scope.to).await?;
        let counts = if current && scope.image.is_none() && scope.from.is_none() {
            counts_at(&sqlx::query(TOTALS).fetch_one(&mut *tx).await?, 0)
        } else {
            let q = scoped(current, scope.image.is_some()).summary;
            let (n, fx, c, h, m, l, u): (i64, i64, i64, i64, i64, i64, i64) =
                bind_scope(sqlx::query_as(q), scope)
                    .fetch_one(&mut *tx)
                    .await?;
            let mut counts = fleet::image_counts(fx, [u, l, m, h, c]);
            counts[fleet::IMAGES] = n;
            counts
        };
        tx.commit().await?;
        Ok(FleetSummary::from_counts(&counts))
    }

    async fn top_cves(
        &self,
        scope: &FleetScope,
        severity: Option<Severity>,
        limit: i64,
    ) -> Result<Vec<TopCve>, StoreError> {
        if scope.is_whole_current_fleet() {
            // Without pending deltas the ranking is one consistent index range: no transaction.
            let mut conn = self.pool.acquire().await?;
            if let Some(mut out) = top_cves_compacted(&mut conn, severity, limit, false).await? {
                attach_catalog(&mut conn, &mut out).await?;
                return Ok(out);
            }
        }
        let mut tx = self.read_tx().await?;
        let current = is_current(&mut tx, scope.to).await?;
        let mut out = if current && scope.image.is_none() && scope.from.is_none() {
            top_cves_compacted(&mut tx, severity, limit, true)
                .await?
                .unwrap_or_default()
        } else {
            let q = scoped(current, scope.image.is_some()).top_cves;
            let rows: Vec<(String, i64, i64, i64, i64)> = bind_scope(sqlx::query_as(q), scope)
                .bind(severity.map_or(-1, |s| s.rank()))
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            rows.into_iter()
                .map(
                    |(vulnerability_id, images, severity, findings, fixable)| TopCve {
                        vulnerability_id,
                        severity,
                        title: None,
                        cvss_score: None,
                        images,
                        findings,
                        fixable,
                    },
                )
                .collect()
        };
        attach_catalog(&mut tx, &mut out).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn cve_images(
        &self,
        vuln_id: &str,
        limit: i64,
        offset: i64,
        suppressed: Suppressed,
    ) -> Result<(Vec<FleetFinding>, i64), StoreError> {
        let rows = sqlx::query(CVE_IMAGES)
            .bind(vuln_id)
            .bind(limit + 1)
            .bind(offset)
            .bind(suppressed.mode_bind())
            .bind(suppressed.now)
            .fetch_all(&self.pool)
            .await?;
        let images: i64 = rows.first().map(|r| r.get(9)).unwrap_or_default();
        let page = rows
            .iter()
            .filter(|r| r.get::<Option<String>, _>(0).is_some())
            .map(cve_image)
            .collect();
        Ok((page, images))
    }

    async fn fixable(
        &self,
        scope: &FleetScope,
        limit: i64,
        offset: i64,
        suppressed: Suppressed,
    ) -> Result<Vec<FleetFinding>, StoreError> {
        if scope.is_whole_current_fleet() {
            return fixable_current(&self.pool, limit, offset, suppressed).await;
        }
        let mut tx = self.read_tx().await?;
        let current = is_current(&mut tx, scope.to).await?;
        let q = scoped(current, scope.image.is_some()).fixable;
        let rows = bind_scope(sqlx::query_as::<_, FixableRow>(q), scope)
            .bind(limit + 1)
            .bind(offset)
            .bind(suppressed.mode_bind())
            .bind(suppressed.now)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(FleetFinding::from).collect())
    }

    async fn trend(
        &self,
        image: Option<&str>,
        interval: Interval,
        from: i64,
        to: i64,
    ) -> Result<Vec<TrendPoint>, StoreError> {
        let first = interval.bucket_start_day(fleet::day_of(from));
        let last = interval.bucket_start_day(fleet::day_of(to));
        let mut days: BTreeMap<i64, Counts> = BTreeMap::new();
        match image {
            None => {
                // One statement: consistent without a transaction.
                for r in sqlx::query(DAYS)
                    .bind(last + interval.days())
                    .fetch_all(&self.pool)
                    .await?
                {
                    days.insert(r.get(0), counts_at(&r, 1));
                }
            }
            Some(img) => {
                for chain in self.image_chains(img).await?.values() {
                    fleet::chain_events(chain, 1, &mut days);
                }
            }
        }
        Ok(fleet::prefix_points(&days, interval, first, last))
    }

    async fn reference_chains(
        &self,
        image: Option<&str>,
    ) -> Result<HashMap<(String, String), Vec<fleet::ChainObs>>, StoreError> {
        let rows: Vec<ChainRow> = sqlx::query_as(sql::REFERENCE_CHAINS)
            .bind(image.unwrap_or_default())
            .fetch_all(&self.pool)
            .await?;
        Ok(chains_of(rows))
    }

    async fn attach_catalog(&self, cves: &mut [TopCve]) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        attach_catalog(&mut conn, cves).await
    }

    async fn suppressible(
        &self,
        scope: &FleetScope,
        vulnerabilities: &[String],
    ) -> Result<Vec<SuppressibleRow>, StoreError> {
        if vulnerabilities.is_empty() {
            return Ok(vec![]);
        }
        if scope.is_whole_current_fleet() {
            return Ok(sqlx::query_as(CURRENT_SUPPRESSIBLE)
                .bind(vulnerabilities)
                .fetch_all(&self.pool)
                .await?);
        }
        let mut tx = self.read_tx().await?;
        let current = is_current(&mut tx, scope.to).await?;
        let q = scoped(current, scope.image.is_some()).suppressible;
        let rows = bind_scope(sqlx::query_as::<_, SuppressibleRow>(q), scope)
            .bind(vulnerabilities)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn wholly_suppressed(
        &self,
        vulnerabilities: &[String],
    ) -> Result<(Vec<(String, Counts)>, Vec<(String, String)>), StoreError> {
        if vulnerabilities.is_empty() {
            return Ok((vec![], vec![]));
        }
        let ids = vulnerabilities;
        let rows = sqlx::query(WHOLE_COUNTS)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        let refs: Vec<(String, String)> = sqlx::query_as(WHOLE_REFS)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        Ok((
            rows.iter().map(|r| (r.get(0), counts_at(r, 1))).collect(),
            refs,
        ))
    }

    async fn triage_fingerprint(&self) -> Result<(Option<i64>, Option<i64>), StoreError> {
        Ok(sqlx::query_as(sql::TRIAGE_FINGERPRINT)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn record_suppressed_day(&self, day: i64, c: &Counts) -> Result<(), StoreError> {
        let mut q = sqlx::query(sql::RECORD_SUPPRESSED_DAY).bind(day);
        for v in c {
            q = q.bind(*v);
        }
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn suppressed_days(&self, before: i64) -> Result<Vec<(i64, Counts)>, StoreError> {
        let rows = sqlx::query(sql::SUPPRESSED_DAYS)
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), counts_at(r, 1))).collect())
    }

    async fn cve_items(&self, vuln_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql::CVE_ITEMS)
            .bind(vuln_id)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn first_observation(&self, image: Option<&str>) -> Result<Option<i64>, StoreError> {
        let q = match image {
            None => sqlx::query_scalar(sql::FIRST_OBSERVATION),
            Some(img) => sqlx::query_scalar(sql::FIRST_OBSERVATION_OF_IMAGE).bind(img),
        };
        Ok(q.fetch_one(&self.pool).await?)
    }

    async fn compact(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut folded = 0i64;
        // Each statement deletes the deltas and upserts their sums, so exactly the rows it
        // deleted are folded, whatever ingests commit meanwhile (a concurrent compactor
        // waits for the rows this one deleted, then skips them).
        for fold in [FOLD_CVES, FOLD_TOTALS, FOLD_DAYS] {
            let n: i64 = sqlx::query_scalar(fold).fetch_one(&mut *tx).await?;
            folded += n;
        }
        tx.commit().await?;
        if folded > 0 {
            // The delta tables are emptied every few seconds: without this, readers scan
            // their dead rows until autovacuum's next visit. No truncation (ingests never
            // leave its lock free) and `SKIP_LOCKED` (ADR 0014).
            sqlx::raw_sql(
                "VACUUM (TRUNCATE false, SKIP_LOCKED) fleet_cve_deltas, fleet_total_deltas, \
                 fleet_daily_deltas, fleet_cves, fleet_totals, fleet_daily",
            )
            .execute(&self.pool)
            .await?;
        }
        Ok(folded as u64)
    }

    /// The tables holding more than [`SHRINK_PAGES`] get a plain `VACUUM` on a connection
    /// of its own, which truncates them (MVCC-safe, unlike `TRUNCATE`; it never queues for
    /// its lock). One attempt runs at a time; after one that failed or left a table large,
    /// the next waits [`SHRINK_RETRY`] (ADR 0014).
    async fn shrink_quiet_deltas(&self) -> Result<bool, StoreError> {
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
            let now = Instant::now();
            let mut next = self.shrink_after.lock().unwrap_or_else(|e| e.into_inner());
            if next.is_some_and(|t| now < t) {
                return Ok(false);
            }
            *next = Some(now + SHRINK_RETRY);
        }
        let vacuum = format!("VACUUM {}", large.join(", "));
        let mut conn = self.maintenance_connection().await?;
        let done = sqlx::query(&vacuum)
            .persistent(false)
            .execute(&mut conn)
            .await;
        close_quietly(conn).await;
        done?;
        let after = self.delta_pages().await?;
        let shrank = large.iter().all(|t| {
            after
                .iter()
                .any(|(a, pages)| a == t && *pages <= SHRINK_PAGES)
        });
        if shrank {
            // The next burst's pages may go as soon as it is over.
            *self.shrink_after.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        Ok(shrank)
    }

    async fn delta_pages(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(DELTA_PAGES).fetch_all(&self.pool).await?)
    }
}

impl PgStore {
    /// A read transaction: one snapshot for the several statements of an answer (compacted
    /// table and pending deltas must be read together).
    async fn read_tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?)
    }
}

/// `true` when the fleet as of `to` is the current fleet (`to` absent, or no reference's
/// latest observation is newer than it).
async fn is_current(conn: &mut PgConnection, to: Option<i64>) -> Result<bool, StoreError> {
    let Some(to) = to else { return Ok(true) };
    let newest: Option<i64> = sqlx::query_scalar(sql::NEWEST_IN_FLEET)
        .fetch_one(&mut *conn)
        .await?;
    Ok(newest.is_none_or(|n| n <= to))
}

fn counts_at(row: &PgRow, start: usize) -> Counts {
    let mut c = [0; 7];
    for (i, v) in c.iter_mut().enumerate() {
        *v = row.get::<i64, _>(start + i);
    }
    c
}

/// Top CVEs from the compacted ranking plus pending deltas, exactly: every CVE with a
/// pending delta is a candidate with its exact sum; every other CVE's compacted value is
/// exact and no better than the last ranked row fetched (`fleet::complete_ranking`). Fetch
/// more until the answer is complete.
///
/// Outside a snapshot (`in_snapshot` false) it gives up (`None`) when deltas are pending:
/// a compaction between its statements could count them twice.
async fn top_cves_compacted(
    conn: &mut PgConnection,
    severity: Option<Severity>,
    limit: i64,
    in_snapshot: bool,
) -> Result<Option<Vec<TopCve>>, StoreError> {
    if limit <= 0 {
        return Ok(Some(vec![]));
    }
    let pending = sqlx::query("SELECT 1 FROM fleet_cve_deltas LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if pending && !in_snapshot {
        return Ok(None);
    }
    let sev = severity.map(|s| s.rank());
    let (filter, order) = match sev {
        Some(_) => ("AND severity = $1", "images DESC, vulnerability_id"),
        None => ("", "images DESC, severity DESC, vulnerability_id"),
    };
    // A power of two: the row count is written into the statement (ADR 0016), so this
    // keeps the distinct statements few. More candidates than needed change nothing.
    let mut fetch = ((limit + 1) as u64).next_power_of_two() as i64;
    loop {
        let ranked_sql = format!(
            "SELECT vulnerability_id, {} FROM fleet_cves WHERE images > 0 {filter} ORDER BY {order} LIMIT {fetch}",
            sql::COUNT_COLUMNS
        );
        let ranked = bind_severity(sqlx::query(&ranked_sql), sev)
            .fetch_all(&mut *conn)
            .await?;
        let exhausted = (ranked.len() as i64) < fetch;
        let cutoff = ranked
            .last()
            .map(|r| TopCve::from_counts(r.get(0), &counts_at(r, 1)));
        let rows = if pending {
            // The candidates are every CVE with a pending delta (compacted + pending) and
            // the ranked rows without one; the database merges and ranks them (ADR 0013).
            let sql = format!(
                "WITH d AS (SELECT vulnerability_id, {SUMS} FROM fleet_cve_deltas GROUP BY vulnerability_id), \
                 x AS (SELECT d.vulnerability_id, COALESCE(f.images, 0) + d.images AS images, \
                 COALESCE(f.fixable, 0) + d.fixable AS fixable, COALESCE(f.n_critical, 0) + d.n_critical AS n_critical, \
                 COALESCE(f.n_high, 0) + d.n_high AS n_high, COALESCE(f.n_medium, 0) + d.n_medium AS n_medium, \
                 COALESCE(f.n_low, 0) + d.n_low AS n_low, COALESCE(f.n_unknown, 0) + d.n_unknown AS n_unknown \
                 FROM d LEFT JOIN fleet_cves f ON f.vulnerability_id = d.vulnerability_id \
                 UNION ALL SELECT vulnerability_id, {cols} FROM ({ranked_sql}) t \
                 WHERE NOT EXISTS (SELECT 1 FROM d WHERE d.vulnerability_id = t.vulnerability_id)) \
                 SELECT vulnerability_id, {cols} FROM x WHERE images > 0 {exact_filter} \
                 ORDER BY images DESC, {MAX_SEVERITY} DESC, vulnerability_id LIMIT {limit}",
                cols = sql::COUNT_COLUMNS,
                exact_filter = if sev.is_some() {
                    format!("AND {MAX_SEVERITY} = $1")
                } else {
                    String::new()
                },
            );
            bind_severity(sqlx::query(&sql), sev)
                .fetch_all(&mut *conn)
                .await?
        } else {
            ranked
        };
        let candidates = rows
            .iter()
            .map(|r| TopCve::from_counts(r.get(0), &counts_at(r, 1)))
            .collect();
        if let Some(out) =
            fleet::complete_ranking(candidates, sev, limit as usize, cutoff.as_ref(), exhausted)
        {
            return Ok(Some(out));
        }
        fetch *= 4;
    }
}

fn bind_severity(
    q: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
    sev: Option<i64>,
) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
    match sev {
        Some(s) => q.bind(s),
        None => q,
    }
}

/// [`fixable_current`]'s suppressed findings as `$1` says at `$2`.
const FIXABLE_FILTER: &str = crate::suppression_filter_sql!(
    "$1",
    "ff.vulnerability_id",
    "ff.pkg_name",
    "(SELECT image_name FROM fleet_refs WHERE id = ff.ref_id)",
    "$2"
);

/// [`AnalyticsStore::wholly_suppressed`]: counts, then references, of the vulnerabilities
/// in `$1`, through the listing index (six keys times the ids).
const WHOLE_COUNTS: &str = crate::fleet_counts_sql!(concatcp!(
    LISTING_KEY,
    " = ANY('{-1,0,1,2,3,4}'::bigint[]) AND vulnerability_id = ANY($1)"
));
const WHOLE_REFS: &str = concatcp!(
    "SELECT image_name, image_tag FROM fleet_refs WHERE id IN (SELECT ref_id FROM fleet_findings \
     WHERE ",
    LISTING_KEY,
    " = ANY('{-1,0,1,2,3,4}'::bigint[]) AND vulnerability_id = ANY($1))"
);

/// The current fleet's rows of the vulnerabilities in `$1`, through the listing index
/// (six keys times the ids).
const CURRENT_SUPPRESSIBLE: &str = concatcp!(
    "SELECT r.image_name, r.image_tag, f.vulnerability_id, f.pkg_name, f.pkg_version, \
     f.fixed_version IS NOT NULL AS fixable, f.severity FROM fleet_findings f \
     JOIN fleet_refs r ON r.id = f.ref_id WHERE ",
    LISTING_KEY,
    " = ANY('{-1,0,1,2,3,4}'::bigint[]) AND f.vulnerability_id = ANY($1)"
);

/// The current fleet's fixable findings: one index range of one table, titles joined for
/// the page, one statement (no transaction). The first page's bounds are written into the
/// statement in one of a few row counts, so that PostgreSQL plans it once; later pages are
/// planned at each request and not cached (ADR 0016).
async fn fixable_current(
    pool: &sqlx::PgPool,
    limit: i64,
    offset: i64,
    suppressed: Suppressed,
) -> Result<Vec<FleetFinding>, StoreError> {
    let fetch = PAGE_FETCH
        .iter()
        .copied()
        .find(|&n| n > limit)
        .filter(|_| offset == 0)
        .unwrap_or(limit + 1);
    let page = if offset > 0 {
        format!("LIMIT {fetch} OFFSET {offset}")
    } else {
        format!("LIMIT {fetch}")
    };
    // The listing key of a fixable row is its severity: the index's range of keys >= 0
    // holds those rows in this order.
    let sql = format!(
        "SELECT r.image_name, r.image_tag, r.scan_id, CAST(NULL AS BIGINT) AS scanned_at, p.vulnerability_id, \
         p.pkg_name, p.pkg_version, p.fixed_version, p.severity, v.title FROM (SELECT ref_id, vulnerability_id, \
         pkg_name, pkg_version, fixed_version, severity FROM fleet_findings ff WHERE {LISTING_KEY} >= 0 \
         AND {FIXABLE_FILTER} ORDER BY {LISTING_KEY} DESC, vulnerability_id, ref_id, pkg_name, pkg_version {page}) p \
         JOIN LATERAL (SELECT image_name, image_tag, scan_id, scanned_at FROM fleet_refs WHERE id = p.ref_id \
         LIMIT 1) r ON true LEFT JOIN vulnerabilities v ON v.id = p.vulnerability_id \
         ORDER BY p.severity DESC, p.vulnerability_id, p.ref_id, p.pkg_name, p.pkg_version"
    );
    let mut rows: Vec<FixableRow> = sqlx::query_as(&sql)
        .bind(suppressed.mode_bind())
        .bind(suppressed.now)
        .persistent(offset == 0)
        .fetch_all(pool)
        .await?;
    rows.truncate((limit + 1) as usize);
    Ok(rows.into_iter().map(FleetFinding::from).collect())
}

/// A fixable finding with its reference and title.
#[derive(sqlx::FromRow)]
struct FixableRow {
    image_name: String,
    image_tag: String,
    scan_id: String,
    scanned_at: Option<i64>,
    vulnerability_id: String,
    pkg_name: String,
    pkg_version: String,
    fixed_version: Option<String>,
    severity: i64,
    title: Option<String>,
}

impl From<FixableRow> for FleetFinding {
    fn from(r: FixableRow) -> FleetFinding {
        FleetFinding {
            image_name: r.image_name,
            image_tag: r.image_tag,
            scan_id: r.scan_id,
            scanned_at: r.scanned_at.unwrap_or_default(),
            vulnerability_id: r.vulnerability_id,
            pkg_name: r.pkg_name,
            pkg_version: r.pkg_version,
            fixed_version: r.fixed_version,
            severity: r.severity,
            title: r.title,
        }
    }
}

fn cve_image(r: &PgRow) -> FleetFinding {
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

async fn attach_catalog(conn: &mut PgConnection, cves: &mut [TopCve]) -> Result<(), StoreError> {
    if cves.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = cves.iter().map(|c| c.vulnerability_id.as_str()).collect();
    let rows: Vec<(String, Option<String>, Option<f64>)> = sqlx::query_as(concatcp!(
        "SELECT ",
        sql::CATALOG_COLUMNS,
        " FROM vulnerabilities WHERE id = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut found: HashMap<String, (Option<String>, Option<f64>)> =
        rows.into_iter().map(|(id, t, s)| (id, (t, s))).collect();
    for c in cves.iter_mut() {
        if let Some((t, s)) = found.remove(&c.vulnerability_id) {
            c.title = t;
            c.cvss_score = s;
        }
    }
    Ok(())
}
