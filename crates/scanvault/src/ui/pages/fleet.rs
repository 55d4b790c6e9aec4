//! The fleet page and the search box.

use axum::extract::Query;
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
use super::super::{urlencode, PageResult, Session};
use super::{given, query, severity_series};

#[derive(Deserialize)]
pub struct FleetParams {
    interval: Option<String>,
    from: Option<String>,
    to: Option<String>,
    order: Option<String>,
}

pub async fn fleet(s: Session, Query(p): Query<FleetParams>) -> PageResult {
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
        s.get(&top_path),
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
    let compliant = compliant_share(&s);
    let content = html! {
        section.stats aria-label="The fleet now" {
            (stat("Images", count(images), Some("image references".into())))
            (stat("Findings", count(findings), Some(format!("{} suppressed", count(int(&summary, "Suppressed"))))))
            @for sev in ["CRITICAL", "HIGH"] {
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

/// The compliant share now, from the compliance report, when this session may read it.
/// The report reads every image's findings (seconds on a large fleet), so the page shows
/// the last one made, at most [`COMPLIANT_SHARE_TTL`] old, and a newer one is made in the
/// background; never does the page wait for it.
fn compliant_share(s: &Session) -> (String, Option<String>) {
    if !s.may(Method::GET, "/compliance") {
        return ("–".into(), None);
    }
    let (cached, start) = s.ui.compliant_share.read(COMPLIANT_SHARE_TTL);
    if start {
        let s = s.clone();
        tokio::spawn(async move {
            let today = Utc::now().date_naive().to_string();
            let made = match s.get(&format!("/compliance?from={today}")).await {
                Ok(r) => {
                    let now = &r["Now"];
                    Some((
                        num(now, "CompliantShare").map_or("–".into(), |v| format!("{v:.1} %")),
                        format!(
                            "{} of {} images",
                            count(int(now, "Compliant")),
                            count(int(now, "Images"))
                        ),
                    ))
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "the dashboard's compliant share");
                    None
                }
            };
            s.ui.compliant_share.made(made);
        });
    }
    match cached {
        Some((value, note, at)) => (
            value,
            Some(format!("{note}, as of {}", at.format("%H:%M UTC"))),
        ),
        None => (
            "…".into(),
            Some("being computed; reload in a moment".into()),
        ),
    }
}

/// How old the compliant share on the fleet page may get before a newer one is made.
const COMPLIANT_SHARE_TTL: std::time::Duration = std::time::Duration::from_secs(300);

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
