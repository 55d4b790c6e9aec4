//! Fuzz the image-identity string functions (`scanvault_core::image`) with arbitrary
//! UTF-8 strings: no panics (e.g. slicing inside a multi-byte character), plus the
//! structural guarantees of `split_reference`:
//! - the name is a prefix of the reference and holds no `@`
//! - a tag is non-empty and holds no `:`, `/` or `@`
//! - a digest is non-empty
#![no_main]

use libfuzzer_sys::fuzz_target;
use scanvault_core::image::{digest_for_name, familiar_name, identify, split_reference};

fuzz_target!(|input: (&str, bool, Vec<String>, Vec<String>)| {
    let (reference, is_image, repo_tags, repo_digests) = input;

    let (name, tag, digest) = split_reference(reference);
    assert!(
        reference.starts_with(name.as_str()),
        "{reference:?} -> name {name:?}"
    );
    assert!(!name.contains('@'), "{reference:?} -> name {name:?}");
    if let Some(t) = &tag {
        assert!(!t.is_empty(), "{reference:?} -> empty tag");
        assert!(!t.contains([':', '/', '@']), "{reference:?} -> tag {t:?}");
    }
    if let Some(d) = &digest {
        assert!(!d.is_empty(), "{reference:?} -> empty digest");
    }

    let familiar = familiar_name(&name);
    assert!(
        name.ends_with(familiar.as_str()),
        "{name:?} -> {familiar:?}"
    );
    let _ = familiar_name(reference);

    let _ = digest_for_name(&repo_digests, Some(&familiar));
    let _ = digest_for_name(&repo_digests, None);

    let id = identify(Some(reference), is_image, &repo_tags, &repo_digests);
    if let Some(t) = &id.tag {
        assert!(!t.is_empty(), "identify gave an empty tag");
    }
    let _ = identify(None, is_image, &repo_tags, &repo_digests);
});
