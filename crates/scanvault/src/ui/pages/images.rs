//! The images listing, an image's page and its downloads.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::super::chart::lines;
use super::super::view::{
    count, cve_link, image_link, int, items, page, pager, severity, short_digest, st, stat, when,
};
use super::super::{urlencode, PageError, PageResult, Session};
use super::{given, query, severities, severity_series};

#[derive(Deserialize)]
pub struct ImagesParams {
    image: Option<String>,
    tag: Option<String>,
    severity: Option<String>,
    sort: Option<String>,
    offset: Option<String>,
}

const IMAGES_PAGE: i64 = 50;

pub async fn images(s: Session, Query(p): Query<ImagesParams>) -> PageResult {
    let sort = given(&p.sort)
        .filter(|s| matches!(*s, "name" | "critical" | "risk"))
        .unwrap_or("newest");
    let offset: i64 = given(&p.offset)
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
        .max(0);
    let filters = [
        ("image", given(&p.image)),
        ("tag", given(&p.tag)),
        ("severity", given(&p.severity)),
    ];
    let api = format!(
        "/scans/all?include=summary&limit={IMAGES_PAGE}&offset={offset}&sort={sort}&{}",
        query(&filters)
    );
    let list = s.get(&api).await?;
    let base_filters = query(&filters);
    let sort_link = |key: &str, label: &str| -> Markup {
        let href = format!("/ui/images?sort={key}&{base_filters}");
        html! {
            @if sort == key { span aria-current="true" { (label) " ▾" } }
            @else { a href=(href) { (label) } }
        }
    };
    let content = html! {
        form.inline method="get" action="/ui/images" {
            label for="f-image" { "Image" }
            input #f-image type="text" name="image" value=(given(&p.image).unwrap_or("")) placeholder="name, e.g. nginx";
            label for="f-tag" { "Tag" }
            input #f-tag type="text" name="tag" value=(given(&p.tag).unwrap_or(""));
            label for="f-sev" { "Has" }
            select #f-sev name="severity" {
                option value="" { "any severity" }
                @for sev in severities() {
                    option value=(sev) selected[given(&p.severity) == Some(sev)] { (sev) }
                }
            }
            input type="hidden" name="sort" value=(sort);
            button type="submit" { "Filter" }
        }
        p.muted { (count(int(&list, "Count"))) " images (one row per digest, under the tag it was stored with). Sort by: "
            (sort_link("newest", "last scan")) " · " (sort_link("name", "name")) " · "
            (sort_link("critical", "most critical")) " · " (sort_link("risk", "risk")) }
        table.wide {
            thead { tr {
                th scope="col" { "Image" } th scope="col" { "Digest" } th scope="col" { "Last scan" }
                th.n scope="col" { "Critical" } th.n scope="col" { "High" } th.n scope="col" { "Medium" } th.n scope="col" { "Low" }
                th.n scope="col" { "Fixable" } th.n scope="col" { "Risk" } th scope="col" { "Compliant" }
            } }
            tbody {
                @for r in items(&list) {
                    tr {
                        td { (image_link(st(r, "ImageName"), st(r, "ImageTag"))) }
                        td { (short_digest(st(r, "ImageDigest"))) }
                        td { (when(st(r, "ScannedAt"))) }
                        td.n { (int(r, "VulnCritical")) } td.n { (int(r, "VulnHigh")) }
                        td.n { (int(r, "VulnMedium")) } td.n { (int(r, "VulnLow")) }
                        td.n { (int(r, "FixableCount")) } td.n { (int(r, "RiskScore")) }
                        td { (yes_no(r.get("Compliant").and_then(Value::as_bool).or(r.get("IsCompliant").and_then(Value::as_bool)))) }
                    }
                }
            }
        }
        (pager(&format!("/ui/images?sort={sort}&{base_filters}"), offset, IMAGES_PAGE, items(&list).len(), list["HasMore"].as_bool() == Some(true)))
    };
    Ok(page(&s, "Images", "Images", content))
}

fn yes_no(v: Option<bool>) -> Markup {
    match v {
        Some(true) => html! { span.ok { "yes" } },
        Some(false) => html! { span.bad { "no" } },
        None => html! { "–" },
    }
}

#[derive(Deserialize)]
pub struct ImageParams {
    name: Option<String>,
    tag: Option<String>,
    severity: Option<String>,
    pkg: Option<String>,
    fixable: Option<String>,
    suppressed: Option<String>,
    offset: Option<String>,
}

const FINDINGS_PAGE: usize = 100;

pub async fn image(s: Session, Query(p): Query<ImageParams>) -> PageResult {
    let name = given(&p.name).ok_or_else(|| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Which image? The link lacks its name.",
        )
    })?;
    let tag = given(&p.tag);
    let latest = s
        .get(&format!(
            "/scans/latest?{}",
            query(&[("image", Some(name)), ("tag", tag)])
        ))
        .await?;
    let id = st(&latest, "ID").to_string();
    let vulns_path = format!(
        "/scans/{id}/vulnerabilities?{}",
        query(&[("severity", given(&p.severity)), ("pkg", given(&p.pkg))])
    );
    let history_path = format!(
        "/images/history?limit=60&{}",
        query(&[("image", Some(name)), ("tag", tag)])
    );
    let (vulns, history, diff) = tokio::try_join!(
        s.get(&vulns_path),
        s.get(&history_path),
        diff_or_none(&s, &id),
    )?;
    let fixable_only = given(&p.fixable) == Some("yes");
    let suppressed = given(&p.suppressed).unwrap_or("show");
    let findings: Vec<&Value> = items(&vulns)
        .iter()
        .filter(|f| !fixable_only || f["Vulnerability"]["FixedVersion"].is_string())
        .filter(|f| {
            let is = f["Vulnerability"]["Suppression"].is_object();
            match suppressed {
                "hide" => !is,
                "only" => is,
                _ => true,
            }
        })
        .collect();
    let offset: usize = given(&p.offset).and_then(|o| o.parse().ok()).unwrap_or(0);
    let shown = &findings[offset.min(findings.len())..(offset + FINDINGS_PAGE).min(findings.len())];
    let tag_shown = st(&latest, "ImageTag");
    let page_base = format!(
        "/ui/image?{}",
        query(&[
            ("name", Some(name)),
            ("tag", Some(tag_shown)),
            ("severity", given(&p.severity)),
            ("pkg", given(&p.pkg)),
            ("fixable", given(&p.fixable)),
            ("suppressed", given(&p.suppressed)),
        ])
    );
    let workloads = latest["Workloads"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let title = format!("{name}:{tag_shown}");
    let content = html! {
        section.stats aria-label="This image now" {
            (stat("Critical", count(int(&latest, "VulnCritical")), None))
            (stat("High", count(int(&latest, "VulnHigh")), None))
            (stat("Medium", count(int(&latest, "VulnMedium")), None))
            (stat("Low", count(int(&latest, "VulnLow")), None))
            (stat("Fixable", count(int(&latest, "FixableCount")), None))
            (stat("Risk", count(int(&latest, "RiskScore")), None))
            (stat("Compliant", match latest["Compliant"].as_bool().or(latest["IsCompliant"].as_bool()) { Some(true) => "yes".into(), Some(false) => "no".into(), None => "–".into() }, None))
        }
        p.muted {
            "Digest " (short_digest(st(&latest, "ImageDigest"))) " · last scanned " (when(st(&latest, "ScannedAt")))
            " · " (st(&latest, "Scanner")) " " (st(&latest, "ScannerVersion"))
            @if int(&latest, "Suppressed") > 0 { " · " (int(&latest, "Suppressed")) " suppressed findings not counted" }
        }
        p.actions {
            "Download: "
            a href=(format!("/ui/download/scans/{id}/sbom?format=cyclonedx")) download { "SBOM (CycloneDX)" } " · "
            a href=(format!("/ui/download/scans/{id}/sbom?format=spdx")) download { "SBOM (SPDX)" } " · "
            a href=(format!("/ui/download/scans/{id}/export?format=csv")) download { "findings (CSV)" } " · "
            a href=(format!("/ui/download/scans/{id}/export?format=sarif")) download { "SARIF" } " · "
            a href=(format!("/ui/download/scans/{id}/export?format=cyclonedx")) download { "CycloneDX VEX" }
        }
        section aria-labelledby="hist-h" {
            h2 #hist-h { "History" }
            (history_chart(&history))
        }
        section aria-labelledby="diff-h" {
            h2 #diff-h { "Changes since the previous observation" }
            (diff_view(&diff))
        }
        @if !workloads.is_empty() {
            section aria-labelledby="wl-h" {
                h2 #wl-h { "Workloads running it" }
                table {
                    thead { tr { th scope="col" { "Cluster" } th scope="col" { "Namespace" } th scope="col" { "Kind" } th scope="col" { "Name" } } }
                    tbody { @for w in workloads { tr { td { (st(w, "Cluster")) } td { (st(w, "Namespace")) } td { (st(w, "Kind")) } td { (st(w, "Name")) } } } }
                }
            }
        }
        section aria-labelledby="find-h" {
            h2 #find-h { "Findings" }
            form.inline method="get" action="/ui/image" {
                input type="hidden" name="name" value=(name);
                input type="hidden" name="tag" value=(tag_shown);
                label for="i-sev" { "Severity" }
                select #i-sev name="severity" {
                    option value="" { "any" }
                    @for sev in severities() { option value=(sev) selected[given(&p.severity) == Some(sev)] { (sev) } }
                }
                label for="i-pkg" { "Package" }
                input #i-pkg type="text" name="pkg" value=(given(&p.pkg).unwrap_or(""));
                label for="i-fix" { "Fixable" }
                select #i-fix name="fixable" {
                    option value="" { "any" }
                    option value="yes" selected[fixable_only] { "with a fix" }
                }
                label for="i-sup" { "Suppressed" }
                select #i-sup name="suppressed" {
                    option value="show" selected[suppressed == "show"] { "show" }
                    option value="hide" selected[suppressed == "hide"] { "hide" }
                    option value="only" selected[suppressed == "only"] { "only" }
                }
                button type="submit" { "Filter" }
            }
            p.muted { (findings.len()) " of " (count(int(&vulns, "Count"))) " findings match" }
            table.wide {
                thead { tr {
                    th scope="col" { "Vulnerability" } th scope="col" { "Severity" } th scope="col" { "Package" }
                    th scope="col" { "Installed" } th scope="col" { "Fixed in" } th scope="col" { "Title" } th scope="col" { "Triage" }
                } }
                tbody {
                    @for f in shown {
                        @let v = &f["Vulnerability"];
                        tr {
                            td { (cve_link(st(v, "VulnerabilityID"))) }
                            td { (severity(st(v, "Severity"))) }
                            td { (st(v, "PkgName")) }
                            td { code { (st(v, "InstalledVersion").to_string() + st(v, "PkgVersion")) } }
                            td { code { (st(v, "FixedVersion")) } }
                            td { (st(v, "Title")) }
                            td { @if v["Suppression"].is_object() { span.badge { "suppressed: " (st(&v["Suppression"], "State")) } } }
                        }
                    }
                }
            }
            (pager(&page_base, offset as i64, FINDINGS_PAGE as i64, shown.len(), offset + FINDINGS_PAGE < findings.len()))
        }
    };
    Ok(page(&s, &title, "Images", content))
}

/// The diff against the previous observation, or `Null` when there is none.
async fn diff_or_none(s: &Session, id: &str) -> Result<Value, PageError> {
    match s.get(&format!("/scans/{id}/diff")).await {
        Err(e) if e.status == StatusCode::NOT_FOUND => Ok(Value::Null),
        other => other,
    }
}

fn history_chart(history: &Value) -> Markup {
    let mut obs: Vec<&Value> = items(history).iter().collect();
    obs.reverse();
    if obs.is_empty() {
        return html! { p.muted { "No observations." } };
    }
    let xs: Vec<String> = obs.iter().map(|o| when(st(o, "ScannedAt"))).collect();
    let mut series = severity_series();
    for (s, key) in series
        .iter_mut()
        .zip(["VulnCritical", "VulnHigh", "VulnMedium", "VulnLow"])
    {
        s.values = obs.iter().map(|o| int(o, key) as f64).collect();
    }
    html! {
        (lines("Findings of this image per observation", &xs, &series))
        table {
            thead { tr { th scope="col" { "Observed" } th scope="col" { "Digest" } th scope="col" { "Source" } th.n scope="col" { "Added" } th.n scope="col" { "Removed" } } }
            tbody {
                @for o in items(history).iter().take(10) {
                    tr { td { (when(st(o, "ScannedAt"))) } td { (short_digest(st(o, "ImageDigest"))) } td { (st(o, "Source")) }
                         td.n { (int(o, "Added")) } td.n { (int(o, "Removed")) } }
                }
            }
        }
    }
}

fn diff_view(diff: &Value) -> Markup {
    if diff.is_null() {
        return html! { p.muted { "This is the first observation of this image." } };
    }
    let list = |key: &str| diff[key].as_array().map_or(&[][..], Vec::as_slice);
    let (added, removed, changed) = (list("Added"), list("Removed"), list("Changed"));
    html! {
        p { (added.len()) " added, " (removed.len()) " removed, " (changed.len()) " changed since "
            (when(st(diff, "AgainstScannedAt"))) "." }
        @if !(added.is_empty() && removed.is_empty() && changed.is_empty()) {
            table {
                thead { tr { th scope="col" { "Change" } th scope="col" { "Vulnerability" } th scope="col" { "Package" } th scope="col" { "Severity" } } }
                tbody {
                    @for f in added { tr { td { span.bad { "added" } } td { (cve_link(st(f, "VulnerabilityID"))) } td { (st(f, "PkgName")) " " (st(f, "InstalledVersion")) } td { (severity(st(f, "Severity"))) } } }
                    @for f in removed { tr { td { span.ok { "removed" } } td { (cve_link(st(f, "VulnerabilityID"))) } td { (st(f, "PkgName")) " " (st(f, "InstalledVersion")) } td { (severity(st(f, "Severity"))) } } }
                    @for f in changed { tr { td { "changed" } td { (cve_link(st(f, "VulnerabilityID"))) } td { (st(f, "PkgName")) " " (st(f, "InstalledVersion")) }
                        td { (st(&f["Before"], "Severity")) " → " (st(&f["After"], "Severity")) } } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct DownloadParams {
    format: Option<String>,
}

/// A scan's SBOM or export, fetched from the API as this session and handed to the
/// browser as a file.
pub async fn download(
    s: Session,
    Path((id, what)): Path<(String, String)>,
    Query(p): Query<DownloadParams>,
) -> Result<Response, PageError> {
    if !matches!(what.as_str(), "sbom" | "export") {
        return Err(PageError::new(StatusCode::NOT_FOUND, "No such download."));
    }
    let path = format!(
        "/scans/{}/{what}?{}",
        urlencode(&id),
        query(&[("format", given(&p.format))])
    );
    let ext = match given(&p.format) {
        Some("csv") => "csv",
        Some("sarif") => "sarif.json",
        Some("spdx") => "spdx.json",
        _ => "cdx.json",
    };
    s.download(&path, &format!("scan-{id}-{what}.{ext}")).await
}

#[derive(Deserialize)]
pub struct ComplianceDownloadParams {
    format: Option<String>,
    from: Option<String>,
    to: Option<String>,
    image: Option<String>,
}

/// The whole compliance report as CSV or printable HTML.
pub async fn download_compliance(
    s: Session,
    Query(p): Query<ComplianceDownloadParams>,
) -> Result<Response, PageError> {
    let format = match given(&p.format) {
        Some("html") => "html",
        _ => "csv",
    };
    let path = format!(
        "/compliance?{}",
        query(&[
            ("format", Some(format)),
            ("from", given(&p.from)),
            ("to", given(&p.to)),
            ("image", given(&p.image)),
        ])
    );
    s.download(&path, &format!("compliance.{format}")).await
}
