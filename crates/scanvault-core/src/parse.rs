//! Every report format ScanVault reads, detected from the content: Trivy JSON (schema 2 and
//! the legacy array), `trivy k8s` cluster reports, Grype JSON and CycloneDX JSON with
//! vulnerabilities. A Trivy report is read in one pass; the others are recognised by the
//! keys they carry and read by their own parser.

use crate::k8s::ClusterReport;
use crate::report::ParsedReport;
use crate::trivy::{self, ParseError};

/// A parsed body: one report, or a cluster report of many images.
#[derive(Debug, Clone)]
pub enum Parsed {
    Report(Box<ParsedReport>),
    Cluster(ClusterReport),
}

/// Parse a report of any supported format.
pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let text = trivy::prepare(body)?;
    match trivy::parse_text(text) {
        Err(ParseError::Unsupported { format }) => match format {
            trivy::FORMAT_GRYPE => {
                checked(crate::grype::parse(text)?).map(|r| Parsed::Report(Box::new(r)))
            }
            trivy::FORMAT_CYCLONEDX => {
                checked(crate::cyclonedx::parse(text)?).map(|r| Parsed::Report(Box::new(r)))
            }
            trivy::FORMAT_K8S => {
                let cluster = crate::k8s::parse(text)?;
                for image in &cluster.images {
                    trivy::check_text(&image.report)?;
                }
                Ok(Parsed::Cluster(cluster))
            }
            format => Err(ParseError::Unsupported { format }),
        },
        other => other.map(|r| Parsed::Report(Box::new(r))),
    }
}

fn checked(r: ParsedReport) -> Result<ParsedReport, ParseError> {
    trivy::check_text(&r)?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_that_are_not_reports_are_named() {
        for (body, what) in [
            (&br#"{"spdxVersion":"SPDX-2.3","packages":[]}"#[..], "SPDX"),
            (br#"{"version":"2.1.0","runs":[]}"#, "SARIF"),
            (
                br#"{"artifacts":[],"source":{},"descriptor":{"name":"syft"}}"#,
                "Syft",
            ),
        ] {
            match parse(body) {
                Err(e @ ParseError::Unsupported { .. }) => {
                    assert!(e.to_string().contains(what), "{e}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        match parse(br#"{"hello":"world"}"#) {
            Err(e @ ParseError::Invalid { .. }) => {
                assert!(
                    e.to_string().contains("Grype") && e.to_string().contains("CycloneDX"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn grype_negligible_is_low_and_the_word_is_kept() {
        let body = br#"{"matches":[{"vulnerability":{"id":"CVE-1","severity":"Negligible",
            "fix":{"versions":["1.1","1.2"],"state":"fixed"},"epss":[{"epss":0.25}],"risk":3.5,
            "cvss":[{"version":"2.0","vector":"AV:N","metrics":{"baseScore":9.0}},
                    {"version":"3.1","vector":"CVSS:3.1/x","metrics":{"baseScore":7.5}}]},
            "artifact":{"name":"zlib","version":"1.0","type":"deb","purl":"pkg:deb/zlib@1.0",
            "locations":[{"path":"/var/lib/dpkg/status"}]}}],
            "source":{"type":"image","target":{"userInput":"app:1","tags":["app:1"],
            "repoDigests":["app@sha256:aa"],"imageID":"sha256:bb","manifestDigest":"sha256:cc"}},
            "distro":{"name":"debian","version":"12"},"descriptor":{"name":"grype","version":"0.80.0"}}"#;
        let Parsed::Report(r) = parse(body).unwrap() else {
            panic!()
        };
        let f = &r.findings[0];
        assert_eq!(f.severity, crate::report::Severity::Low);
        assert_eq!(f.extra.scanner_severity.as_deref(), Some("Negligible"));
        assert_eq!(f.fixed_version.as_deref(), Some("1.1, 1.2"));
        assert_eq!(f.status.as_deref(), Some("fixed"));
        assert_eq!(f.cvss_score, Some(7.5), "v3 is preferred");
        assert_eq!(f.extra.epss, Some(0.25));
        assert_eq!(f.extra.risk, Some(3.5));
        assert_eq!(f.class.as_deref(), Some("os-pkgs"));
        assert_eq!(r.image.name.as_deref(), Some("app"));
        assert_eq!(r.image.digest.as_deref(), Some("sha256:aa"));
        assert_eq!(r.image.image_id.as_deref(), Some("sha256:bb"));
        assert_eq!(r.os_family.as_deref(), Some("debian"));
    }

    #[test]
    fn cyclonedx_vex_analysis_and_fixes_are_read() {
        let body = br#"{"bomFormat":"CycloneDX","specVersion":"1.6",
            "metadata":{"component":{"bom-ref":"img","type":"container","name":"app:2",
              "purl":"pkg:oci/app@sha256%3Add?repository_url=x"},
              "tools":{"components":[{"name":"trivy","version":"0.60.0"}]}},
            "components":[{"bom-ref":"c1","type":"library","group":"org.x","name":"lib","version":"1.0",
              "purl":"pkg:maven/org.x/lib@1.0"}],
            "vulnerabilities":[{"id":"CVE-2","ratings":[{"severity":"medium"},
                {"score":9.1,"severity":"critical","method":"CVSSv31","vector":"CVSS:3.1/y"}],
              "recommendation":"Upgrade org.x:lib to version 1.2.",
              "affects":[{"ref":"c1"}],
              "analysis":{"state":"not_affected","justification":"code_not_reachable"}},
              {"id":"CVE-3","ratings":[{"severity":"low"}],"affects":[{"ref":"c1",
                "versions":[{"version":"1.0","status":"affected"},{"version":"1.5","status":"unaffected"}]}]}]}"#;
        let Parsed::Report(r) = parse(body).unwrap() else {
            panic!()
        };
        let f = &r.findings[0];
        assert_eq!(
            (f.pkg_name.as_str(), f.installed_version.as_str()),
            ("org.x/lib", "1.0")
        );
        assert_eq!(f.severity, crate::report::Severity::Critical);
        assert_eq!(f.cvss_score, Some(9.1));
        assert_eq!(f.fixed_version.as_deref(), Some("1.2"));
        assert_eq!(f.extra.vex_state.as_deref(), Some("not_affected"));
        assert_eq!(
            f.extra.vex_justification.as_deref(),
            Some("code_not_reachable")
        );
        assert_eq!(f.purl.as_deref(), Some("pkg:maven/org.x/lib@1.0"));
        assert_eq!(r.findings[1].fixed_version.as_deref(), Some("1.5"));
        assert_eq!(r.image.name.as_deref(), Some("app"));
        assert_eq!(r.image.tag.as_deref(), Some("2"));
        assert_eq!(r.image.digest.as_deref(), Some("sha256:dd"));
        assert_eq!(r.scanner, "trivy");
    }
}
