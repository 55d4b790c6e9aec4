//! Credentials from a Docker `config.json`-style auth file, and `WWW-Authenticate` parsing.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;

use crate::error::{ErrorKind, RegistryError};
use crate::reference::{is_docker_hub_host, DOCKER_HUB_DISPLAY};

/// Credentials for one registry. `Debug` never shows secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// User name and password (or personal access token): sent to the token service when
    /// the registry asks for a Bearer token, or to the registry when it asks for Basic auth.
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken` in Docker's config), exchanged at the token service.
    IdentityToken {
        username: Option<String>,
        token: String,
    },
    /// A registry token that is already scoped for the request (Harbor's pull token), sent
    /// as `Authorization: Bearer <token>` to the registry itself; the token service is never
    /// asked. Only given per request ([`RegistryAccess`]); an auth file has no such entries.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::IdentityToken { username, .. } => f
                .debug_struct("IdentityToken")
                .field("username", username)
                .field("token", &"<redacted>")
                .finish(),
            Self::Bearer(_) => f.debug_tuple("Bearer").field(&"<redacted>").finish(),
        }
    }
}

impl Credentials {
    /// `Basic <base64(user:pass)>` for basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Self::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Self::IdentityToken { .. } | Self::Bearer(_) => None,
        }
    }

    /// Parse the value of an `Authorization` header, as Harbor sends it with a scan request
    /// for pulling: `Basic <base64(user:password)>` → [`Credentials::Basic`],
    /// `Bearer <token>` → [`Credentials::Bearer`] (the scheme in any case).
    ///
    /// Anything else is a `config` error whose message says what is wrong without quoting
    /// any part of the value.
    pub fn from_authorization_header(value: &str) -> Result<Credentials, RegistryError> {
        let bad = |why: &str| {
            RegistryError::new(
                ErrorKind::Config,
                format!("the registry Authorization value is invalid: {why}"),
            )
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(bad("it is empty"));
        }
        let Some((scheme, rest)) = value.split_once([' ', '\t']) else {
            return Err(bad(
                "expected \"Basic <base64 of user:password>\" or \"Bearer <token>\"",
            ));
        };
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let engine = &base64::engine::general_purpose::STANDARD;
            let raw = engine
                .decode(rest)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(rest))
                .map_err(|_| bad("the Basic credentials are not valid base64"))?;
            let raw = String::from_utf8(raw)
                .map_err(|_| bad("the Basic credentials do not decode to UTF-8 text"))?;
            let (username, password) = raw
                .split_once(':')
                .ok_or_else(|| bad("the Basic credentials must be base64 of \"user:password\""))?;
            if username.is_empty() {
                return Err(bad("the Basic credentials have an empty user name"));
            }
            Ok(Credentials::Basic {
                username: username.to_string(),
                password: password.to_string(),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            if rest.is_empty() {
                return Err(bad("the Bearer token is empty"));
            }
            if !rest.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(
                    "the Bearer token contains spaces, control or non-ASCII characters",
                ));
            }
            Ok(Credentials::Bearer(rest.to_string()))
        } else {
            Err(bad(
                "the scheme must be Basic or Bearer (\"Basic <base64 of user:password>\" or \"Bearer <token>\")",
            ))
        }
    }
}

/// How to reach one registry for one call ([`RegistryClient::resolve_with`],
/// [`RegistryClient::list_tags_with`]) instead of, or in addition to, the client's
/// configuration: e.g. the registry URL and pull credentials that Harbor sends with each
/// scan request. `Debug` never shows secrets.
///
/// [`RegistryClient::resolve_with`]: crate::RegistryClient::resolve_with
/// [`RegistryClient::list_tags_with`]: crate::RegistryClient::list_tags_with
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccess {
    /// The registry this applies to, `host[:port]` as in [`Reference::registry`]
    /// (compared case-insensitively, Docker Hub aliases being equal). A call for an image
    /// of another registry fails with a `config` error and sends nothing.
    ///
    /// [`Reference::registry`]: crate::Reference::registry
    pub registry: String,
    /// Credentials used instead of the auth file's for this call. They answer the
    /// registry's challenge like auth-file credentials ([`Credentials::Bearer`] is sent to
    /// the registry as is), and tokens obtained with them are kept for this call only.
    /// `None`: the auth file's credentials for the registry, if any.
    pub credentials: Option<Credentials>,
    /// Speak plain HTTP to the registry (and allow credentials to go to a plain-HTTP token
    /// service on the same host) in this call, even if it is not one of the client's
    /// insecure hosts. `false` leaves the choice to the client's configuration.
    pub plain_http: bool,
}

impl RegistryAccess {
    /// From a registry URL and an optional `Authorization` header value, as Harbor sends
    /// them with a scan request: `https://core.harbor.domain` or `http://127.0.0.1:5000`
    /// (`http://` sets [`plain_http`](Self::plain_http); a bare `host[:port]` means https),
    /// and `Basic <base64(user:password)>` or `Bearer <token>`
    /// ([`Credentials::from_authorization_header`]).
    ///
    /// The URL may end in `/` but must have no other path, query or user information.
    /// Errors are `config` errors that never quote credentials.
    pub fn from_url(url: &str, authorization: Option<&str>) -> Result<Self, RegistryError> {
        let bad = |why: String| {
            RegistryError::new(
                ErrorKind::Config,
                format!("the registry URL is invalid: {why}"),
            )
        };
        let u = url.trim();
        let (plain_http, rest) = if let Some(rest) = strip_prefix_ci(u, "http://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(u, "https://") {
            (false, rest)
        } else if u.contains("://") {
            return Err(bad(
                "only http:// and https:// URLs are supported".to_string()
            ));
        } else {
            (false, u)
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad(
                "it must not contain user information; send the credentials as the Authorization value".to_string(),
            ));
        }
        if !(path.is_empty() || path == "/") {
            return Err(bad(format!(
                "\"{}\" must be the registry's base URL, without a path, query or fragment",
                crate::client::clean_text(u, 200)
            )));
        }
        if authority.is_empty() {
            return Err(bad("it names no host".to_string()));
        }
        crate::reference::validate_registry(authority).map_err(|k| bad(k.to_string()))?;
        let credentials = authorization
            .map(Credentials::from_authorization_header)
            .transpose()?;
        Ok(Self {
            registry: authority.to_string(),
            credentials,
            plain_http,
        })
    }

    /// Whether this access is for the registry `registry` (`host[:port]`).
    pub fn applies_to(&self, registry: &str) -> bool {
        normalize_host(&self.registry) == normalize_host(registry)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Credentials per registry, keyed by normalised host (`docker.io` for Docker Hub).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthStore {
    by_host: HashMap<String, Credentials>,
}

impl fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut hosts: Vec<&String> = self.by_host.keys().collect();
        hosts.sort();
        f.debug_struct("AuthStore").field("hosts", &hosts).finish()
    }
}

/// Normalise an `auths` key or registry name to the form used for look-ups:
/// scheme and path removed, lower-case, Docker Hub aliases → `docker.io`.
pub(crate) fn normalize_host(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or("").to_ascii_lowercase();
    if is_docker_hub_host(&k) {
        DOCKER_HUB_DISPLAY.to_string()
    } else {
        k
    }
}

impl AuthStore {
    /// Read and parse an auth file. Errors name the file and the entry, never a secret.
    pub fn from_file(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RegistryError::new(
                ErrorKind::Config,
                format!(
                    "cannot read registry auth file {}: {}",
                    path.display(),
                    io_reason(&e)
                ),
            )
        })?;
        Self::parse(&text).map_err(|why| {
            RegistryError::new(
                ErrorKind::Config,
                format!("registry auth file {} is invalid: {why}", path.display()),
            )
        })
    }

    /// Parse the text of a Docker `config.json`. The error says what is wrong without
    /// quoting values.
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            // serde_json messages can quote values (secrets); give only the position.
            let what = match e.classify() {
                serde_json::error::Category::Eof => "unexpected end of file",
                _ => "not valid JSON",
            };
            format!("{what} at line {} column {}", e.line(), e.column())
        })?;
        let obj = v
            .as_object()
            .ok_or("the top level must be a JSON object with an \"auths\" object")?;
        let mut by_host = HashMap::new();
        let Some(auths) = obj.get("auths") else {
            if obj.contains_key("credsStore") || obj.contains_key("credHelpers") {
                tracing::warn!("registry auth file uses credential helpers, which are not supported; only \"auths\" entries are used");
            }
            return Ok(Self { by_host });
        };
        let auths = auths
            .as_object()
            .ok_or("\"auths\" must be an object mapping registry hosts to credentials")?;
        for (key, entry) in auths {
            let entry = entry
                .as_object()
                .ok_or_else(|| format!("entry \"{key}\" in \"auths\" must be an object"))?;
            let field = |name: &str| -> Result<Option<String>, String> {
                match entry.get(name) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(format!(
                        "entry \"{key}\": field \"{name}\" must be a string"
                    )),
                }
            };
            let (mut username, mut password) = (field("username")?, field("password")?);
            if let Some(auth) = field("auth")? {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| format!("entry \"{key}\": \"auth\" is not valid base64"))?;
                let raw = String::from_utf8(raw).map_err(|_| {
                    format!("entry \"{key}\": \"auth\" does not decode to UTF-8 text")
                })?;
                let (u, p) = raw.split_once(':').ok_or_else(|| {
                    format!("entry \"{key}\": \"auth\" must be base64 of \"user:password\"")
                })?;
                username = Some(u.to_string());
                password = Some(p.to_string());
            }
            let creds = if let Some(token) = field("identitytoken")? {
                Credentials::IdentityToken { username, token }
            } else {
                match (username, password) {
                    (Some(username), Some(password)) => Credentials::Basic { username, password },
                    (None, None) => {
                        tracing::debug!(entry = %key, "auth file entry without credentials ignored");
                        continue;
                    }
                    _ => {
                        return Err(format!(
                            "entry \"{key}\" has a user name or a password but not both"
                        ))
                    }
                }
            };
            let host = normalize_host(key);
            if host.is_empty() {
                return Err(format!("entry \"{key}\" does not name a registry host"));
            }
            by_host.insert(host, creds);
        }
        Ok(Self { by_host })
    }

    /// Credentials for a registry host (`docker.io`, `registry-1.docker.io`,
    /// `ghcr.io`, `127.0.0.1:5000`, ...).
    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        self.by_host.get(&normalize_host(registry))
    }

    /// Number of registries with credentials.
    pub fn len(&self) -> usize {
        self.by_host.len()
    }

    /// Whether no registry has credentials.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::InvalidData => "not UTF-8 text".to_string(),
        _ => e.to_string(),
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased scheme, e.g. `bearer`, `basic`.
    pub scheme: String,
    /// Parameters with lower-cased names (`realm`, `service`, `scope`, ...).
    pub params: HashMap<String, String>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parse a `WWW-Authenticate` header value (RFC 7235): one or more challenges
/// `scheme [token68 | param=value, ...]`, values quoted or not.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let mut p = Lexer {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_ws_commas();
        let Some(scheme) = p.token() else { break };
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: HashMap::new(),
        };
        // params: name=value, separated by commas, until a token not followed by '='.
        loop {
            p.skip_ws();
            let save = p.i;
            let Some(name) = p.token() else {
                // token68 or garbage: skip to the next comma
                p.skip_until_comma();
                if p.i == save {
                    break;
                }
                continue;
            };
            p.skip_ws();
            if p.peek() == Some(b'=') {
                p.i += 1;
                p.skip_ws();
                let value = if p.peek() == Some(b'"') {
                    p.quoted()
                } else {
                    p.token().unwrap_or_default()
                };
                // A token68 ending in '=' padding ("abc==") has no value; ignore it.
                ch.params.insert(name.to_ascii_lowercase(), value);
                p.skip_ws();
                if p.peek() == Some(b',') {
                    p.i += 1;
                    continue;
                }
                if p.peek().is_none() {
                    break;
                }
                // something else: skip it
                p.skip_until_comma();
            } else {
                // `name` starts the next challenge.
                p.i = save;
                break;
            }
        }
        out.push(ch);
        if p.peek().is_none() {
            break;
        }
    }
    out
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn skip_until_comma(&mut self) {
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == b',' {
                break;
            }
        }
    }
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let tchar = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c);
            if !tchar {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> String {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn auth_file_forms() {
        let text = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "ghcr.io": {{"username": "bob", "password": "p:w"}},
                "http://127.0.0.1:5000/v2/": {{"auth": "{}"}},
                "quay.io": {{"identitytoken": "refresh-me"}},
                "empty.example": {{}},
                "Registry.Example.COM": {{"auth": "{}", "email": "x@y"}}
            }}, "credsStore": "desktop"}}"#,
            b64("hubuser:hub:pass"),
            b64("local:secret"),
            b64("u:p"),
        );
        let s = AuthStore::parse(&text).unwrap();
        assert_eq!(s.len(), 5);
        let hub = Credentials::Basic {
            username: "hubuser".into(),
            password: "hub:pass".into(),
        };
        for host in ["docker.io", "registry-1.docker.io", "index.docker.io"] {
            assert_eq!(s.get(host), Some(&hub), "{host}");
        }
        assert_eq!(
            s.get("ghcr.io"),
            Some(&Credentials::Basic {
                username: "bob".into(),
                password: "p:w".into()
            })
        );
        assert_eq!(
            s.get("127.0.0.1:5000"),
            Some(&Credentials::Basic {
                username: "local".into(),
                password: "secret".into()
            })
        );
        assert_eq!(s.get("127.0.0.1:5001"), None);
        assert!(matches!(
            s.get("quay.io"),
            Some(Credentials::IdentityToken { token, .. }) if token == "refresh-me"
        ));
        assert!(s.get("empty.example").is_none());
        assert!(s.get("registry.example.com").is_some());
        assert_eq!(
            hub.basic_header().unwrap(),
            format!("Basic {}", b64("hubuser:hub:pass"))
        );
        assert!(AuthStore::parse("{}").unwrap().is_empty());
    }

    #[test]
    fn auth_file_errors_never_quote_secrets() {
        let cases = [
            (
                "{\"auths\": {\"h\": {\"auth\": \"s3cret!!\"}}}",
                "\"auth\" is not valid base64",
            ),
            (
                &format!(
                    "{{\"auths\": {{\"h\": {{\"auth\": \"{}\"}}}}}}",
                    b64("s3cretnocolon")
                ),
                "base64 of \"user:password\"",
            ),
            ("{\"auths\": {\"h\": {\"username\": \"u\"}}}", "not both"),
            (
                "{\"auths\": {\"h\": {\"password\": 5}}}",
                "field \"password\" must be a string",
            ),
            ("{\"auths\": [\"s3cret\"]}", "\"auths\" must be an object"),
            ("[\"s3cret\"]", "top level must be a JSON object"),
            (
                "{\"auths\": {\"h\": \"s3cret\"}}",
                "entry \"h\" in \"auths\" must be an object",
            ),
            (
                "{\"auths\": {\"h\": {\"auth\": \"s3cret",
                "unexpected end of file at line 1",
            ),
            ("{\"auths\": s3cret}", "not valid JSON at line 1 column 11"),
        ];
        for (text, want) in cases {
            let e = AuthStore::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("s3cret"), "{text}: {e}");
        }
    }

    #[test]
    fn auth_file_io_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let e = AuthStore::from_file(&missing).unwrap_err();
        assert_eq!(e.code(), "config");
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
        assert!(e.to_string().contains("file not found"), "{e}");

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"auths\": {\"h\": {\"auth\": \"pa$$word\"}}}").unwrap();
        let e = AuthStore::from_file(&bad).unwrap_err();
        let m = e.to_string();
        assert!(m.contains(&bad.display().to_string()), "{m}");
        assert!(m.contains("is invalid: entry \"h\""), "{m}");
        assert!(!m.contains("pa$$word"), "{m}");
    }

    #[test]
    fn debug_redacts() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: "hunter2".into(),
        };
        let d = format!("{c:?}");
        assert!(
            d.contains("alice") && d.contains("<redacted>") && !d.contains("hunter2"),
            "{d}"
        );
        let c = Credentials::IdentityToken {
            username: None,
            token: "tok-123".into(),
        };
        assert!(!format!("{c:?}").contains("tok-123"));
        let c = Credentials::Bearer("tok-456".into());
        assert_eq!(format!("{c:?}"), "Bearer(\"<redacted>\")");
        let s = AuthStore::parse(&format!(
            "{{\"auths\": {{\"ghcr.io\": {{\"auth\": \"{}\"}}}}}}",
            b64("alice:hunter2")
        ))
        .unwrap();
        let d = format!("{s:?}");
        assert!(
            d.contains("ghcr.io") && !d.contains("hunter2") && !d.contains("alice"),
            "{d}"
        );
    }

    #[test]
    fn authorization_header_values() {
        let c = Credentials::from_authorization_header(&format!("Basic {}", b64("robot$x:p:w")))
            .unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "robot$x".into(),
                password: "p:w".into()
            },
            "the password may contain ':'"
        );
        // scheme in any case, surrounding spaces, base64 without padding
        let c = Credentials::from_authorization_header(&format!(
            "  basic   {}  ",
            b64("u:pw").trim_end_matches('=')
        ))
        .unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "u".into(),
                password: "pw".into()
            }
        );
        let c = Credentials::from_authorization_header("BEARER eyJh.bGc-i_O+/=").unwrap();
        assert_eq!(c, Credentials::Bearer("eyJh.bGc-i_O+/=".into()));
        assert_eq!(c.basic_header(), None);

        let cases = [
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("s3cr3t-token-without-scheme", "expected \"Basic"),
            ("Digest s3cr3t", "the scheme must be Basic or Bearer"),
            ("s3cr3tScheme s3cr3t", "the scheme must be Basic or Bearer"),
            ("Basic %%s3cr3t%%", "not valid base64"),
            (&format!("Basic {}", b64("s3cr3t")), "must be base64 of"),
            (&format!("Basic {}", b64(":s3cr3t")), "empty user name"),
            ("Bearer ", "expected \"Basic"),
            ("Bearer s3cr3t more", "contains spaces"),
            ("Bearer s3cr3t\u{7f}", "contains spaces, control"),
            ("Bearer s3cr3tü", "non-ASCII"),
        ];
        for (value, want) in cases {
            let e = Credentials::from_authorization_header(value).unwrap_err();
            assert_eq!(e.code(), "config", "{value:?}");
            let m = e.to_string();
            assert!(m.contains(want), "{value:?}: {m}");
            assert!(!m.contains("s3cr3t"), "{value:?}: {m}");
        }
    }

    #[test]
    fn registry_access_from_url() {
        let a = RegistryAccess::from_url("https://core.harbor.domain", None).unwrap();
        assert_eq!(
            a,
            RegistryAccess {
                registry: "core.harbor.domain".into(),
                credentials: None,
                plain_http: false
            }
        );
        let a = RegistryAccess::from_url(
            " HTTP://127.0.0.1:5000/ ",
            Some(&format!("Basic {}", b64("u:hunter2"))),
        )
        .unwrap();
        assert_eq!(a.registry, "127.0.0.1:5000");
        assert!(a.plain_http);
        assert!(matches!(a.credentials, Some(Credentials::Basic { .. })));
        let d = format!("{a:?}");
        assert!(!d.contains("hunter2") && d.contains("<redacted>"), "{d}");
        let a = RegistryAccess::from_url("reg.local:8443", Some("Bearer tok-123")).unwrap();
        assert_eq!(
            (a.registry.as_str(), a.plain_http),
            ("reg.local:8443", false)
        );
        assert!(!format!("{a:?}").contains("tok-123"));
        assert_eq!(
            RegistryAccess::from_url("http://[::1]:5000", None)
                .unwrap()
                .registry,
            "[::1]:5000"
        );

        assert!(a.applies_to("REG.local:8443"));
        assert!(!a.applies_to("reg.local"));
        let hub = RegistryAccess::from_url("https://index.docker.io", None).unwrap();
        assert!(hub.applies_to("docker.io"));

        let cases = [
            ("ftp://h", "only http:// and https://"),
            ("https://", "names no host"),
            ("https://u:s3cr3t@h", "must not contain user information"),
            ("https://h/v2/x", "without a path, query or fragment"),
            ("https://h?x=1", "without a path"),
            ("https://h_x:5000", "is not a valid host[:port]"),
            ("https://h:99999", "is not a valid host[:port]"),
        ];
        for (url, want) in cases {
            let e = RegistryAccess::from_url(url, None).unwrap_err();
            assert_eq!(e.code(), "config", "{url}");
            assert!(e.to_string().contains(want), "{url}: {e}");
            assert!(!e.to_string().contains("s3cr3t"), "{url}: {e}");
        }
        let e = RegistryAccess::from_url("https://h", Some("Token s3cr3t")).unwrap_err();
        assert!(
            e.to_string().contains("Authorization value is invalid"),
            "{e}"
        );
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn www_authenticate_bearer() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        let c = parse_www_authenticate(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/nginx:pull"));
    }

    #[test]
    fn www_authenticate_variants() {
        let c = parse_www_authenticate(r#"Basic realm="Registry Realm""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));

        // unquoted values, spaces, odd case, escaped quote, error param with commas inside quotes
        let c = parse_www_authenticate(
            r#"BEARER Realm=http://127.0.0.1:1/token , Service = "a\"b", error="insufficient_scope, really""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("http://127.0.0.1:1/token"));
        assert_eq!(c[0].param("service"), Some("a\"b"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope, really"));

        // two challenges in one header
        let c = parse_www_authenticate(r#"Basic realm="x", Bearer realm="https://t/x",scope="s""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("x"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("scope"), Some("s"));

        // scheme alone, token68, empty
        let c = parse_www_authenticate("Negotiate");
        assert_eq!(c.len(), 1);
        assert!(c[0].params.is_empty());
        let c = parse_www_authenticate("Negotiate abc123==, Basic realm=r");
        assert_eq!(c.last().map(|c| c.scheme.as_str()), Some("basic"));
        assert!(parse_www_authenticate("").is_empty());
        assert!(parse_www_authenticate("  ,, ").is_empty());
    }
}
