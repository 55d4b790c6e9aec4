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
    /// User name and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken` in Docker's config), exchanged at the token service.
    IdentityToken {
        username: Option<String>,
        token: String,
    },
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
            Self::IdentityToken { .. } => None,
        }
    }
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
