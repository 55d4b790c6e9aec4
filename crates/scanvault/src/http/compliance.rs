//! `GET /compliance`: the compliance report (`crate::compliance_report`) as JSON, CSV or one
//! self-contained printable HTML page.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::params::{text_param, time_param, ApiQuery, DayEnd};
use super::suppressions::SuppressionView;
use super::AppState;
use crate::compliance_report::{self, Report, ReportQuery};
use crate::store::{from_micros, micros};
use scanvault_core::fleet::DAY_US;
use scanvault_core::image::familiar_name;

/// Longest window a report covers.
pub const MAX_WEEKS: i64 = 104;
/// The window without `from`.
pub const DEFAULT_WEEKS: i64 = 12;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_compliance))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ComplianceParams {
    /// RFC 3339 or a date (its start); default: 12 weeks before `to`. At most 104 weeks.
    pub from: Option<String>,
    /// RFC 3339 or a date (its end); default now.
    pub to: Option<String>,
    /// Only this image's references.
    pub image: Option<String>,
    /// `json` (default), `csv` or `html`.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ShareView {
    pub images: i64,
    pub compliant: i64,
    /// Percent, two decimals (100 with no image).
    pub compliant_share: f64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WeekView {
    /// Monday, UTC.
    pub week: DateTime<Utc>,
    #[serde(flatten)]
    pub share: ShareView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct RuleTallyView {
    pub policy: String,
    pub rule: String,
    /// Findings that fail the rule.
    pub findings: i64,
    /// Image references with at least one.
    pub images: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ReferenceViolationsView {
    pub image_name: String,
    pub image_tag: String,
    #[serde(rename = "ScanID")]
    pub scan_id: String,
    pub violations: Vec<super::policies::ViolationView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct FixView {
    /// CRITICAL … UNKNOWN (the finding's severity when first seen).
    pub severity: String,
    /// Findings fixed within the window.
    pub fixed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_days: Option<f64>,
    #[serde(rename = "P90Days", skip_serializing_if = "Option::is_none")]
    pub p90_days: Option<f64>,
}

/// The compliance report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ComplianceReport {
    pub generated_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The policies evaluated (`default` first); each applies to the images its `Images`
    /// match.
    pub policies: Vec<String>,
    /// Image references compliant with every policy that applies to them, as of `To`
    /// (findings active suppressions cover never violate).
    pub now: ShareView,
    /// The same at the end of each week from `From`.
    pub weekly: Vec<WeekView>,
    /// Violations as of `To`, by policy and rule.
    pub violations_by_rule: Vec<RuleTallyView>,
    /// Violations as of `To`, by image reference.
    pub violations_by_image: Vec<ReferenceViolationsView>,
    /// Active suppressions (of the image, when `image`), with reasons, owners and expiry.
    pub suppressions: Vec<SuppressionView>,
    /// Days from the first observation with a finding to the first without it, per
    /// severity, over the fixes made within the window.
    pub time_to_fix: Vec<FixView>,
}

fn share(s: &compliance_report::Share) -> ShareView {
    ShareView {
        images: s.images,
        compliant: s.compliant,
        compliant_share: s.percent(),
    }
}

impl ComplianceReport {
    fn of(r: &Report) -> ComplianceReport {
        let now = Utc::now();
        ComplianceReport {
            generated_at: now,
            from: from_micros(r.query.from),
            to: from_micros(r.query.to),
            image: r.query.image.clone(),
            policies: r.policies.clone(),
            now: share(&r.now),
            weekly: r
                .weekly
                .iter()
                .map(|(w, s)| WeekView {
                    week: from_micros(*w),
                    share: share(s),
                })
                .collect(),
            violations_by_rule: r
                .by_rule
                .iter()
                .map(|t| RuleTallyView {
                    policy: t.policy.clone(),
                    rule: t.rule.clone(),
                    findings: t.findings,
                    images: t.images,
                })
                .collect(),
            violations_by_image: r
                .violations
                .iter()
                .map(|v| ReferenceViolationsView {
                    image_name: v.image_name.clone(),
                    image_tag: v.image_tag.clone(),
                    scan_id: v.scan_id.clone(),
                    violations: v.violations.iter().cloned().map(Into::into).collect(),
                })
                .collect(),
            suppressions: r
                .suppressions
                .iter()
                .map(|s| SuppressionView::of(s, micros(now)))
                .collect(),
            time_to_fix: r
                .time_to_fix
                .iter()
                .map(|f| FixView {
                    severity: f.severity.as_str().to_string(),
                    fixed: f.fixed,
                    median_days: f.median_days,
                    p90_days: f.p90_days,
                })
                .collect(),
        }
    }
}

/// The compliance report `p` asks for.
pub async fn report(app: &AppState, p: &ComplianceParams) -> Result<ComplianceReport, ApiError> {
    build(app, query_of(p)?).await
}

/// What a report covers, from its parameters (a 400 for bad ones). Without `to`, the
/// report is as of now.
pub fn query_of(p: &ComplianceParams) -> Result<ReportQuery, ApiError> {
    let to = time_param("to", &p.to, DayEnd::End)?.unwrap_or_else(Utc::now);
    let from = time_param("from", &p.from, DayEnd::Start)?
        .unwrap_or(to - chrono::Duration::weeks(DEFAULT_WEEKS));
    if from > to {
        return Err(ApiError::BadRequest(
            "query parameter 'from' must not be after 'to'".into(),
        ));
    }
    if micros(to) - micros(from) > MAX_WEEKS * 7 * DAY_US {
        return Err(ApiError::bad_param(
            "from",
            format!("a report covers at most {MAX_WEEKS} weeks"),
        ));
    }
    let image = text_param("image", &p.image)?.map(|s| familiar_name(&s));
    Ok(ReportQuery {
        image,
        from: micros(from),
        to: micros(to),
    })
}

/// The report over `q` (the dashboard makes it in the background).
pub async fn build(app: &AppState, q: ReportQuery) -> Result<ComplianceReport, ApiError> {
    let stored = app
        .policies
        .get(&app.store)
        .await
        .map_err(ApiError::Internal)?;
    let report = compliance_report::build(&app.store, app.ingest.compliance_fail_on, &stored, q)
        .await
        .map_err(|e| match e.downcast::<crate::store::StoreError>() {
            Ok(e) => ApiError::from(e),
            Err(e) => ApiError::Internal(e),
        })?;
    Ok(ComplianceReport::of(&report))
}

/// The report an auditor asks for: the share of compliant images now and per week,
/// violations by policy, rule and image, active suppressions, time to fix per severity.
#[utoipa::path(get, path = "/compliance", tag = "policies", params(ComplianceParams),
    responses(
        (status = 200, body = ComplianceReport, description = "JSON; `format=csv`: one table with a `Section` column; `format=html`: one printable page"),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn get_compliance(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<ComplianceParams>,
) -> Result<Response, ApiError> {
    let format = text_param("format", &p.format)?.map(|f| f.to_ascii_lowercase());
    let format = match format.as_deref() {
        None | Some("json") => "json",
        Some("csv") => "csv",
        Some("html") => "html",
        Some(_) => return Err(ApiError::bad_param("format", "must be json, csv or html")),
    };
    let view = report(&app, &p).await?;
    Ok(match format {
        "csv" => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"compliance.csv\"",
                ),
            ],
            csv_of(&view).map_err(ApiError::Internal)?,
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html_of(&view).into_string(),
        )
            .into_response(),
        _ => Json(view).into_response(),
    })
}

const CSV_COLUMNS: [&str; 18] = [
    "Section",
    "Week",
    "Images",
    "Compliant",
    "CompliantShare",
    "Policy",
    "Rule",
    "Findings",
    "ImageName",
    "ImageTag",
    "VulnerabilityID",
    "Package",
    "Severity",
    "State",
    "Reason",
    "Owner",
    "ExpiresAt",
    "Days",
];

/// One table: each row's `Section` says which columns it fills (`now`, `week`, `rule`,
/// `violation`, `suppression`, `time_to_fix`: `Days` is the median, `Findings` the fixes, with
/// the 90th percentile in a `time_to_fix_p90` row).
fn csv_of(r: &ComplianceReport) -> Result<Vec<u8>, anyhow::Error> {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(CSV_COLUMNS)?;
    let mut row = |cells: &[(&str, String)]| -> Result<(), csv::Error> {
        let rec: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|c| {
                cells
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
        w.write_record(rec)
    };
    let share = |s: &ShareView| {
        vec![
            ("Images", s.images.to_string()),
            ("Compliant", s.compliant.to_string()),
            ("CompliantShare", s.compliant_share.to_string()),
        ]
    };
    let mut now = vec![("Section", "now".to_string()), ("Week", r.to.to_rfc3339())];
    now.extend(share(&r.now));
    row(&now)?;
    for wk in &r.weekly {
        let mut cells = vec![
            ("Section", "week".to_string()),
            ("Week", wk.week.to_rfc3339()),
        ];
        cells.extend(share(&wk.share));
        row(&cells)?;
    }
    for t in &r.violations_by_rule {
        row(&[
            ("Section", "rule".into()),
            ("Policy", t.policy.clone()),
            ("Rule", t.rule.clone()),
            ("Findings", t.findings.to_string()),
            ("Images", t.images.to_string()),
        ])?;
    }
    for v in &r.violations_by_image {
        for x in &v.violations {
            row(&[
                ("Section", "violation".into()),
                ("ImageName", v.image_name.clone()),
                ("ImageTag", v.image_tag.clone()),
                ("Policy", x.policy.clone()),
                ("Rule", x.rule.clone()),
                ("VulnerabilityID", x.vulnerability_id.clone()),
                ("Package", x.package.clone()),
                ("Severity", x.severity.clone()),
            ])?;
        }
    }
    for s in &r.suppressions {
        row(&[
            ("Section", "suppression".into()),
            ("VulnerabilityID", s.vulnerability_id.clone()),
            ("Package", s.package.clone().unwrap_or_default()),
            ("ImageName", s.image.clone().unwrap_or_default()),
            ("State", s.state.clone()),
            ("Reason", s.reason.clone()),
            ("Owner", s.created_by.clone().unwrap_or_default()),
            (
                "ExpiresAt",
                s.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            ),
        ])?;
    }
    for f in &r.time_to_fix {
        let days = |d: Option<f64>| d.map(|d| d.to_string()).unwrap_or_default();
        row(&[
            ("Section", "time_to_fix".into()),
            ("Severity", f.severity.clone()),
            ("Findings", f.fixed.to_string()),
            ("Days", days(f.median_days)),
        ])?;
        row(&[
            ("Section", "time_to_fix_p90".into()),
            ("Severity", f.severity.clone()),
            ("Findings", f.fixed.to_string()),
            ("Days", days(f.p90_days)),
        ])?;
    }
    Ok(w.into_inner()?)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;color:#111;margin:2rem auto;max-width:60rem;padding:0 1rem}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #999}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #bbb;padding:.25rem .4rem;text-align:left;vertical-align:top}\
th{background:#eee}td.n{text-align:right}.big{font-size:2rem;font-weight:600}.muted{color:#444}\
svg text{font-size:10px;fill:#111}@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}}";

fn date(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn days(d: Option<f64>) -> String {
    d.map_or_else(|| "–".into(), |d| format!("{d:.1}"))
}

/// The weekly share as an inline SVG bar chart (no external assets).
fn chart(weeks: &[WeekView]) -> Markup {
    let (w, h, pad) = (640.0, 160.0, 24.0);
    let n = weeks.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    html! {
        svg role="img" aria-label="Compliant share per week" width=(w) height=(h + 20.0)
            viewBox=(format!("0 0 {w} {}", h + 20.0)) xmlns="http://www.w3.org/2000/svg" {
            line x1=(pad) y1=(h) x2=(w - pad) y2=(h) stroke="#111" {}
            @for (i, wk) in weeks.iter().enumerate() {
                @let bh = (h - pad) * wk.share.compliant_share / 100.0;
                @let x = pad + i as f64 * bw;
                rect x=(x + 1.0) y=(h - bh) width=((bw - 2.0).max(1.0)) height=(bh) fill="#2b6cb0" {
                    title { (date(&wk.week)) ": " (wk.share.compliant_share) " %" }
                }
                @if weeks.len() <= 16 || i % 4 == 0 {
                    text x=(x + 1.0) y=(h + 12.0) { (wk.week.format("%m-%d").to_string()) }
                }
            }
            text x="0" y=(pad - 4.0) { "100 %" }
        }
    }
}

fn html_of(r: &ComplianceReport) -> Markup {
    let scope = r.image.clone().unwrap_or_else(|| "every image".into());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Compliance report — " (scope) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Compliance report" }
                (report_body(r, None, html! {}))
            }
        }
    }
}

/// The report's sections (the dashboard's compliance page shows them too).
///
/// With `most`, the violations by image stop after that many rows and a `full` line (links to
/// the whole report) says how many there are.
pub fn report_body(r: &ComplianceReport, most: Option<usize>, full: Markup) -> Markup {
    let scope = r.image.clone().unwrap_or_else(|| "every image".into());
    let all: usize = r
        .violations_by_image
        .iter()
        .map(|v| v.violations.len())
        .sum();
    let shown = most.unwrap_or(usize::MAX).min(all);
    let rows = r
        .violations_by_image
        .iter()
        .flat_map(|v| v.violations.iter().map(move |x| (v, x)))
        .take(shown);
    html! {
                p.muted {
                    (scope) ", " (date(&r.from)) " to " (date(&r.to)) ". Generated "
                    (r.generated_at.format("%Y-%m-%d %H:%M UTC").to_string()) ". Policies: "
                    (r.policies.join(", ")) "."
                }
                h2 { "Compliant images" }
                p {
                    span.big { (r.now.compliant_share) " %" }
                    " — " (r.now.compliant) " of " (r.now.images) " image references compliant with every policy that applies to them (suppressed findings never violate)."
                }
                (chart(&r.weekly))
                table {
                    thead { tr { th { "Week of" } th { "Images" } th { "Compliant" } th { "Share" } } }
                    tbody {
                        @for wk in &r.weekly {
                            tr { td { (date(&wk.week)) } td.n { (wk.share.images) } td.n { (wk.share.compliant) } td.n { (wk.share.compliant_share) " %" } }
                        }
                    }
                }
                h2 { "Violations by policy and rule" }
                @if r.violations_by_rule.is_empty() { p { "None." } } @else {
                    table {
                        thead { tr { th { "Policy" } th { "Rule" } th { "Findings" } th { "Images" } } }
                        tbody {
                            @for t in &r.violations_by_rule {
                                tr { td { (t.policy) } td { (t.rule) } td.n { (t.findings) } td.n { (t.images) } }
                            }
                        }
                    }
                }
                h2 { "Violations by image" }
                @if r.violations_by_image.is_empty() { p { "None." } } @else {
                    table {
                        thead { tr { th { "Image" } th { "Policy" } th { "Rule" } th { "Vulnerability" } th { "Package" } th { "Severity" } } }
                        tbody {
                            @for (v, x) in rows {
                                tr {
                                    td { (v.image_name) ":" (v.image_tag) }
                                    td { (x.policy) } td { (x.rule) } td { (x.vulnerability_id) }
                                    td { (x.package) } td { (x.severity) }
                                }
                            }
                        }
                    }
                    @if shown < all {
                        p { "The first " (shown) " of " (all) " violations. " (full) }
                    }
                }
                h2 { "Active suppressions" }
                @if r.suppressions.is_empty() { p { "None." } } @else {
                    table {
                        thead { tr { th { "Vulnerability" } th { "Package" } th { "Images" } th { "State" } th { "Reason" } th { "Owner" } th { "Expires" } } }
                        tbody {
                            @for s in &r.suppressions {
                                tr {
                                    td { (s.vulnerability_id) }
                                    td { (s.package.clone().unwrap_or_else(|| "any".into())) }
                                    td { (s.image.clone().unwrap_or_else(|| "every image".into())) }
                                    td { (s.state) } td { (s.reason) }
                                    td { (s.created_by.clone().unwrap_or_else(|| "–".into())) }
                                    td { (s.expires_at.as_ref().map_or_else(|| "never".into(), date)) }
                                }
                            }
                        }
                    }
                }
                h2 { "Time to fix" }
                p.muted { "Days from the first observation of an image reference with a finding to the first without it, for the fixes made in the period." }
                table {
                    thead { tr { th { "Severity" } th { "Fixed" } th { "Median (days)" } th { "90th percentile (days)" } } }
                    tbody {
                        @for f in &r.time_to_fix {
                            tr { td { (f.severity) } td.n { (f.fixed) } td.n { (days(f.median_days)) } td.n { (days(f.p90_days)) } }
                        }
                    }
                }
    }
}
