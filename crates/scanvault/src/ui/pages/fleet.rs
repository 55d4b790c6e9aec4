//! The fleet page and the search box.

use axum::extract::{Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::chart::lines;
use super::super::view::{
    count, cve_link, image_link, int, items, num, page, severity, share, st, stat, when,
};
use super::super::{urlencode, PageError, PageResult, Session};
use super::{given, query, severity_series};
use crate::http::AppState;

#[derive(Deserialize)]
pub struct FleetParams {
    interval: Option<String>,
    from: Option<String>,
    to: Option<String>,
    order: Option<String>,
}

pub async fn fleet(
    s: Session,
    State(app): State<AppState>,
    Query(p): Query<FleetParams>,
) -> PageResult {
    let interval = match given(&p.interval) {
        Some("week") => "week",
        _ => "day",
    };
    let today = Utc::now().date_naive();
    let default_from = if interval == "week" {
        today - Duration::weeks(26)
    } else {
        today - Duration::days(30)
    };
    let from = given(&p.from)
        .map(str::to_string)
        .unwrap_or_else(|| default_from.to_string());
    let to = given(&p.to)
        .map(str::to_string)
        .unwrap_or_else(|| today.to_string());
    let order = match given(&p.order) {
        Some("risk") => "risk",
        _ => "images",
    };
    let trends_path = format!(
        "/analytics/vulnerabilities/trends?{}",
        query(&[
            ("interval", Some(interval)),
            ("from", Some(&from)),
            ("to", Some(&to))
        ])
    );
    let top_path = format!("/analytics/vulnerabilities/top-cves?limit=10&order={order}");
    let (summary, trends, top, recent, failed) = tokio::try_join!(
        s.get("/analytics/vulnerabilities/summary"),
        // A range the API refuses (too many buckets, `from` after `to`) is said in place.
        async {
            match s.get(&trends_path).await {
                Err(e) if e.status.is_client_error() => Ok(json!({ "error": e.message })),
                other => other,
            }
        },
        top_cves(&s, &top_path, order == "risk"),
        s.get("/scans/all?limit=8&include=summary"),
        s.get("/scan-jobs?status=failed&limit=8"),
    )?;
    let images = int(&summary, "TotalScans");
    let findings = int(&summary, "TotalVulnerabilities");
    let fixable = int(&summary, "Fixable");
    let by_sev = |sev: &str| {
        summary["SeverityCounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| st(c, "Severity") == sev)
            .map_or(0, |c| int(c, "Count"))
    };
    let compliant = compliant_share(&s, &app).await;
    let content = html! {
        section.stats aria-label="The fleet now" {
            (stat("Images", count(images), Some("image references".into())))
            (stat("Findings", count(findings), Some(format!("{} suppressed", count(int(&summary, "Suppressed"))))))
            @for sev in ["CRITICAL", "HIGH", "MEDIUM", "LOW"] {
                (stat(&format!("{}{}", &sev[..1], sev[1..].to_ascii_lowercase()), count(by_sev(sev)), None))
            }
            (stat("Fixable", share(fixable, findings), Some(format!("{} findings have a fix", count(fixable)))))
            (stat("Compliant", compliant.0, compliant.1))
        }
        section aria-labelledby="trend-h" {
            h2 #trend-h { "Findings over time" }
            form.inline method="get" action="/ui/" {
                label for="interval" { "Interval" }
                select #interval name="interval" {
                    option value="day" selected[interval == "day"] { "Day" }
                    option value="week" selected[interval == "week"] { "Week" }
                }
                label for="from" { "From" }
                input #from type="date" name="from" value=(from);
                label for="to" { "To" }
                input #to type="date" name="to" value=(to);
                input type="hidden" name="order" value=(order);
                button type="submit" { "Show" }
            }
            (trend_chart(&trends))
        }
        div.columns {
            section aria-labelledby="top-h" {
                h2 #top-h { "Top vulnerabilities" }
                p.tabs {
                    "Ranked by "
                    @if order == "images" { strong { "images" } } @else { a href=(format!("/ui/?order=images&interval={interval}&from={from}&to={to}")) { "images" } }
                    " · "
                    @if order == "risk" { strong { "risk" } } @else { a href=(format!("/ui/?order=risk&interval={interval}&from={from}&to={to}")) { "risk" } }
                    @if let Some(at) = top.get("MadeAt").and_then(Value::as_str) { " (as of " (at) ")" }
                }
                table {
                    thead { tr { th scope="col" { "Vulnerability" } th scope="col" { "Severity" } th.n scope="col" { "Images" } th.n scope="col" { "Risk" } th scope="col" { "Fix" } } }
                    tbody {
                        @for c in top["CVEs"].as_array().into_iter().flatten() {
                            tr {
                                td { (cve_link(st(c, "CVEID"))) }
                                td { (severity(st(c, "Severity"))) }
                                td.n { (count(int(c, "ImageCount"))) }
                                td.n { (num(c, "RiskScore").map_or("–".into(), |r| format!("{r:.0}"))) }
                                td { @if c["Fixable"].as_bool() == Some(true) { "yes" } @else { "no" } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="recent-h" {
                h2 #recent-h { "Recent scans" }
                table {
                    thead { tr { th scope="col" { "Image" } th scope="col" { "Scanned" } th.n scope="col" { "Critical" } th.n scope="col" { "High" } } }
                    tbody {
                        @for r in items(&recent) {
                            tr {
                                td { (image_link(st(r, "ImageName"), st(r, "ImageTag"))) }
                                td { (when(st(r, "ScannedAt"))) }
                                td.n { (int(r, "VulnCritical")) }
                                td.n { (int(r, "VulnHigh")) }
                            }
                        }
                    }
                }
                h2 { "Failed jobs" }
                @if items(&failed).is_empty() { p.muted { "None." } } @else {
                    table {
                        thead { tr { th scope="col" { "Image" } th scope="col" { "When" } th scope="col" { "Error" } } }
                        tbody {
                            @for j in items(&failed) {
                                tr {
                                    td { a href=(format!("/ui/jobs/{}", st(j, "ID"))) { (st(j, "Image")) } }
                                    td { (when(st(j, "UpdatedAt"))) }
                                    td { (st(j, "ErrorMessage")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&s, "Fleet", "Fleet", content))
}

/// The top vulnerabilities. Ranked by risk, the API ranks every vulnerability of the fleet
/// (tens of milliseconds at 10k images): that ranking is the last one made, at most
/// [`RANKING_TTL`] old, and the page says when it was made.
async fn top_cves(s: &Session, path: &str, by_risk: bool) -> Result<Value, PageError> {
    if !by_risk {
        return s.get(path).await;
    }
    // The ranking is the same for every role that may read it.
    if !s.may(Method::GET, path) {
        return s.get(path).await;
    }
    let (maker, p) = (s.clone(), path.to_string());
    let made =
        s.ui.rankings
            .get(path, RANKING_TTL, async move { maker.get(&p).await.ok() })
            .await;
    match made {
        Some((v, at)) => {
            let mut v = (*v).clone();
            v["MadeAt"] = at.format("%H:%M:%S UTC").to_string().into();
            Ok(v)
        }
        // Making it failed or takes long: ask now, as the API answers.
        None => s.get(path).await,
    }
}

/// How old a ranking of the whole fleet on the fleet page may get.
const RANKING_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The compliant share now, from the compliance report (the compliance page's default one),
/// when this session may read it. The report reads every image's findings (seconds on a
/// large fleet), so the page shows the last one made, at most [`COMPLIANCE_TTL`] old, while
/// a newer one is made in the background.
async fn compliant_share(s: &Session, app: &AppState) -> (String, Option<String>) {
    if !s.may(Method::GET, "/compliance") {
        return ("–".into(), None);
    }
    match super::triage::compliance_report(s, app, &Default::default()).await {
        Ok(Some((r, at))) => (
            format!("{:.1} %", r.now.compliant_share),
            Some(format!(
                "{} of {} images, as of {}",
                count(r.now.compliant),
                count(r.now.images),
                at.format("%H:%M UTC")
            )),
        ),
        Ok(None) => (
            "…".into(),
            Some("being computed; reload in a moment".into()),
        ),
        Err(e) => ("–".into(), Some(e.message)),
    }
}

fn trend_chart(trends: &Value) -> Markup {
    if let Some(e) = trends.get("error").and_then(Value::as_str) {
        return html! { p.error role="alert" { (e) } };
    }
    let points = trends["Points"].as_array().map_or(&[][..], Vec::as_slice);
    let mut buckets: Vec<&str> = points.iter().map(|p| st(p, "Bucket")).collect();
    buckets.dedup();
    let mut series = severity_series();
    for s in &mut series {
        s.values = vec![0.0; buckets.len()];
    }
    for p in points {
        let Some(i) = buckets.iter().position(|b| *b == st(p, "Bucket")) else {
            continue;
        };
        let k = match st(p, "Severity") {
            "CRITICAL" => 0,
            "HIGH" => 1,
            "MEDIUM" => 2,
            "LOW" => 3,
            _ => continue,
        };
        series[k].values[i] = int(p, "Count") as f64;
    }
    let xs: Vec<String> = buckets
        .iter()
        .map(|b| b.get(..10).unwrap_or(b).to_string())
        .collect();
    if xs.is_empty() {
        return html! { p.muted { "No data in this range." } };
    }
    lines("Findings in the fleet by severity", &xs, &series)
}

/// `GET /ui/search?q=`: a vulnerability id opens its page, anything else the images.
#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
}

pub async fn search(_s: Session, Query(p): Query<SearchParams>) -> Response {
    let q = given(&p.q).unwrap_or_default();
    let upper = q.to_ascii_uppercase();
    let looks_like_vuln = [
        "CVE-", "GHSA-", "GO-", "RUSTSEC-", "OSV-", "PYSEC-", "DSA-", "ALAS",
    ]
    .iter()
    .any(|p| upper.starts_with(p));
    if looks_like_vuln {
        let id = if upper.starts_with("GHSA-") {
            q.to_string()
        } else {
            upper
        };
        Redirect::to(&format!("/ui/cve/{}", urlencode(&id))).into_response()
    } else {
        Redirect::to(&format!("/ui/images?image={}", urlencode(q))).into_response()
    }
}
