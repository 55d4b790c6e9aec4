//! The registry client: `HEAD`/`GET /v2/<repo>/manifests/<ref>` and `GET /v2/<repo>/tags/list`
//! with Bearer/Basic auth.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LINK, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use crate::auth::{parse_www_authenticate, AuthStore, Challenge, Credentials, RegistryAccess};
use crate::error::{ErrorKind, RegistryError};
use crate::reference::{is_valid_digest, validate_tag, Reference};

/// Media types asked for, most specific first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest accepted from a `GET` (the distribution registry's own limit is 4 MiB).
const MAX_MANIFEST_BYTES: usize = 8 << 20;
/// Largest error or token body read.
const MAX_SMALL_BODY: usize = 256 << 10;
/// Token lifetime when the token service does not say (`expires_in`).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tags asked for per page of a tag list (`?n=`); registries may send fewer.
pub const TAGS_PAGE_SIZE: usize = 1000;
/// Most tags [`RegistryClient::list_tags`] returns; a repository with more is an error.
pub const MAX_TAGS: usize = 100_000;
/// Most pages of a tag list followed (a registry may send fewer tags per page than asked).
pub const MAX_TAG_PAGES: usize = 10_000;
/// Largest tag list page read (a registry that ignores `n` sends every tag at once).
const MAX_TAGS_PAGE_BYTES: usize = 32 << 20;
/// Environment variable named in the hint of TLS errors.
pub const INSECURE_HOSTS_ENV: &str = "REGISTRY_INSECURE_HOSTS";

/// Client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Docker `config.json`-style auth file (`{"auths": {...}}`), read once by
    /// [`RegistryClient::new`].
    pub auth_file: Option<PathBuf>,
    /// Registries spoken to over plain HTTP: `host:port` (exact) or `host` (any port).
    /// A scheme or trailing `/` is ignored. Everything else uses https, with no fallback.
    pub insecure_hosts: Vec<String>,
    /// Limit for each HTTP request (connect + answer), token requests included.
    pub timeout: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            auth_file: None,
            insecure_hosts: Vec::new(),
            timeout: Duration::from_secs(30),
            user_agent: concat!("scanvault-registry/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A resolved manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `sha256:<hex>` of the manifest (an image index for multi-platform images).
    pub digest: String,
    /// The manifest's media type from `Content-Type`, when the registry sent one.
    pub media_type: Option<String>,
}

/// Resolves image references to manifest digests. Cheap to clone; clones share the token
/// cache. `Debug` shows no credentials.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    auth: AuthStore,
    auth_file: Option<PathBuf>,
    insecure: Vec<String>,
    timeout: Duration,
    /// (api host, scope) → Authorization header value.
    tokens: Mutex<HashMap<(String, String), CachedAuth>>,
}

#[derive(Clone)]
struct CachedAuth {
    header: String,
    expires: Option<Instant>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("auth_file", &self.inner.auth_file)
            .field("auth", &self.inner.auth)
            .field("insecure_hosts", &self.inner.insecure)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// What one request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `HEAD`/`GET /v2/<repo>/manifests/<ref>`
    Manifest,
    /// `GET /v2/<repo>/tags/list`
    Tags,
}

/// What one `resolve` or `list_tags` is about, for requests and messages.
struct Target<'a> {
    reference: &'a Reference,
    op: Op,
    /// canonical reference, e.g. `docker.io/library/nginx:1.25` (for tags: no tag)
    image: String,
    /// for messages: `image docker.io/library/nginx:1.25` or `repository docker.io/library/nginx`
    subject: String,
    /// for messages: `resolving image …` or `listing the tags of repository …`
    action: String,
    /// registry as shown, e.g. `docker.io`
    registry: String,
    /// host to connect to, e.g. `registry-1.docker.io`
    host: String,
    scheme: &'static str,
    scope: String,
    /// Credentials for this registry: given with the call, or from the auth file.
    creds: Option<&'a Credentials>,
    /// `creds` were given with the call: they are not the auth file's, and what they
    /// obtain is cached in `call_auth` (for this call only), not in the client's cache.
    per_request: bool,
    /// The call asked for plain HTTP to this registry ([`RegistryAccess::plain_http`]).
    plain_http_override: bool,
    call_auth: Mutex<Option<CachedAuth>>,
}

impl Target<'_> {
    fn url(&self) -> String {
        format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme,
            self.host,
            self.reference.repository,
            self.reference.manifest_reference()
        )
    }

    fn tags_url(&self, page_size: Option<usize>) -> String {
        let base = format!(
            "{}://{}/v2/{}/tags/list",
            self.scheme, self.host, self.reference.repository
        );
        match page_size {
            Some(n) => format!("{base}?n={n}"),
            None => base,
        }
    }

    /// `image` or `repository`.
    fn noun(&self) -> &'static str {
        match self.op {
            Op::Manifest => "image",
            Op::Tags => "repository",
        }
    }
}

fn normalize_insecure(entry: &str) -> String {
    let e = entry.trim();
    let e = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"))
        .unwrap_or(e);
    e.split('/').next().unwrap_or("").to_ascii_lowercase()
}

/// `host:port` → `host`; `[::1]:5000` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

impl RegistryClient {
    /// Build a client; reads and parses the auth file once. A missing or invalid auth
    /// file is a [`ErrorKind::Config`] error naming the path (never its secrets).
    pub fn new(cfg: RegistryConfig) -> Result<Self, RegistryError> {
        let auth = match &cfg.auth_file {
            Some(p) => AuthStore::from_file(p)?,
            None => AuthStore::default(),
        };
        let timeout = if cfg.timeout.is_zero() {
            RegistryConfig::default().timeout
        } else {
            cfg.timeout
        };
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let from_https = attempt
                .previous()
                .last()
                .is_some_and(|u| u.scheme() == "https");
            if from_https && attempt.url().scheme() != "https" {
                attempt.error("refusing to follow a redirect from https to plain http")
            } else if attempt.previous().len() >= 10 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(redirects)
            .build()
            .map_err(|e| {
                RegistryError::new(
                    ErrorKind::Config,
                    format!("cannot set up the HTTP client: {}", error_chain(&e)),
                )
            })?;
        let insecure = cfg
            .insecure_hosts
            .iter()
            .map(|h| normalize_insecure(h))
            .filter(|h| !h.is_empty())
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                auth,
                auth_file: cfg.auth_file,
                insecure,
                timeout,
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether requests to `host` (`host[:port]`) use plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        let h = host.to_ascii_lowercase();
        let bare = strip_port(&h);
        self.inner.insecure.iter().any(|e| *e == h || e == bare)
    }

    fn is_insecure_ref(&self, r: &Reference) -> bool {
        self.is_insecure(r.api_host()) || self.is_insecure(r.registry_display())
    }

    /// Parse `reference` and [`resolve`](Self::resolve) it; a bad reference is an
    /// `invalid_reference` error.
    pub async fn resolve_str(&self, reference: &str) -> Result<Resolved, RegistryError> {
        let r = Reference::parse(reference)?;
        self.resolve(&r).await
    }

    /// Resolve a reference to its manifest digest: `HEAD` the manifest (by tag, or by
    /// digest to check that it exists), use `Docker-Content-Digest`; without that header,
    /// or when `HEAD` is not allowed, `GET` the manifest and hash it.
    pub async fn resolve(&self, r: &Reference) -> Result<Resolved, RegistryError> {
        self.resolve_with(r, None).await
    }

    /// [`resolve`](Self::resolve) with per-call access to the image's registry (e.g. the
    /// registry URL and pull credentials of a Harbor scan request): its credentials instead
    /// of the auth file's, plain HTTP when it says so. `None` is [`resolve`](Self::resolve).
    /// An `access` for another registry than the image's is a `config` error.
    pub async fn resolve_with(
        &self,
        r: &Reference,
        access: Option<&RegistryAccess>,
    ) -> Result<Resolved, RegistryError> {
        let t = self.target(r, Op::Manifest, access)?;
        let url = t.url();

        let resp = self.send_authed(&t, Method::HEAD, &url).await?;
        let status = resp.status();
        if status.is_success() {
            let media_type = media_type(resp.headers());
            if let Some(d) = &r.digest {
                return Ok(Resolved {
                    digest: d.clone(),
                    media_type,
                });
            }
            if let Some(d) = header_digest(resp.headers()) {
                return Ok(Resolved {
                    digest: d,
                    media_type,
                });
            }
            tracing::debug!(image = %t.image, "HEAD answer has no Docker-Content-Digest; fetching the manifest");
        } else if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_IMPLEMENTED
        {
            tracing::debug!(image = %t.image, %status, "HEAD not allowed; fetching the manifest");
        } else {
            return Err(self.status_error(&t, resp).await);
        }

        let resp = self.send_authed(&t, Method::GET, &url).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&t, resp).await);
        }
        let headers = resp.headers().clone();
        let body = self
            .read_limited(&t, resp, MAX_MANIFEST_BYTES, "manifest")
            .await?;
        let computed = sha256_digest(&body);
        let media_type = media_type(&headers).or_else(|| body_media_type(&body));
        if let Some(d) = &r.digest {
            if d.starts_with("sha256:") && *d != computed {
                return Err(RegistryError::new(
                    ErrorKind::Protocol,
                    format!(
                        "registry {} sent a manifest for {} whose sha256 is {computed}, not the requested digest",
                        t.registry, t.subject
                    ),
                ));
            }
            return Ok(Resolved {
                digest: d.clone(),
                media_type,
            });
        }
        let digest = header_digest(&headers).unwrap_or(computed);
        Ok(Resolved { digest, media_type })
    }

    /// The tags of `repository`'s repository (its tag and digest are ignored; see
    /// [`parse_repository_pattern`](crate::parse_repository_pattern) for `repo:*`), in the
    /// order the registry lists them, without duplicates: `GET /v2/<name>/tags/list?n=1000`,
    /// then the `Link: <…>; rel="next"` pages (relative, or absolute on the same scheme,
    /// host and port; anything else is a `protocol` error rather than a partial list).
    /// Authenticates like [`resolve`](Self::resolve) (scope `repository:<name>:pull`).
    ///
    /// A repository that does not exist is `manifest_unknown`; one with more than
    /// [`MAX_TAGS`] tags (or more than [`MAX_TAG_PAGES`] pages) is a `protocol` error.
    /// Tags that break the tag grammar are left out (with a warning).
    pub async fn list_tags(&self, repository: &Reference) -> Result<Vec<String>, RegistryError> {
        self.list_tags_with(repository, None).await
    }

    /// [`list_tags`](Self::list_tags) with per-call access to the registry, as for
    /// [`resolve_with`](Self::resolve_with).
    pub async fn list_tags_with(
        &self,
        repository: &Reference,
        access: Option<&RegistryAccess>,
    ) -> Result<Vec<String>, RegistryError> {
        self.list_tags_limited(repository, access, MAX_TAGS, MAX_TAG_PAGES)
            .await
    }

    pub(crate) async fn list_tags_limited(
        &self,
        repository: &Reference,
        access: Option<&RegistryAccess>,
        max_tags: usize,
        max_pages: usize,
    ) -> Result<Vec<String>, RegistryError> {
        let t = self.target(repository, Op::Tags, access)?;
        let invalid_url = || {
            RegistryError::new(
                ErrorKind::InvalidReference,
                format!("cannot build the tag list URL for {}", t.subject),
            )
        };
        let mut url =
            reqwest::Url::parse(&t.tags_url(Some(TAGS_PAGE_SIZE))).map_err(|_| invalid_url())?;
        let origin = url.origin();
        let mut visited: HashSet<String> = HashSet::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut tags: Vec<String> = Vec::new();
        let mut skipped = 0usize;
        let mut pages = 0usize;
        loop {
            if pages == max_pages {
                return Err(RegistryError::new(
                    ErrorKind::Protocol,
                    format!(
                        "registry {} sent more than {max_pages} pages of tags for {}; not following more",
                        t.registry, t.subject
                    ),
                ));
            }
            pages += 1;
            visited.insert(url.to_string());
            let mut resp = self.send_authed(&t, Method::GET, url.as_str()).await?;
            if pages == 1 && resp.status() == StatusCode::BAD_REQUEST {
                // Some registries refuse a page size they do not support: ask without one.
                tracing::debug!(repository = %t.image, "tag list with n={TAGS_PAGE_SIZE} refused (HTTP 400); asking without a page size");
                url = reqwest::Url::parse(&t.tags_url(None)).map_err(|_| invalid_url())?;
                visited.insert(url.to_string());
                resp = self.send_authed(&t, Method::GET, url.as_str()).await?;
            }
            if !resp.status().is_success() {
                return Err(self.status_error(&t, resp).await);
            }
            let next = next_link(resp.headers());
            let body = self
                .read_limited(&t, resp, MAX_TAGS_PAGE_BYTES, "tag list page")
                .await?;
            #[derive(serde::Deserialize)]
            struct TagPage {
                tags: Option<Vec<String>>,
            }
            let page: TagPage = serde_json::from_slice(&body).map_err(|_| {
                RegistryError::new(
                    ErrorKind::Protocol,
                    format!(
                        "registry {} sent a tag list for {} that is not a JSON object with a \"tags\" list",
                        t.registry, t.subject
                    ),
                )
            })?;
            for tag in page.tags.unwrap_or_default() {
                if validate_tag(&tag).is_err() {
                    skipped += 1;
                    continue;
                }
                if seen.contains(&tag) {
                    continue;
                }
                if tags.len() == max_tags {
                    return Err(RegistryError::new(
                        ErrorKind::Protocol,
                        format!(
                            "{} in registry {} has more than {max_tags} tags; at most {max_tags} are listed",
                            t.subject, t.registry
                        ),
                    ));
                }
                seen.insert(tag.clone());
                tags.push(tag);
            }
            let Some(next) = next else { break };
            let bad_link = |why: &str| {
                RegistryError::new(
                    ErrorKind::Protocol,
                    format!(
                        "registry {} sent a next-page link for the tags of {} that {why}",
                        t.registry, t.subject
                    ),
                )
            };
            let next_url = url
                .join(&next)
                .map_err(|_| bad_link("is not a valid URL"))?;
            if next_url.origin() != origin {
                return Err(bad_link(
                    "points to another scheme, host or port; not following it",
                ));
            }
            if !visited.insert(next_url.to_string()) {
                return Err(bad_link("points to a page already read (a loop)"));
            }
            url = next_url;
        }
        if skipped > 0 {
            tracing::warn!(repository = %t.image, registry = %t.registry, skipped, "tag list has tags that break the tag grammar; they are left out");
        }
        tracing::debug!(repository = %t.image, tags = tags.len(), pages, "tags listed");
        Ok(tags)
    }

    /// Check the reference (its fields are public) and the access, pick scheme and credentials.
    fn target<'a>(
        &'a self,
        r: &'a Reference,
        op: Op,
        access: Option<&'a RegistryAccess>,
    ) -> Result<Target<'a>, RegistryError> {
        let image = match op {
            Op::Manifest => r.to_string(),
            Op::Tags => format!("{}/{}", r.registry_display(), r.repository),
        };
        // A hand-built reference is re-checked before it becomes a URL.
        Reference::parse(&image)?;
        let (subject, action) = match op {
            Op::Manifest => (format!("image {image}"), format!("resolving image {image}")),
            Op::Tags => (
                format!("repository {image}"),
                format!("listing the tags of repository {image}"),
            ),
        };
        if let Some(a) = access {
            if !a.applies_to(&r.registry) {
                return Err(RegistryError::new(
                    ErrorKind::Config,
                    format!(
                        "the registry access given for {} cannot be used for {subject}, which is in registry {}",
                        errors::clean(&a.registry, 100),
                        r.registry_display()
                    ),
                ));
            }
        }
        let host = r.api_host().to_string();
        let registry = r.registry_display().to_string();
        let plain_http_override = access.is_some_and(|a| a.plain_http);
        let (creds, per_request) = match access.and_then(|a| a.credentials.as_ref()) {
            Some(c) => (Some(c), true),
            None => (
                self.inner
                    .auth
                    .get(&host)
                    .or_else(|| self.inner.auth.get(&registry)),
                false,
            ),
        };
        if let Some(Credentials::Bearer(token)) = creds {
            if reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
                return Err(RegistryError::new(
                    ErrorKind::Config,
                    format!("the Bearer token given for registry {registry} is not a valid header value"),
                ));
            }
        }
        Ok(Target {
            reference: r,
            op,
            image,
            subject,
            action,
            scheme: if plain_http_override || self.is_insecure_ref(r) {
                "http"
            } else {
                "https"
            },
            scope: format!("repository:{}:pull", r.repository),
            registry,
            host,
            creds,
            per_request,
            plain_http_override,
            call_auth: Mutex::new(None),
        })
    }

    /// The Authorization value known for this target: the client's cache for auth-file
    /// credentials (and anonymous access), the call's own slot for per-request credentials.
    fn cached_auth(&self, t: &Target<'_>) -> Option<String> {
        let valid = |c: &CachedAuth| c.expires.is_none_or(|e| Instant::now() < e);
        if t.per_request {
            let mut slot = t.call_auth.lock().unwrap_or_else(|p| p.into_inner());
            return match slot.as_ref() {
                Some(c) if valid(c) => Some(c.header.clone()),
                _ => {
                    *slot = None;
                    None
                }
            };
        }
        let key = (t.host.clone(), t.scope.clone());
        let mut map = self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&key) {
            Some(c) if valid(c) => Some(c.header.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    fn store_auth(&self, t: &Target<'_>, value: Option<CachedAuth>) {
        if t.per_request {
            *t.call_auth.lock().unwrap_or_else(|p| p.into_inner()) = value;
            return;
        }
        let key = (t.host.clone(), t.scope.clone());
        let mut map = self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match value {
            Some(v) => map.insert(key, v),
            None => map.remove(&key),
        };
    }

    /// Send a request, authenticating on a 401 challenge and retrying once. A per-request
    /// Bearer token is sent as is, and a 401 to it is final.
    async fn send_authed(
        &self,
        t: &Target<'_>,
        method: Method,
        url: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        if let Some(Credentials::Bearer(token)) = t.creds {
            let header = format!("Bearer {token}");
            let resp = self.send_request(t, method, url, Some(&header)).await?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                let said = registry_message(resp).await;
                return Err(self.unauthorized(t, StatusCode::UNAUTHORIZED, &said, true));
            }
            return Ok(resp);
        }
        let cached = self.cached_auth(t);
        let resp = self
            .send_request(t, method.clone(), url, cached.as_deref())
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_www_authenticate)
            .collect();
        let registry_said = registry_message(resp).await;
        let auth = self.authenticate(t, &challenges, &registry_said).await?;
        if cached.as_deref() == Some(auth.header.as_str()) {
            self.store_auth(t, None);
            return Err(self.unauthorized(t, StatusCode::UNAUTHORIZED, &registry_said, true));
        }
        self.store_auth(t, Some(auth.clone()));
        let resp = self
            .send_request(t, method, url, Some(&auth.header))
            .await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.store_auth(t, None);
            let status = resp.status();
            let said = registry_message(resp).await;
            return Err(self.unauthorized(t, status, &said, true));
        }
        Ok(resp)
    }

    async fn send_request(
        &self,
        t: &Target<'_>,
        method: Method,
        url: &str,
        auth: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let accept = match t.op {
            Op::Manifest => MANIFEST_ACCEPT,
            Op::Tags => "application/json",
        };
        let mut req = self
            .inner
            .http
            .request(method.clone(), url)
            .header(ACCEPT, accept);
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        let started = Instant::now();
        let result = req.send().await;
        match &result {
            Ok(resp) => {
                tracing::debug!(%method, %url, status = resp.status().as_u16(), authenticated = auth.is_some(), elapsed_ms = started.elapsed().as_millis() as u64, "registry request")
            }
            Err(_) => {
                tracing::debug!(%method, %url, elapsed_ms = started.elapsed().as_millis() as u64, "registry request failed")
            }
        }
        result.map_err(|e| self.transport_error(t, &format!("registry {}", t.registry), &e))
    }

    /// Answer a 401 challenge: a Bearer token from the token service, or Basic credentials.
    async fn authenticate(
        &self,
        t: &Target<'_>,
        challenges: &[Challenge],
        registry_said: &str,
    ) -> Result<CachedAuth, RegistryError> {
        let bearer = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.param("realm").is_some_and(|r| !r.is_empty()));
        if let Some(c) = bearer {
            return self.fetch_token(t, c).await;
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let header = t.creds.and_then(Credentials::basic_header);
            return match header {
                Some(header) => Ok(CachedAuth {
                    header,
                    expires: None,
                }),
                None => Err(self.unauthorized(t, StatusCode::UNAUTHORIZED, registry_said, false)),
            };
        }
        let e = self.unauthorized(t, StatusCode::UNAUTHORIZED, registry_said, false);
        Err(RegistryError::new(
            ErrorKind::Unauthorized,
            format!(
                "{} (the registry gave no Bearer or Basic challenge to answer)",
                e.message()
            ),
        )
        .with_status(401))
    }

    /// GET (or POST, for an identity token) the Bearer realm with `service` and `scope`.
    async fn fetch_token(
        &self,
        t: &Target<'_>,
        challenge: &Challenge,
    ) -> Result<CachedAuth, RegistryError> {
        let realm = challenge.param("realm").unwrap_or_default();
        let mut url = reqwest::Url::parse(realm).map_err(|_| {
            RegistryError::new(
                ErrorKind::Protocol,
                format!(
                    "registry {} asked for a token from an invalid realm URL while {}",
                    t.registry, t.action
                ),
            )
        })?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        if !matches!(url.scheme(), "http" | "https") || realm_host.is_empty() {
            return Err(RegistryError::new(
                ErrorKind::Protocol,
                format!(
                    "registry {} asked for a token from an unsupported realm URL ({}) while {}",
                    t.registry,
                    url.scheme(),
                    t.action
                ),
            ));
        }
        let creds = t.creds;
        // A call that made the registry plain HTTP also allows its own host's token service.
        let same_host_override = t.plain_http_override
            && strip_port(&realm_host.to_ascii_lowercase())
                == strip_port(&t.host.to_ascii_lowercase());
        if creds.is_some()
            && url.scheme() == "http"
            && !self.is_insecure(&realm_host)
            && !same_host_override
        {
            return Err(RegistryError::new(
                ErrorKind::Protocol,
                format!(
                    "registry {} wants credentials sent to the plain-HTTP token service {realm_host}; refusing to send them unencrypted (list {realm_host} in {INSECURE_HOSTS_ENV} to allow it)",
                    t.registry
                ),
            ));
        }
        let service = challenge.param("service").unwrap_or_default();
        let mut req = match creds {
            Some(Credentials::IdentityToken { token, .. }) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("scope", t.scope.as_str()),
                    ("client_id", "scanvault"),
                ];
                if !service.is_empty() {
                    form.push(("service", service));
                }
                self.inner.http.post(url.clone()).form(&form)
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if !service.is_empty() {
                        q.append_pair("service", service);
                    }
                    q.append_pair("scope", &t.scope);
                }
                let req = self.inner.http.get(url.clone());
                match other.and_then(Credentials::basic_header) {
                    Some(h) => req.header(AUTHORIZATION, h),
                    None => req,
                }
            }
        };
        req = req.header(ACCEPT, "application/json");
        let resp = req.send().await.map_err(|e| {
            self.transport_error(
                t,
                &format!("the token service {realm_host} of registry {}", t.registry),
                &e,
            )
        })?;
        let status = resp.status();
        tracing::debug!(realm = %realm_host, status = status.as_u16(), authenticated = creds.is_some(), "token request");
        if !status.is_success() {
            let retry_after = retry_after(resp.headers());
            let said = registry_message(resp).await;
            let said = if said.is_empty() {
                String::new()
            } else {
                format!(" (it said: {said})")
            };
            let e = match status.as_u16() {
                401 | 403 => {
                    let why = match (creds, &self.inner.auth_file) {
                        (Some(_), _) if t.per_request => format!(
                            "rejected the credentials given for {} with the request",
                            t.registry
                        ),
                        (Some(_), Some(p)) => format!(
                            "rejected the credentials for {} from {}",
                            t.registry,
                            p.display()
                        ),
                        (_, None) => "refused anonymous access and no registry auth file is configured".to_string(),
                        (None, Some(p)) => format!(
                            "refused anonymous access and {} has no credentials for {}",
                            p.display(),
                            t.registry
                        ),
                    };
                    RegistryError::new(
                        ErrorKind::Unauthorized,
                        format!(
                            "access to {} was denied: the token service {realm_host} of registry {} {why} (HTTP {status}){said}",
                            t.subject, t.registry
                        ),
                    )
                }
                429 => RegistryError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "the token service {realm_host} of registry {} is rate limiting requests (HTTP 429) while {}{}",
                        t.registry,
                        t.action,
                        retry_note(retry_after)
                    ),
                ),
                500..=599 => RegistryError::new(
                    ErrorKind::RegistryUnavailable,
                    format!(
                        "the token service {realm_host} of registry {} failed (HTTP {status}) while {}; try again later{said}",
                        t.registry, t.action
                    ),
                ),
                _ => RegistryError::new(
                    ErrorKind::Protocol,
                    format!(
                        "the token service {realm_host} of registry {} answered HTTP {status} while {}{said}",
                        t.registry, t.action
                    ),
                ),
            };
            return Err(e.with_status(status.as_u16()).with_retry_after(retry_after));
        }
        let body = self.read_limited(t, resp, MAX_SMALL_BODY, "token").await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let bad = || {
            RegistryError::new(
                ErrorKind::Protocol,
                format!(
                    "the token service {realm_host} of registry {} answered without a token while {}",
                    t.registry, t.action
                ),
            )
        };
        let tr: TokenResponse = serde_json::from_slice(&body).map_err(|_| bad())?;
        let token = tr
            .token
            .filter(|s| !s.is_empty())
            .or(tr.access_token.filter(|s| !s.is_empty()))
            .ok_or_else(bad)?;
        let lifetime = match tr.expires_in {
            Some(s) if s > 0 => Duration::from_secs(s),
            _ => DEFAULT_TOKEN_LIFETIME,
        };
        // Renew a little before the service says the token expires.
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        Ok(CachedAuth {
            header: format!("Bearer {token}"),
            expires: Some(Instant::now() + lifetime - margin),
        })
    }

    fn unauthorized(
        &self,
        t: &Target<'_>,
        status: StatusCode,
        registry_said: &str,
        sent_auth: bool,
    ) -> RegistryError {
        let creds = t.creds.is_some();
        let pulling = match t.op {
            Op::Manifest => "pulling this image",
            Op::Tags => "pulling from this repository",
        };
        let why = if t.per_request {
            let given = format!("the credentials given for {} with the request", t.registry);
            match sent_auth {
                true if status == StatusCode::FORBIDDEN => {
                    format!("{given} do not allow {pulling}")
                }
                true => format!("{given} were not accepted"),
                false => format!("{given} cannot answer the registry's challenge"),
            }
        } else {
            match (&self.inner.auth_file, creds, sent_auth) {
                (None, _, _) => "no registry auth file is configured".to_string(),
                (Some(p), false, _) => {
                    format!("{} has no credentials for {}", p.display(), t.registry)
                }
                (Some(p), true, true) if status == StatusCode::FORBIDDEN => format!(
                    "the credentials for {} from {} do not allow {pulling}",
                    t.registry,
                    p.display()
                ),
                (Some(p), true, true) => format!(
                    "the credentials for {} from {} were not accepted",
                    t.registry,
                    p.display()
                ),
                (Some(p), true, false) => format!(
                    "the credentials for {} from {} cannot answer the registry's challenge",
                    t.registry,
                    p.display()
                ),
            }
        };
        let said = if registry_said.is_empty() {
            String::new()
        } else {
            format!("; the registry said: {registry_said}")
        };
        RegistryError::new(
            ErrorKind::Unauthorized,
            format!(
                "access to {} in registry {} was denied (HTTP {status}): {why}; check that the {} exists and that the credentials may pull {}{said}",
                t.subject,
                t.registry,
                t.noun(),
                match t.op {
                    Op::Manifest => "it",
                    Op::Tags => "from it",
                }
            ),
        )
        .with_status(status.as_u16())
    }
}

/// The target of the `rel="next"` link of `Link` headers (RFC 8288), as written.
fn next_link(h: &HeaderMap) -> Option<String> {
    for value in h.get_all(LINK).iter().filter_map(|v| v.to_str().ok()) {
        let mut rest = value;
        // Each link: `<target>` then `; param=value` pairs, up to the next `<`.
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let close = after.find('>')?;
            let target = after[..close].trim();
            let params_end = after[close + 1..]
                .find('<')
                .map_or(after.len(), |i| close + 1 + i);
            let params = &after[close + 1..params_end];
            let is_next = params.split([';', ',']).any(|p| {
                let Some((name, v)) = p.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if is_next && !target.is_empty() {
                return Some(target.to_string());
            }
            rest = &after[params_end..];
        }
    }
    None
}

fn header_digest(h: &HeaderMap) -> Option<String> {
    let d = h.get("docker-content-digest")?.to_str().ok()?.trim();
    is_valid_digest(d).then(|| d.to_string())
}

fn media_type(h: &HeaderMap) -> Option<String> {
    let v = h.get(CONTENT_TYPE)?.to_str().ok()?;
    let v = v.split(';').next().unwrap_or("").trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn body_media_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("mediaType")?.as_str().map(str::to_string)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

mod errors;
pub(crate) use errors::clean as clean_text;
use errors::{error_chain, registry_message, retry_after, retry_note};
#[cfg(test)]
mod tests;
