//! OpenVEX documents (<https://github.com/openvex/spec>, 0.2.0 and the 0.0.x drafts) read as
//! triage decisions: each statement about a vulnerability in a product (an image, or a
//! package) says whether it is exploitable there.
//!
//! A `not_affected` or `fixed` statement is a decision to suppress: scoped to the image the
//! product names (an OCI purl's `repository_url`, or an image reference; none: every image)
//! and to the package a subcomponent names (a purl's name). `affected` and
//! `under_investigation` decide nothing to suppress; they are reported so that the caller can
//! lift an earlier decision for the same scope.

use serde_json::Value;

use crate::image::familiar_name;

/// One statement about one (vulnerability, image, package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexDecision {
    pub vulnerability_id: String,
    /// A glob over image names (`None`: every image).
    pub image: Option<String>,
    pub package: Option<String>,
    /// The OpenVEX status.
    pub status: VexStatus,
    /// The justification and impact or action statement, as given.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VexStatus {
    NotAffected,
    Fixed,
    Affected,
    UnderInvestigation,
}

impl VexStatus {
    fn parse(s: &str) -> Option<VexStatus> {
        Some(match s {
            "not_affected" => VexStatus::NotAffected,
            "fixed" => VexStatus::Fixed,
            "affected" => VexStatus::Affected,
            "under_investigation" => VexStatus::UnderInvestigation,
            _ => return None,
        })
    }

    /// The suppression state this status decides, if any.
    pub fn suppression_state(self) -> Option<&'static str> {
        match self {
            VexStatus::NotAffected | VexStatus::Fixed => Some("not_affected"),
            VexStatus::Affected | VexStatus::UnderInvestigation => None,
        }
    }
}

/// The justifications OpenVEX 0.2.0 defines for `not_affected`.
pub const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

/// The decisions of an OpenVEX document, or what is wrong with it (naming the statement).
pub fn decisions(doc: &Value) -> Result<Vec<VexDecision>, String> {
    let context = doc
        .get("@context")
        .and_then(Value::as_str)
        .ok_or("not an OpenVEX document: no \"@context\"")?;
    if !context.starts_with("https://openvex.dev/ns") {
        return Err(format!(
            "not an OpenVEX document: \"@context\" is {context:?}, not https://openvex.dev/ns/…"
        ));
    }
    let statements = doc
        .get("statements")
        .and_then(Value::as_array)
        .ok_or("\"statements\" must be an array")?;
    let mut out = vec![];
    for (i, st) in statements.iter().enumerate() {
        statement(st, &mut out).map_err(|e| format!("statements[{i}]: {e}"))?;
    }
    Ok(out)
}

fn statement(st: &Value, out: &mut Vec<VexDecision>) -> Result<(), String> {
    let vuln = match st.get("vulnerability") {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v
            .get("name")
            .or_else(|| v.get("@id"))
            .and_then(Value::as_str)
            .ok_or("\"vulnerability\" has no \"name\"")?
            .to_string(),
        _ => return Err("\"vulnerability\" is missing".into()),
    };
    let vuln = vuln.trim().to_string();
    if vuln.is_empty() || vuln.len() > 256 {
        return Err("\"vulnerability\" name is empty or too long".into());
    }
    let status_text = st
        .get("status")
        .and_then(Value::as_str)
        .ok_or("\"status\" is missing")?;
    let status = VexStatus::parse(status_text).ok_or_else(|| {
        format!(
            "\"status\" {status_text:?} is not one of not_affected, affected, fixed, \
             under_investigation"
        )
    })?;
    let text = |k: &str| st.get(k).and_then(Value::as_str).map(str::trim);
    let justification = text("justification").filter(|s| !s.is_empty());
    if let Some(j) = justification {
        if !JUSTIFICATIONS.contains(&j) {
            return Err(format!(
                "\"justification\" {j:?} is not an OpenVEX justification"
            ));
        }
    }
    let statement_text = text("impact_statement")
        .or(text("action_statement"))
        .or(text("status_notes"))
        .filter(|s| !s.is_empty());
    if status == VexStatus::NotAffected && justification.is_none() && statement_text.is_none() {
        return Err(
            "a not_affected statement needs a \"justification\" or an \"impact_statement\"".into(),
        );
    }
    let reason = match (status, justification, statement_text) {
        (VexStatus::Fixed, _, None) => "fixed".to_string(),
        (_, Some(j), Some(s)) => format!("{j}: {s}"),
        (_, Some(j), None) => j.to_string(),
        (_, None, Some(s)) => s.to_string(),
        (_, None, None) => status_text.to_string(),
    };
    // 0.0.x: products are strings, subcomponents sit on the statement.
    let shared_subs = ids(st.get("subcomponents"))?;
    let products: Vec<&Value> = match st.get("products") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(_) => return Err("\"products\" must be an array".into()),
    };
    let mut scopes: Vec<Scope> = vec![];
    if products.is_empty() {
        scopes.extend(package_scopes(None, &shared_subs)?);
    }
    for p in products {
        let (id, subs) = match p {
            Value::String(s) => (s.clone(), shared_subs.clone()),
            Value::Object(_) => {
                let id = p
                    .get("@id")
                    .and_then(Value::as_str)
                    .or_else(|| {
                        p.get("identifiers")
                            .and_then(|i| i.get("purl"))
                            .and_then(Value::as_str)
                    })
                    .ok_or("a product has no \"@id\"")?
                    .to_string();
                let mut subs = ids(p.get("subcomponents"))?;
                subs.extend(shared_subs.iter().cloned());
                (id, subs)
            }
            _ => return Err("a product must be an object or a string".into()),
        };
        match product(&id)? {
            Product::Image(image) => scopes.extend(package_scopes(image, &subs)?),
            Product::Package(pkg) => scopes.push((None, Some(pkg))),
        }
    }
    scopes.sort();
    scopes.dedup();
    for (image, package) in scopes {
        out.push(VexDecision {
            vulnerability_id: vuln.clone(),
            image,
            package,
            status,
            reason: reason.clone(),
        });
    }
    Ok(())
}

/// (image glob, package) a decision is scoped to.
type Scope = (Option<String>, Option<String>);

fn package_scopes(image: Option<String>, subs: &[String]) -> Result<Vec<Scope>, String> {
    if subs.is_empty() {
        return Ok(vec![(image, None)]);
    }
    subs.iter()
        .map(|s| Ok((image.clone(), Some(package_name(s)?))))
        .collect()
}

/// The `@id`s of a list of components (objects with `@id`, or strings).
fn ids(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|c| match c {
                Value::String(s) => Ok(s.clone()),
                _ => c
                    .get("@id")
                    .or_else(|| c.get("identifiers").and_then(|i| i.get("purl")))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| "a subcomponent has no \"@id\"".to_string()),
            })
            .collect(),
        Some(_) => Err("\"subcomponents\" must be an array".into()),
    }
}

enum Product {
    /// The image (name glob) a product names; `None` for every image.
    Image(Option<String>),
    /// A package product (a purl of another type): every image that carries it.
    Package(String),
}

fn product(id: &str) -> Result<Product, String> {
    let id = id.trim();
    if id.starts_with("pkg:") {
        let purl: packageurl::PackageUrl = id
            .parse()
            .map_err(|e| format!("product {id:?} is not a purl: {e}"))?;
        if purl.ty() != "oci" {
            return Ok(Product::Package(purl_package(&purl)));
        }
        let repo = purl
            .qualifiers()
            .iter()
            .find(|(k, _)| k.as_ref() == "repository_url")
            .map(|(_, v)| v.to_string());
        let name = match repo {
            // repository_url holds the repository with its name (`ghcr.io/acme/api`).
            Some(r) => r.trim_end_matches('/').to_string(),
            None => purl.name().to_string(),
        };
        return Ok(Product::Image(Some(familiar_name(&name))));
    }
    if id == "*" {
        return Ok(Product::Image(None));
    }
    if id.is_empty() || id.len() > 512 || id.chars().any(char::is_whitespace) {
        return Err(format!(
            "product {id:?} is neither a purl nor an image reference"
        ));
    }
    Ok(Product::Image(Some(familiar_name(&strip_reference(id)))))
}

/// An image reference without its tag or digest (a glob stays as it is).
fn strip_reference(r: &str) -> String {
    let r = r.split('@').next().unwrap_or(r);
    match r.rfind(':') {
        Some(i) if !r[i + 1..].contains('/') => r[..i].to_string(),
        _ => r.to_string(),
    }
}

/// The package name a subcomponent's purl names, as scanners report it.
fn package_name(id: &str) -> Result<String, String> {
    let id = id.trim();
    if !id.starts_with("pkg:") {
        if id.is_empty() {
            return Err("an empty subcomponent".into());
        }
        return Ok(id.to_string());
    }
    let purl: packageurl::PackageUrl = id
        .parse()
        .map_err(|e| format!("subcomponent {id:?} is not a purl: {e}"))?;
    Ok(purl_package(&purl))
}

/// npm packages are `@scope/name`, Maven ones `group:artifact`, Go modules their path,
/// others their name.
fn purl_package(purl: &packageurl::PackageUrl) -> String {
    match (purl.ty(), purl.namespace()) {
        ("npm", Some(ns)) => format!("{ns}/{}", purl.name()),
        ("maven", Some(ns)) => format!("{ns}:{}", purl.name()),
        ("golang", Some(ns)) => format!("{ns}/{}", purl.name()),
        _ => purl.name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statements_become_decisions_scoped_to_their_products() {
        let doc = json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://example.com/vex/1",
            "author": "Security",
            "timestamp": "2026-12-01T00:00:00Z",
            "version": 1,
            "statements": [
                {"vulnerability": {"name": "CVE-2024-1"},
                 "products": [{"@id": "pkg:oci/api@sha256%3Aabc?repository_url=ghcr.io/acme/api",
                               "subcomponents": [{"@id": "pkg:deb/debian/openssl@3.0.1"},
                                                 {"@id": "pkg:npm/%40angular/core@1.0.0"}]}],
                 "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
                 "impact_statement": "never called"},
                {"vulnerability": {"name": "CVE-2024-2"}, "products": [{"@id": "docker.io/library/nginx:1.25"}],
                 "status": "fixed"},
                {"vulnerability": {"name": "CVE-2024-3"}, "products": [{"@id": "pkg:golang/golang.org/x/net@0.1"}],
                 "status": "affected", "action_statement": "upgrade"},
                {"vulnerability": "CVE-2024-4", "products": ["ghcr.io/acme/*"], "subcomponents": ["zlib"],
                 "status": "not_affected", "justification": "component_not_present"}
            ]
        });
        let d = decisions(&doc).unwrap();
        let got: Vec<(&str, Option<&str>, Option<&str>, VexStatus)> = d
            .iter()
            .map(|d| {
                (
                    d.vulnerability_id.as_str(),
                    d.image.as_deref(),
                    d.package.as_deref(),
                    d.status,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "CVE-2024-1",
                    Some("ghcr.io/acme/api"),
                    Some("@angular/core"),
                    VexStatus::NotAffected
                ),
                (
                    "CVE-2024-1",
                    Some("ghcr.io/acme/api"),
                    Some("openssl"),
                    VexStatus::NotAffected
                ),
                ("CVE-2024-2", Some("nginx"), None, VexStatus::Fixed),
                (
                    "CVE-2024-3",
                    None,
                    Some("golang.org/x/net"),
                    VexStatus::Affected
                ),
                (
                    "CVE-2024-4",
                    Some("ghcr.io/acme/*"),
                    Some("zlib"),
                    VexStatus::NotAffected
                ),
            ]
        );
        assert_eq!(
            d[0].reason,
            "vulnerable_code_not_in_execute_path: never called"
        );
        assert_eq!(d[2].reason, "fixed");
    }

    #[test]
    fn what_is_wrong_is_named() {
        let base =
            |st: Value| json!({"@context": "https://openvex.dev/ns/v0.2.0", "statements": [st]});
        for (st, want) in [
            (
                json!({"products": []}),
                "statements[0]: \"vulnerability\" is missing",
            ),
            (
                json!({"vulnerability": {"name": "CVE-1"}, "status": "maybe"}),
                "is not one of",
            ),
            (
                json!({"vulnerability": {"name": "CVE-1"}, "status": "not_affected"}),
                "needs a \"justification\"",
            ),
            (
                json!({"vulnerability": {"name": "CVE-1"}, "status": "not_affected", "justification": "because"}),
                "not an OpenVEX justification",
            ),
            (
                json!({"vulnerability": {"name": "CVE-1"}, "status": "fixed", "products": [{"@id": "pkg:::"}]}),
                "not a purl",
            ),
        ] {
            let e = decisions(&base(st)).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        assert!(decisions(&json!({"statements": []}))
            .unwrap_err()
            .contains("@context"));
    }
}
