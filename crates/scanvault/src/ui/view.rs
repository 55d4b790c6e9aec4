//! The dashboard's layout and the small pieces every page uses.

use axum::response::Html;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::Session;

/// The sections of the navigation, with their paths.
const NAV: [(&str, &str); 7] = [
    ("Fleet", "/ui/"),
    ("Images", "/ui/images"),
    ("Jobs", "/ui/jobs"),
    ("Suppressions", "/ui/suppressions"),
    ("Policies", "/ui/policies"),
    ("Compliance", "/ui/compliance"),
    ("API", "/swagger/"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · ScanVault" }
            link rel="stylesheet" href="/ui/assets/ui.css";
            link rel="icon" type="image/svg+xml" href="/ui/assets/icon.svg";
        }
    }
}

/// A page outside the signed-in layout (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { (body) }
            }
        }
        .into_string(),
    )
}

/// A signed-in page: navigation, search, who is signed in, and `content`.
pub fn page(s: &Session, title: &str, section: &str, content: Markup) -> Html<String> {
    Html(html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "ScanVault" }
                    nav aria-label="Sections" {
                        ul {
                            @for (name, href) in NAV {
                                li {
                                    @if name == section {
                                        a href=(href) aria-current="page" { (name) }
                                    } @else {
                                        a href=(href) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    form.search role="search" method="get" action="/ui/search" {
                        label.visually-hidden for="q" { "Search a CVE or an image" }
                        input #q type="search" name="q" placeholder="CVE-… or image name" required;
                        button type="submit" { "Search" }
                    }
                    div.who {
                        span { (s.who) " · " (s.role.as_str()) }
                        @if s.key.is_some() {
                            form method="post" action="/ui/logout" {
                                (csrf(s))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }.into_string())
}

/// The hidden CSRF field of a form.
pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A string field of a JSON object ("" when absent).
pub fn st<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An integer field of a JSON object (0 when absent).
pub fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// A number field of a JSON object.
pub fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The items of a listing.
pub fn items(v: &Value) -> &[Value] {
    v.get("Items")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A count with thousands separators.
pub fn count(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A share in percent with one decimal.
pub fn share(part: i64, whole: i64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM` (UTC).
pub fn when(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => t.to_string(),
    }
}

/// A digest shortened for tables (the whole one in its title).
pub fn short_digest(d: &str) -> Markup {
    let short = d
        .strip_prefix("sha256:")
        .map(|h| format!("sha256:{}", &h[..h.len().min(12)]))
        .unwrap_or_else(|| d.to_string());
    html! { code title=(d) { (short) } }
}

/// A severity as a coloured label (the word is always written: colour is not the only cue).
pub fn severity(s: &str) -> Markup {
    let class = format!("sev sev-{}", s.to_ascii_lowercase());
    html! { span class=(class) { (s) } }
}

/// The link to an image reference's page.
pub fn image_link(name: &str, tag: &str) -> Markup {
    let href = format!(
        "/ui/image?name={}&tag={}",
        super::urlencode(name),
        super::urlencode(tag)
    );
    html! { a href=(href) { (name) ":" (tag) } }
}

/// The link to a vulnerability's page.
pub fn cve_link(id: &str) -> Markup {
    html! { a href=(format!("/ui/cve/{}", super::urlencode(id))) { (id) } }
}

/// Previous/next links of a paginated listing. `base` is the page's path and query
/// without `offset`.
pub fn pager(base: &str, offset: i64, limit: i64, shown: usize, has_more: bool) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager aria-label="Pages" {
            @if offset > 0 {
                a href=(format!("{base}{sep}offset={}", (offset - limit).max(0))) rel="prev" { "← Previous" }
            }
            span { (count(offset + if shown > 0 { 1 } else { 0 })) "–" (count(offset + shown as i64)) }
            @if has_more {
                a href=(format!("{base}{sep}offset={}", offset + limit)) rel="next" { "Next →" }
            }
        }
    }
}

/// A figure with its label.
pub fn stat(label: &str, value: String, note: Option<String>) -> Markup {
    html! {
        div.stat {
            div.label { (label) }
            div.value { (value) }
            @if let Some(n) = note { div.note { (n) } }
        }
    }
}
