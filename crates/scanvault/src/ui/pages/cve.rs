//! A vulnerability's page: what it is, where it is, suppress it.

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::super::view::{
    count, csrf, image_link, int, num, page, pager, severity, st, stat, when,
};
use super::super::{urlencode, PageResult, Session};
use super::given;

#[derive(Deserialize)]
pub struct CveParams {
    offset: Option<String>,
}

const CVE_PAGE: i64 = 50;

pub async fn cve(s: Session, Path(id): Path<String>, Query(p): Query<CveParams>) -> PageResult {
    let offset: i64 = given(&p.offset)
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
        .max(0);
    let enc = urlencode(&id);
    let images_path =
        format!("/analytics/vulnerabilities/cve/{enc}/images?limit={CVE_PAGE}&offset={offset}");
    let (details, images) = tokio::try_join!(
        async {
            match s.get(&format!("/vulnerabilities/{enc}")).await {
                Err(e) if e.status == StatusCode::NOT_FOUND => Ok(Value::Null),
                other => other,
            }
        },
        s.get(&images_path),
    )?;
    let list = images["Images"].as_array().map_or(&[][..], Vec::as_slice);
    let with_fix = list
        .iter()
        .filter(|i| i["FixedVersion"].is_string())
        .count();
    let may_suppress = s.may(Method::POST, "/suppressions");
    let refs = details["References"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let content = html! {
        @if details.is_null() {
            p.muted { "No stored report describes " (id) "." }
        } @else {
            section.stats aria-label="The vulnerability" {
                (stat("Severity", st(&details, "Severity").to_string(), None))
                (stat("CVSS", num(&details, "CVSSScore").map_or("–".into(), |v| format!("{v:.1}")), details.get("CVSSVector").and_then(Value::as_str).map(str::to_string)))
                (stat("EPSS", num(&details, "EPSS").map_or("–".into(), |v| format!("{:.2} %", v * 100.0)), num(&details, "EPSSPercentile").map(|p| format!("percentile {:.0}", p * 100.0))))
                (stat("Known exploited", if details["KEV"].is_object() { "yes (KEV)".into() } else { "no".into() }, None))
                (stat("Images", count(int(&images, "ImageCount")), Some(format!("{} suppressed findings not listed", int(&images, "Suppressed")))))
            }
            @if let Some(t) = details.get("Title").and_then(Value::as_str) { p.lead { (t) } }
            @if let Some(d) = details.get("Description").and_then(Value::as_str) { p { (d) } }
            @if !refs.is_empty() {
                details {
                    summary { "References (" (refs.len()) ")" }
                    ul { @for r in refs.iter().filter_map(Value::as_str) { li { a href=(r) rel="noreferrer noopener" { (r) } } } }
                }
            }
        }
        section aria-labelledby="ci-h" {
            h2 #ci-h { "Images that carry it" }
            p.muted { (with_fix) " of the " (list.len()) " listed here have a fixed version." }
            table.wide {
                thead { tr { th scope="col" { "Image" } th scope="col" { "Package" } th scope="col" { "Installed" } th scope="col" { "Fixed in" } th scope="col" { "Severity" } th scope="col" { "Scanned" } th scope="col" { "Workloads" } } }
                tbody {
                    @for i in list {
                        tr {
                            td { (image_link(st(i, "ImageName"), st(i, "ImageTag"))) }
                            td { (st(i, "PkgName")) } td { code { (st(i, "PkgVersion")) } }
                            td { code { (st(i, "FixedVersion")) } }
                            td { (severity(st(i, "Severity"))) }
                            td { (when(st(i, "ScannedAt"))) }
                            td { (workloads_of(i)) }
                        }
                    }
                }
            }
            (pager(&format!("/ui/cve/{enc}"), offset, CVE_PAGE, list.len(), images["HasMore"].as_bool() == Some(true)))
        }
        @if may_suppress {
            section aria-labelledby="sup-h" {
                h2 #sup-h { "Suppress" }
                (suppression_form(&s, &id, &format!("/ui/cve/{enc}")))
            }
        }
    };
    Ok(page(&s, &id, "", content))
}

/// The workloads of an item as `cluster/namespace/kind/name`, one per line.
fn workloads_of(item: &Value) -> Markup {
    html! {
        @for w in item["Workloads"].as_array().into_iter().flatten() {
            div { code { (st(w, "Cluster")) "/" (st(w, "Namespace")) "/" (st(w, "Kind")) "/" (st(w, "Name")) } }
        }
    }
}

pub(super) fn suppression_form(s: &Session, vulnerability: &str, back: &str) -> Markup {
    html! {
        form.stacked method="post" action="/ui/suppressions" {
            (csrf(s))
            input type="hidden" name="back" value=(back);
            label for="s-vuln" { "Vulnerability" }
            input #s-vuln type="text" name="vulnerability" value=(vulnerability) required;
            label for="s-pkg" { "Package (empty: every package)" }
            input #s-pkg type="text" name="package";
            label for="s-img" { "Images (a name or glob; empty: every image)" }
            input #s-img type="text" name="image" placeholder="ghcr.io/acme/*";
            label for="s-state" { "Decision" }
            select #s-state name="state" {
                option value="not_affected" { "not affected" }
                option value="false_positive" { "false positive" }
                option value="accepted_risk" { "accepted risk" }
                option value="will_not_fix" { "will not fix" }
            }
            label for="s-reason" { "Reason" }
            input #s-reason type="text" name="reason" required;
            label for="s-exp" { "Expires (empty: never)" }
            input #s-exp type="date" name="expires";
            button type="submit" { "Suppress" }
        }
    }
}
