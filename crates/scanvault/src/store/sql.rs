//! SQL text that is the same in both dialects (`$n` binds, `RETURNING`, `ON CONFLICT`,
//! integer microsecond times bound from Rust). Each backend runs these with its own driver;
//! what differs by dialect lives in `postgres/` and `sqlite/`.

use const_format::concatcp;

// ---------------------------------------------------------------------------------- scans

/// The columns of [`super::ScanRow`], in its order.
pub const SCAN_COLUMNS: &str = "id, image_name, image_tag, image_digest, image_id, repo_tags, \
    repo_digests, artifact_name, artifact_type, os_family, os_name, scanner, scanner_version, \
    report_format, source, created_at, scanned_at, updated_at, vuln_critical, vuln_high, \
    vuln_medium, vuln_low, vuln_unknown, fixable_count, risk_score, cvss_score, is_compliant, \
    created_by, findings_version";

pub const FETCH_SCAN: &str = concatcp!("SELECT ", SCAN_COLUMNS, " FROM scans WHERE id = $1");

/// The scan of a content, with the highest version number of its findings; PostgreSQL
/// adds `FOR UPDATE`.
pub const FIND_SCAN: &str = concatcp!(
    "SELECT ",
    SCAN_COLUMNS,
    ", last_version FROM scans WHERE image_name = $1 AND identity = $2"
);

/// The new scan's row: `$1`…`$29`, findings version 1.
pub const INSERT_SCAN_ROW: &str = concatcp!(
    "INSERT INTO scans (id, image_name, image_tag, image_digest, image_id, identity, repo_tags, \
     repo_digests, artifact_name, artifact_type, os_family, os_name, scanner, scanner_version, \
     report_format, source, created_at, scanned_at, updated_at, vuln_critical, vuln_high, \
     vuln_medium, vuln_low, vuln_unknown, fixable_count, risk_score, cvss_score, is_compliant, \
     created_by, findings_version, last_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, \
     $29, 1, 1) ON CONFLICT (image_name, identity) WHERE identity IS NOT NULL DO NOTHING \
     RETURNING ",
    SCAN_COLUMNS
);

/// A newer report of the scan `$1`: what it says (`$2`…`$21`), the version of its
/// findings (`$22`); the image id and digest are filled in where unknown (`$23`, `$24`).
pub const UPDATE_SCAN_ROW: &str = concatcp!(
    "UPDATE scans SET repo_tags = $2, repo_digests = $3, artifact_name = $4, artifact_type = $5, \
     os_family = $6, os_name = $7, scanner = $8, scanner_version = $9, report_format = $10, \
     scanned_at = $11, updated_at = $12, vuln_critical = $13, vuln_high = $14, vuln_medium = $15, \
     vuln_low = $16, vuln_unknown = $17, fixable_count = $18, risk_score = $19, cvss_score = $20, \
     is_compliant = $21, findings_version = $22, \
     last_version = CASE WHEN last_version < $22 THEN $22 ELSE last_version END, \
     image_id = CASE WHEN image_id = '' THEN $23 ELSE image_id END, \
     image_digest = CASE WHEN image_digest = '' THEN $24 ELSE image_digest END \
     WHERE id = $1 RETURNING ",
    SCAN_COLUMNS
);

/// The tags of a scan as they are: (tag, observed from, first seen).
pub const SCAN_TAGS: &str =
    "SELECT image_tag, observed_from, first_seen_at FROM scan_tags WHERE scan_id = $1";

/// Record a tag, or move its start earlier.
pub const UPSERT_TAG: &str = "INSERT INTO scan_tags (scan_id, image_name, image_tag, first_seen_at, observed_from) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scan_id, image_tag) DO UPDATE \
     SET observed_from = excluded.observed_from WHERE excluded.observed_from < scan_tags.observed_from";

/// The columns of an observation in a chain ([`scanvault_core::fleet::ChainObs`]).
pub const CHAIN_COLUMNS: &str =
    "o.id, o.scan_id, o.version, o.scanned_at, o.fixable, o.n_unknown, o.n_low, o.n_medium, o.n_high, o.n_critical";

/// Every observation each reference sees (of image `$1`; '' = every image): (name, tag,
/// observation).
pub const REFERENCE_CHAINS: &str = concatcp!(
    "SELECT t.image_name, t.image_tag, ",
    CHAIN_COLUMNS,
    " FROM scan_tags t JOIN observations o ON o.scan_id = t.scan_id AND o.scanned_at >= t.observed_from \
     WHERE ($1 = '' OR t.image_name = $1)"
);

pub const SCAN_CHAIN: &str = concatcp!(
    "SELECT ",
    CHAIN_COLUMNS,
    " FROM observations o WHERE o.scan_id = $1"
);

/// The columns of [`super::scans::ObservationRow`], in its order.
pub const OBSERVATION_COLUMNS: &str = "id, scan_id, image_tag, scanned_at, observed_at, source, \
    version, fixable, n_critical, n_high, n_medium, n_low, n_unknown, findings_added, findings_removed";

pub const SCAN_OBSERVATIONS: &str = concatcp!(
    "SELECT ",
    OBSERVATION_COLUMNS,
    " FROM observations WHERE scan_id = $1 ORDER BY scanned_at, id"
);

pub const INSERT_OBSERVATION: &str = "INSERT INTO observations (scan_id, image_tag, scanned_at, observed_at, \
     source, version, fixable, n_critical, n_high, n_medium, n_low, n_unknown, findings_added, \
     findings_removed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id";

pub const ADD_VERSION: &str =
    "UPDATE scans SET last_version = $2 WHERE id = $1 AND last_version < $2";

pub const SET_OBSERVATION_CHANGES: &str =
    "UPDATE observations SET findings_added = $2, findings_removed = $3 WHERE id = $1";

pub const SCAN_REPORT: &str = "SELECT encoding, body FROM scan_reports WHERE scan_id = $1";

pub const FRESH_SCAN: &str =
    "SELECT id, scanned_at FROM scans WHERE image_name = $1 AND image_digest = $2 \
     AND scanned_at >= $3 ORDER BY scanned_at DESC LIMIT 1";

/// Newer details of a catalog entry (`$1` … `$11`, id first).
pub const REFRESH_CATALOG: &str = "UPDATE vulnerabilities SET title = $2, description = $3, severity = $4, \
     cvss_score = $5, cvss_vector = $6, primary_url = $7, refs = $8, published_at = $9, modified_at = $10, \
     updated_at = $11 WHERE id = $1";

/// Scans, newest first: every scan, an image's, a tag's, or a reference's. `$1`/`$2` are
/// the image and tag where the variant takes them; the severity filter is the rank of
/// `$s` (-1: none), and the page follows.
macro_rules! scan_list {
    ($where:literal, $sev:literal, $limit:literal) => {
        concatcp!(
            "SELECT ",
            SCAN_COLUMNS,
            " FROM scans WHERE ",
            $where,
            " AND (",
            $sev,
            " < 0 OR CASE ",
            $sev,
            " WHEN 4 THEN vuln_critical WHEN 3 THEN vuln_high WHEN 2 THEN vuln_medium WHEN 1 THEN vuln_low \
             ELSE vuln_unknown END > 0) ORDER BY scanned_at DESC, created_at DESC, id DESC LIMIT ",
            $limit
        )
    };
}

pub const LIST_SCANS: &str = scan_list!("true", "$1", "$2 OFFSET $3");
pub const LIST_SCANS_OF_IMAGE: &str = scan_list!("image_name = $1", "$2", "$3 OFFSET $4");
pub const LIST_SCANS_OF_TAG: &str = scan_list!(
    "id IN (SELECT scan_id FROM scan_tags WHERE image_tag = $1)",
    "$2",
    "$3 OFFSET $4"
);
pub const LIST_SCANS_OF_REF: &str = scan_list!(
    "id IN (SELECT scan_id FROM scan_tags WHERE image_name = $1 AND image_tag = $2)",
    "$3",
    "$4 OFFSET $5"
);

/// The number of scans of each list variant (the same filters, no page).
macro_rules! scan_count {
    ($where:literal, $sev:literal) => {
        concatcp!(
            "SELECT COUNT(*) FROM scans WHERE ",
            $where,
            " AND (",
            $sev,
            " < 0 OR CASE ",
            $sev,
            " WHEN 4 THEN vuln_critical WHEN 3 THEN vuln_high WHEN 2 THEN vuln_medium WHEN 1 THEN vuln_low \
             ELSE vuln_unknown END > 0)"
        )
    };
}

pub const COUNT_SCANS: &str = scan_count!("true", "$1");
pub const COUNT_SCANS_OF_IMAGE: &str = scan_count!("image_name = $1", "$2");
pub const COUNT_SCANS_OF_TAG: &str = scan_count!(
    "id IN (SELECT scan_id FROM scan_tags WHERE image_tag = $1)",
    "$2"
);
pub const COUNT_SCANS_OF_REF: &str = scan_count!(
    "id IN (SELECT scan_id FROM scan_tags WHERE image_name = $1 AND image_tag = $2)",
    "$3"
);

/// The columns of a finding with its catalog details ([`super::scans::FindingRow`]), for
/// findings `f` joined with the catalog `v`.
pub const FINDING_COLUMNS: &str = "f.vulnerability_id, f.pkg_name, f.pkg_version, f.fixed_version, \
    f.severity, f.status, f.pkg_type, f.class, f.target, f.pkg_path, f.purl, f.cvss_score, f.extra, \
    v.title, v.description, v.primary_url";

/// The first observation of the fleet (the start of its first day, from the daily changes:
/// two index probes, where the observations have no index by time), and of one image's
/// references.
pub const FIRST_OBSERVATION: &str = "SELECT MIN(day) * 86400000000 FROM (SELECT MIN(day) AS day \
    FROM fleet_daily UNION ALL SELECT MIN(day) FROM fleet_daily_deltas) x";
pub const FIRST_OBSERVATION_OF_IMAGE: &str = "SELECT MIN(o.scanned_at) FROM observations o \
    JOIN scan_tags t ON t.scan_id = o.scan_id AND o.scanned_at >= t.observed_from WHERE t.image_name = $1";

/// A scan's findings filter: scan `$1`, `$2` a severity rank (-1: any), `$3` a package
/// name, any case ('': any).
pub const FINDING_FILTER: &str = "WHERE s.id = $1 AND ($2 < 0 OR f.severity = $2) \
    AND ($3 = '' OR LOWER(f.pkg_name) = LOWER($3))";

/// How many (reference, package) items the current fleet has of vulnerability `$1`: the
/// per-CVE counts ingest maintains (each fleet row counts once in its severity), compacted
/// plus pending, so a CVE in 10,000 images is one lookup, not a count over its rows.
pub const CVE_ITEMS: &str =
    "SELECT CAST(COALESCE(SUM(n_critical + n_high + n_medium + n_low + n_unknown), 0) \
     AS BIGINT) FROM (SELECT n_critical, n_high, n_medium, n_low, n_unknown FROM fleet_cves \
     WHERE vulnerability_id = $1 UNION ALL SELECT n_critical, n_high, n_medium, n_low, n_unknown \
     FROM fleet_cve_deltas WHERE vulnerability_id = $1) x";

// -------------------------------------------------------------------------------- catalog

/// The catalog entries of a page of top CVEs, by the ids the backend binds as a set.
pub const CATALOG_COLUMNS: &str = "id, title, cvss_score";

// ----------------------------------------------------------------------------------- jobs

pub const JOB_SELECT: &str = "SELECT j.id, j.image_ref, j.image_name, j.status, j.force, j.priority, j.attempt, \
    j.max_attempts, j.run_after, j.lease_owner, j.lease_expires_at, j.resolved_digest, j.created_at, \
    j.updated_at, j.started_at, j.completed_at, j.error_message, j.error_class, j.scan_id, j.requested_by, \
    j.lane, j.kind, s.vuln_critical, s.vuln_high, s.vuln_medium, s.vuln_low, s.vuln_unknown \
    FROM scan_jobs j LEFT JOIN scans s ON s.id = j.scan_id";

pub const FETCH_JOB: &str = concatcp!(JOB_SELECT, " WHERE j.id = $1");

pub const ACTIVE_JOB_FOR: &str = concatcp!(
    JOB_SELECT,
    " WHERE j.image_ref = $1 AND j.kind = $2 AND j.status IN ('queued', 'pulling', 'scanning')"
);

/// Jobs, newest first, optionally of one status (`$1`, '' for any) and image (`$2`, ''
/// for any: name or reference); the page follows.
pub const LIST_JOBS: &str = concatcp!(
    JOB_SELECT,
    " WHERE ($1 = '' OR j.status = $1) AND ($2 = '' OR j.image_name = $2 OR j.image_ref = $2) \
     ORDER BY j.created_at DESC, j.id DESC LIMIT $3 OFFSET $4"
);

pub const INSERT_JOB: &str = "INSERT INTO scan_jobs (id, image_ref, image_name, status, force, priority, attempt, \
     max_attempts, run_after, created_at, updated_at, requested_by, lane, kind, resolved_digest) \
     VALUES ($1, $2, $3, 'queued', $4, $5, 0, $6, $7, $7, $7, $8, $9, $10, $11) \
     ON CONFLICT (image_ref, kind) WHERE status IN ('queued', 'pulling', 'scanning') DO NOTHING RETURNING id";

pub const JOB_EVENTS: &str =
    "SELECT id, job_id, attempt, old_status, new_status, changed_by, reason, at \
     FROM scan_audit_log WHERE job_id = $1 ORDER BY id";

/// The compare-and-set of every job transition: `$1` the new status, `$11`/`$12` the job
/// and the status it must still have, `$13` the attempt that must still hold it (-1: any).
pub const TRANSITION_JOB: &str = "UPDATE scan_jobs SET status = $1, updated_at = $2, \
     run_after = COALESCE($3, run_after), \
     lease_owner = CASE WHEN $4 = 1 THEN NULL ELSE lease_owner END, \
     lease_expires_at = CASE WHEN $4 = 1 THEN NULL ELSE lease_expires_at END, \
     resolved_digest = COALESCE($5, resolved_digest), \
     completed_at = CASE WHEN $6 = 1 THEN $2 WHEN $1 = 'queued' THEN NULL ELSE completed_at END, \
     error_class = CASE WHEN $1 = 'completed' THEN NULL ELSE COALESCE($7, error_class) END, \
     error_message = CASE WHEN $1 = 'completed' THEN NULL ELSE COALESCE($8, error_message) END, \
     scan_id = COALESCE($9, scan_id), \
     max_attempts = COALESCE($10, max_attempts) \
     WHERE id = $11 AND status = $12 AND ($13 < 0 OR attempt = $13) RETURNING attempt";

pub const INSERT_AUDIT: &str =
    "INSERT INTO scan_audit_log (job_id, attempt, old_status, new_status, changed_by, \
     reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub const EXPIRED_LEASES: &str =
    "SELECT id, status, attempt, max_attempts, lease_owner FROM scan_jobs \
     WHERE status IN ('pulling', 'scanning') AND lease_expires_at < $1";

pub const STILL_EXPIRED: &str =
    "SELECT 1 FROM scan_jobs WHERE id = $1 AND attempt = $2 AND lease_expires_at < $3";

pub const RENEW_LEASE: &str =
    "UPDATE scan_jobs SET lease_expires_at = $1 WHERE id = $2 AND attempt = $3 \
     AND lease_owner = $4 AND status IN ('pulling', 'scanning')";

/// The claim of the next due job, `queued → pulling`; PostgreSQL picks it `FOR UPDATE SKIP
/// LOCKED` (`$lock`).
macro_rules! claim_job {
    ($lock:literal) => {
        ::const_format::concatcp!(
            "UPDATE scan_jobs SET status = 'pulling', attempt = attempt + 1, lease_owner = $1, \
             lease_expires_at = $2, started_at = COALESCE(started_at, $3), updated_at = $3 \
             WHERE id = (SELECT id FROM scan_jobs WHERE status = 'queued' AND run_after <= $3 \
             AND lane <= $4 ORDER BY lane, priority DESC, run_after, created_at, id LIMIT 1",
            $lock,
            ") AND status = 'queued' RETURNING id, attempt"
        )
    };
}
pub(crate) use claim_job;

/// Move a queued job to a lane before its own (`$2`), as a request in that lane asks.
pub const PROMOTE_JOB: &str =
    "UPDATE scan_jobs SET lane = $2, updated_at = $3 WHERE id = $1 AND status = 'queued' AND lane > $2";

/// A job still held by an attempt; PostgreSQL locks it (`FOR UPDATE`).
pub const HELD_JOB: &str =
    "SELECT 1 FROM scan_jobs WHERE id = $1 AND attempt = $2 AND status = 'scanning'";

pub const JOB_STATUS: &str = "SELECT status, attempt FROM scan_jobs WHERE id = $1";

pub const JOBS_BY_STATUS: &str = "SELECT status, COUNT(*) FROM scan_jobs GROUP BY status";
pub const JOBS_BY_STATUS_AND_LANE: &str =
    "SELECT status, lane, COUNT(*) FROM scan_jobs GROUP BY status, lane ORDER BY status, lane";

pub const OLDEST_QUEUED: &str = "SELECT MIN(created_at) FROM scan_jobs WHERE status = 'queued'";

// ----------------------------------------------------------------------------------- keys

const KEY_COLUMNS: &str =
    "id, name, role, salt, secret_hash, created_at, created_by, expires_at, revoked_at";

pub const INSERT_KEY: &str =
    "INSERT INTO api_keys (id, name, role, salt, secret_hash, created_at, created_by, \
     expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub const COUNT_KEYS: &str = "SELECT COUNT(*) FROM api_keys";

pub const FIND_KEY: &str = concatcp!("SELECT ", KEY_COLUMNS, " FROM api_keys WHERE id = $1");

pub const LIST_KEYS: &str = concatcp!(
    "SELECT ",
    KEY_COLUMNS,
    " FROM api_keys ORDER BY created_at, id"
);

pub const REVOKE_KEY: &str =
    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2";

// ---------------------------------------------------------------------------------- admin

/// The scans a retention policy matches: older than `$1` (when `$3`), not among the newest
/// `$2` of their reference (when `$2 > 0`).
pub const RETENTION_CANDIDATES: &str = "SELECT id FROM (SELECT id, scanned_at, ROW_NUMBER() OVER \
     (PARTITION BY image_name, image_tag ORDER BY scanned_at DESC, created_at DESC, id DESC) AS rn \
     FROM scans) ranked WHERE ($3 = 0 OR scanned_at < $1) AND ($2 <= 0 OR rn > $2)";

// ------------------------------------------------------------------------------ analytics

/// The count columns of every aggregate, in [`scanvault_core::fleet::Counts`] order.
pub const COUNT_COLUMNS: &str = "images, fixable, n_critical, n_high, n_medium, n_low, n_unknown";

/// The newest observation a reference of the current fleet shows.
pub const NEWEST_IN_FLEET: &str = "SELECT MAX(scanned_at) FROM fleet_refs";

// -------------------------------------------------------------------------------- workers

pub const UPSERT_WORKER: &str = "INSERT INTO workers (id, version, trivy_version, trivy_error, \
    concurrency, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE \
    SET trivy_version = excluded.trivy_version, trivy_error = excluded.trivy_error, \
    heartbeat_at = excluded.heartbeat_at";

/// Workers heard from since `$1`.
pub const WORKERS: &str =
    "SELECT id, version, trivy_version, trivy_error, concurrency, started_at, \
    heartbeat_at FROM workers WHERE heartbeat_at >= $1 ORDER BY started_at, id";

pub const DELETE_WORKER: &str = "DELETE FROM workers WHERE id = $1";

/// Workers not heard from since `$1` (gone without saying so).
pub const FORGET_WORKERS: &str = "DELETE FROM workers WHERE heartbeat_at < $1";

/// A cluster report replaces what was recorded of a namespace of that cluster.
pub const FORGET_NAMESPACE_WORKLOADS: &str =
    "DELETE FROM scan_workloads WHERE cluster = $1 AND namespace = $2";

pub const RECORD_WORKLOAD: &str =
    "INSERT INTO scan_workloads (scan_id, cluster, namespace, kind, name, seen_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scan_id, cluster, namespace, kind, name) \
     DO UPDATE SET seen_at = excluded.seen_at";

/// The current fleet's rows of references whose scan runs in a workload matching `$1` (a
/// `LIKE` pattern over `cluster/namespace/kind/name`), of vulnerability `$2` ('' = any), only
/// fixable when `$3` = 1, suppressed findings as `$4` says at `$5`
/// ([`crate::suppression_filter_sql`]).
const WORKLOAD_ROWS: &str = concatcp!(
    "FROM fleet_refs r JOIN fleet_findings f ON f.ref_id = r.id \
     WHERE r.scan_id IN (SELECT scan_id FROM scan_workloads \
     WHERE cluster || '/' || namespace || '/' || kind || '/' || name LIKE $1 ESCAPE '\\') \
     AND ($2 = '' OR f.vulnerability_id = $2) AND ($3 = 0 OR f.fixed_version IS NOT NULL) AND ",
    crate::suppression_filter_sql!(
        "$4",
        "f.vulnerability_id",
        "f.pkg_name",
        "r.image_name",
        "$5"
    )
);

/// A page of [`WORKLOAD_ROWS`] (`$6` limit, `$7` offset) in the order of the CVE's images
/// listing (`$8` = 0) or of the fixable listing (`$8` = 1), with titles.
pub const WORKLOAD_FINDINGS: &str = concatcp!(
    "SELECT r.image_name, r.image_tag, r.scan_id, r.scanned_at, f.vulnerability_id, f.pkg_name, \
     f.pkg_version, f.fixed_version, f.severity, \
     (SELECT v.title FROM vulnerabilities v WHERE v.id = f.vulnerability_id) AS title ",
    WORKLOAD_ROWS,
    " ORDER BY CASE WHEN $8 = 1 THEN -f.severity ELSE 0 END, \
     CASE WHEN $8 = 1 THEN f.vulnerability_id ELSE '' END, r.id, f.pkg_name, f.pkg_version \
     LIMIT $6 OFFSET $7"
);

/// How many rows and references [`WORKLOAD_ROWS`] has.
pub const COUNT_WORKLOAD_FINDINGS: &str =
    concatcp!("SELECT COUNT(*), COUNT(DISTINCT r.id) ", WORKLOAD_ROWS);

/// [`super::scans::ReferenceObservation`]'s columns.
const REF_OBSERVATION_COLUMNS: &str = "o.id, o.scan_id, o.image_tag, o.scanned_at, o.observed_at, \
     o.source, o.version, o.fixable, o.n_critical, o.n_high, o.n_medium, o.n_low, o.n_unknown, \
     o.findings_added, o.findings_removed, s.image_name, s.image_digest";

/// The observations the reference `($1, $2)` sees (DESIGN.md: from each tag's start).
const OF_REFERENCE: &str = " FROM scan_tags t JOIN observations o ON o.scan_id = t.scan_id \
     AND o.scanned_at >= t.observed_from JOIN scans s ON s.id = o.scan_id \
     WHERE t.image_name = $1 AND t.image_tag = $2";

/// Every observation of the scans of image `$1`.
const OF_IMAGE: &str =
    " FROM observations o JOIN scans s ON s.id = o.scan_id WHERE s.image_name = $1";

const NEWEST_FIRST: &str = " ORDER BY o.scanned_at DESC, o.id DESC";

pub const REFERENCE_HISTORY: &str = concatcp!(
    "SELECT ",
    REF_OBSERVATION_COLUMNS,
    OF_REFERENCE,
    NEWEST_FIRST,
    " LIMIT $3 OFFSET $4"
);
pub const IMAGE_HISTORY: &str = concatcp!(
    "SELECT ",
    REF_OBSERVATION_COLUMNS,
    OF_IMAGE,
    NEWEST_FIRST,
    " LIMIT $2 OFFSET $3"
);
pub const COUNT_REFERENCE_HISTORY: &str = concatcp!("SELECT COUNT(*)", OF_REFERENCE);
pub const COUNT_IMAGE_HISTORY: &str = concatcp!("SELECT COUNT(*)", OF_IMAGE);

/// The reference's observation before `($3, $4)` (scan time, id).
pub const REFERENCE_BEFORE: &str = concatcp!(
    "SELECT ",
    REF_OBSERVATION_COLUMNS,
    OF_REFERENCE,
    " AND (o.scanned_at < $3 OR (o.scanned_at = $3 AND o.id < $4))",
    NEWEST_FIRST,
    " LIMIT 1"
);

/// A scan's two newest observations, newest first.
pub const SCAN_NEWEST_OBSERVATIONS: &str = concatcp!(
    "SELECT ",
    REF_OBSERVATION_COLUMNS,
    " FROM observations o JOIN scans s ON s.id = o.scan_id WHERE o.scan_id = $1",
    NEWEST_FIRST,
    " LIMIT 2"
);

// ------------------------------------------------------------------------------- triage

/// A suppression's image glob (`*` any text, `?` one character) as a `LIKE` pattern with
/// `\` escaping.
pub const IMAGE_LIKE: &str = "REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(s.image, '\\', '\\\\'), \
     '%', '\\%'), '_', '\\_'), '*', '%'), '?', '_')";

/// Whether a suppression applying at `$now` covers the finding of vulnerability `$vuln` in
/// package `$pkg` of an image named `$image` (SQL expressions).
#[macro_export]
macro_rules! suppressed_sql {
    ($vuln:expr, $pkg:expr, $image:expr, $now:expr) => {
        const_format::concatcp!(
            "EXISTS (SELECT 1 FROM suppressions s WHERE s.vulnerability_id = ",
            $vuln,
            " AND s.deleted_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ",
            $now,
            ") AND (s.package IS NULL OR s.package = ",
            $pkg,
            ") AND (s.image IS NULL OR ",
            $image,
            " LIKE ",
            $crate::store::sql::IMAGE_LIKE,
            " ESCAPE '\\'))"
        )
    };
}

/// The rows a listing shows by `$mode` ([`super::analytics::Suppressed`]): 0 leaves the
/// suppressed findings out, 1 shows only them, 2 shows everything (and tests nothing).
#[macro_export]
macro_rules! suppression_filter_sql {
    ($mode:expr, $vuln:expr, $pkg:expr, $image:expr, $now:expr) => {
        const_format::concatcp!(
            "(",
            $mode,
            " = 2 OR ",
            $crate::suppressed_sql!($vuln, $pkg, $image, $now),
            " = (",
            $mode,
            " = 1))"
        )
    };
}

/// The per-vulnerability counts of the current fleet's rows as [`COUNT_COLUMNS`] (images =
/// references), for rows `$rows` (a `WHERE` over `fleet_findings`).
#[macro_export]
macro_rules! fleet_counts_sql {
    ($rows:expr) => {
        const_format::concatcp!(
            "SELECT vulnerability_id, COUNT(DISTINCT ref_id), \
             CAST(SUM(CASE WHEN fixed_version IS NULL THEN 0 ELSE 1 END) AS BIGINT), \
             CAST(SUM(CASE WHEN severity = 4 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN severity = 3 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN severity = 2 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN severity = 1 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN severity = 0 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM fleet_findings WHERE ",
            $rows,
            " GROUP BY vulnerability_id"
        )
    };
}

/// The newest observation and the newest suppression change: when either moves, what the
/// suppressions leave out of the fleet may have changed.
pub const TRIAGE_FINGERPRINT: &str = "SELECT (SELECT MAX(id) FROM observations), \
     (SELECT MAX(id) FROM suppression_audit)";

/// Record what was left out of the fleet on day `$1`.
pub const RECORD_SUPPRESSED_DAY: &str = concatcp!(
    "INSERT INTO fleet_suppressed_days (day, ",
    COUNT_COLUMNS,
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (day) DO UPDATE SET images = excluded.images, \
     fixable = excluded.fixable, n_critical = excluded.n_critical, n_high = excluded.n_high, \
     n_medium = excluded.n_medium, n_low = excluded.n_low, n_unknown = excluded.n_unknown"
);

/// The recorded days before `$1`.
pub const SUPPRESSED_DAYS: &str = concatcp!(
    "SELECT day, ",
    COUNT_COLUMNS,
    " FROM fleet_suppressed_days WHERE day < $1 ORDER BY day"
);

/// A vulnerability's catalog entry.
pub const CATALOG_ENTRY: &str =
    "SELECT id, title, description, severity, cvss_score, cvss_vector, \
     primary_url, refs, published_at, modified_at FROM vulnerabilities WHERE id = $1";
