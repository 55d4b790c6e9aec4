//! `scanvault`: parse the command line, initialise logging, dispatch.

use clap::Parser;
use scanvault::cli::{Cli, Command};
use scanvault::config::{LogSettings, Role};

/// Ingest allocates and frees many short strings per report from several threads, which
/// glibc's allocator serves slowly (ADR 0015).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc asks Linux for transparent huge pages, and the first touch of each one zeroes
/// 2 MiB; ingest keeps touching fresh ones (request bodies, row sets), so the service runs
/// without them (ADR 0015). This is what `MIMALLOC_ALLOW_THP=0` does; mimalloc reads that
/// variable before `main`, so the flag is set here for the process instead. Pages mapped
/// from now on are regular 4 KiB pages.
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // Fails only on kernels older than 3.15, where the default stays: nothing to handle.
    let _ = nix::sys::prctl::set_thp_disable(true);
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    let mut cli = Cli::parse();
    if let Err(e) = cli.command.read_secret_files() {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(2);
    }
    if let Command::Openapi = cli.command {
        scanvault::outln!("{}", scanvault::http::openapi_json());
        return std::process::ExitCode::SUCCESS;
    }
    let telemetry = match scanvault::telemetry::init(&cli.log_level, cli.log_format) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
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
    let log = LogSettings {
        level: cli.log_level.clone(),
        format: cli.log_format,
    };
    // The CI gate's exit code is its verdict: 0 compliant, 1 violations, 2 an error.
    if let Command::Check(args) = cli.command {
        let verdict = rt.block_on(scanvault::check_cli::check(args));
        drop(rt);
        telemetry.shutdown();
        return match verdict {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::from(1),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::from(2)
            }
        };
    }
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(cfg) => scanvault::server::serve(*cfg, &log).await,
            Command::Worker(mut cfg) => {
                cfg.role = Role::Worker;
                scanvault::server::serve(*cfg, &log).await
            }
            Command::Migrate(db) => scanvault::server::migrate(db).await,
            Command::Backup { db, out } => scanvault::server::backup(db, &out).await,
            Command::Restore { db, file } => scanvault::server::restore(db, &file).await,
            Command::Ingest(args) => scanvault::server::ingest_files(args).await,
            Command::Openapi => Ok(()),
            Command::Apikey(cmd) => scanvault::server::apikey(cmd).await,
            Command::Feeds(cmd) => scanvault::server::feeds(cmd).await,
            Command::Check(_) => unreachable!("handled above"),
        }
    });
    drop(rt);
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "scanvault stopped with an error");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
