//! ScanVault's domain: parsing scanner reports into normalised findings, image identity,
//! and the scan-job state machine. Nothing here does I/O, so it compiles and tests fast.
pub mod fleet;
pub mod image;
pub mod job;
pub mod report;
pub mod trivy;
