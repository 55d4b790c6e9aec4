use super::*;

#[test]
fn depth_scan_skips_strings_and_survives_truncation() {
    let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
    assert!(check_depth(deep(MAX_DEPTH).as_bytes()).is_ok());
    assert!(check_depth(deep(MAX_DEPTH + 1).as_bytes()).is_err());
    // Brackets inside strings, also after escaped quotes and backslashes, do not count.
    let quoted = format!(
        r#"{{"a": "\"{}\\", "b": "{}"}}"#,
        "[".repeat(100),
        "{".repeat(100)
    );
    assert!(check_depth(quoted.as_bytes()).is_ok(), "{quoted}");
    // An escaped quote does not end the string: the brackets after it are still text.
    let escaped = format!(r#"["\"{}"]"#, "[".repeat(100));
    assert!(check_depth(escaped.as_bytes()).is_ok());
    // Truncated input (an open string, a trailing backslash) ends the scan cleanly.
    for t in [&b"[\"abc"[..], b"[\"abc\\", b"\"", b"\"\\"] {
        assert!(check_depth(t).is_ok());
    }
    // Outside strings the nesting still counts after a string closes.
    let after = format!(r#"["x\\"{}"#, "[".repeat(MAX_DEPTH));
    assert!(check_depth(after.as_bytes()).is_err());
}

#[test]
fn empty_and_whitespace_bodies_are_empty() {
    assert_eq!(parse(b""), Err(ParseError::Empty));
    assert_eq!(parse(b" \r\n\t"), Err(ParseError::Empty));
    assert_eq!(parse(b"\xEF\xBB\xBF"), Err(ParseError::Empty));
}

#[test]
fn invalid_utf8_is_reported_with_its_offset() {
    assert_eq!(
        parse(b"{\"A\":\"\xff\"}"),
        Err(ParseError::NotUtf8 { offset: 6 })
    );
}

#[test]
fn truncated_json_is_a_syntax_error() {
    assert!(matches!(
        parse(br#"{"SchemaVersion": 2, "Results": ["#),
        Err(ParseError::Syntax { .. })
    ));
    assert!(matches!(parse(b"nul"), Err(ParseError::Syntax { .. })));
    assert!(matches!(parse(b"hello"), Err(ParseError::Syntax { .. })));
}

#[test]
fn wrong_types_name_the_field() {
    let e = parse(br#"{"SchemaVersion": 2, "Results": "x"}"#).unwrap_err();
    match e {
        ParseError::Invalid { message } => assert!(message.contains("Results"), "{message}"),
        other => panic!("{other:?}"),
    }
    let e =
        parse(br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":5}]}]}"#)
            .unwrap_err();
    match e {
        ParseError::Invalid { message } => {
            assert!(
                message.contains("Results[0].Vulnerabilities[0].VulnerabilityID"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn text_after_the_document_is_a_syntax_error() {
    let e = parse(br#"{"SchemaVersion": 2, "Results": []} {"more": 1}"#).unwrap_err();
    assert!(
        matches!(&e, ParseError::Syntax { message } if message.contains("trailing")),
        "{e:?}"
    );
    let e = parse(b"[] x").unwrap_err();
    assert!(matches!(e, ParseError::Syntax { .. }), "{e:?}");
    assert!(parse(b"{\"SchemaVersion\": 2, \"Results\": []}\r\n \n").is_ok());
}

#[test]
fn scalars_and_foreign_objects_are_not_reports() {
    assert!(matches!(parse(b"42"), Err(ParseError::Invalid { .. })));
    assert!(matches!(parse(b"{}"), Err(ParseError::Invalid { .. })));
    assert!(matches!(
        parse(br#"{"SchemaVersion": 3}"#),
        Err(ParseError::Invalid { .. })
    ));
    assert_eq!(
        parse(br#"{"matches": [], "descriptor": {}}"#),
        Err(ParseError::Unsupported { format: "Grype" })
    );
    assert_eq!(
        parse(br#"{"bomFormat": "CycloneDX", "specVersion": "1.5"}"#),
        Err(ParseError::Unsupported {
            format: "CycloneDX"
        })
    );
    assert!(matches!(
        parse(br#"{"ClusterName": "", "Resources": []}"#),
        Err(ParseError::Unsupported { .. })
    ));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let body = "[".repeat(100_000);
    assert!(parse(body.as_bytes()).is_err());
    let body = format!("{{\"SchemaVersion\":2,\"X\":{}", "[".repeat(100_000));
    assert!(parse(body.as_bytes()).is_err());
}

#[test]
fn nesting_is_limited_but_brackets_in_strings_do_not_count() {
    let deep = format!(
        "{{\"SchemaVersion\":2,\"X\":{}{}}}",
        "[".repeat(65),
        "]".repeat(65)
    );
    match parse(deep.as_bytes()) {
        Err(ParseError::Invalid { message }) => {
            assert!(message.contains("nested deeper"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let ok = format!(
        "{{\"SchemaVersion\":2,\"ArtifactName\":\"{}\\\"\"}}",
        "[".repeat(500)
    );
    assert!(parse(ok.as_bytes()).is_ok());
}

#[test]
fn nul_characters_in_any_stored_field_are_refused() {
    let body = br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"p","Title":"a\u0000b"}]}]}"#;
    match parse(body) {
        Err(ParseError::Invalid { message }) => assert!(message.contains("Title"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(parse(br#"{"SchemaVersion":2,"ArtifactName":"x\u0000"}"#).is_err());
}

#[test]
fn legacy_null_is_an_empty_report() {
    let r = parse(b"null").unwrap();
    assert_eq!(r.format, ReportFormat::TrivyLegacy);
    assert!(r.findings.is_empty());
    assert_eq!(r.image.name, None);
}

#[test]
fn duplicate_triples_merge_keeping_highest_severity_and_any_fix() {
    let body = br#"{"SchemaVersion":2,"ArtifactName":"app:1","ArtifactType":"container_image","Results":[
      {"Target":"a","Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"p","InstalledVersion":"1","Severity":"LOW"}]},
      {"Target":"b","Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"p","InstalledVersion":"1","Severity":"HIGH","FixedVersion":"2"},
                                       {"VulnerabilityID":"CVE-1","PkgName":"p","InstalledVersion":"1.1","Severity":"MEDIUM"}]}]}"#;
    let r = parse(body).unwrap();
    assert_eq!(r.vulnerability_entries, 3);
    assert_eq!(r.findings.len(), 2);
    assert_eq!(r.findings[0].severity, Severity::High);
    assert_eq!(r.findings[0].fixed_version.as_deref(), Some("2"));
    assert_eq!(r.findings[0].target.as_deref(), Some("a"));
    assert_eq!(r.vulnerabilities.len(), 1);
    assert_eq!(r.vulnerabilities[0].severity, Severity::High);
    assert_eq!(r.image.name.as_deref(), Some("app"));
    assert_eq!(r.image.tag.as_deref(), Some("1"));
}

#[test]
fn text_is_borrowed_from_the_body_unless_escaped() {
    let v: TVuln = serde_json::from_str(
        r#"{"VulnerabilityID": "CVE-1", "Title": "plain", "Description": "a \u0026 b",
            "References": ["https://x"], "CVSS": {"nvd": {"V3Vector": "AV:N"}}}"#,
    )
    .unwrap();
    let borrowed = |s: &Str| matches!(s.0, Cow::Borrowed(_));
    assert!(borrowed(v.title.as_ref().unwrap()));
    assert!(borrowed(&v.references.as_ref().unwrap()[0]));
    let (source, cvss) = v.cvss.as_ref().unwrap().iter().next().unwrap();
    assert!(borrowed(source) && borrowed(cvss.v3_vector.as_ref().unwrap()));
    // An escape makes it owned, with the unescaped text.
    let d = v.description.as_ref().unwrap();
    assert!(!borrowed(d));
    assert_eq!(&**d, "a & b");
}

#[test]
fn cvss_prefers_the_severity_source() {
    let body = br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[
      {"VulnerabilityID":"CVE-1","PkgName":"p","InstalledVersion":"1","SeveritySource":"redhat",
       "CVSS":{"nvd":{"V3Score":9.8},"redhat":{"V3Score":7.5,"V3Vector":"CVSS:3.1/X"}}},
      {"VulnerabilityID":"CVE-2","PkgName":"p","InstalledVersion":"1",
       "CVSS":{"ghsa":{"V40Score":6.3},"redhat":{"V3Score":5.3}}}]}]}"#;
    let r = parse(body).unwrap();
    assert_eq!(r.findings[0].cvss_score, Some(7.5));
    assert_eq!(
        r.vulnerabilities[0].cvss_vector.as_deref(),
        Some("CVSS:3.1/X")
    );
    assert_eq!(r.findings[1].cvss_score, Some(6.3));
    assert_eq!(r.max_cvss(), Some(7.5));
}

#[test]
fn legacy_target_gives_name_and_os() {
    let body = br#"[{"Target":"knqyf263/vuln-image:1.2.3 (alpine 3.7.1)","Vulnerabilities":null}]"#;
    let r = parse(body).unwrap();
    assert_eq!(r.image.name.as_deref(), Some("knqyf263/vuln-image"));
    assert_eq!(r.image.tag.as_deref(), Some("1.2.3"));
    assert_eq!(r.os_family.as_deref(), Some("alpine"));
    assert_eq!(r.os_name.as_deref(), Some("3.7.1"));
}

#[test]
fn entries_without_a_vulnerability_id_are_skipped_and_counted() {
    let body = br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[
        {"VulnerabilityID":"CVE-1","PkgName":"a","InstalledVersion":"1","Severity":"LOW"},
        {"PkgName":"p"}]},
        {"Vulnerabilities":[{"VulnerabilityID":"  ","PkgName":"q"},
        {"VulnerabilityID":"CVE-2","PkgName":"b","InstalledVersion":"2","Severity":"HIGH"}]}]}"#;
    let r = parse(body).unwrap();
    let ids: Vec<&str> = r
        .findings
        .iter()
        .map(|f| f.vulnerability_id.as_str())
        .collect();
    assert_eq!(ids, ["CVE-1", "CVE-2"]);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].reason, NO_VULNERABILITY_ID);
    assert_eq!(r.skipped[0].count, 2);
    assert_eq!(r.skipped[0].first_at, "Results[0].Vulnerabilities[1]");
    assert_eq!(
        r.skipped[0].message(),
        "2 vulnerability entries skipped (no VulnerabilityID), the first at Results[0].Vulnerabilities[1]"
    );
    let clean = br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"a"}]}]}"#;
    assert!(parse(clean).unwrap().skipped.is_empty());
}

#[test]
fn pkg_version_stands_in_for_a_missing_installed_version() {
    // The original service's request schema spelled the installed version `PkgVersion`.
    let body = br#"{"SchemaVersion":2,"Results":[{"Vulnerabilities":[
        {"VulnerabilityID":"CVE-1","PkgName":"a","PkgVersion":"1.0"},
        {"VulnerabilityID":"CVE-2","PkgName":"b","InstalledVersion":"2.0","PkgVersion":"9"},
        {"VulnerabilityID":"CVE-3","PkgName":"c","InstalledVersion":"","PkgVersion":"3.0"}]}]}"#;
    let r = parse(body).unwrap();
    let versions: Vec<&str> = r
        .findings
        .iter()
        .map(|f| f.installed_version.as_str())
        .collect();
    assert_eq!(versions, ["1.0", "2.0", "3.0"]);
}

#[test]
fn bad_created_at_is_invalid_and_zero_time_is_absent() {
    let body = br#"{"SchemaVersion":2,"CreatedAt":"yesterday"}"#;
    assert!(matches!(parse(body), Err(ParseError::Invalid { .. })));
    let body = br#"{"SchemaVersion":2,"CreatedAt":"0001-01-01T00:00:00Z"}"#;
    assert_eq!(parse(body).unwrap().created_at, None);
}
