//! `/analytics/vulnerabilities/*`: fleet analytics (DESIGN.md "Analytics semantics").
//!
//! The fleet is every image reference (name, tag), each at its latest scan; "as of `to`"
//! takes each reference's latest scan at or before `to`, and `from` leaves out references
//! whose latest scan is older. All counts count findings (unique vulnerability, package,
//! installed version per scan) per image reference, so summary, fixable, top-cves and the
//! sum of the severity counts agree. Names are PascalCase, as the original service's.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use scanvault_core::image::familiar_name;
use scanvault_core::report::Severity;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::export::{csv_stream, PageFetch};
use super::params::suppressed_param;
use super::params::{int_param, severity_param, text_param, time_param, ApiPath, ApiQuery, DayEnd};
use super::AppState;
use crate::store::analytics::{
    FleetFinding, FleetScope, FleetSummary, Interval, Suppressed, SuppressedMode, TopCve,
    WorkloadQuery,
};
use crate::store::{from_micros, micros};
use crate::triage;
use scanvault_core::fleet;

/// Default and largest number of rows of top-cves.
pub const TOP_CVES_DEFAULT: i64 = 10;
pub const TOP_CVES_MAX: i64 = 100;
/// Default and largest page of cve images and fixable items.
pub const PAGE_DEFAULT: i64 = 100;
pub const PAGE_MAX: i64 = 1000;
pub const MAX_OFFSET: i64 = 10_000_000;
/// Most buckets one trends request may ask for.
pub const MAX_BUCKETS: i64 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_summary))
        .routes(routes!(get_trends))
        .routes(routes!(get_top_cves))
        .routes(routes!(get_cve_images))
        .routes(routes!(get_fixable))
}

// ------------------------------------------------------------------------------ views

/// Number of findings of one severity.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SeverityCount {
    /// CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN.
    pub severity: String,
    pub count: i64,
}

fn severity_counts(s: &FleetSummary) -> Vec<SeverityCount> {
    Severity::ALL
        .iter()
        .map(|sev| SeverityCount {
            severity: sev.as_str().to_string(),
            count: s.by_severity[sev.rank() as usize],
        })
        .collect()
}

/// The fleet as of `To`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Number of images (image references) in the fleet.
    pub total_scans: i64,
    /// Number of findings in the fleet's latest scans (= sum of `SeverityCounts`).
    pub total_vulnerabilities: i64,
    /// All five severities, most severe first, zeros included.
    pub severity_counts: Vec<SeverityCount>,
    /// Findings with a fixed version (added field).
    pub fixable: i64,
    /// Findings without one (added field).
    pub not_fixable: i64,
    /// The 10 vulnerability ids in most images.
    #[serde(rename = "TopCVEs")]
    pub top_cves: Vec<TopCveView>,
    /// Findings active suppressions cover, left out of the counts above unless
    /// `suppressed=include` (with `only`, the counts are these findings).
    pub suppressed: i64,
}

/// One vulnerability id over the fleet.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TopCveView {
    #[serde(rename = "CVEID")]
    pub cve_id: String,
    /// Highest severity of its findings in the fleet.
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Image references whose latest scan has it.
    pub image_count: i64,
    /// Whether any of its findings has a fixed version.
    pub fixable: bool,
    /// Its findings in the fleet: (image reference, package, installed version) (added field).
    pub finding_count: i64,
    /// Findings with a fixed version (added field).
    pub fixable_count: i64,
    /// CVSS base score from the catalog (added field).
    #[serde(rename = "CVSSScore", skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f64>,
    /// Listed as known exploited (CISA KEV, from the imported catalog).
    #[serde(rename = "KEV", skip_serializing_if = "Option::is_none")]
    pub kev: Option<super::feeds::KevView>,
    /// EPSS probability (from the imported feed).
    #[serde(rename = "EPSS", skip_serializing_if = "Option::is_none")]
    pub epss: Option<f64>,
    #[serde(rename = "EPSSPercentile", skip_serializing_if = "Option::is_none")]
    pub epss_percentile: Option<f64>,
    /// Images × severity weight × exploitability (README, "Risk score"), two decimals.
    pub risk_score: f64,
}

/// A vulnerability's risk over the fleet: the images it is in × its severity's weight ×
/// its exploitability.
fn cve_risk(c: &TopCve, e: Option<&crate::store::feeds::Exploit>) -> f64 {
    let epss = e.and_then(|e| e.epss.as_ref()).map(|x| x.score);
    let kev = e.is_some_and(|e| e.kev.is_some());
    let r = c.images as f64
        * scanvault_core::report::severity_weight(Severity::from_rank(c.severity))
        * scanvault_core::report::exploitability(epss, kev);
    (r * 100.0).round() / 100.0
}

/// The first `limit` of `cves` by risk (then by images, severity, id).
async fn by_risk(
    app: &AppState,
    mut cves: Vec<TopCve>,
    limit: i64,
) -> Result<Vec<TopCve>, ApiError> {
    let exploits =
        super::feeds::exploits(app, cves.iter().map(|c| c.vulnerability_id.clone())).await?;
    cves.sort_by(|a, b| {
        let (ra, rb) = (
            cve_risk(a, exploits.get(&a.vulnerability_id)),
            cve_risk(b, exploits.get(&b.vulnerability_id)),
        );
        rb.total_cmp(&ra)
            .then_with(|| a.rank_key().cmp(&b.rank_key()))
    });
    cves.truncate(limit.max(0) as usize);
    let mut need: Vec<TopCve> = cves.iter().filter(|c| c.title.is_none()).cloned().collect();
    app.store.analytics().attach_catalog(&mut need).await?;
    for c in need {
        if let Some(x) = cves
            .iter_mut()
            .find(|x| x.vulnerability_id == c.vulnerability_id)
        {
            *x = c;
        }
    }
    Ok(cves)
}

/// Top CVEs with their exploit data.
async fn top_cve_views(app: &AppState, cves: Vec<TopCve>) -> Result<Vec<TopCveView>, ApiError> {
    let exploits =
        super::feeds::exploits(app, cves.iter().map(|c| c.vulnerability_id.clone())).await?;
    Ok(cves
        .into_iter()
        .map(|c| {
            let (kev, epss, epss_percentile) =
                super::feeds::exploit_views(exploits.get(&c.vulnerability_id));
            let risk = cve_risk(&c, exploits.get(&c.vulnerability_id));
            let mut v = TopCveView::from(c);
            (v.kev, v.epss, v.epss_percentile) = (kev, epss, epss_percentile);
            v.risk_score = risk;
            v
        })
        .collect())
}

impl From<TopCve> for TopCveView {
    fn from(c: TopCve) -> Self {
        TopCveView {
            cve_id: c.vulnerability_id,
            severity: Severity::from_rank(c.severity).as_str().to_string(),
            title: c.title,
            image_count: c.images,
            fixable: c.fixable > 0,
            finding_count: c.findings,
            fixable_count: c.fixable,
            cvss_score: c.cvss_score,
            kev: None,
            epss: None,
            epss_percentile: None,
            risk_score: 0.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TopCvesResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    pub limit: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    pub count: usize,
    #[serde(rename = "CVEs")]
    pub cves: Vec<TopCveView>,
    /// Findings active suppressions cover in the scope, left out of the ranking's counts
    /// unless `suppressed=include`.
    pub suppressed: i64,
}

/// One point of a trend: findings of one severity in the fleet as of the end of a bucket.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TrendPointView {
    /// Start of the bucket (UTC midnight; weeks start on Monday).
    pub bucket: DateTime<Utc>,
    pub severity: String,
    pub count: i64,
}

/// Totals of one bucket (added).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TrendBucketView {
    pub bucket: DateTime<Utc>,
    /// Image references in the fleet.
    pub images: i64,
    /// Findings.
    pub total: i64,
    pub fixable: i64,
}

/// How a trend treats suppressed findings.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TrendSuppressedView {
    /// `exclude`, `include` or `only`.
    pub mode: String,
    /// Findings active suppressions cover now (of the image when `image`).
    pub now: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct TrendsResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `day` or `week`.
    pub interval: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Number of points (buckets × 5 severities).
    pub count: usize,
    /// Every bucket from `From` to `To`, five severities each, most severe first.
    pub points: Vec<TrendPointView>,
    /// The same buckets with images, total and fixable findings (added field).
    pub buckets: Vec<TrendBucketView>,
    pub suppressed: TrendSuppressedView,
}

/// One image reference carrying the vulnerability, with the package found.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CveImageView {
    pub image_name: String,
    pub image_tag: String,
    pub pkg_name: String,
    pub pkg_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    /// Severity of this finding (added field).
    pub severity: String,
    /// The reference's latest scan (added field).
    #[serde(rename = "ScanID")]
    pub scan_id: String,
    pub scanned_at: DateTime<Utc>,
    /// The Kubernetes workloads that run the image, from cluster reports (added field).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<super::scan_views::WorkloadView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CveImagesResponse {
    #[serde(rename = "CVEID")]
    pub cve_id: String,
    /// Items over all pages.
    pub count: i64,
    /// Image references whose latest scan has the vulnerability (added field).
    pub image_count: i64,
    pub limit: i64,
    pub offset: i64,
    /// Whether another page follows (added field).
    pub has_more: bool,
    /// Items active suppressions cover, left out unless `suppressed=include`.
    pub suppressed: i64,
    /// Listed as known exploited (CISA KEV, from the imported catalog).
    #[serde(rename = "KEV", skip_serializing_if = "Option::is_none")]
    pub kev: Option<super::feeds::KevView>,
    /// EPSS probability (from the imported feed).
    #[serde(rename = "EPSS", skip_serializing_if = "Option::is_none")]
    pub epss: Option<f64>,
    #[serde(rename = "EPSSPercentile", skip_serializing_if = "Option::is_none")]
    pub epss_percentile: Option<f64>,
    /// One item per (image reference, package, installed version): references in the order
    /// they joined the fleet, each reference's items by package and version.
    pub images: Vec<CveImageView>,
}

/// A fixable finding.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FixableItemView {
    #[serde(rename = "CVEID")]
    pub cve_id: String,
    pub pkg_name: String,
    pub pkg_version: String,
    pub fixed_version: String,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub image_name: String,
    pub image_tag: String,
    /// The reference's latest scan (added field).
    #[serde(rename = "ScanID")]
    pub scan_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FixableResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Findings in the fleet's latest scans.
    pub total_vulns: i64,
    pub fixable: i64,
    pub not_fixable: i64,
    /// 100 · Fixable / TotalVulns, two decimals (0 for an empty fleet).
    pub fixable_pct: f64,
    pub limit: i64,
    pub offset: i64,
    /// Fixable findings over all pages, the same as `Fixable` (added field).
    pub count: i64,
    /// Whether another page follows (added field).
    pub has_more: bool,
    /// Findings active suppressions cover, left out of the counts and items unless
    /// `suppressed=include`.
    pub suppressed: i64,
    /// Fixable findings, most severe first, then by id, then by reference (in the order
    /// references joined the fleet; by image name and tag when `image`, `from` or `to` is
    /// given), package, version.
    pub fixable_items: Vec<FixableItemView>,
}

// ------------------------------------------------------------------------------ params

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// Only references of this image name.
    pub image: Option<String>,
    /// RFC 3339, or a date (its start); leave out references whose latest observation is
    /// older.
    pub from: Option<String>,
    /// RFC 3339, or a date (its end); the fleet as of this time (default: now).
    pub to: Option<String>,
    /// `exclude` (default): leave out findings active suppressions cover; `include`: count
    /// everything; `only`: count only them.
    pub suppressed: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendParams {
    pub image: Option<String>,
    /// `day` (default) or `week`, any case (weeks start on Monday, UTC).
    pub interval: Option<String>,
    /// RFC 3339, or a date (its start); default: the bucket of the first observation (the
    /// whole history). At most 1000 buckets from `from` to `to`, else a 400.
    pub from: Option<String>,
    /// RFC 3339, or a date (its end); default now.
    pub to: Option<String>,
    /// `exclude` (default): each point leaves out what was suppressed then (the fleet: as
    /// recorded each day; an image: its findings the suppressions active now cover);
    /// `include`: everything; `only`: only that.
    pub suppressed: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopCveParams {
    pub image: Option<String>,
    /// Only vulnerability ids whose highest severity in the fleet is this one.
    pub severity: Option<String>,
    /// 1–100 (default 10; more is capped to 100).
    pub limit: Option<String>,
    /// `images` (default: most images first) or `risk` (highest `RiskScore` first).
    pub order: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `exclude` (default), `include` or `only` (findings active suppressions cover).
    pub suppressed: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1–1000 (default 100; more is capped to 1000).
    pub limit: Option<String>,
    /// Items to skip (default 0).
    pub offset: Option<String>,
    /// Only images run by a Kubernetes workload matching this glob over
    /// `cluster/namespace/kind/name` (`*` matches any text), from cluster reports.
    pub workload: Option<String>,
    /// `csv`: every item (from `offset`, at most `limit` when given) as CSV, streamed.
    pub format: Option<String>,
    /// `exclude` (default), `include` or `only` (findings active suppressions cover).
    pub suppressed: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FixableParams {
    pub image: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Only images run by a Kubernetes workload matching this glob over
    /// `cluster/namespace/kind/name` (`*` matches any text); the current fleet, so not with
    /// `image`, `from` or `to`.
    pub workload: Option<String>,
    /// `csv`: every fixable finding (from `offset`, at most `limit` when given) as CSV,
    /// streamed.
    pub format: Option<String>,
    /// 1–1000 (default 100; more is capped to 1000).
    pub limit: Option<String>,
    /// Items to skip (default 0).
    pub offset: Option<String>,
    /// `exclude` (default), `include` or `only` (findings active suppressions cover).
    pub suppressed: Option<String>,
}

/// Whether `format` asks for CSV (the only other format of a listing than JSON).
fn csv_format(format: &Option<String>) -> Result<bool, ApiError> {
    match text_param("format", format)?.map(|f| f.to_ascii_lowercase()) {
        None => Ok(false),
        Some(f) if f == "json" => Ok(false),
        Some(f) if f == "csv" => Ok(true),
        Some(_) => Err(ApiError::bad_param("format", "must be json or csv")),
    }
}

const CVE_IMAGES_CSV: [&str; 9] = [
    "ImageName",
    "ImageTag",
    "ScanID",
    "ScannedAt",
    "CVEID",
    "PkgName",
    "PkgVersion",
    "FixedVersion",
    "Severity",
];

fn cve_image_row(f: FleetFinding) -> Vec<String> {
    vec![
        f.image_name,
        f.image_tag,
        f.scan_id,
        from_micros(f.scanned_at).to_rfc3339(),
        f.vulnerability_id,
        f.pkg_name,
        f.pkg_version,
        f.fixed_version.unwrap_or_default(),
        Severity::from_rank(f.severity).as_str().to_string(),
    ]
}

const FIXABLE_CSV: [&str; 9] = [
    "CVEID",
    "Severity",
    "PkgName",
    "PkgVersion",
    "FixedVersion",
    "Title",
    "ImageName",
    "ImageTag",
    "ScanID",
];

fn fixable_row(f: FleetFinding) -> Vec<String> {
    vec![
        f.vulnerability_id,
        Severity::from_rank(f.severity).as_str().to_string(),
        f.pkg_name,
        f.pkg_version,
        f.fixed_version.unwrap_or_default(),
        f.title.unwrap_or_default(),
        f.image_name,
        f.image_tag,
        f.scan_id,
    ]
}

fn image_param(v: &Option<String>) -> Result<Option<String>, ApiError> {
    Ok(text_param("image", v)?.map(|s| familiar_name(&s)))
}

/// A checked scope with the `from` and `to` it was given.
type ScopeParams = (FleetScope, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `image`, `from`, `to`, checked.
fn scope_params(
    image: &Option<String>,
    from: &Option<String>,
    to: &Option<String>,
) -> Result<ScopeParams, ApiError> {
    let image = image_param(image)?;
    let from = time_param("from", from, DayEnd::Start)?;
    let to = time_param("to", to, DayEnd::End)?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::BadRequest(
                "query parameter 'from' must not be after 'to'".into(),
            ));
        }
    }
    Ok((
        FleetScope {
            image,
            from: from.map(micros),
            to: to.map(micros),
        },
        from,
        to,
    ))
}

/// The listings' filter: in `Exclude` with no suppression active, nothing to test.
async fn listing_filter(app: &AppState, mode: SuppressedMode) -> Result<Suppressed, ApiError> {
    if mode == SuppressedMode::Exclude && app.triage.active(&app.store).await?.is_empty() {
        return Ok(Suppressed::ALL);
    }
    Ok(Suppressed {
        mode,
        now: micros(Utc::now()),
    })
}

/// The findings of a workload listing's rows that suppressions cover (`q` is reused).
async fn workload_suppressed(app: &AppState, q: &mut WorkloadQuery) -> Result<i64, ApiError> {
    if app.triage.active(&app.store).await?.is_empty() {
        return Ok(0);
    }
    q.suppressed = Suppressed {
        mode: SuppressedMode::Only,
        now: micros(Utc::now()),
    };
    q.limit = 0;
    q.fixable = false;
    Ok(app.store.analytics().workload_findings(q).await?.1)
}

/// The name of a mode, as the parameter takes it.
fn mode_name(mode: SuppressedMode) -> &'static str {
    match mode {
        SuppressedMode::Exclude => "exclude",
        SuppressedMode::Include => "include",
        SuppressedMode::Only => "only",
    }
}

// ------------------------------------------------------------------------------ handlers

/// The state of the fleet: images, findings per severity, fixable, top 10 CVEs.
#[utoipa::path(get, path = "/analytics/vulnerabilities/summary", tag = "analytics",
    params(SummaryParams),
    responses(
        (status = 200, body = SummaryResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get_summary(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<SummaryParams>,
) -> Result<Json<SummaryResponse>, ApiError> {
    let (scope, from, to) = scope_params(&p.image, &p.from, &p.to)?;
    let mode = suppressed_param(&p.suppressed)?;
    let overlay = app.triage.overlay(&app.store, &scope).await?;
    let summary = triage::summary(&app.store, &scope, mode, overlay.as_deref()).await?;
    let top = triage::top_cves(
        &app.store,
        &scope,
        None,
        TOP_CVES_DEFAULT,
        mode,
        overlay.as_deref(),
    )
    .await?;
    Ok(Json(SummaryResponse {
        image: scope.image.clone(),
        from,
        to,
        total_scans: summary.images,
        total_vulnerabilities: summary.total(),
        severity_counts: severity_counts(&summary),
        fixable: summary.fixable,
        not_fixable: summary.total() - summary.fixable,
        top_cves: top_cve_views(&app, top).await?,
        suppressed: overlay.map_or(0, |o| o.suppressed_findings()),
    }))
}

/// The fleet over time: one point per bucket and severity, each the fleet as of the end
/// of its bucket (values carry forward).
#[utoipa::path(get, path = "/analytics/vulnerabilities/trends", tag = "analytics",
    params(TrendParams),
    responses(
        (status = 200, body = TrendsResponse),
        (status = 400, description = "Bad parameter or too many buckets", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get_trends(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<TrendParams>,
) -> Result<Json<TrendsResponse>, ApiError> {
    let image = image_param(&p.image)?;
    let interval = match text_param("interval", &p.interval)?
        .map(|i| i.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("day") => Interval::Day,
        Some("week") => Interval::Week,
        Some(_) => return Err(ApiError::bad_param("interval", "must be 'day' or 'week'")),
    };
    let to = time_param("to", &p.to, DayEnd::End)?.unwrap_or_else(Utc::now);
    let from = match time_param("from", &p.from, DayEnd::Start)? {
        Some(f) => f,
        // The whole history, as the original service answered: from the first bucket that
        // holds an observation.
        None => app
            .store
            .analytics()
            .first_observation(image.as_deref())
            .await?
            .map(|first| from_micros(interval.bucket_start(first)))
            .map_or(to, |first| first.min(to)),
    };
    if from > to {
        return Err(ApiError::BadRequest(
            "query parameter 'from' must not be after 'to'".into(),
        ));
    }
    let buckets = interval.bucket_count(micros(from), micros(to));
    if buckets > MAX_BUCKETS {
        return Err(ApiError::bad_param(
            "from",
            format!(
                "gives {buckets} {}s up to 'to'; at most {MAX_BUCKETS} buckets per request: \
                 give a later 'from' (or an interval of a week)",
                interval.as_str()
            ),
        ));
    }
    let mode = suppressed_param(&p.suppressed)?;
    let points = triage::trend(
        &app.triage,
        &app.store,
        image.as_deref(),
        interval,
        micros(from),
        micros(to),
        mode,
    )
    .await?;
    let scope = FleetScope {
        image: image.clone(),
        ..Default::default()
    };
    let now_suppressed = app
        .triage
        .overlay(&app.store, &scope)
        .await?
        .map_or(0, |o| o.suppressed_findings());
    let mut views = Vec::with_capacity(points.len() * 5);
    let mut buckets = Vec::with_capacity(points.len());
    for pt in &points {
        let bucket = from_micros(pt.bucket);
        for sev in Severity::ALL {
            views.push(TrendPointView {
                bucket,
                severity: sev.as_str().to_string(),
                count: pt.summary.by_severity[sev.rank() as usize],
            });
        }
        buckets.push(TrendBucketView {
            bucket,
            images: pt.summary.images,
            total: pt.summary.total(),
            fixable: pt.summary.fixable,
        });
    }
    Ok(Json(TrendsResponse {
        image,
        interval: interval.as_str().to_string(),
        from,
        to,
        count: views.len(),
        points: views,
        buckets,
        suppressed: TrendSuppressedView {
            mode: mode_name(mode).into(),
            now: now_suppressed,
        },
    }))
}

/// Vulnerability ids by number of affected images, then severity, then id: one row per id.
#[utoipa::path(get, path = "/analytics/vulnerabilities/top-cves", tag = "analytics",
    params(TopCveParams),
    responses(
        (status = 200, body = TopCvesResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get_top_cves(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<TopCveParams>,
) -> Result<Json<TopCvesResponse>, ApiError> {
    let (scope, from, to) = scope_params(&p.image, &p.from, &p.to)?;
    let severity = severity_param(&p.severity)?;
    let limit = int_param("limit", &p.limit, TOP_CVES_DEFAULT, 1, TOP_CVES_MAX)?;
    let mode = suppressed_param(&p.suppressed)?;
    let by_risk_order = match text_param("order", &p.order)?
        .map(|o| o.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("images") => false,
        Some("risk") => true,
        Some(_) => return Err(ApiError::bad_param("order", "must be images or risk")),
    };
    let overlay = app.triage.overlay(&app.store, &scope).await?;
    // By risk: every vulnerability of the scope, ranked here.
    let fetch = if by_risk_order {
        i64::from(u32::MAX)
    } else {
        limit
    };
    let cves = triage::top_cves(
        &app.store,
        &scope,
        severity,
        fetch,
        mode,
        overlay.as_deref(),
    )
    .await?;
    let cves = if by_risk_order {
        by_risk(&app, cves, limit).await?
    } else {
        cves
    };
    Ok(Json(TopCvesResponse {
        image: scope.image.clone(),
        severity: severity.map(|s| s.as_str().to_string()),
        limit,
        from,
        to,
        count: cves.len(),
        cves: top_cve_views(&app, cves).await?,
        suppressed: overlay.map_or(0, |o| o.suppressed_findings()),
    }))
}

/// Every image reference whose latest scan has the vulnerability, with the package found.
#[utoipa::path(get, path = "/analytics/vulnerabilities/cve/{cve_id}/images", tag = "analytics",
    params(("cve_id" = String, Path, description = "Vulnerability id (CVE, GHSA, …)"), PageParams),
    responses(
        (status = 200, body = CveImagesResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get_cve_images(
    State(app): State<AppState>,
    ApiPath(cve_id): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Response, ApiError> {
    let cve_id = text_param("cve_id", &Some(cve_id))?
        .ok_or_else(|| ApiError::BadRequest("the vulnerability id is empty".into()))?;
    let limit = int_param("limit", &p.limit, PAGE_DEFAULT, 1, PAGE_MAX)?;
    let offset = int_param("offset", &p.offset, 0, 0, MAX_OFFSET)?;
    let workload = text_param("workload", &p.workload)?;
    let mode = suppressed_param(&p.suppressed)?;
    let filter = listing_filter(&app, mode).await?;
    if csv_format(&p.format)? {
        let store = app.store.clone();
        let cve = cve_id.clone();
        let fetch: PageFetch = Box::new(move |offset, limit| {
            let (store, cve, workload) = (store.clone(), cve.clone(), workload.clone());
            Box::pin(async move {
                Ok(match workload {
                    Some(workload) => {
                        let q = WorkloadQuery {
                            workload,
                            vulnerability: Some(cve),
                            fixable: false,
                            limit,
                            offset,
                            suppressed: filter,
                        };
                        store.analytics().workload_findings(&q).await?.0
                    }
                    None => {
                        store
                            .analytics()
                            .cve_images(&cve, limit, offset, filter)
                            .await?
                            .0
                    }
                })
            })
        });
        let limit = p.limit.as_ref().map(|_| limit);
        return Ok(csv_stream(
            &format!("{cve_id}-images.csv"),
            &CVE_IMAGES_CSV,
            cve_image_row,
            fetch,
            offset,
            limit,
        ));
    }
    let (rows, image_count, count, suppressed) = match workload {
        Some(workload) => {
            // Counted in SQL with the listing's own filter.
            let mut q = WorkloadQuery {
                workload,
                vulnerability: Some(cve_id.clone()),
                fixable: false,
                limit,
                offset,
                suppressed: filter,
            };
            let (rows, items, refs) = app.store.analytics().workload_findings(&q).await?;
            let suppressed = workload_suppressed(&app, &mut q).await?;
            (rows, refs, items, suppressed)
        }
        None => {
            // The maintained counts include every finding; the overlay says what the
            // suppressions take away, and when they leave nothing (or, with `only`, cover
            // nothing) there is nothing to page through.
            let split = app
                .triage
                .fleet_overlay(&app.store)
                .await?
                .and_then(|o| o.cves.get(&cve_id).cloned());
            let none_left = match (&split, mode) {
                (Some(s), SuppressedMode::Exclude) => s.kept[2..].iter().all(|n| *n == 0),
                (None, SuppressedMode::Only) => true,
                _ => false,
            };
            let (rows, refs) = if none_left {
                // The references the maintained count has (the overlay's): none is kept.
                (vec![], split.as_ref().map_or(0, |s| s.all[fleet::IMAGES]))
            } else {
                app.store
                    .analytics()
                    .cve_images(&cve_id, limit, offset, filter)
                    .await?
            };
            let whole_answer = offset == 0 && rows.len() as i64 <= limit;
            let raw_items = if whole_answer || mode == SuppressedMode::Only {
                0
            } else {
                app.store.analytics().cve_items(&cve_id).await?
            };
            let (images, items) = triage::cve_totals(split.as_ref(), refs, raw_items, mode);
            let items = if whole_answer {
                rows.len() as i64
            } else {
                items
            };
            let left_out = split.as_ref().map_or(0, |s| s.suppressed[2..].iter().sum());
            (rows, images, items, left_out)
        }
    };
    let mut rows = rows;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let scan_ids: Vec<String> = rows.iter().map(|f| f.scan_id.clone()).collect();
    let workloads = app.store.scans().workloads_of(&scan_ids).await?;
    let images: Vec<CveImageView> = rows
        .into_iter()
        .map(|f: FleetFinding| CveImageView {
            workloads: workloads
                .get(&f.scan_id)
                .map(|w| w.iter().map(super::scan_views::WorkloadView::of).collect())
                .unwrap_or_default(),
            image_name: f.image_name,
            image_tag: f.image_tag,
            pkg_name: f.pkg_name,
            pkg_version: f.pkg_version,
            fixed_version: f.fixed_version,
            severity: Severity::from_rank(f.severity).as_str().to_string(),
            scan_id: f.scan_id,
            scanned_at: from_micros(f.scanned_at),
        })
        .collect();
    let exploits = super::feeds::exploits(&app, [cve_id.clone()]).await?;
    let (kev, epss, epss_percentile) = super::feeds::exploit_views(exploits.get(&cve_id));
    Ok(Json(CveImagesResponse {
        cve_id,
        count,
        image_count,
        limit,
        offset,
        has_more,
        suppressed,
        kev,
        epss,
        epss_percentile,
        images,
    })
    .into_response())
}

/// Fixable and not fixable findings of the fleet, and the fixable ones, most severe first.
#[utoipa::path(get, path = "/analytics/vulnerabilities/fixable", tag = "analytics",
    params(FixableParams),
    responses(
        (status = 200, body = FixableResponse),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get_fixable(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<FixableParams>,
) -> Result<Response, ApiError> {
    let (scope, from, to) = scope_params(&p.image, &p.from, &p.to)?;
    let limit = int_param("limit", &p.limit, PAGE_DEFAULT, 1, PAGE_MAX)?;
    let offset = int_param("offset", &p.offset, 0, 0, MAX_OFFSET)?;
    let workload = text_param("workload", &p.workload)?;
    if workload.is_some() && !scope.is_whole_current_fleet() {
        return Err(ApiError::bad_param(
            "workload",
            "is about the current fleet and cannot be combined with image, from or to",
        ));
    }
    let mode = suppressed_param(&p.suppressed)?;
    let filter = listing_filter(&app, mode).await?;
    if csv_format(&p.format)? {
        let store = app.store.clone();
        let fetch: PageFetch = Box::new(move |offset, limit| {
            let (store, scope, workload) = (store.clone(), scope.clone(), workload.clone());
            Box::pin(async move {
                Ok(match workload {
                    Some(workload) => {
                        let q = WorkloadQuery {
                            workload,
                            vulnerability: None,
                            fixable: true,
                            limit,
                            offset,
                            suppressed: filter,
                        };
                        store.analytics().workload_findings(&q).await?.0
                    }
                    None => {
                        store
                            .analytics()
                            .fixable(&scope, limit, offset, filter)
                            .await?
                    }
                })
            })
        });
        let limit = p.limit.as_ref().map(|_| limit);
        return Ok(csv_stream(
            "fixable.csv",
            &FIXABLE_CSV,
            fixable_row,
            fetch,
            offset,
            limit,
        ));
    }
    let (mut rows, total, fixable, suppressed) = match workload {
        Some(workload) => {
            let mut q = WorkloadQuery {
                workload,
                vulnerability: None,
                fixable: true,
                limit,
                offset,
                suppressed: filter,
            };
            let (rows, fixable, _) = app.store.analytics().workload_findings(&q).await?;
            q.fixable = false;
            q.limit = 0;
            let (_, total, _) = app.store.analytics().workload_findings(&q).await?;
            let suppressed = workload_suppressed(&app, &mut q).await?;
            (rows, total, fixable, suppressed)
        }
        None => {
            let overlay = app.triage.overlay(&app.store, &scope).await?;
            let summary = triage::summary(&app.store, &scope, mode, overlay.as_deref()).await?;
            let rows = app
                .store
                .analytics()
                .fixable(&scope, limit, offset, filter)
                .await?;
            let suppressed = overlay.map_or(0, |o| o.suppressed_findings());
            (rows, summary.total(), summary.fixable, suppressed)
        }
    };
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let pct = if total == 0 {
        0.0
    } else {
        (fixable as f64 * 10000.0 / total as f64).round() / 100.0
    };
    let items: Vec<FixableItemView> = rows
        .into_iter()
        .map(|f| FixableItemView {
            cve_id: f.vulnerability_id,
            pkg_name: f.pkg_name,
            pkg_version: f.pkg_version,
            fixed_version: f.fixed_version.unwrap_or_default(),
            severity: Severity::from_rank(f.severity).as_str().to_string(),
            title: f.title,
            image_name: f.image_name,
            image_tag: f.image_tag,
            scan_id: f.scan_id,
        })
        .collect();
    Ok(Json(FixableResponse {
        image: scope.image.clone(),
        from,
        to,
        total_vulns: total,
        fixable,
        not_fixable: total - fixable,
        fixable_pct: pct,
        limit,
        offset,
        count: fixable,
        has_more,
        suppressed,
        fixable_items: items,
    })
    .into_response())
}
