//! The rows SQLite's ingest statements read and write, and their conversions: one JSON array
//! for a set of rows.

use scanvault_core::fleet::{self, ChainObs, Counts, FleetRow, FIXABLE, IMAGES};
use scanvault_core::report::{Finding, FindingExtra, Severity};
use serde::Serialize;
use sqlx::SqliteConnection;

use crate::store::ingest::{LockedRef, RowSource};
use crate::store::scans::ScanRow;
use crate::store::StoreError;

/// A set of rows as one JSON parameter.
pub(super) fn json<T: Serialize + ?Sized>(rows: &T) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Other(e.into()))
}

/// The findings of version `$2` of scan `$1`.
pub(super) const READ_VERSION: &str =
    "SELECT vulnerability_id, pkg_name, pkg_version, fixed_version, severity, status, \
     pkg_type, class, target, pkg_path, purl, cvss_score, extra FROM findings \
     WHERE scan_id = $1 AND first_version <= $2 AND (last_version IS NULL OR last_version > $2)";

/// Several versions at once: `$1` a JSON array of `{s, v}` (scan, version).
pub(super) const READ_VERSIONS: &str = "SELECT k.s AS scan_id, k.v AS version, f.vulnerability_id, f.pkg_name, \
     f.pkg_version, f.fixed_version, f.severity, f.status, f.pkg_type, f.class, f.target, f.pkg_path, \
     f.purl, f.cvss_score, f.extra FROM (SELECT json_extract(value, '$.s') AS s, \
     json_extract(value, '$.v') AS v FROM json_each($1)) k JOIN findings f ON f.scan_id = k.s \
     AND f.first_version <= k.v AND (f.last_version IS NULL OR f.last_version > k.v)";

/// A [`FindingRow`] with the version it belongs to.
#[derive(sqlx::FromRow)]
pub(super) struct KeyedFindingRow {
    pub(super) scan_id: String,
    pub(super) version: i64,
    #[sqlx(flatten)]
    pub(super) row: FindingRow,
}

#[derive(sqlx::FromRow)]
pub(super) struct Found {
    #[sqlx(flatten)]
    pub(super) row: ScanRow,
    pub(super) last_version: i64,
}

/// A finding as stored, with the names `ADD_ROWS` (in the ingest) reads.
#[derive(Serialize)]
pub(super) struct FindingJson<'a> {
    pub(super) v: &'a str,
    pub(super) p: &'a str,
    pub(super) iv: &'a str,
    pub(super) fv: Option<&'a str>,
    pub(super) sev: i64,
    pub(super) st: Option<&'a str>,
    pub(super) pt: Option<&'a str>,
    pub(super) cl: Option<&'a str>,
    pub(super) tg: Option<&'a str>,
    pub(super) pp: Option<&'a str>,
    pub(super) pu: Option<&'a str>,
    pub(super) cv: Option<f64>,
    pub(super) ex: Option<String>,
}

impl<'a> FindingJson<'a> {
    pub(super) fn of(f: &'a Finding) -> FindingJson<'a> {
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
            ex: f.extra.to_stored(),
        }
    }
}

pub(super) fn findings_json<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
) -> Result<String, StoreError> {
    json(
        &findings
            .into_iter()
            .map(FindingJson::of)
            .collect::<Vec<_>>(),
    )
}

/// A catalog entry, with the names [`CATALOG_INSERT`] reads.
#[derive(Serialize)]
pub(super) struct CatalogJson<'a> {
    pub(super) id: &'a str,
    pub(super) title: Option<&'a str>,
    pub(super) description: Option<&'a str>,
    pub(super) severity: i64,
    pub(super) cvss_score: Option<f64>,
    pub(super) cvss_vector: Option<&'a str>,
    pub(super) primary_url: Option<&'a str>,
    pub(super) refs: String,
    pub(super) published_at: Option<i64>,
    pub(super) modified_at: Option<i64>,
}

/// An open finding row with its row id.
#[derive(sqlx::FromRow)]
pub(super) struct OpenRow {
    pub(super) rowid: i64,
    #[sqlx(flatten)]
    pub(super) finding: FindingRow,
}

/// A finding as [`READ_VERSION`] returns it.
#[derive(sqlx::FromRow)]
pub(super) struct FindingRow {
    pub(super) vulnerability_id: String,
    pub(super) pkg_name: String,
    pub(super) pkg_version: String,
    pub(super) fixed_version: Option<String>,
    pub(super) severity: i64,
    pub(super) status: Option<String>,
    pub(super) pkg_type: Option<String>,
    pub(super) class: Option<String>,
    pub(super) target: Option<String>,
    pub(super) pkg_path: Option<String>,
    pub(super) purl: Option<String>,
    pub(super) cvss_score: Option<f64>,
    pub(super) extra: Option<String>,
}

impl From<FindingRow> for Finding {
    fn from(r: FindingRow) -> Finding {
        Finding {
            vulnerability_id: r.vulnerability_id,
            pkg_name: r.pkg_name,
            installed_version: r.pkg_version,
            fixed_version: r.fixed_version,
            severity: Severity::from_rank(r.severity),
            status: r.status,
            pkg_type: r.pkg_type,
            class: r.class,
            target: r.target,
            pkg_path: r.pkg_path,
            purl: r.purl,
            title: None,
            cvss_score: r.cvss_score,
            extra: FindingExtra::from_stored(r.extra.as_deref()),
        }
    }
}

/// The findings of one version of a scan's findings.
pub(super) async fn read_version(
    conn: &mut SqliteConnection,
    scan_id: &str,
    version: i64,
) -> Result<Vec<Finding>, StoreError> {
    let rows: Vec<FindingRow> = sqlx::query_as(READ_VERSION)
        .bind(scan_id)
        .bind(version)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(Finding::from).collect())
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

/// Row sources as one JSON set of `{r, s, v}`.
pub(super) fn sources_json(sources: &[RowSource]) -> Result<String, StoreError> {
    #[derive(Serialize)]
    struct Source<'a> {
        r: i64,
        s: &'a str,
        v: i64,
    }
    json(
        &sources
            .iter()
            .map(|s| Source {
                r: s.ref_id,
                s: &s.scan_id,
                v: s.version,
            })
            .collect::<Vec<_>>(),
    )
}

/// Counts in the order of the count columns (images, fixable, critical … unknown).
pub(super) fn column_order(c: &Counts) -> [i64; 7] {
    [
        c[IMAGES],
        c[FIXABLE],
        c[fleet::sev_index(4)],
        c[fleet::sev_index(3)],
        c[fleet::sev_index(2)],
        c[fleet::sev_index(1)],
        c[fleet::sev_index(0)],
    ]
}

/// Counted rows as one JSON set of `{k, c}`.
pub(super) fn counted_json<K: Serialize>(
    rows: impl Iterator<Item = (K, Counts)>,
) -> Result<String, StoreError> {
    #[derive(Serialize)]
    struct Counted<K> {
        k: K,
        c: [i64; 7],
    }
    json(
        &rows
            .map(|(k, c)| Counted {
                k,
                c: column_order(&c),
            })
            .collect::<Vec<_>>(),
    )
}
