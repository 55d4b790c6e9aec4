//! Docker image references: parsing (the grammar of `distribution/reference`), Docker Hub
//! normalisation, and the forms ScanVault prints.

use std::fmt;
use std::str::FromStr;

/// Registry shown for Docker Hub images (`docker.io/library/nginx:1.25`).
pub const DOCKER_HUB_DISPLAY: &str = "docker.io";
/// Host that serves the Docker Hub registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// Longest image name (registry and repository as written), as in Docker.
pub const NAME_MAX_LEN: usize = 255;
/// Longest tag, as in Docker.
pub const TAG_MAX_LEN: usize = 128;

/// A parsed, normalised image reference.
///
/// `registry` is the display form (`docker.io` for Docker Hub); [`Reference::api_host`]
/// gives the host to send requests to (`registry-1.docker.io` for Docker Hub).
/// After [`Reference::parse`], at least one of `tag` and `digest` is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`; `docker.io` for Docker Hub.
    pub registry: String,
    /// Repository path, e.g. `library/nginx`.
    pub repository: String,
    /// Tag, e.g. `1.25`; `latest` when the input had neither tag nor digest.
    pub tag: Option<String>,
    /// Digest, e.g. `sha256:<64 hex>`.
    pub digest: Option<String>,
}

/// What is wrong with an image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceErrorKind {
    /// The reference is empty.
    Empty,
    /// The reference contains a whitespace or control character.
    Whitespace,
    /// The reference starts with a URL scheme such as `https://`.
    Scheme,
    /// The name (registry and repository) is longer than [`NAME_MAX_LEN`].
    NameTooLong(usize),
    /// The repository path is empty (e.g. `ghcr.io/` or `:tag`).
    EmptyRepository,
    /// A repository path component is empty (`a//b`, trailing `/`).
    EmptyPathComponent,
    /// The repository contains upper-case letters.
    UppercaseRepository(String),
    /// A repository path component has characters or separators the grammar forbids.
    InvalidPathComponent(String),
    /// The repository is a 64-character hex string (looks like an image ID).
    HexRepository,
    /// The registry host or port is malformed.
    InvalidRegistry(String),
    /// The tag is empty (`name:`).
    EmptyTag,
    /// The tag is longer than [`TAG_MAX_LEN`].
    TagTooLong(usize),
    /// The tag has characters the grammar forbids.
    InvalidTag(String),
    /// The digest is not `sha256:<64 hex>` (or `sha512:<128 hex>`).
    InvalidDigest(String),
    /// A repository pattern (`repository:*`, see [`parse_repository_pattern`]) also has a
    /// tag or a digest.
    TagInPattern,
}

impl fmt::Display for ReferenceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the reference is empty"),
            Self::Whitespace => write!(f, "it contains whitespace or control characters"),
            Self::Scheme => write!(
                f,
                "it must not start with a URL scheme (write e.g. \"ghcr.io/org/app:1.0\", not \"https://ghcr.io/org/app:1.0\")"
            ),
            Self::NameTooLong(n) => write!(
                f,
                "the image name is {n} characters long; at most {NAME_MAX_LEN} are allowed"
            ),
            Self::EmptyRepository => write!(f, "the repository name is empty"),
            Self::EmptyPathComponent => write!(
                f,
                "the repository name has an empty path component (\"//\" or a leading or trailing \"/\")"
            ),
            Self::UppercaseRepository(r) => write!(
                f,
                "repository name \"{r}\" must be lowercase (only the registry host and the tag may contain upper-case letters)"
            ),
            Self::InvalidPathComponent(c) => write!(
                f,
                "repository path component \"{c}\" is invalid: use lowercase letters and digits, separated by \".\", \"_\", \"__\" or dashes, starting and ending with a letter or digit"
            ),
            Self::HexRepository => write!(
                f,
                "a 64-character hexadecimal string is an image ID, not a repository name; use \"name@sha256:<hex>\""
            ),
            Self::InvalidRegistry(r) => write!(
                f,
                "registry \"{r}\" is not a valid host[:port] (letters, digits, \"-\" and \".\", then an optional numeric port up to 65535)"
            ),
            Self::EmptyTag => write!(f, "the tag after \":\" is empty"),
            Self::TagTooLong(n) => write!(
                f,
                "the tag is {n} characters long; at most {TAG_MAX_LEN} are allowed"
            ),
            Self::InvalidTag(t) => write!(
                f,
                "tag \"{t}\" is invalid: use letters, digits, \"_\", \".\" and \"-\", not starting with \".\" or \"-\""
            ),
            Self::InvalidDigest(d) => write!(
                f,
                "digest \"{d}\" is invalid: expected \"sha256:\" followed by 64 lowercase hex digits"
            ),
            Self::TagInPattern => write!(
                f,
                "a repository pattern is \"[registry/]repository:*\", with no other tag or digest"
            ),
        }
    }
}

/// An image reference that cannot be parsed; the message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference \"{input}\": {kind}")]
pub struct ReferenceError {
    input: String,
    kind: ReferenceErrorKind,
}

impl ReferenceError {
    fn new(input: &str, kind: ReferenceErrorKind) -> Self {
        Self {
            input: shorten(input, 300),
            kind,
        }
    }

    /// What is wrong.
    pub fn kind(&self) -> &ReferenceErrorKind {
        &self.kind
    }

    /// The reference as given (shortened when very long; control characters escaped).
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Escape control characters and cut to `max` characters, so that an error message stays
/// on one readable line.
fn shorten(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl Reference {
    /// Parse a Docker image reference (`[registry/]repository[:tag][@digest]`) and
    /// normalise it: no registry → `docker.io`; a single-segment Docker Hub repository →
    /// `library/<name>`; neither tag nor digest → tag `latest`.
    ///
    /// The first path segment is a registry host when it contains `.` or `:` or is
    /// `localhost`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let err = |kind| ReferenceError::new(s, kind);
        if s.is_empty() {
            return Err(err(ReferenceErrorKind::Empty));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(ReferenceErrorKind::Whitespace));
        }
        if s.contains("://") {
            return Err(err(ReferenceErrorKind::Scheme));
        }

        // name[:tag][@digest]
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            if !is_valid_digest(d) {
                return Err(err(ReferenceErrorKind::InvalidDigest(shorten(d, 150))));
            }
        }
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|sl| colon > sl) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(err)?;
        }
        if name.is_empty() {
            return Err(err(ReferenceErrorKind::EmptyRepository));
        }
        let name_len = name.chars().count();
        if name_len > NAME_MAX_LEN {
            return Err(err(ReferenceErrorKind::NameTooLong(name_len)));
        }

        // registry / repository
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                validate_registry(first).map_err(err)?;
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB_DISPLAY.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_DISPLAY.to_string(),
            _ => registry,
        };
        validate_repository(&repository).map_err(err)?;
        let repository = if registry == DOCKER_HUB_DISPLAY && !repository.contains('/') {
            if repository.len() == 64 && repository.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(ReferenceErrorKind::HexRepository));
            }
            format!("library/{repository}")
        } else {
            repository
        };

        let tag = match (tag, digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// Whether this is a Docker Hub image.
    pub fn is_docker_hub(&self) -> bool {
        is_docker_hub_host(&self.registry)
    }

    /// Host (and port) that serves the registry API: `registry-1.docker.io` for Docker Hub,
    /// else [`Reference::registry`].
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// Registry as shown to people: `docker.io` for Docker Hub.
    pub fn registry_display(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_DISPLAY
        } else {
            &self.registry
        }
    }

    /// What goes after `/manifests/` in the API: the digest when there is one, else the
    /// tag (`latest` when neither is set).
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// Docker's short name: `nginx` and `org/app` for Docker Hub, else
    /// `registry/repository` (`ghcr.io/org/app`, `127.0.0.1:5000/e2e/alpine-app`).
    /// No tag or digest.
    pub fn familiar_name(&self) -> String {
        if self.is_docker_hub() {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// `registry/repository@digest`, e.g. for `trivy image`.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}/{}@{}", self.registry_display(), self.repository, digest)
    }
}

impl fmt::Display for Reference {
    /// Canonical form: `registry/repository[:tag][@digest]`, e.g.
    /// `docker.io/library/nginx:1.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry_display(), self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Suffix of a repository pattern: `repository:*` means every tag of the repository.
pub const ALL_TAGS_SUFFIX: &str = ":*";

/// Parse a repository pattern `[registry/]repository:*` ("every tag of this repository",
/// e.g. `127.0.0.1:5000/e2e/alpine-app:*`, `nginx:*`) into a [`Reference`] with neither
/// tag nor digest, for [`RegistryClient::list_tags`](crate::RegistryClient::list_tags).
///
/// * `Ok(None)`: `s` does not end in `:*`, so it is not a pattern; parse it with
///   [`Reference::parse`] (which rejects any other `*`).
/// * `Ok(Some(r))`: a pattern; `r.registry` and `r.repository` are normalised as by
///   [`Reference::parse`] (`nginx:*` → `docker.io/library/nginx`), `r.tag` and `r.digest`
///   are `None`, and `r.to_string()` is `registry/repository`.
/// * `Err(_)`: `s` ends in `:*` but what comes before is not a repository name, or it has
///   a tag or digest of its own (`app:1.0:*`, `app@sha256:…:*`); the error quotes `s`.
pub fn parse_repository_pattern(s: &str) -> Result<Option<Reference>, ReferenceError> {
    let Some(name) = s.strip_suffix(ALL_TAGS_SUFFIX) else {
        return Ok(None);
    };
    let err = |kind| ReferenceError::new(s, kind);
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last_segment.contains(':') {
        return Err(err(ReferenceErrorKind::TagInPattern));
    }
    let mut r = Reference::parse(name).map_err(|e| err(e.kind))?;
    r.tag = None;
    r.digest = None;
    Ok(Some(r))
}

pub(crate) fn is_docker_hub_host(host: &str) -> bool {
    matches!(
        host.to_ascii_lowercase().as_str(),
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
    )
}

/// `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
pub fn is_valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let want = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == want && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn validate_tag(t: &str) -> Result<(), ReferenceErrorKind> {
    if t.is_empty() {
        return Err(ReferenceErrorKind::EmptyTag);
    }
    let n = t.chars().count();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let first_ok = t.chars().next().is_some_and(word);
    if !first_ok || !t.chars().all(|c| word(c) || c == '.' || c == '-') {
        return Err(ReferenceErrorKind::InvalidTag(shorten(t, 150)));
    }
    if n > TAG_MAX_LEN {
        return Err(ReferenceErrorKind::TagTooLong(n));
    }
    Ok(())
}

pub(crate) fn validate_registry(r: &str) -> Result<(), ReferenceErrorKind> {
    let bad = || ReferenceErrorKind::InvalidRegistry(r.to_string());
    // [IPv6]:port
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(bad());
        }
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match r.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        }
    };
    if let Some(h) = host {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !h.split('.').all(component_ok) {
            return Err(bad());
        }
    }
    if let Some(p) = port {
        if p.is_empty()
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n == 0 || n > 65535)
        {
            return Err(bad());
        }
    }
    Ok(())
}

fn validate_repository(repo: &str) -> Result<(), ReferenceErrorKind> {
    if repo.is_empty() {
        return Err(ReferenceErrorKind::EmptyRepository);
    }
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceErrorKind::UppercaseRepository(shorten(repo, 150)));
    }
    for component in repo.split('/') {
        if component.is_empty() {
            return Err(ReferenceErrorKind::EmptyPathComponent);
        }
        if !is_valid_path_component(component) {
            return Err(ReferenceErrorKind::InvalidPathComponent(shorten(
                component, 150,
            )));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        let start = i;
        if expect_alnum {
            while i < bytes.len() && alnum(bytes[i]) {
                i += 1;
            }
            if i == start {
                return false;
            }
        } else {
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &c[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
            if !ok || i == bytes.len() {
                return false;
            }
        }
        expect_alnum = !expect_alnum;
    }
    !bytes.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ok(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn bad(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => panic!("{s:?} should not parse, got {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn docker_hub_normalisation() {
        let r = ok("nginx");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/nginx");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.digest, None);
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.familiar_name(), "nginx");

        let r = ok("nginx:1.25");
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.25");
        let r = ok("docker.io/nginx:1.25");
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.25");
        let r = ok("index.docker.io/library/nginx:1.25");
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.25");
        let r = ok("registry-1.docker.io/org/app:2");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.familiar_name(), "org/app");
        let r = ok("org/app");
        assert_eq!(r.repository, "org/app");
        assert_eq!(r.familiar_name(), "org/app");
        assert_eq!(r.to_string(), "docker.io/org/app:latest");
        assert_eq!(
            r.with_digest(D),
            format!("docker.io/org/app@{D}"),
            "with_digest drops the tag"
        );
    }

    #[test]
    fn other_registries() {
        let r = ok("ghcr.io/org/app:v1.2.3");
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.api_host(), "ghcr.io");
        assert_eq!(r.repository, "org/app");
        assert_eq!(r.familiar_name(), "ghcr.io/org/app");
        assert_eq!(r.to_string(), "ghcr.io/org/app:v1.2.3");

        let r = ok("127.0.0.1:5000/e2e/alpine-app:1.0");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "e2e/alpine-app");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.familiar_name(), "127.0.0.1:5000/e2e/alpine-app");
        assert_eq!(
            r.with_digest(D),
            format!("127.0.0.1:5000/e2e/alpine-app@{D}")
        );

        let r = ok("localhost/app");
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = ok("localhost:5000/app");
        assert_eq!(r.registry, "localhost:5000");
        let r = ok("[::1]:5000/a/b:t");
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(r.repository, "a/b");
        let r = ok("Registry.Example.COM/a");
        assert_eq!(
            r.registry, "Registry.Example.COM",
            "hosts may be upper-case"
        );
        // No '.', ':' or localhost: the first segment is part of a Docker Hub repository.
        let r = ok("myhost/app");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "myhost/app");
        // A bare "localhost:5000" is Docker Hub's library/localhost, tag 5000 (as in Docker).
        let r = ok("localhost:5000");
        assert_eq!(r.to_string(), "docker.io/library/localhost:5000");
    }

    #[test]
    fn tags_and_digests() {
        let r = ok(&format!("alpine@{D}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/alpine@{D}"));

        let r = ok(&format!("ghcr.io/o/a:1.0@{D}"));
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("ghcr.io/o/a:1.0@{D}"));

        let r = ok("a:Tag_1.x-y");
        assert_eq!(r.tag.as_deref(), Some("Tag_1.x-y"));
        assert_eq!(r.manifest_reference(), "Tag_1.x-y");
        let r = ok(&format!("a:{}", "t".repeat(128)));
        assert_eq!(r.tag.map(|t| t.len()), Some(128));
        let r = ok("a/b.c/d__e/f-g/h---i:1");
        assert_eq!(r.repository, "a/b.c/d__e/f-g/h---i");

        let r: Reference = "alpine:3.21".parse().unwrap();
        assert_eq!(r.repository, "library/alpine");
    }

    #[test]
    fn invalid_references_say_what_is_wrong() {
        assert!(bad("").contains("the reference is empty"));
        assert!(bad("ngi nx").contains("whitespace"));
        assert!(bad(" nginx").contains("whitespace"));
        assert!(bad("nginx\n").contains("whitespace"));
        assert!(bad("https://ghcr.io/a/b").contains("URL scheme"));
        let m = bad("Nginx:1.0");
        assert!(m.contains("\"Nginx\" must be lowercase"), "{m}");
        assert!(
            m.starts_with("invalid image reference \"Nginx:1.0\": "),
            "{m}"
        );
        assert!(bad("ghcr.io/Org/app").contains("must be lowercase"));
        assert!(bad("nginx:1.0!").contains("tag \"1.0!\" is invalid"));
        assert!(bad("nginx:.hidden").contains("is invalid"));
        assert!(bad("nginx:-x").contains("is invalid"));
        assert!(bad("nginx:").contains("tag after \":\" is empty"));
        let m = bad(&format!("nginx:{}", "a".repeat(129)));
        assert!(m.contains("tag is 129 characters long; at most 128"), "{m}");
        let m = bad("nginx@sha256:abc");
        assert!(
            m.contains("digest \"sha256:abc\" is invalid: expected \"sha256:\" followed by 64"),
            "{m}"
        );
        assert!(bad(&format!("nginx@{}", D.to_uppercase())).contains("digest"));
        assert!(bad(&format!("nginx@md5:{}", &D[7..])).contains("digest"));
        assert!(bad("nginx@").contains("digest \"\" is invalid"));
        let long = format!("ghcr.io/{}", "a".repeat(250));
        assert!(bad(&long).contains("258 characters long; at most 255"));
        assert!(bad("ghcr.io/").contains("repository name is empty"));
        assert!(bad(":tag").contains("repository name is empty"));
        assert!(bad("a//b").contains("empty path component"));
        assert!(bad("a/b/").contains("empty path component"));
        assert!(bad("a/-b").contains("path component \"-b\" is invalid"));
        assert!(bad("a/b_").contains("path component \"b_\" is invalid"));
        assert!(bad("a/b___c").contains("path component \"b___c\" is invalid"));
        assert!(bad("a/b._c").contains("is invalid"));
        assert!(bad("a/b$c").contains("is invalid"));
        assert!(bad("ghcr-.io/a").contains("registry \"ghcr-.io\" is not a valid host"));
        assert!(bad("ghcr.io:port/a").contains("registry \"ghcr.io:port\""));
        assert!(bad("ghcr.io:99999/a").contains("not a valid host"));
        assert!(bad("a..b/c").contains("not a valid host"));
        assert!(bad(&"a".repeat(64).replace('a', "f")).contains("image ID"));
    }

    #[test]
    fn repository_patterns() {
        let pat = |s: &str| {
            parse_repository_pattern(s)
                .unwrap_or_else(|e| panic!("{s:?}: {e}"))
                .unwrap_or_else(|| panic!("{s:?} should be a pattern"))
        };
        let r = pat("127.0.0.1:5000/e2e/alpine-app:*");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "e2e/alpine-app");
        assert_eq!((r.tag, r.digest), (None, None));
        let r = pat("nginx:*");
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        let r = pat("index.docker.io/org/app:*");
        assert_eq!(r.to_string(), "docker.io/org/app");
        assert_eq!(pat("[::1]:5000/a/b:*").registry, "[::1]:5000");

        // Not patterns: ordinary references (and things that merely contain '*').
        for s in [
            "nginx",
            "nginx:1.25",
            "ghcr.io/o/a:v1",
            &format!("a@{D}"),
            "a:*x",
            "a*",
            "",
        ] {
            assert_eq!(parse_repository_pattern(s), Ok(None), "{s:?}");
        }
        assert!(Reference::parse("a:*").is_err(), "'*' is no tag");

        let bad = |s: &str| match parse_repository_pattern(s) {
            Err(e) => {
                assert_eq!(e.input(), s);
                e
            }
            Ok(r) => panic!("{s:?} should be an invalid pattern, got {r:?}"),
        };
        assert_eq!(bad("a:1.0:*").kind(), &ReferenceErrorKind::TagInPattern);
        assert_eq!(
            bad(&format!("a@{D}:*")).kind(),
            &ReferenceErrorKind::TagInPattern
        );
        assert_eq!(
            bad("localhost:5000:*").kind(),
            &ReferenceErrorKind::TagInPattern
        );
        assert!(bad("a:1.0:*")
            .to_string()
            .contains("no other tag or digest"));
        assert_eq!(bad(":*").kind(), &ReferenceErrorKind::Empty);
        assert!(matches!(
            bad("ghcr.io/Org/app:*").kind(),
            ReferenceErrorKind::UppercaseRepository(_)
        ));
        assert_eq!(
            bad("ghcr.io/:*").kind(),
            &ReferenceErrorKind::EmptyRepository
        );
    }

    #[test]
    fn error_accessors_and_escaping() {
        let e = Reference::parse("a\tb").unwrap_err();
        assert_eq!(e.kind(), &ReferenceErrorKind::Whitespace);
        assert_eq!(e.input(), "a\\tb");
        let e = Reference::parse(&"x".repeat(1000)).unwrap_err();
        assert!(e.to_string().len() < 600, "long input is shortened");
    }

    #[test]
    fn digest_validation() {
        assert!(is_valid_digest(D));
        assert!(is_valid_digest(&format!("sha512:{}", "0".repeat(128))));
        assert!(!is_valid_digest("sha256:"));
        assert!(!is_valid_digest(&D[..70]));
        assert!(!is_valid_digest(&format!("{D}0")));
        assert!(!is_valid_digest(&D.replace("sha256", "sha384")));
    }
}
