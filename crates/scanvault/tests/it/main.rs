//! ScanVault's integration tests: one binary, every scenario on both backends.
mod support;

mod analytics;
mod api;
mod auth;
mod cli;
mod compat;
mod corpus;
mod faults;
mod hostile;
mod jobs;
mod retention;
mod worker;
