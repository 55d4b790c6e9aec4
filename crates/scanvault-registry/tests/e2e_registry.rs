//! Against the REAL registry of the e2e kit (CNCF distribution, plain HTTP on 127.0.0.1).
//!
//! Needs `E2E_REGISTRY` and `E2E_IMAGE_ALPINE`, exported by the kit's
//! `eval "$(bash shared/e2e-kit/fixture.sh up)"`; the project's test script `scripts/test.sh`
//! does this.
//! Without them the test fails, unless `SCANVAULT_SKIP_E2E=1`.

use std::process::Command;
use std::time::Duration;

use scanvault_registry::{
    parse_repository_pattern, ErrorClass, Reference, RegistryAccess, RegistryClient, RegistryConfig,
};

struct Env {
    registry: String,
    image: String,
}

fn e2e_env() -> Option<Env> {
    match (
        std::env::var("E2E_REGISTRY"),
        std::env::var("E2E_IMAGE_ALPINE"),
    ) {
        (Ok(registry), Ok(image)) if !registry.is_empty() && !image.is_empty() => {
            Some(Env { registry, image })
        }
        _ if std::env::var("SCANVAULT_SKIP_E2E").as_deref() == Ok("1") => {
            eprintln!("SKIPPED e2e registry test: SCANVAULT_SKIP_E2E=1 and E2E_REGISTRY / E2E_IMAGE_ALPINE are not set");
            None
        }
        _ => panic!(
            "E2E_REGISTRY and E2E_IMAGE_ALPINE are not set: run this test via the project's test \
             script `bash scripts/test.sh` (CI: .ci/run), which starts the e2e kit's registry \
             (`eval \"$(bash shared/e2e-kit/fixture.sh up)\"`) and exports them; \
             set SCANVAULT_SKIP_E2E=1 to skip it deliberately (local quick runs only)"
        ),
    }
}

/// `Digest` as reported by `skopeo inspect --tls-verify=false docker://IMAGE`.
fn skopeo_digest(image: &str) -> String {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .expect("running skopeo (installed by the e2e kit's install.sh)");
    assert!(
        out.status.success(),
        "skopeo inspect {image} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo JSON");
    v["Digest"]
        .as_str()
        .expect("skopeo inspect output has Digest")
        .to_string()
}

#[tokio::test]
async fn resolves_e2e_kit_image_like_skopeo() {
    let Some(env) = e2e_env() else { return };
    let client = RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![env.registry.clone()],
        timeout: Duration::from_secs(10),
        ..RegistryConfig::default()
    })
    .unwrap();
    let r = Reference::parse(&env.image).unwrap();
    assert_eq!(r.registry, env.registry);

    let want = skopeo_digest(&env.image);
    let got = client.resolve(&r).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.digest, want, "digest of {} like skopeo", env.image);
    assert!(
        got.media_type
            .as_deref()
            .is_some_and(|m| m.contains("manifest")),
        "{:?}",
        got.media_type
    );

    // The name@digest handed to trivy resolves to itself.
    let pinned = r.with_digest(&got.digest);
    let by_digest = client.resolve_str(&pinned).await.unwrap();
    assert_eq!(by_digest.digest, want);

    // A missing tag and a missing repository: permanent manifest_unknown.
    let missing_tag = Reference {
        tag: Some("does-not-exist".into()),
        digest: None,
        ..r.clone()
    };
    let e = client.resolve(&missing_tag).await.unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        ("manifest_unknown", ErrorClass::Permanent)
    );
    assert_eq!(
        e.to_string(),
        format!(
            "image {}/{}:does-not-exist not found in registry {}",
            env.registry, r.repository, env.registry
        )
    );
    let e = client
        .resolve_str(&format!("{}/e2e/missing:1.0", env.registry))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        ("manifest_unknown", ErrorClass::Permanent)
    );
    assert!(
        e.to_string().starts_with(&format!(
            "image {0}/e2e/missing:1.0 not found in registry {0}",
            env.registry
        )),
        "{e}"
    );
    let e = client
        .resolve_str(&format!(
            "{}/{}@sha256:{}",
            env.registry,
            r.repository,
            "0".repeat(64)
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "manifest_unknown", "{e}");

    // Without the insecure entry the client uses https and must not fall back to http.
    let strict = RegistryClient::new(RegistryConfig {
        timeout: Duration::from_secs(10),
        ..RegistryConfig::default()
    })
    .unwrap();
    let e = strict.resolve(&r).await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("tls", ErrorClass::Permanent), "{e}");
    assert!(e.to_string().contains("REGISTRY_INSECURE_HOSTS"), "{e}");
}

#[tokio::test]
async fn lists_e2e_kit_tags_and_takes_per_request_access() {
    let Some(env) = e2e_env() else { return };
    let client = RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![env.registry.clone()],
        timeout: Duration::from_secs(10),
        ..RegistryConfig::default()
    })
    .unwrap();
    let image = Reference::parse(&env.image).unwrap();
    let pattern = parse_repository_pattern(&format!("{}/{}:*", env.registry, image.repository))
        .unwrap()
        .expect("a repository pattern");
    let tags = client
        .list_tags(&pattern)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("tags of {pattern}: {tags:?}");
    let tag = image.tag.clone().expect("the kit's image has a tag");
    assert!(tags.contains(&tag), "{tags:?} has {tag}");

    let missing = parse_repository_pattern(&format!("{}/e2e/missing:*", env.registry))
        .unwrap()
        .unwrap();
    let e = client.list_tags(&missing).await.unwrap_err();
    assert_eq!(
        (e.code(), e.class()),
        ("manifest_unknown", ErrorClass::Permanent)
    );
    assert_eq!(
        e.to_string(),
        format!(
            "repository {0}/e2e/missing not found in registry {0}",
            env.registry
        )
    );

    // Harbor-style: a client without insecure hosts, the registry given as an http:// URL.
    let strict = RegistryClient::new(RegistryConfig {
        timeout: Duration::from_secs(10),
        ..RegistryConfig::default()
    })
    .unwrap();
    let access = RegistryAccess::from_url(&format!("http://{}", env.registry), None).unwrap();
    let got = strict
        .resolve_with(&image, Some(&access))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.digest, client.resolve(&image).await.unwrap().digest);
    assert_eq!(
        strict
            .list_tags_with(&pattern, Some(&access))
            .await
            .unwrap(),
        tags
    );
}
