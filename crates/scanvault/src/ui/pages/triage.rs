//! Suppressions, policies and the compliance report.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::view::{csrf, cve_link, items, page, st, when};
use super::super::{urlencode, PageError, PageResult, Session};
use super::cve::suppression_form;
use super::{given, query, severities};
use crate::http::compliance::{ComplianceParams, ComplianceReport};
use crate::http::AppState;
use chrono::{DateTime, Utc};
use std::sync::Arc;

#[derive(Deserialize)]
pub struct SuppressionsParams {
    all: Option<String>,
}

pub async fn suppressions(s: Session, Query(p): Query<SuppressionsParams>) -> PageResult {
    let all = given(&p.all) == Some("yes");
    let list = s
        .get(if all {
            "/suppressions?active=false"
        } else {
            "/suppressions"
        })
        .await?;
    let may_change = s.may(Method::POST, "/suppressions");
    let content = html! {
        p.tabs {
            @if all { a href="/ui/suppressions" { "active" } " · " strong { "all, expired and deleted included" } }
            @else { strong { "active" } " · " a href="/ui/suppressions?all=yes" { "all, expired and deleted included" } }
        }
        table.wide {
            thead { tr { th scope="col" { "Vulnerability" } th scope="col" { "Package" } th scope="col" { "Images" } th scope="col" { "Decision" } th scope="col" { "Reason" } th scope="col" { "By" } th scope="col" { "Expires" } th scope="col" { "Source" } @if may_change { th scope="col" { span.visually-hidden { "Actions" } } } } }
            tbody {
                @for x in items(&list) {
                    tr {
                        td { (cve_link(st(x, "VulnerabilityID"))) }
                        td { (x["Package"].as_str().unwrap_or("any")) }
                        td { (x["Image"].as_str().unwrap_or("every image")) }
                        td { (st(x, "State")) @if x["Active"].as_bool() == Some(false) { " (inactive)" } }
                        td { (st(x, "Reason")) }
                        td { (st(x, "CreatedBy")) }
                        td { (x["ExpiresAt"].as_str().map_or("never".to_string(), when)) }
                        td { (st(x, "Source")) }
                        @if may_change {
                            td {
                                @if x["Active"].as_bool() == Some(true) {
                                    form method="post" action=(format!("/ui/suppressions/{}/delete", st(x, "ID"))) {
                                        (csrf(&s)) button.danger type="submit" aria-label=(format!("Lift the suppression of {}", st(x, "VulnerabilityID"))) { "Lift" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_change {
            h2 { "New suppression" }
            (suppression_form(&s, "", "/ui/suppressions"))
        }
    };
    Ok(page(&s, "Suppressions", "Suppressions", content))
}

#[derive(Deserialize)]
pub struct SuppressionForm {
    csrf: String,
    back: Option<String>,
    vulnerability: String,
    package: Option<String>,
    image: Option<String>,
    state: String,
    reason: String,
    expires: Option<String>,
}

pub async fn create_suppression(
    s: Session,
    Form(f): Form<SuppressionForm>,
) -> Result<Response, PageError> {
    s.check_csrf(&f.csrf)?;
    let expires = match given(&f.expires) {
        None => None,
        Some(d) => Some(
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| {
                    PageError::new(
                        StatusCode::BAD_REQUEST,
                        "The expiry must be a date (YYYY-MM-DD).",
                    )
                })?
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().to_rfc3339())
                .unwrap_or_default(),
        ),
    };
    let mut body = json!({
        "VulnerabilityID": f.vulnerability.trim(),
        "State": f.state,
        "Reason": f.reason,
    });
    if let Some(p) = given(&f.package) {
        body["Package"] = p.into();
    }
    if let Some(i) = given(&f.image) {
        body["Image"] = i.into();
    }
    if let Some(e) = expires {
        body["ExpiresAt"] = e.into();
    }
    s.send(Method::POST, "/suppressions", Some(&body)).await?;
    Ok(Redirect::to(&super::super::safe_next(f.back.as_deref())).into_response())
}

pub async fn delete_suppression(
    s: Session,
    Path(id): Path<String>,
    Form(f): Form<super::super::CsrfForm>,
) -> Result<Response, PageError> {
    s.check_csrf(&f.csrf)?;
    s.send(
        Method::DELETE,
        &format!("/suppressions/{}", urlencode(&id)),
        None,
    )
    .await?;
    Ok(Redirect::to("/ui/suppressions").into_response())
}

pub async fn policies(s: Session) -> PageResult {
    let list = s.get("/policies").await?;
    let may_change = s.may(Method::PUT, "/policies/x");
    let content = html! {
        table.wide {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Images" } th scope="col" { "Rules" } th scope="col" { "Description" } th scope="col" { "Updated" } @if may_change { th scope="col" { span.visually-hidden { "Actions" } } } } }
            tbody {
                @for x in items(&list) {
                    tr {
                        td { (st(x, "Name")) @if x["Builtin"].as_bool() == Some(true) { " (built in)" } }
                        td { @let imgs: Vec<&str> = x["Images"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                             @if imgs.is_empty() { "every image" } @else { (imgs.join(", ")) } }
                        td { code { (x["Rules"].to_string()) } }
                        td { (st(x, "Description")) }
                        td { (x["UpdatedAt"].as_str().map(when).unwrap_or_default()) }
                        @if may_change {
                            td { @if x["Builtin"].as_bool() != Some(true) {
                                form method="post" action=(format!("/ui/policies/{}/delete", urlencode(st(x, "Name")))) {
                                    (csrf(&s)) button.danger type="submit" aria-label=(format!("Delete the policy {}", st(x, "Name"))) { "Delete" }
                                }
                            } }
                        }
                    }
                }
            }
        }
        @if may_change {
            h2 { "Create or replace a policy" }
            form.stacked method="post" action="/ui/policies" {
                (csrf(&s))
                label for="p-name" { "Name" }
                input #p-name type="text" name="name" required pattern="[A-Za-z0-9_.-]+";
                label for="p-desc" { "Description" }
                input #p-desc type="text" name="description";
                label for="p-images" { "Images (comma-separated globs; empty: every image)" }
                input #p-images type="text" name="images";
                label for="p-sev" { "Fail on findings at or above" }
                select #p-sev name="max_severity" {
                    option value="" { "no severity rule" }
                    @for sev in severities() { option value=(sev) { (sev) } }
                }
                label for="p-cvss" { "Fail on CVSS at least (empty: no rule)" }
                input #p-cvss type="number" name="min_cvss" step="0.1" min="0" max="10";
                label for="p-days" { "Fail when a fix has been available for days (empty: no rule)" }
                input #p-days type="number" name="fix_days" min="0";
                label for="p-epss" { "Fail on EPSS at least (0–1; empty: no rule)" }
                input #p-epss type="number" name="min_epss" step="0.01" min="0" max="1";
                label { input type="checkbox" name="fixable_only" value="true"; " Only findings with a fix count" }
                label { input type="checkbox" name="kev" value="true"; " Fail on known exploited (KEV)" }
                button type="submit" { "Save" }
            }
        }
    };
    Ok(page(&s, "Policies", "Policies", content))
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    name: String,
    description: Option<String>,
    images: Option<String>,
    max_severity: Option<String>,
    min_cvss: Option<String>,
    fix_days: Option<String>,
    min_epss: Option<String>,
    fixable_only: Option<String>,
    kev: Option<String>,
}

fn number(field: &str, v: &Option<String>) -> Result<Option<f64>, PageError> {
    given(v)
        .map(|x| {
            x.parse::<f64>().map_err(|_| {
                PageError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{field} must be a number."),
                )
            })
        })
        .transpose()
}

pub async fn put_policy(s: Session, Form(f): Form<PolicyForm>) -> Result<Response, PageError> {
    s.check_csrf(&f.csrf)?;
    let mut rules = json!({});
    if let Some(sev) = given(&f.max_severity) {
        rules["MaxSeverity"] = sev.into();
    }
    if let Some(v) = number("CVSS", &f.min_cvss)? {
        rules["MinCVSS"] = v.into();
    }
    if let Some(v) = number("Days", &f.fix_days)? {
        rules["FixAvailableForDays"] = (v as i64).into();
    }
    if let Some(v) = number("EPSS", &f.min_epss)? {
        rules["MinEPSS"] = v.into();
    }
    if f.fixable_only.is_some() {
        rules["FixableOnly"] = true.into();
    }
    if f.kev.is_some() {
        rules["KEV"] = true.into();
    }
    let images: Vec<&str> = given(&f.images)
        .map(|i| {
            i.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let body = json!({
        "Description": given(&f.description).unwrap_or(""),
        "Images": images,
        "Rules": rules,
    });
    s.send(
        Method::PUT,
        &format!("/policies/{}", urlencode(f.name.trim())),
        Some(&body),
    )
    .await?;
    Ok(Redirect::to("/ui/policies").into_response())
}

pub async fn delete_policy(
    s: Session,
    Path(name): Path<String>,
    Form(f): Form<super::super::CsrfForm>,
) -> Result<Response, PageError> {
    s.check_csrf(&f.csrf)?;
    s.send(
        Method::DELETE,
        &format!("/policies/{}", urlencode(&name)),
        None,
    )
    .await?;
    Ok(Redirect::to("/ui/policies").into_response())
}

pub async fn compliance(
    s: Session,
    State(app): State<AppState>,
    Query(p): Query<ComplianceParams>,
) -> PageResult {
    if !s.may(Method::GET, "/compliance") {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This key's role may not read the compliance report.",
        ));
    }
    let report = compliance_report(&s, &app, &p).await?;
    let params = query(&[
        ("from", given(&p.from)),
        ("to", given(&p.to)),
        ("image", given(&p.image)),
    ]);
    let content = html! {
        form.inline method="get" action="/ui/compliance" {
            label for="c-from" { "From" }
            input #c-from type="date" name="from" value=(given(&p.from).unwrap_or(""));
            label for="c-to" { "To" }
            input #c-to type="date" name="to" value=(given(&p.to).unwrap_or(""));
            label for="c-image" { "Image" }
            input #c-image type="text" name="image" value=(given(&p.image).unwrap_or(""));
            button type="submit" { "Show" }
        }
        @match report {
            Some((r, _)) => div.report { (crate::http::compliance::report_body(&r, Some(VIOLATION_ROWS), html! {
                "The whole report: "
                a href=(format!("/ui/download/compliance?format=csv&{params}")) download { "CSV" } " · "
                a href=(format!("/ui/download/compliance?format=html&{params}")) download { "printable HTML" } "."
            })) },
            None => p role="status" {
                "The report is being made: it reads the whole fleet's history, which takes a while on a large fleet. "
                a href=(format!("/ui/compliance?{params}")) { "Reload" }
                " in a few seconds."
            },
        }
    };
    Ok(page(&s, "Compliance", "Compliance", content))
}

/// Violations by image shown on the page (the downloads have them all).
const VIOLATION_ROWS: usize = 200;

/// How old a compliance report on the dashboard may get before a newer one is made.
const COMPLIANCE_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The compliance report `p` asks for, as last made (at most [`COMPLIANCE_TTL`] old) and
/// when; `None` while the first one is being made. Bad parameters are the page's error.
pub(super) async fn compliance_report(
    s: &Session,
    app: &AppState,
    p: &ComplianceParams,
) -> Result<Option<(Arc<ComplianceReport>, DateTime<Utc>)>, PageError> {
    let q = crate::http::compliance::query_of(p).map_err(|e| {
        let message = e.to_string();
        PageError::new(e.into_response().status(), message)
    })?;
    // Keyed by the parameters as given: without `to` the report is as of when it is made.
    let key = format!("{:?}|{:?}|{:?}", given(&p.from), given(&p.to), q.image);
    let app = app.clone();
    Ok(s.ui
        .compliance
        .get(&key, COMPLIANCE_TTL, async move {
            match crate::http::compliance::build(&app, q).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "the dashboard's compliance report");
                    None
                }
            }
        })
        .await)
}
