//! Compliance policies: which findings an image may not carry, and the verdict on a set of
//! findings. Pure: what is known about exploits and fixes comes in as [`Knowledge`].
//!
//! A policy applies to the images its `Images` globs match (all images without any). Each
//! rule is a gate of its own; a finding violates the policy once per rule it fails:
//!
//! | rule | a finding violates it when |
//! |---|---|
//! | `MaxSeverity: S` | its severity is above `S` (`NONE`: any finding) |
//! | `MinCVSS: x` | its CVSS base score is `x` or more |
//! | `KEV: true` | CISA lists it as known exploited |
//! | `MinEPSS: p` | its EPSS probability is `p` or more |
//! | `FixAvailableForDays: n` | it has a fixed version, first seen by ScanVault at least `n` days ago |
//!
//! `FixableOnly: true` narrows every rule to findings with a fixed version (as
//! `trivy --ignore-unfixed`). A policy with no gate is refused.

use serde::{Deserialize, Serialize};

use crate::report::{Finding, Severity};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_severity: Option<String>,
    #[serde(default, rename = "MinCVSS", skip_serializing_if = "Option::is_none")]
    pub min_cvss: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixable_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_available_for_days: Option<i64>,
    #[serde(default, rename = "KEV", skip_serializing_if = "std::ops::Not::not")]
    pub kev: bool,
    #[serde(default, rename = "MinEPSS", skip_serializing_if = "Option::is_none")]
    pub min_epss: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Globs over image names (`ghcr.io/acme/*`); empty: every image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    pub rules: Rules,
}

/// One rule failed by one finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Violation {
    pub policy: String,
    pub rule: String,
    #[serde(rename = "VulnerabilityID")]
    pub vulnerability_id: String,
    pub package: String,
    pub installed_version: String,
    pub severity: String,
}

/// What the evaluation needs to know beyond the findings.
pub trait Knowledge {
    fn in_kev(&self, vulnerability_id: &str) -> bool;
    fn epss(&self, vulnerability_id: &str) -> Option<f64>;
    /// Days since a fixed version of this package's vulnerability was first seen.
    fn fix_age_days(&self, vulnerability_id: &str, package: &str) -> Option<i64>;
}

impl Policy {
    /// The policy's rules checked: a message saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let r = &self.rules;
        if let Some(s) = &r.max_severity {
            if !s.eq_ignore_ascii_case("NONE") && Severity::parse_strict(s).is_none() {
                return Err(format!(
                    "Rules.MaxSeverity {s:?} is not one of CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN, NONE"
                ));
            }
        }
        if let Some(x) = r.min_cvss {
            if !(0.0..=10.0).contains(&x) {
                return Err("Rules.MinCVSS must be from 0 to 10".into());
            }
        }
        if let Some(p) = r.min_epss {
            if !(0.0..=1.0).contains(&p) {
                return Err("Rules.MinEPSS must be from 0 to 1".into());
            }
        }
        if let Some(d) = r.fix_available_for_days {
            if d < 0 {
                return Err("Rules.FixAvailableForDays must be 0 or more".into());
            }
        }
        let gates = r.max_severity.is_some()
            || r.min_cvss.is_some()
            || r.kev
            || r.min_epss.is_some()
            || r.fix_available_for_days.is_some();
        if !gates {
            return Err("Rules names no gate: give MaxSeverity, MinCVSS, KEV, MinEPSS or FixAvailableForDays".into());
        }
        for g in &self.images {
            if g.trim().is_empty() {
                return Err("Images has an empty glob".into());
            }
        }
        Ok(())
    }

    /// Whether the policy applies to images named `image`.
    pub fn applies_to(&self, image: &str) -> bool {
        self.images.is_empty()
            || self
                .images
                .iter()
                .any(|g| wildmatch::WildMatch::new(g).matches(image))
    }

    /// The violations of `findings` in an image named `image` (none when the policy does not
    /// apply to it), sorted.
    pub fn evaluate(
        &self,
        name: &str,
        image: &str,
        findings: &[&Finding],
        know: &dyn Knowledge,
    ) -> Vec<Violation> {
        if !self.applies_to(image) {
            return vec![];
        }
        let r = &self.rules;
        // NONE: no finding of any severity is allowed.
        let max: Option<Option<Severity>> = r.max_severity.as_deref().map(Severity::parse_strict);
        let mut out = vec![];
        for f in findings {
            if r.fixable_only && f.fixed_version.is_none() {
                continue;
            }
            let mut fail = |rule: &str| {
                out.push(Violation {
                    policy: name.to_string(),
                    rule: rule.to_string(),
                    vulnerability_id: f.vulnerability_id.clone(),
                    package: f.pkg_name.clone(),
                    installed_version: f.installed_version.clone(),
                    severity: f.severity.as_str().to_string(),
                })
            };
            let above = |m: Option<Severity>| match m {
                None => true,
                Some(m) => f.severity.rank() > m.rank(),
            };
            if max.is_some_and(above) {
                fail("MaxSeverity");
            }
            if let (Some(x), Some(score)) = (r.min_cvss, f.cvss_score) {
                if score >= x {
                    fail("MinCVSS");
                }
            }
            if r.kev && know.in_kev(&f.vulnerability_id) {
                fail("KEV");
            }
            if let Some(p) = r.min_epss {
                let epss = know.epss(&f.vulnerability_id).or(f.extra.epss);
                if epss.is_some_and(|e| e >= p) {
                    fail("MinEPSS");
                }
            }
            if let Some(days) = r.fix_available_for_days {
                if f.fixed_version.is_some()
                    && know
                        .fix_age_days(&f.vulnerability_id, &f.pkg_name)
                        .is_some_and(|age| age >= days)
                {
                    fail("FixAvailableForDays");
                }
            }
        }
        out.sort();
        out
    }
}

/// The policy `default`: what `COMPLIANCE_FAIL_SEVERITY` says (a finding of that severity
/// or above is a violation).
pub fn default_policy(fail_on: Severity) -> Policy {
    let below = Severity::ALL
        .iter()
        .copied()
        .filter(|s| s.rank() < fail_on.rank())
        .max_by_key(|s| s.rank());
    Policy {
        description: format!("COMPLIANCE_FAIL_SEVERITY={}", fail_on.as_str()),
        images: vec![],
        rules: Rules {
            // Nothing below the lowest severity: no finding is allowed.
            max_severity: Some(below.map_or("NONE", |s| s.as_str()).to_string()),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Know {
        kev: Vec<&'static str>,
        epss: HashMap<&'static str, f64>,
        fix_age: HashMap<(&'static str, &'static str), i64>,
    }

    impl Knowledge for Know {
        fn in_kev(&self, id: &str) -> bool {
            self.kev.contains(&id)
        }
        fn epss(&self, id: &str) -> Option<f64> {
            self.epss.get(id).copied()
        }
        fn fix_age_days(&self, id: &str, pkg: &str) -> Option<i64> {
            self.fix_age
                .iter()
                .find(|((v, p), _)| *v == id && *p == pkg)
                .map(|(_, d)| *d)
        }
    }

    fn finding(id: &str, pkg: &str, sev: Severity, fixed: bool, cvss: Option<f64>) -> Finding {
        Finding {
            vulnerability_id: id.into(),
            pkg_name: pkg.into(),
            installed_version: "1.0".into(),
            fixed_version: fixed.then(|| "1.1".into()),
            severity: sev,
            status: None,
            pkg_type: None,
            class: None,
            target: None,
            pkg_path: None,
            purl: None,
            title: None,
            cvss_score: cvss,
            extra: Default::default(),
        }
    }

    fn policy(rules: Rules, images: &[&str]) -> Policy {
        Policy {
            description: String::new(),
            images: images.iter().map(|s| s.to_string()).collect(),
            rules,
        }
    }

    #[test]
    fn each_rule_fails_the_findings_it_names() {
        let know = Know {
            kev: vec!["CVE-KEV"],
            epss: HashMap::from([("CVE-EPSS", 0.7)]),
            fix_age: HashMap::from([(("CVE-OLD", "openssl"), 45), (("CVE-NEW", "openssl"), 3)]),
        };
        let fs = [
            finding("CVE-CRIT", "a", Severity::Critical, false, Some(9.8)),
            finding("CVE-KEV", "b", Severity::Medium, true, Some(5.0)),
            finding("CVE-EPSS", "c", Severity::Low, false, None),
            finding("CVE-OLD", "openssl", Severity::Medium, true, None),
            finding("CVE-NEW", "openssl", Severity::Medium, true, None),
        ];
        let refs: Vec<&Finding> = fs.iter().collect();
        let rules_of = |v: Vec<Violation>| -> Vec<(String, String)> {
            v.into_iter()
                .map(|v| (v.rule, v.vulnerability_id))
                .collect()
        };
        let p = |r: Rules| policy(r, &[]).evaluate("p", "img", &refs, &know);
        let one = |rule: &str, id: &str| vec![(rule.to_string(), id.to_string())];
        assert_eq!(
            rules_of(p(Rules {
                max_severity: Some("HIGH".into()),
                ..Default::default()
            })),
            one("MaxSeverity", "CVE-CRIT")
        );
        assert_eq!(
            rules_of(p(Rules {
                min_cvss: Some(9.0),
                ..Default::default()
            })),
            one("MinCVSS", "CVE-CRIT")
        );
        assert_eq!(
            rules_of(p(Rules {
                kev: true,
                ..Default::default()
            })),
            one("KEV", "CVE-KEV")
        );
        assert_eq!(
            rules_of(p(Rules {
                min_epss: Some(0.5),
                ..Default::default()
            })),
            one("MinEPSS", "CVE-EPSS")
        );
        assert_eq!(
            rules_of(p(Rules {
                fix_available_for_days: Some(30),
                ..Default::default()
            })),
            one("FixAvailableForDays", "CVE-OLD")
        );
        // FixableOnly narrows every rule: the unfixed CRITICAL passes.
        assert!(p(Rules {
            max_severity: Some("HIGH".into()),
            fixable_only: true,
            ..Default::default()
        })
        .is_empty());
        // Scoped by image globs.
        let scoped = policy(
            Rules {
                kev: true,
                ..Default::default()
            },
            &["ghcr.io/acme/*"],
        );
        assert!(scoped.evaluate("s", "docker.io/x", &refs, &know).is_empty());
        assert_eq!(
            scoped.evaluate("s", "ghcr.io/acme/api", &refs, &know).len(),
            1
        );
    }

    #[test]
    fn policies_are_validated_and_the_default_follows_the_setting() {
        assert!(policy(Rules::default(), &[])
            .validate()
            .unwrap_err()
            .contains("no gate"));
        assert!(policy(
            Rules {
                max_severity: Some("SEVERE".into()),
                ..Default::default()
            },
            &[]
        )
        .validate()
        .is_err());
        assert!(policy(
            Rules {
                min_epss: Some(2.0),
                ..Default::default()
            },
            &[]
        )
        .validate()
        .is_err());
        let d = default_policy(Severity::Critical);
        assert_eq!(d.rules.max_severity.as_deref(), Some("HIGH"));
        assert!(d.validate().is_ok());
        let d = default_policy(Severity::Unknown);
        assert_eq!(d.rules.max_severity.as_deref(), Some("NONE"));
    }
}
