use super::errors::*;
use super::*;
use crate::error::ErrorClass;
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

#[test]
fn next_links() {
    let link = |v: &[&str]| {
        let mut h = HeaderMap::new();
        for s in v {
            h.append(LINK, HeaderValue::from_str(s).unwrap());
        }
        next_link(&h)
    };
    assert_eq!(link(&[]), None);
    assert_eq!(
        link(&[r#"</v2/a/tags/list?last=b&n=2>; rel="next""#]).as_deref(),
        Some("/v2/a/tags/list?last=b&n=2")
    );
    assert_eq!(
        link(&[r#"<https://h/v2/a/tags/list?n=2&last=b>;rel=next"#]).as_deref(),
        Some("https://h/v2/a/tags/list?n=2&last=b")
    );
    // several links, in one header or several; rel lists; odd case; commas in the URL
    assert_eq!(
        link(&[r#"</first?a,b>; rel="first", </p2?x,y>; title="t"; REL="last Next""#]).as_deref(),
        Some("/p2?x,y")
    );
    assert_eq!(
        link(&[r#"</x>; rel="prev""#, r#"</y>; rel="next""#]).as_deref(),
        Some("/y")
    );
    assert_eq!(link(&[r#"</x>; rel="nextpage""#]), None);
    assert_eq!(link(&[r#"<>; rel="next""#]), None);
    assert_eq!(link(&[r#"</x; rel="next""#]), None, "unterminated");
}

/// A registry whose tag list never ends (`?page=k` links to `?page=k+1`), one whose link
/// points back to the first page, and one that refuses any page size.
async fn endless_tag_registry() -> std::net::SocketAddr {
    use axum::extract::{Path, RawQuery};
    use axum::response::IntoResponse;
    async fn tags(Path(rest): Path<String>, RawQuery(q): RawQuery) -> axum::response::Response {
        let q = q.unwrap_or_default();
        if rest.starts_with("small/") {
            if q.contains("n=") {
                let body = r#"{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested"}]}"#;
                return (axum::http::StatusCode::BAD_REQUEST, body).into_response();
            }
            return r#"{"tags":["x","y"]}"#.into_response();
        }
        let (body, link) = if rest.starts_with("loop/") {
            (
                r#"{"tags":["a"]}"#.to_string(),
                "</v2/loop/tags/list?n=1000>; rel=\"next\"".to_string(),
            )
        } else {
            let k: u64 = q
                .strip_prefix("page=")
                .and_then(|k| k.parse().ok())
                .unwrap_or(0);
            (
                format!(r#"{{"name":"e/x","tags":["t{k}"]}}"#),
                format!("<?page={}>; rel=\"next\"", k + 1),
            )
        };
        ([(LINK, link)], body).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/v2/{*rest}", axum::routing::get(tags));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn tag_pages_are_bounded_and_loops_detected() {
    let addr = endless_tag_registry().await;
    let c = RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![addr.to_string()],
        ..Default::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{addr}/e/x")).unwrap();
    let e = c.list_tags_limited(&r, None, 100, 5).await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("protocol", ErrorClass::Permanent));
    assert_eq!(
        e.to_string(),
        format!("registry {addr} sent more than 5 pages of tags for repository {addr}/e/x; not following more")
    );
    let e = c.list_tags_limited(&r, None, 3, 100).await.unwrap_err();
    assert_eq!(e.code(), "protocol");
    assert!(e.to_string().contains("has more than 3 tags"), "{e}");

    let r = Reference::parse(&format!("{addr}/loop/x")).unwrap();
    let e = c.list_tags(&r).await.unwrap_err();
    assert_eq!(e.code(), "protocol");
    assert!(e.to_string().contains("already read (a loop)"), "{e}");

    // A registry that refuses n=1000 is asked again without a page size.
    let r = Reference::parse(&format!("{addr}/small/x")).unwrap();
    assert_eq!(c.list_tags(&r).await.unwrap(), vec!["x", "y"]);
}
