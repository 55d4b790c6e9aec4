//! `scanvault`: parse the command line, initialise logging, dispatch.

use clap::Parser;
use scanvault::cli::{Cli, Command};
use scanvault::config::Role;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        println!("{}", scanvault::http::openapi_json());
        return std::process::ExitCode::SUCCESS;
    }
    if let Err(e) = scanvault::telemetry::init(&cli.log_level, cli.log_format) {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(cfg) => scanvault::server::serve(*cfg).await,
            Command::Worker(mut cfg) => {
                cfg.role = Role::Worker;
                scanvault::server::serve(*cfg).await
            }
            Command::Migrate(db) => scanvault::server::migrate(db).await,
            Command::Ingest(args) => scanvault::server::ingest_files(args).await,
            Command::Openapi => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "scanvault stopped with an error");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
