//! ScanVault's integration tests: one binary, every scenario on both backends.
mod support;

mod analytics;
mod api;
mod auth;
mod backup;
mod changes;
mod cli;
mod compat;
mod container;
mod corpus;
mod deltas;
mod dropin;
mod exports;
mod faults;
mod faults_worker;
mod findings;
mod fleet_model;
mod formats;
mod history;
mod hostile;
mod ingest_cli;
mod jobs;
mod retention;
mod statements;
mod worker;
mod workers;
