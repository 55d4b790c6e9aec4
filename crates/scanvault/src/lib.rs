//! ScanVault: store, analyse and run container vulnerability scans.
//!
//! Error types by layer: `scanvault_core` has one small `thiserror` enum per concern;
//! the store returns [`store::StoreError`]; HTTP handlers return [`http::error::ApiError`];
//! startup, CLI and worker plumbing use `anyhow` with context.

pub mod check_cli;
pub mod cli;
pub mod compliance;
pub mod compliance_report;
pub mod config;
pub mod export;
pub mod feeds;
pub mod http;
pub mod ingest;
pub mod ingest_cli;
pub mod inventory;
pub mod metrics;
pub mod monitor;
pub mod output;
pub mod periodic;
pub mod redact;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod triage;
pub mod ui;
pub mod vex;
pub mod webhooks;
pub mod worker;
