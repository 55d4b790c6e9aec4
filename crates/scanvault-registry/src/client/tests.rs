use super::errors::*;
use super::*;
use reqwest::header::HeaderValue;

#[test]
fn insecure_host_matching() {
    let c = RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![
            "127.0.0.1:5000".into(),
            "http://reg.local/".into(),
            " Mixed.Case ".into(),
            "".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    assert!(c.is_insecure("127.0.0.1:5000"));
    assert!(
        !c.is_insecure("127.0.0.1:5001"),
        "host:port entries match exactly"
    );
    assert!(!c.is_insecure("127.0.0.1"));
    assert!(c.is_insecure("reg.local"));
    assert!(
        c.is_insecure("reg.local:8443"),
        "host entries match any port"
    );
    assert!(c.is_insecure("mixed.case:1"));
    assert!(!c.is_insecure("ghcr.io"));
    assert_eq!(strip_port("[::1]:5000"), "[::1]");
    assert_eq!(strip_port("[::1]"), "[::1]");
    assert_eq!(strip_port("h:1"), "h");
}

#[test]
fn digest_of_bytes() {
    assert_eq!(
        sha256_digest(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn retry_after_forms() {
    let mut h = HeaderMap::new();
    assert_eq!(retry_after(&h), None);
    h.insert(RETRY_AFTER, HeaderValue::from_static("17"));
    assert_eq!(retry_after(&h), Some(Duration::from_secs(17)));
    h.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    assert_eq!(
        retry_after(&h),
        Some(Duration::ZERO),
        "a past date means now"
    );
    let future = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
    h.insert(RETRY_AFTER, HeaderValue::from_str(&future).unwrap());
    let d = retry_after(&h).unwrap();
    assert!(
        d > Duration::from_secs(100) && d <= Duration::from_secs(120),
        "{d:?}"
    );
    h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
    assert_eq!(retry_after(&h), None);
}

#[test]
fn error_body_parsing() {
    let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"name_unknown"}]}"#;
    assert_eq!(
        parse_error_body(b),
        vec![
            (
                "MANIFEST_UNKNOWN".to_string(),
                "manifest unknown".to_string()
            ),
            ("NAME_UNKNOWN".to_string(), String::new())
        ]
    );
    assert!(parse_error_body(b"<html>").is_empty());
    assert!(parse_error_body(br#"{"errors": 5}"#).is_empty());
    let long = format!(
        r#"{{"errors":[{{"code":"X","message":"{}\n"}}]}}"#,
        "m".repeat(500)
    );
    let e = parse_error_body(long.as_bytes());
    assert!(e[0].1.chars().count() <= 201);
}

#[test]
fn headers() {
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    );
    assert_eq!(
        media_type(&h).as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    h.insert(
        "docker-content-digest",
        HeaderValue::from_static("sha256:nothex"),
    );
    assert_eq!(
        header_digest(&h),
        None,
        "a malformed digest header is ignored"
    );
    let d = sha256_digest(b"x");
    h.insert("docker-content-digest", HeaderValue::from_str(&d).unwrap());
    assert_eq!(header_digest(&h), Some(d));
    assert_eq!(
        body_media_type(br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#).as_deref(),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert!(MANIFEST_ACCEPT.contains("application/vnd.docker.distribution.manifest.list.v2+json"));
}

#[test]
fn debug_has_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("auth.json");
    std::fs::write(
        &p,
        r#"{"auths":{"ghcr.io":{"username":"u","password":"hunter2"}}}"#,
    )
    .unwrap();
    let c = RegistryClient::new(RegistryConfig {
        auth_file: Some(p),
        ..Default::default()
    })
    .unwrap();
    let d = format!("{c:?}");
    assert!(d.contains("ghcr.io") && !d.contains("hunter2"), "{d}");
}

#[test]
fn client_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<RegistryClient>();
    check::<RegistryError>();
}
