//! Resolving and listing tags against in-process registries (axum on 127.0.0.1:0): Bearer
//! and Basic auth (from the auth file or given per request), error statuses, the GET
//! fallback, tag list pagination, and transport failures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Form, Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use base64::Engine as _;
use scanvault_registry::{
    parse_repository_pattern, sha256_digest, Credentials, ErrorClass, Reference, RegistryAccess,
    RegistryClient, RegistryConfig, RegistryError, MAX_TAGS,
};

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const USER: &str = "alice";
const PASS: &str = "s3cr3t-pa55";
const REPO: &str = "e2e/app";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AuthMode {
    Open,
    Bearer,
    Basic,
}

/// How the tag list links to its next page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LinkStyle {
    /// `</v2/...>`, as CNCF distribution writes it
    Relative,
    /// `<http://addr/v2/...>`
    Absolute,
    /// relative, then absolute, then relative, ...
    Alternate,
    /// an absolute link to another host
    Foreign,
}

struct Mock {
    auth: AuthMode,
    digest_header: bool,
    head_allowed: bool,
    expires_in: Option<u64>,
    /// The tags of `REPO`, in the registry's order (duplicates allowed, to test dedup).
    tags: Vec<String>,
    /// Most tags per page, whatever the client's `n`.
    page_cap: usize,
    link_style: LinkStyle,
    token_hits: AtomicUsize,
    head_hits: AtomicUsize,
    get_hits: AtomicUsize,
    tag_page_hits: AtomicUsize,
    /// Query strings of the tag list requests.
    tag_queries: Mutex<Vec<String>>,
    addr: OnceLock<SocketAddr>,
}

impl Mock {
    fn new(auth: AuthMode) -> Self {
        Self {
            auth,
            digest_header: true,
            head_allowed: true,
            expires_in: None,
            tags: vec!["1.0".into()],
            page_cap: usize::MAX,
            link_style: LinkStyle::Relative,
            token_hits: AtomicUsize::new(0),
            head_hits: AtomicUsize::new(0),
            get_hits: AtomicUsize::new(0),
            tag_page_hits: AtomicUsize::new(0),
            tag_queries: Mutex::new(Vec::new()),
            addr: OnceLock::new(),
        }
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn registry_error(status: StatusCode, code: &str, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"errors":[{{"code":"{code}","message":"{msg}","detail":null}}]}}"#),
    )
        .into_response()
}

/// The registry's 401 answer when `headers` do not carry the expected credentials.
fn check_auth(m: &Mock, repo: &str, headers: &HeaderMap) -> Option<Response> {
    let authz = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match m.auth {
        AuthMode::Open => None,
        AuthMode::Bearer => {
            if authz == format!("Bearer T:repository:{repo}:pull") {
                return None;
            }
            let addr = m.addr.get().unwrap();
            let mut r = registry_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                format!(
                    r#"Bearer realm="http://{addr}/token",service="mock-registry",scope="repository:{repo}:pull""#
                )
                .parse()
                .unwrap(),
            );
            Some(r)
        }
        AuthMode::Basic => {
            if authz == basic(USER, PASS) {
                return None;
            }
            let mut r = registry_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                r#"Basic realm="Registry Realm""#.parse().unwrap(),
            );
            Some(r)
        }
    }
}

/// `GET /v2/<repo>/tags/list?n=&last=`, paginated with `Link` headers like distribution.
fn tags_list(m: &Mock, repo: &str, query: Option<String>, headers: &HeaderMap) -> Response {
    if let Some(r) = check_auth(m, repo, headers) {
        return r;
    }
    m.tag_page_hits.fetch_add(1, Ordering::SeqCst);
    let query = query.unwrap_or_default();
    m.tag_queries.lock().unwrap().push(query.clone());
    if repo != REPO {
        return registry_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let n = param("n")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        .min(m.page_cap);
    // `last` is an index here, so that duplicate tags page like any others.
    let start = param("last").map_or(0, |l| l.parse::<usize>().unwrap() + 1);
    let end = (start + n).min(m.tags.len());
    let page = &m.tags[start..end];
    let body = serde_json::json!({"name": repo, "tags": page}).to_string();
    let mut r = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if end < m.tags.len() {
        let path = format!("/v2/{repo}/tags/list?n={n}&last={}", end - 1);
        let addr = m.addr.get().unwrap();
        let page_no = start / n.max(1);
        let link = match m.link_style {
            LinkStyle::Relative => path,
            LinkStyle::Absolute => format!("http://{addr}{path}"),
            LinkStyle::Alternate if page_no % 2 == 0 => path,
            LinkStyle::Alternate => format!("http://{addr}{path}"),
            LinkStyle::Foreign => {
                format!("http://registry.elsewhere.example:{}{path}", addr.port())
            }
        };
        r.headers_mut().insert(
            header::LINK,
            format!(r#"<{link}>; rel="next""#).parse().unwrap(),
        );
    }
    r
}

async fn manifests(
    State(m): State<Arc<Mock>>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        return tags_list(&m, repo, query, &headers);
    }
    let Some((repo, reference)) = rest.rsplit_once("/manifests/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    assert!(
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains(OCI_MANIFEST)
                && a.contains("application/vnd.docker.distribution.manifest.v2+json")),
        "the client asks for OCI and Docker manifests"
    );
    if let Some(r) = check_auth(&m, repo, &headers) {
        return r;
    }
    if method == Method::HEAD {
        m.head_hits.fetch_add(1, Ordering::SeqCst);
        if !m.head_allowed {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
    } else {
        m.get_hits.fetch_add(1, Ordering::SeqCst);
    }
    if repo != REPO {
        return registry_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    }
    let digest = sha256_digest(MANIFEST.as_bytes());
    if reference != "1.0" && reference != digest {
        return registry_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    }
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, OCI_MANIFEST)],
        MANIFEST,
    )
        .into_response();
    if m.digest_header {
        r.headers_mut()
            .insert("docker-content-digest", digest.parse().unwrap());
    }
    r
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    service: Option<String>,
    scope: Option<String>,
}

async fn token(
    State(m): State<Arc<Mock>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    m.token_hits.fetch_add(1, Ordering::SeqCst);
    assert_eq!(q.service.as_deref(), Some("mock-registry"));
    let scope = q.scope.unwrap_or_default();
    assert!(
        scope.starts_with("repository:") && scope.ends_with(":pull"),
        "{scope}"
    );
    let authz = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if authz != basic(USER, PASS) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"details":"incorrect username or password"}"#,
        )
            .into_response();
    }
    let body = match m.expires_in {
        // Docker Hub style: access_token + expires_in
        Some(s) => format!(r#"{{"access_token":"T:{scope}","expires_in":{s}}}"#),
        None => format!(r#"{{"token":"T:{scope}"}}"#),
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(serde::Deserialize)]
struct RefreshForm {
    grant_type: String,
    refresh_token: String,
    service: Option<String>,
    scope: String,
    client_id: String,
}

/// OAuth2 refresh-token grant (Docker's `identitytoken`).
async fn token_post(State(m): State<Arc<Mock>>, Form(f): Form<RefreshForm>) -> Response {
    m.token_hits.fetch_add(1, Ordering::SeqCst);
    assert_eq!(f.grant_type, "refresh_token");
    assert_eq!(f.service.as_deref(), Some("mock-registry"));
    assert!(!f.client_id.is_empty());
    if f.refresh_token != "refresh-abc" {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"details":"invalid refresh token"}"#,
        )
            .into_response();
    }
    let body = format!(r#"{{"access_token":"T:{}","expires_in":300}}"#, f.scope);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

async fn spawn_mock(mock: Mock) -> (Arc<Mock>, SocketAddr) {
    let m = Arc::new(mock);
    let router = Router::new()
        .route("/v2/{*rest}", any(manifests))
        .route("/token", get(token).post(token_post))
        .with_state(m.clone());
    let addr = serve(router).await;
    m.addr.set(addr).unwrap();
    (m, addr)
}

/// A registry whose manifest endpoint always answers `status` with `headers` and `body`.
async fn spawn_fixed(
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
) -> SocketAddr {
    let handler = move || {
        let headers = headers.clone();
        async move {
            let mut r = (status, body).into_response();
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
    };
    serve(Router::new().route("/v2/{*rest}", any(handler))).await
}

struct AuthFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn auth_file(host: &str, user: &str, pass: &str) -> AuthFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::write(
        &path,
        format!(
            r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}, "https://index.docker.io/v1/": {{"auth": "aHViOmh1Yg=="}}}}}}"#
        ),
    )
    .unwrap();
    AuthFile { _dir: dir, path }
}

fn client(addr: SocketAddr, auth: Option<&AuthFile>) -> RegistryClient {
    RegistryClient::new(RegistryConfig {
        auth_file: auth.map(|a| a.path.clone()),
        insecure_hosts: vec![addr.to_string()],
        timeout: Duration::from_secs(5),
        user_agent: "scanvault-registry-test".into(),
    })
    .unwrap()
}

fn reference(addr: SocketAddr, rest: &str) -> Reference {
    Reference::parse(&format!("{addr}/{rest}")).unwrap()
}

async fn resolve_err(c: &RegistryClient, r: &Reference) -> RegistryError {
    match c.resolve(r).await {
        Ok(ok) => panic!("{r} should fail, got {ok:?}"),
        Err(e) => e,
    }
}

fn manifest_digest() -> String {
    sha256_digest(MANIFEST.as_bytes())
}

#[tokio::test]
async fn bearer_token_auth_with_credentials_from_auth_file_and_token_cache() {
    let (m, addr) = spawn_mock(Mock::new(AuthMode::Bearer)).await;
    let auth = auth_file(&addr.to_string(), USER, PASS);
    let c = client(addr, Some(&auth));
    let r = reference(addr, "e2e/app:1.0");
    let got = c.resolve(&r).await.unwrap();
    assert_eq!(got.digest, manifest_digest());
    assert_eq!(got.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 1);

    // Cached token: no new token request, also from a clone of the client.
    let c2 = c.clone();
    assert_eq!(c2.resolve(&r).await.unwrap().digest, manifest_digest());
    let by_digest = reference(addr, &format!("e2e/app@{}", manifest_digest()));
    assert_eq!(
        c2.resolve(&by_digest).await.unwrap().digest,
        manifest_digest()
    );
    assert_eq!(
        m.token_hits.load(Ordering::SeqCst),
        1,
        "token is cached per (registry, scope)"
    );
    assert_eq!(m.get_hits.load(Ordering::SeqCst), 0, "HEAD was enough");

    // Another repository is another scope: a new token (and then a 404).
    let e = resolve_err(&c, &reference(addr, "e2e/missing:1.0")).await;
    assert_eq!(e.code(), "manifest_unknown");
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 2);
    assert_eq!(
        r.with_digest(&got.digest),
        format!("{addr}/e2e/app@{}", manifest_digest())
    );
}

#[tokio::test]
async fn bearer_token_is_refetched_after_expiry() {
    let mut mock = Mock::new(AuthMode::Bearer);
    mock.expires_in = Some(1);
    let (m, addr) = spawn_mock(mock).await;
    let auth = auth_file(&format!("http://{addr}/v2/"), USER, PASS);
    let c = client(addr, Some(&auth));
    let r = reference(addr, "e2e/app:1.0");
    c.resolve(&r).await.unwrap();
    c.resolve(&r).await.unwrap();
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.resolve(&r).await.unwrap().digest, manifest_digest());
    assert_eq!(
        m.token_hits.load(Ordering::SeqCst),
        2,
        "expired token renewed"
    );
}

#[tokio::test]
async fn bearer_with_wrong_password_is_permanent_unauthorized_without_secrets() {
    let (_m, addr) = spawn_mock(Mock::new(AuthMode::Bearer)).await;
    let auth = auth_file(&addr.to_string(), USER, "wrong-password-xyz");
    let c = client(addr, Some(&auth));
    let e = resolve_err(&c, &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "unauthorized");
    assert_eq!(e.class(), ErrorClass::Permanent);
    let msg = e.to_string();
    assert!(msg.contains(&format!("image {addr}/e2e/app:1.0")), "{msg}");
    assert!(msg.contains(&format!("registry {addr}")), "{msg}");
    assert!(msg.contains("rejected the credentials"), "{msg}");
    assert!(msg.contains("incorrect username or password"), "{msg}");
    assert!(
        !msg.contains("wrong-password-xyz") && !msg.contains(PASS),
        "{msg}"
    );
    assert!(!format!("{e:?}").contains("wrong-password-xyz"));
}

#[tokio::test]
async fn bearer_without_credentials_is_unauthorized() {
    let (_m, addr) = spawn_mock(Mock::new(AuthMode::Bearer)).await;
    let c = client(addr, None);
    let e = resolve_err(&c, &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "unauthorized");
    assert!(
        e.to_string()
            .contains("no registry auth file is configured"),
        "{e}"
    );

    // An auth file without an entry for this registry.
    let auth = auth_file("ghcr.io", USER, PASS);
    let c = client(addr, Some(&auth));
    let e = resolve_err(&c, &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "unauthorized");
    assert!(
        e.to_string()
            .contains(&format!("has no credentials for {addr}")),
        "{e}"
    );
}

#[tokio::test]
async fn bearer_with_identity_token_uses_refresh_grant() {
    let (m, addr) = spawn_mock(Mock::new(AuthMode::Bearer)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        format!(r#"{{"auths": {{"{addr}": {{"identitytoken": "refresh-abc"}}}}}}"#),
    )
    .unwrap();
    let c = RegistryClient::new(RegistryConfig {
        auth_file: Some(path),
        insecure_hosts: vec![addr.to_string()],
        ..RegistryConfig::default()
    })
    .unwrap();
    let got = c.resolve(&reference(addr, "e2e/app:1.0")).await.unwrap();
    assert_eq!(got.digest, manifest_digest());
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn basic_auth_registry() {
    let (m, addr) = spawn_mock(Mock::new(AuthMode::Basic)).await;
    let auth = auth_file(&addr.to_string(), USER, PASS);
    let c = client(addr, Some(&auth));
    let r = reference(addr, "e2e/app:1.0");
    let got = c.resolve(&r).await.unwrap();
    assert_eq!(got.digest, manifest_digest());
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 0);
    c.resolve(&r).await.unwrap();
    assert_eq!(
        m.head_hits.load(Ordering::SeqCst),
        2,
        "Basic header is sent up front once known"
    );

    let bad = auth_file(&addr.to_string(), USER, "nope-nope");
    let e = resolve_err(&client(addr, Some(&bad)), &r).await;
    assert_eq!(
        (e.code(), e.class()),
        ("unauthorized", ErrorClass::Permanent)
    );
    assert_eq!(e.status(), Some(401));
    assert!(e.to_string().contains("were not accepted"), "{e}");
    assert!(!e.to_string().contains("nope-nope"), "{e}");

    let e = resolve_err(&client(addr, None), &r).await;
    assert_eq!(e.code(), "unauthorized");
}

#[tokio::test]
async fn server_error_is_transient_registry_unavailable() {
    let addr = spawn_fixed(StatusCode::INTERNAL_SERVER_ERROR, vec![], "boom").await;
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "registry_unavailable");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.status(), Some(500));
    assert!(
        e.to_string().contains(&format!(
            "registry {addr} failed to answer for image {addr}/e2e/app:1.0 (HTTP 500 Internal Server Error)"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn rate_limited_is_transient_and_keeps_retry_after() {
    let addr = spawn_fixed(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after", "7")],
        r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
    )
    .await;
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "rate_limited");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(e.to_string().contains("retry after 7 s"), "{e}");

    let addr = spawn_fixed(StatusCode::TOO_MANY_REQUESTS, vec![], "").await;
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "rate_limited");
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn not_found_is_permanent_manifest_unknown() {
    let addr = spawn_fixed(
        StatusCode::NOT_FOUND,
        vec![("content-type", "application/json")],
        r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
    )
    .await;
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/missing:1.0")).await;
    assert_eq!(e.code(), "manifest_unknown");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_eq!(
        e.to_string(),
        format!("image {addr}/e2e/missing:1.0 not found in registry {addr}")
    );

    // The full mock: unknown tag of a known repository, unknown repository.
    let (_m, addr) = spawn_mock(Mock::new(AuthMode::Open)).await;
    let c = client(addr, None);
    let e = resolve_err(&c, &reference(addr, "e2e/app:2.0")).await;
    assert_eq!(e.code(), "manifest_unknown");
    assert_eq!(
        e.to_string(),
        format!("image {addr}/e2e/app:2.0 not found in registry {addr}")
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    let e = resolve_err(&c, &reference(addr, &format!("e2e/app@{missing}"))).await;
    assert_eq!(e.code(), "manifest_unknown");
    assert!(e.to_string().contains(&missing), "{e}");
}

#[tokio::test]
async fn error_codes_in_get_bodies_are_used() {
    // HEAD not allowed → GET, whose body says NAME_UNKNOWN.
    let mut mock = Mock::new(AuthMode::Open);
    mock.head_allowed = false;
    let (_m, addr) = spawn_mock(mock).await;
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/nothere:1.0")).await;
    assert_eq!(e.code(), "manifest_unknown");
    assert!(
        e.to_string()
            .contains("(the registry has no repository e2e/nothere)"),
        "{e}"
    );
}

#[tokio::test]
async fn head_without_digest_header_falls_back_to_get_and_hashes() {
    let mut mock = Mock::new(AuthMode::Open);
    mock.digest_header = false;
    let (m, addr) = spawn_mock(mock).await;
    let got = client(addr, None)
        .resolve(&reference(addr, "e2e/app:1.0"))
        .await
        .unwrap();
    assert_eq!(got.digest, manifest_digest());
    assert_eq!(got.media_type.as_deref(), Some(OCI_MANIFEST));
    assert_eq!(m.head_hits.load(Ordering::SeqCst), 1);
    assert_eq!(m.get_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn head_not_allowed_falls_back_to_get() {
    let mut mock = Mock::new(AuthMode::Basic);
    mock.head_allowed = false;
    mock.digest_header = false;
    let (m, addr) = spawn_mock(mock).await;
    let auth = auth_file(&addr.to_string(), USER, PASS);
    let c = client(addr, Some(&auth));
    let got = c.resolve(&reference(addr, "e2e/app:1.0")).await.unwrap();
    assert_eq!(got.digest, manifest_digest());
    assert_eq!(m.get_hits.load(Ordering::SeqCst), 1);
    // by digest: GET verifies the bytes hash to the digest
    let d = manifest_digest();
    let got = c
        .resolve(&reference(addr, &format!("e2e/app@{d}")))
        .await
        .unwrap();
    assert_eq!(got.digest, d);
}

#[tokio::test]
async fn forbidden_is_unauthorized_and_other_4xx_is_protocol() {
    let addr = spawn_fixed(
        StatusCode::FORBIDDEN,
        vec![],
        r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
    )
    .await;
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(
        (e.code(), e.class()),
        ("unauthorized", ErrorClass::Permanent)
    );
    assert_eq!(e.status(), Some(403));

    let addr = spawn_fixed(StatusCode::BAD_REQUEST, vec![], "").await;
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/app:1.0")).await;
    assert_eq!((e.code(), e.class()), ("protocol", ErrorClass::Permanent));
    assert!(e.to_string().contains("HTTP 400 Bad Request"), "{e}");

    // 401 without any challenge
    let addr = spawn_fixed(StatusCode::UNAUTHORIZED, vec![], "").await;
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "unauthorized");
}

#[tokio::test]
async fn closed_port_is_transient_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = resolve_err(&client(addr, None), &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "network");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(
        e.to_string().contains(&format!(
            "cannot reach registry {addr} while resolving image {addr}/e2e/app:1.0: connection refused"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn slow_registry_is_transient_timeout() {
    let router = Router::new().route(
        "/v2/{*rest}",
        any(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        }),
    );
    let addr = serve(router).await;
    let c = RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![addr.ip().to_string()], // host-only entry: any port
        timeout: Duration::from_millis(300),
        ..RegistryConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let e = resolve_err(&c, &reference(addr, "e2e/app:1.0")).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e.code(), "timeout");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(
        e.to_string().contains("did not answer within 300 ms"),
        "{e}"
    );
}

#[tokio::test]
async fn https_to_a_plain_http_registry_is_permanent_tls_with_hint() {
    let (m, addr) = spawn_mock(Mock::new(AuthMode::Open)).await;
    let c = RegistryClient::new(RegistryConfig::default()).unwrap(); // not insecure: https
    let e = resolve_err(&c, &reference(addr, "e2e/app:1.0")).await;
    assert_eq!(e.code(), "tls", "{e}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.to_string().contains("REGISTRY_INSECURE_HOSTS"), "{e}");
    assert_eq!(
        m.head_hits.load(Ordering::SeqCst),
        0,
        "no silent http fallback"
    );
}

#[tokio::test]
async fn bad_auth_file_fails_at_construction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"auths": {"x": {"auth": "%%%topsecret"}}}"#).unwrap();
    let e = RegistryClient::new(RegistryConfig {
        auth_file: Some(path.clone()),
        ..RegistryConfig::default()
    })
    .unwrap_err();
    assert_eq!(e.code(), "config");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(!e.to_string().contains("topsecret"), "{e}");

    let e = RegistryClient::new(RegistryConfig {
        auth_file: Some(dir.path().join("missing.json")),
        ..RegistryConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("missing.json"), "{e}");
}

#[tokio::test]
async fn resolve_str_reports_invalid_references() {
    let c = RegistryClient::new(RegistryConfig::default()).unwrap();
    let e = c.resolve_str("Bad/Image:1").await.unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        ("invalid_reference", ErrorClass::Permanent)
    );
    assert!(e.to_string().contains("must be lowercase"), "{e}");

    // Reference's fields are public; a hand-built bad one is caught before any request.
    let hand_built = Reference {
        registry: "127.0.0.1:1".into(),
        repository: "e2e/App".into(),
        tag: Some("1.0".into()),
        digest: None,
    };
    let e = c.resolve(&hand_built).await.unwrap_err();
    assert_eq!(e.code(), "invalid_reference", "{e}");
}

fn tags(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn repo_pattern(addr: SocketAddr, repo: &str) -> Reference {
    parse_repository_pattern(&format!("{addr}/{repo}:*"))
        .unwrap()
        .expect("a repository pattern")
}

#[tokio::test]
async fn list_tags_follows_relative_and_absolute_next_links() {
    for style in [
        LinkStyle::Relative,
        LinkStyle::Absolute,
        LinkStyle::Alternate,
    ] {
        let mut mock = Mock::new(AuthMode::Open);
        mock.tags = tags(&["1.0", "latest", "1.1", "2.0", "1.0", "0.9-rc.1", "latest"]);
        mock.page_cap = 3;
        mock.link_style = style;
        let (m, addr) = spawn_mock(mock).await;
        let got = client(addr, None)
            .list_tags(&repo_pattern(addr, REPO))
            .await
            .unwrap_or_else(|e| panic!("{style:?}: {e}"));
        assert_eq!(
            got,
            tags(&["1.0", "latest", "1.1", "2.0", "0.9-rc.1"]),
            "{style:?}: the registry's order, duplicates dropped"
        );
        assert_eq!(m.tag_page_hits.load(Ordering::SeqCst), 3, "{style:?}");
        let queries = m.tag_queries.lock().unwrap().clone();
        assert_eq!(
            queries,
            vec!["n=1000", "n=3&last=2", "n=3&last=5"],
            "{style:?}: first page asks for n=1000, then the links are followed as given"
        );
    }

    // A single page (the registry has fewer tags than n): one request.
    let (m, addr) = spawn_mock(Mock::new(AuthMode::Open)).await;
    let r = reference(addr, "e2e/app:ignored-tag");
    assert_eq!(
        client(addr, None).list_tags(&r).await.unwrap(),
        tags(&["1.0"])
    );
    assert_eq!(m.tag_page_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn list_tags_stops_at_the_tag_limit() {
    let all: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
    let mut mock = Mock::new(AuthMode::Open);
    mock.tags = all[..MAX_TAGS].to_vec();
    let (m, addr) = spawn_mock(mock).await;
    let got = client(addr, None)
        .list_tags(&repo_pattern(addr, REPO))
        .await
        .unwrap();
    assert_eq!(got.len(), MAX_TAGS, "exactly the limit is fine");
    assert_eq!(got.last(), all.get(MAX_TAGS - 1));
    assert_eq!(m.tag_page_hits.load(Ordering::SeqCst), MAX_TAGS / 1000);

    let mut mock = Mock::new(AuthMode::Open);
    mock.tags = all;
    let (_m, addr) = spawn_mock(mock).await;
    let e = client(addr, None)
        .list_tags(&repo_pattern(addr, REPO))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.class()), ("protocol", ErrorClass::Permanent));
    assert_eq!(
        e.to_string(),
        format!("repository {addr}/{REPO} in registry {addr} has more than {MAX_TAGS} tags; at most {MAX_TAGS} are listed")
    );
}

#[tokio::test]
async fn list_tags_of_a_missing_repository_is_manifest_unknown() {
    let (_m, addr) = spawn_mock(Mock::new(AuthMode::Open)).await;
    let e = client(addr, None)
        .list_tags(&repo_pattern(addr, "e2e/missing"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        ("manifest_unknown", ErrorClass::Permanent)
    );
    assert_eq!(e.status(), Some(404));
    assert_eq!(
        e.to_string(),
        format!("repository {addr}/e2e/missing not found in registry {addr}")
    );
}

#[tokio::test]
async fn list_tags_does_not_follow_links_to_other_hosts() {
    let mut mock = Mock::new(AuthMode::Open);
    mock.tags = tags(&["a", "b", "c"]);
    mock.page_cap = 2;
    mock.link_style = LinkStyle::Foreign;
    let (m, addr) = spawn_mock(mock).await;
    let e = client(addr, None)
        .list_tags(&repo_pattern(addr, REPO))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.class()), ("protocol", ErrorClass::Permanent));
    assert!(
        e.to_string()
            .contains("points to another scheme, host or port; not following it"),
        "{e}"
    );
    assert_eq!(m.tag_page_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn list_tags_with_bearer_auth_reuses_the_token_across_pages() {
    let mut mock = Mock::new(AuthMode::Bearer);
    mock.tags = tags(&["a", "b", "c", "d", "e"]);
    mock.page_cap = 2;
    let (m, addr) = spawn_mock(mock).await;
    let auth = auth_file(&addr.to_string(), USER, PASS);
    let c = client(addr, Some(&auth));
    let got = c.list_tags(&repo_pattern(addr, REPO)).await.unwrap();
    assert_eq!(got, tags(&["a", "b", "c", "d", "e"]));
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 1);
    // The token is cached per (registry, scope): resolving the same repository reuses it.
    c.resolve(&reference(addr, "e2e/app:1.0")).await.unwrap();
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 1);

    let e = client(addr, None)
        .list_tags(&repo_pattern(addr, REPO))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unauthorized");
    assert!(
        e.to_string().starts_with(&format!(
            "access to repository {addr}/{REPO} was denied: the token service {addr} of registry {addr} refused anonymous access"
        )),
        "{e}"
    );
}

fn access(addr: SocketAddr, credentials: Option<Credentials>) -> RegistryAccess {
    RegistryAccess {
        registry: addr.to_string(),
        credentials,
        plain_http: false,
    }
}

#[tokio::test]
async fn per_request_bearer_token_is_sent_as_is() {
    let mut mock = Mock::new(AuthMode::Bearer);
    mock.tags = tags(&["1.0", "2.0", "3.0"]);
    mock.page_cap = 2;
    let (m, addr) = spawn_mock(mock).await;
    let c = client(addr, None);
    let a = access(
        addr,
        Some(
            Credentials::from_authorization_header(&format!("Bearer T:repository:{REPO}:pull"))
                .unwrap(),
        ),
    );
    let r = reference(addr, "e2e/app:1.0");
    assert_eq!(
        c.resolve_with(&r, Some(&a)).await.unwrap().digest,
        manifest_digest()
    );
    assert_eq!(
        c.list_tags_with(&r, Some(&a)).await.unwrap(),
        tags(&["1.0", "2.0", "3.0"])
    );
    assert_eq!(
        m.token_hits.load(Ordering::SeqCst),
        0,
        "the token service is never asked"
    );
    assert_eq!(m.head_hits.load(Ordering::SeqCst), 1, "no 401 round trip");

    // A token the registry does not accept: unauthorized at once, without secrets.
    let a = access(addr, Some(Credentials::Bearer("stale-tok-987".into())));
    for e in [
        c.resolve_with(&r, Some(&a)).await.unwrap_err(),
        c.list_tags_with(&r, Some(&a)).await.unwrap_err(),
    ] {
        assert_eq!(
            (e.code(), e.class(), e.status()),
            ("unauthorized", ErrorClass::Permanent, Some(401))
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "the credentials given for {addr} with the request were not accepted"
            )),
            "{msg}"
        );
        assert!(!msg.contains("stale-tok-987"), "{msg}");
    }
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn per_request_basic_credentials_answer_the_token_challenge() {
    let mut mock = Mock::new(AuthMode::Bearer);
    mock.tags = tags(&["a", "b", "c"]);
    mock.page_cap = 2;
    let (m, addr) = spawn_mock(mock).await;
    // The auth file has wrong credentials: the per-request ones are used instead.
    let file = auth_file(&addr.to_string(), USER, "file-password-wrong");
    let c = client(addr, Some(&file));
    let a = access(
        addr,
        Some(Credentials::from_authorization_header(&basic(USER, PASS)).unwrap()),
    );
    let r = reference(addr, "e2e/app:1.0");
    assert_eq!(
        c.resolve_with(&r, Some(&a)).await.unwrap().digest,
        manifest_digest()
    );
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        c.list_tags_with(&r, Some(&a)).await.unwrap(),
        tags(&["a", "b", "c"])
    );
    assert_eq!(
        m.token_hits.load(Ordering::SeqCst),
        2,
        "a token from per-request credentials serves one call (all its pages), no more"
    );

    // ... and is not handed to calls without those credentials.
    let e = c.resolve(&r).await.unwrap_err();
    assert_eq!(e.code(), "unauthorized");
    assert!(e.to_string().contains("rejected the credentials"), "{e}");
    let e = client(addr, None).resolve(&r).await.unwrap_err();
    assert_eq!(e.code(), "unauthorized");

    // Wrong per-request credentials.
    let a = access(
        addr,
        Some(Credentials::Basic {
            username: USER.into(),
            password: "req-pass-wrong".into(),
        }),
    );
    let e = client(addr, None)
        .resolve_with(&r, Some(&a))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unauthorized");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "rejected the credentials given for {addr} with the request"
        )),
        "{msg}"
    );
    assert!(
        !msg.contains("req-pass-wrong") && !msg.contains(PASS),
        "{msg}"
    );
}

#[tokio::test]
async fn per_request_basic_credentials_on_a_basic_registry() {
    let (m, addr) = spawn_mock(Mock::new(AuthMode::Basic)).await;
    let c = client(addr, None);
    let a = access(
        addr,
        Some(Credentials::Basic {
            username: USER.into(),
            password: PASS.into(),
        }),
    );
    let r = reference(addr, "e2e/app:1.0");
    assert_eq!(
        c.resolve_with(&r, Some(&a)).await.unwrap().digest,
        manifest_digest()
    );
    assert_eq!(
        c.list_tags_with(&r, Some(&a)).await.unwrap(),
        tags(&["1.0"])
    );
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 0);
    assert_eq!(c.resolve(&r).await.unwrap_err().code(), "unauthorized");

    // A Bearer token cannot answer a Basic challenge.
    let a = access(addr, Some(Credentials::Bearer("tok".into())));
    let e = c.resolve_with(&r, Some(&a)).await.unwrap_err();
    assert_eq!(e.code(), "unauthorized");
}

#[tokio::test]
async fn registry_url_with_http_makes_the_call_plain_http() {
    // Harbor's case: an http:// registry URL that is not an insecure host of the client,
    // Basic credentials, and a token service on the same plain-HTTP host.
    let (m, addr) = spawn_mock(Mock::new(AuthMode::Bearer)).await;
    let c = RegistryClient::new(RegistryConfig {
        timeout: Duration::from_secs(5),
        ..RegistryConfig::default()
    })
    .unwrap();
    let r = reference(addr, "e2e/app:1.0");
    let a = RegistryAccess::from_url(&format!("http://{addr}"), Some(&basic(USER, PASS))).unwrap();
    assert!(a.plain_http);
    assert_eq!(
        c.resolve_with(&r, Some(&a)).await.unwrap().digest,
        manifest_digest()
    );
    assert_eq!(
        c.list_tags_with(&r, Some(&a)).await.unwrap(),
        tags(&["1.0"])
    );
    assert_eq!(m.token_hits.load(Ordering::SeqCst), 2);

    // Without the override the client keeps to https.
    let e = c.resolve(&r).await.unwrap_err();
    assert_eq!(e.code(), "tls", "{e}");
    let https = RegistryAccess::from_url(&format!("https://{addr}"), None).unwrap();
    let e = c.resolve_with(&r, Some(&https)).await.unwrap_err();
    assert_eq!(e.code(), "tls", "{e}");
    // Only the scheme from the URL, no credentials: the auth file's apply (none here).
    let http_only = RegistryAccess::from_url(&format!("http://{addr}"), None).unwrap();
    let e = c.resolve_with(&r, Some(&http_only)).await.unwrap_err();
    assert_eq!(e.code(), "unauthorized", "{e}");
    assert!(
        e.to_string()
            .contains("refused anonymous access and no registry auth file is configured"),
        "{e}"
    );
}

#[tokio::test]
async fn access_for_another_registry_is_refused_before_any_request() {
    let (m, addr) = spawn_mock(Mock::new(AuthMode::Open)).await;
    let c = client(addr, None);
    let a = RegistryAccess::from_url("https://core.harbor.domain", Some("Bearer tok-abc")).unwrap();
    let r = reference(addr, "e2e/app:1.0");
    for e in [
        c.resolve_with(&r, Some(&a)).await.unwrap_err(),
        c.list_tags_with(&r, Some(&a)).await.unwrap_err(),
    ] {
        assert_eq!((e.code(), e.class()), ("config", ErrorClass::Permanent));
        let msg = e.to_string();
        assert!(
            msg.starts_with("the registry access given for core.harbor.domain cannot be used for ")
                && msg.ends_with(&format!(", which is in registry {addr}")),
            "{msg}"
        );
        assert!(!e.to_string().contains("tok-abc"));
    }
    assert_eq!(m.head_hits.load(Ordering::SeqCst), 0);
    assert_eq!(m.tag_page_hits.load(Ordering::SeqCst), 0);
}
