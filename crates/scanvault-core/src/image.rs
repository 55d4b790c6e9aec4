//! Image identity: familiar names, splitting references, choosing the digest for a name.
//!
//! These are the rules of DESIGN.md ("Image identity"). They are pure string functions so
//! that the parser of every format applies them the same way.

/// Split an image reference into `(name, tag, digest)` with no normalisation.
/// The tag is what follows the last `:` after the last `/`; the digest what follows `@`.
pub fn split_reference(reference: &str) -> (String, Option<String>, Option<String>) {
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) if !d.is_empty() => (r, Some(d.to_string())),
        Some((r, _)) => (r, None),
        None => (reference, None),
    };
    let slash = rest.rfind('/');
    match rest.rfind(':') {
        Some(colon) if slash.is_none_or(|s| colon > s) => {
            let tag = &rest[colon + 1..];
            (
                rest[..colon].to_string(),
                (!tag.is_empty()).then(|| tag.to_string()),
                digest,
            )
        }
        _ => (rest.to_string(), None, digest),
    }
}

/// Docker's familiar form of a repository name: a leading `docker.io/` (or
/// `index.docker.io/`, `registry-1.docker.io/`) is removed, then a leading `library/`
/// when only one path segment follows. Other registries keep their host.
pub fn familiar_name(name: &str) -> String {
    let mut n = name;
    for prefix in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = n.strip_prefix(prefix) {
            n = rest;
            break;
        }
    }
    if let Some(rest) = n.strip_prefix("library/") {
        if !rest.contains('/') {
            n = rest;
        }
    }
    n.to_string()
}

/// The digest of the first `repo@digest` entry whose repository has the familiar name
/// `familiar`; else the digest of the first well-formed entry.
pub fn digest_for_name(repo_digests: &[String], familiar: Option<&str>) -> Option<String> {
    let parsed: Vec<(&str, &str)> = repo_digests
        .iter()
        .filter_map(|d| d.split_once('@'))
        .filter(|(_, dg)| !dg.is_empty())
        .collect();
    if let Some(f) = familiar {
        if let Some((_, dg)) = parsed.iter().find(|(repo, _)| familiar_name(repo) == f) {
            return Some(dg.to_string());
        }
    }
    parsed.first().map(|(_, dg)| dg.to_string())
}

/// Identity chosen from a report's fields, before query-parameter overrides.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NameTagDigest {
    pub name: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Apply DESIGN.md's rules: name and tag from `artifact_name` when it is one of
/// `repo_tags` (the reference the user scanned), else from `repo_tags[0]`, else from
/// `artifact_name` as given (a tar path or a directory keeps its whole text; a container
/// image reference is split into name and tag). The digest is the `repo_digests` entry
/// for that name (else the first entry); for container images without repo digests, an
/// `@sha256:…` suffix of the artifact name.
pub fn identify(
    artifact_name: Option<&str>,
    is_container_image: bool,
    repo_tags: &[String],
    repo_digests: &[String],
) -> NameTagDigest {
    let artifact = artifact_name.map(str::trim).filter(|s| !s.is_empty());
    let tags: Vec<&str> = repo_tags
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();

    let chosen_tag_ref = artifact
        .and_then(|a| {
            tags.iter()
                .find(|t| **t == a || familiar_ref(t) == familiar_ref(a))
                .copied()
        })
        .or_else(|| tags.first().copied());

    let (name, tag, artifact_digest) = match (chosen_tag_ref, artifact) {
        (Some(r), _) => {
            let (n, t, _) = split_reference(r);
            (Some(familiar_name(&n)), t, None)
        }
        (None, Some(a)) if is_container_image || looks_like_image_reference(a) => {
            let (n, t, d) = split_reference(a);
            (Some(familiar_name(&n)), t, d)
        }
        (None, Some(a)) => (Some(a.to_string()), None, None),
        (None, None) => (None, None, None),
    };

    let digest = digest_for_name(repo_digests, name.as_deref()).or(if is_container_image {
        artifact_digest
    } else {
        None
    });
    NameTagDigest { name, tag, digest }
}

/// An image reference as people write it: `name:tag`, or the name alone without a tag.
pub fn name_and_tag(name: &str, tag: &str) -> String {
    if tag.is_empty() {
        name.to_string()
    } else {
        format!("{name}:{tag}")
    }
}

/// Familiar form of a whole reference (`docker.io/library/nginx:1` → `nginx:1`).
fn familiar_ref(r: &str) -> String {
    let (n, t, _) = split_reference(r);
    match t {
        Some(t) => format!("{}:{}", familiar_name(&n), t),
        None => familiar_name(&n),
    }
}

/// A container image reference (`alpine:3.19`, `localhost:5000/app:v2`, `nginx@sha256:…`)
/// rather than a path or an archive: only the characters of a reference, not starting like
/// a path (`.`, `./x`, `/x`), not an archive file (`x.tar`, `x.tar.gz`, `x.tgz`, `x.zip`).
/// The original service split such names into name and tag too.
fn looks_like_image_reference(a: &str) -> bool {
    let archive = [".tar", ".tar.gz", ".tgz", ".zip"]
        .iter()
        .any(|ext| a.to_ascii_lowercase().ends_with(ext));
    !a.is_empty()
        && !a.starts_with('.')
        && !a.starts_with('/')
        && !archive
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn split_reference_handles_ports_tags_and_digests() {
        assert_eq!(
            split_reference("localhost:5000/app:1.0"),
            ("localhost:5000/app".into(), Some("1.0".into()), None)
        );
        assert_eq!(
            split_reference("localhost:5000/app"),
            ("localhost:5000/app".into(), None, None)
        );
        assert_eq!(
            split_reference("nginx@sha256:abc"),
            ("nginx".into(), None, Some("sha256:abc".into()))
        );
        assert_eq!(
            split_reference("nginx:1.25@sha256:abc"),
            (
                "nginx".into(),
                Some("1.25".into()),
                Some("sha256:abc".into())
            )
        );
    }

    #[test]
    fn familiar_names_drop_docker_hub_prefixes_only() {
        assert_eq!(familiar_name("docker.io/library/nginx"), "nginx");
        assert_eq!(familiar_name("docker.io/anaisurlichs/x"), "anaisurlichs/x");
        assert_eq!(familiar_name("library/nginx"), "nginx");
        assert_eq!(familiar_name("library/a/b"), "library/a/b");
        assert_eq!(familiar_name("ghcr.io/org/app"), "ghcr.io/org/app");
        assert_eq!(familiar_name("index.docker.io/library/redis"), "redis");
    }

    #[test]
    fn artifact_name_wins_when_it_is_one_of_the_repo_tags() {
        let id = identify(
            Some("docker.io/library/nginx:latest"),
            true,
            &s(&["nginx:1.25", "nginx:latest"]),
            &s(&["nginx@sha256:aaa"]),
        );
        assert_eq!(id.name.as_deref(), Some("nginx"));
        assert_eq!(id.tag.as_deref(), Some("latest"));
        assert_eq!(id.digest.as_deref(), Some("sha256:aaa"));
    }

    #[test]
    fn first_repo_tag_is_used_when_artifact_name_is_a_path() {
        let id = identify(
            Some("testdata/fixtures/images/alpine-310.tar.gz"),
            true,
            &s(&["ghcr.io/aquasecurity/trivy-test-images:alpine-310"]),
            &[],
        );
        assert_eq!(
            id.name.as_deref(),
            Some("ghcr.io/aquasecurity/trivy-test-images")
        );
        assert_eq!(id.tag.as_deref(), Some("alpine-310"));
        assert_eq!(id.digest, None);
    }

    #[test]
    fn digest_matches_the_chosen_name() {
        let id = identify(
            Some("app:1"),
            true,
            &s(&["other:2", "app:1"]),
            &s(&["other@sha256:111", "docker.io/library/app@sha256:222"]),
        );
        assert_eq!(id.name.as_deref(), Some("app"));
        assert_eq!(id.digest.as_deref(), Some("sha256:222"));
    }

    #[test]
    fn artifact_name_as_given_when_nothing_else() {
        let id = identify(Some("."), false, &[], &[]);
        assert_eq!(id.name.as_deref(), Some("."));
        let id = identify(Some("nginx@sha256:abc"), true, &[], &[]);
        assert_eq!(id.name.as_deref(), Some("nginx"));
        assert_eq!(id.digest.as_deref(), Some("sha256:abc"));
        let id = identify(Some("x.tar.gz"), true, &[], &[]);
        assert_eq!(id.name.as_deref(), Some("x.tar.gz"));
        assert_eq!(id.tag, None);
    }

    /// Without `ArtifactType` or `Metadata`, a reference-shaped `ArtifactName` is split into
    /// name and tag as the original service's parser did; paths and archives are kept whole.
    #[test]
    fn a_bare_reference_splits_like_the_original() {
        for (artifact, name, tag) in [
            ("alpine:3.19", "alpine", Some("3.19")),
            ("busybox:latest", "busybox", Some("latest")),
            (
                "localhost:5000/myapp:v2",
                "localhost:5000/myapp",
                Some("v2"),
            ),
            ("docker.io/library/nginx:1.25", "nginx", Some("1.25")),
            ("myimage", "myimage", None),
            ("./rootfs", "./rootfs", None),
            ("/srv/app", "/srv/app", None),
            ("backup.tar", "backup.tar", None),
            ("my image:1", "my image:1", None),
        ] {
            let id = identify(Some(artifact), false, &[], &[]);
            assert_eq!(id.name.as_deref(), Some(name), "{artifact}");
            assert_eq!(id.tag.as_deref(), tag, "{artifact}");
        }
    }
}
