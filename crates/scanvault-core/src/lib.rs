//! ScanVault's domain: parsing scanner reports into normalised findings, image identity,
//! and the scan-job state machine. Nothing here does I/O, so it compiles and tests fast.
mod accumulate;
pub mod cyclonedx;
pub mod feeds;
pub mod fleet;
pub mod grype;
pub mod image;
pub mod job;
pub mod k8s;
pub mod openvex;
pub mod parse;
pub mod policy;
pub mod render;
pub mod report;
pub mod sbom;
pub mod trivy;
