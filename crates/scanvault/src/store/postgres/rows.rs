//! The rows PostgreSQL's ingest statements read and write, and their conversions: one array
//! per column for a set of rows.

use scanvault_core::fleet::{self, ChainObs, Counts, FleetRow, FIXABLE, IMAGES};
use scanvault_core::report::{Finding, FindingExtra, Severity};
use sqlx::PgConnection;

use crate::store::ingest::{LockedRef, RowSource};
use crate::store::scans::ScanRow;
use crate::store::StoreError;

pub(super) const READ_VERSION: &str =
    "SELECT vulnerability_ids, pkg_names, pkg_versions, fixed_versions, severities, \
     statuses, pkg_types, classes, targets, pkg_paths, purls, cvss_scores, extras FROM scan_findings \
     WHERE scan_id = $1 AND version = $2";

#[derive(sqlx::FromRow)]
pub(super) struct Found {
    #[sqlx(flatten)]
    pub(super) row: ScanRow,
    pub(super) last_version: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct Written {
    #[sqlx(flatten)]
    pub(super) row: ScanRow,
    pub(super) observation_id: i64,
}

/// One version of a scan's findings: one array per column, element *i* being finding *i*.
#[derive(sqlx::FromRow)]
pub(super) struct VersionRow {
    pub(super) vulnerability_ids: Vec<String>,
    pub(super) pkg_names: Vec<String>,
    pub(super) pkg_versions: Vec<String>,
    pub(super) fixed_versions: Vec<Option<String>>,
    pub(super) severities: Vec<i64>,
    pub(super) statuses: Vec<Option<String>>,
    pub(super) pkg_types: Vec<Option<String>>,
    pub(super) classes: Vec<Option<String>>,
    pub(super) targets: Vec<Option<String>>,
    pub(super) pkg_paths: Vec<Option<String>>,
    pub(super) purls: Vec<Option<String>>,
    pub(super) cvss_scores: Vec<Option<f64>>,
    /// NULL for versions without any (and those stored before the column existed).
    pub(super) extras: Option<Vec<Option<String>>>,
}

/// Several versions at once: `$1` scan ids and `$2` versions, pairwise.
pub(super) const READ_VERSIONS: &str =
    "SELECT s.scan_id, s.version, vulnerability_ids, pkg_names, pkg_versions, fixed_versions, \
     severities, statuses, pkg_types, classes, targets, pkg_paths, purls, cvss_scores, extras \
     FROM unnest($1::text[], $2::bigint[]) AS k(scan_id, version) \
     JOIN scan_findings s ON s.scan_id = k.scan_id AND s.version = k.version";

/// [`READ_VERSIONS`] with only the columns a diff compares (the others read as empty, so
/// the same row type decodes it): what is not asked for is neither detoasted nor sent.
pub(super) const READ_VERSION_KEYS: &str =
    "SELECT s.scan_id, s.version, vulnerability_ids, pkg_names, pkg_versions, fixed_versions, \
     severities, '{}'::text[] AS statuses, '{}'::text[] AS pkg_types, '{}'::text[] AS classes, targets, \
     '{}'::text[] AS pkg_paths, '{}'::text[] AS purls, '{}'::float8[] AS cvss_scores, NULL::text[] AS extras \
     FROM unnest($1::text[], $2::bigint[]) AS k(scan_id, version) \
     JOIN scan_findings s ON s.scan_id = k.scan_id AND s.version = k.version";

/// A [`VersionRow`] with the version it is.
#[derive(sqlx::FromRow)]
pub(super) struct KeyedVersionRow {
    pub(super) scan_id: String,
    pub(super) version: i64,
    #[sqlx(flatten)]
    pub(super) row: VersionRow,
}

impl VersionRow {
    pub(super) fn into_findings(self) -> Vec<Finding> {
        let n = self.vulnerability_ids.len();
        let mut out = Vec::with_capacity(n);
        let mut cols = (
            self.vulnerability_ids.into_iter(),
            self.pkg_names.into_iter(),
            self.pkg_versions.into_iter(),
            self.fixed_versions.into_iter(),
            self.severities.into_iter(),
            self.statuses.into_iter(),
            self.pkg_types.into_iter(),
            self.classes.into_iter(),
            self.targets.into_iter(),
            self.pkg_paths.into_iter(),
            self.purls.into_iter(),
            self.cvss_scores.into_iter(),
            self.extras.unwrap_or_default().into_iter(),
        );
        for _ in 0..n {
            out.push(Finding {
                vulnerability_id: cols.0.next().unwrap_or_default(),
                pkg_name: cols.1.next().unwrap_or_default(),
                installed_version: cols.2.next().unwrap_or_default(),
                fixed_version: cols.3.next().flatten(),
                severity: Severity::from_rank(cols.4.next().unwrap_or_default()),
                status: cols.5.next().flatten(),
                pkg_type: cols.6.next().flatten(),
                class: cols.7.next().flatten(),
                target: cols.8.next().flatten(),
                pkg_path: cols.9.next().flatten(),
                purl: cols.10.next().flatten(),
                title: None,
                cvss_score: cols.11.next().flatten(),
                extra: FindingExtra::from_stored(cols.12.next().flatten().as_deref()),
            });
        }
        out
    }
}

/// The findings of one version of a scan's findings.
pub(super) async fn read_version(
    conn: &mut PgConnection,
    scan_id: &str,
    version: i64,
) -> Result<Vec<Finding>, StoreError> {
    let row: Option<VersionRow> = sqlx::query_as(READ_VERSION)
        .bind(scan_id)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(VersionRow::into_findings).unwrap_or_default())
}

/// A locked reference as returned by [`REF_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct RefRow {
    pub(super) id: i64,
    pub(super) image_tag: String,
    pub(super) scan_id: Option<String>,
    pub(super) version: Option<i64>,
    pub(super) observation_id: Option<i64>,
    pub(super) scanned_at: Option<i64>,
    pub(super) fixable: Option<i64>,
    pub(super) n_unknown: Option<i64>,
    pub(super) n_low: Option<i64>,
    pub(super) n_medium: Option<i64>,
    pub(super) n_high: Option<i64>,
    pub(super) n_critical: Option<i64>,
}

impl From<RefRow> for LockedRef {
    fn from(r: RefRow) -> LockedRef {
        let tip = r.scan_id.map(|scan_id| ChainObs {
            id: r.observation_id.unwrap_or_default(),
            scan_id,
            version: r.version.unwrap_or(1),
            scanned_at: r.scanned_at.unwrap_or_default(),
            counts: fleet::image_counts(
                r.fixable.unwrap_or_default(),
                [r.n_unknown, r.n_low, r.n_medium, r.n_high, r.n_critical]
                    .map(Option::unwrap_or_default),
            ),
        });
        LockedRef {
            id: r.id,
            image_tag: r.image_tag,
            tip,
        }
    }
}

/// An observation as [`sql::CHAIN_COLUMNS`] returns it, after the reference's number.
pub(super) type ChainRow = (i64, i64, String, i64, i64, i64, i64, i64, i64, i64, i64);
/// The same without the reference.
pub(super) type ObsRow = (i64, String, i64, i64, i64, i64, i64, i64, i64, i64);

pub(super) fn chain_obs(
    (id, scan_id, version, scanned_at, fixable, unk, low, med, high, crit): ObsRow,
) -> ChainObs {
    ChainObs {
        id,
        scan_id,
        version,
        scanned_at,
        counts: fleet::image_counts(fixable, [unk, low, med, high, crit]),
    }
}

pub(super) fn fleet_rows(rows: Vec<(i64, String, i64, bool)>) -> Vec<FleetRow> {
    rows.into_iter()
        .map(|(ref_id, vulnerability_id, severity, fixable)| FleetRow {
            ref_id,
            vulnerability_id,
            severity,
            fixable,
        })
        .collect()
}

/// Row sources as three arrays.
pub(super) fn source_columns(sources: &[RowSource]) -> (Vec<i64>, Vec<&str>, Vec<i64>) {
    (
        sources.iter().map(|s| s.ref_id).collect(),
        sources.iter().map(|s| s.scan_id.as_str()).collect(),
        sources.iter().map(|s| s.version).collect(),
    )
}

/// A set of counted rows as one array per count column: images, fixable, critical … unknown.
pub(super) fn count_columns<'a>(rows: impl Iterator<Item = &'a Counts> + Clone) -> [Vec<i64>; 7] {
    let col = |i: usize| rows.clone().map(|c| c[i]).collect::<Vec<i64>>();
    [
        col(IMAGES),
        col(FIXABLE),
        col(fleet::sev_index(4)),
        col(fleet::sev_index(3)),
        col(fleet::sev_index(2)),
        col(fleet::sev_index(1)),
        col(fleet::sev_index(0)),
    ]
}

/// A scan's findings as one array per column of `scan_findings` (and of the current fleet's
/// rows, which are its first five and the severity).
pub(super) struct FindingColumns<'a> {
    pub(super) vulnerability_ids: Vec<&'a str>,
    pub(super) pkg_names: Vec<&'a str>,
    pub(super) pkg_versions: Vec<&'a str>,
    pub(super) fixed_versions: Vec<Option<&'a str>>,
    pub(super) severities: Vec<i64>,
    pub(super) statuses: Vec<Option<&'a str>>,
    pub(super) pkg_types: Vec<Option<&'a str>>,
    pub(super) classes: Vec<Option<&'a str>>,
    pub(super) targets: Vec<Option<&'a str>>,
    pub(super) pkg_paths: Vec<Option<&'a str>>,
    pub(super) purls: Vec<Option<&'a str>>,
    pub(super) cvss_scores: Vec<Option<f64>>,
    /// `None` when no finding has any.
    pub(super) extras: Option<Vec<Option<String>>>,
}

impl<'a> FindingColumns<'a> {
    pub(super) fn of(findings: &'a [Finding]) -> FindingColumns<'a> {
        FindingColumns {
            vulnerability_ids: findings
                .iter()
                .map(|f| f.vulnerability_id.as_str())
                .collect(),
            pkg_names: findings.iter().map(|f| f.pkg_name.as_str()).collect(),
            pkg_versions: findings
                .iter()
                .map(|f| f.installed_version.as_str())
                .collect(),
            fixed_versions: findings
                .iter()
                .map(|f| f.fixed_version.as_deref())
                .collect(),
            severities: findings.iter().map(|f| f.severity.rank()).collect(),
            statuses: findings.iter().map(|f| f.status.as_deref()).collect(),
            pkg_types: findings.iter().map(|f| f.pkg_type.as_deref()).collect(),
            classes: findings.iter().map(|f| f.class.as_deref()).collect(),
            targets: findings.iter().map(|f| f.target.as_deref()).collect(),
            pkg_paths: findings.iter().map(|f| f.pkg_path.as_deref()).collect(),
            purls: findings.iter().map(|f| f.purl.as_deref()).collect(),
            cvss_scores: findings.iter().map(|f| f.cvss_score).collect(),
            extras: findings
                .iter()
                .any(|f| !f.extra.is_empty())
                .then(|| findings.iter().map(|f| f.extra.to_stored()).collect()),
        }
    }
}
