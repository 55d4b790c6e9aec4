#![doc = include_str!("../README.md")]

mod auth;
mod client;
mod error;
mod reference;

pub use auth::{parse_www_authenticate, AuthStore, Challenge, Credentials, RegistryAccess};
pub use client::{
    sha256_digest, RegistryClient, RegistryConfig, Resolved, INSECURE_HOSTS_ENV, MANIFEST_ACCEPT,
    MAX_TAGS, MAX_TAG_PAGES, TAGS_PAGE_SIZE,
};
pub use error::{ErrorClass, ErrorKind, RegistryError};
pub use reference::{
    is_valid_digest, parse_repository_pattern, Reference, ReferenceError, ReferenceErrorKind,
    ALL_TAGS_SUFFIX, DEFAULT_TAG, DOCKER_HUB_API, DOCKER_HUB_DISPLAY, NAME_MAX_LEN, TAG_MAX_LEN,
};
