//! Command line: `scanvault serve | worker | migrate | ingest FILE... | openapi`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use crate::config::{DbConfig, IngestConfig, LogFormat, ServeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "scanvault",
    version,
    about = "Store, analyse and run container vulnerability scans"
)]
pub struct Cli {
    /// Log level or filter (`info`, `debug`, `info,sqlx=warn`).
    #[arg(
        long,
        global = true,
        env = "LOG_LEVEL",
        value_name = "LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "LOG_FORMAT",
        value_name = "LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, and by default the scan and retention workers in the same process.
    Serve(Box<ServeConfig>),
    /// Run scan and retention workers only (same as `serve --role worker`).
    Worker(Box<ServeConfig>),
    /// Apply database migrations and exit.
    Migrate(DbConfig),
    /// Ingest report files, directories (every `*.json` below) or standard input (`-`):
    /// into the database, or with `--server` into a running service.
    Ingest(IngestArgs),
    /// Write a consistent copy of the embedded SQLite database to a new file while the
    /// service runs (PostgreSQL: see docs/operations.md).
    Backup {
        #[command(flatten)]
        db: DbConfig,
        /// The backup file to create (it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Put a backup made by `scanvault backup` into an empty DATA_DIR.
    Restore {
        #[command(flatten)]
        db: DbConfig,
        /// The backup file.
        file: PathBuf,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Manage API keys (works on the same DATABASE_URL / DATA_DIR as the server).
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// The CI gate: a policy's verdict on a report; exit 0 compliant, 1 violations, 2 error.
    Check(CheckArgs),
    /// Exploit feeds (CISA KEV, FIRST EPSS).
    #[command(subcommand)]
    Feeds(FeedsCommand),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub ingest: IngestConfig,
    /// The policy (`default`: COMPLIANCE_FAIL_SEVERITY's).
    #[arg(long, default_value = "default")]
    pub policy: String,
    /// Ask a running service at this URL (with an ingester key in SCANVAULT_API_KEY or
    /// --api-key-file) instead of opening the database.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The API key for --server.
    #[arg(
        long,
        env = "SCANVAULT_API_KEY",
        value_name = "SCANVAULT_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<secrecy::SecretString>,
    /// A file holding the API key for --server (its content, trimmed).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// `text` (a line per violation) or `json` (the evaluation as the API answers it).
    #[arg(long, default_value = "text")]
    pub format: String,
    /// The report (Trivy, Grype or CycloneDX JSON), or `-` for standard input.
    pub report: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Import CISA's KEV catalog JSON and/or FIRST's EPSS CSV (plain or gzip) into the
    /// database; each replaces what was imported before.
    Import {
        #[command(flatten)]
        db: DbConfig,
        /// `known_exploited_vulnerabilities.json`.
        #[arg(long)]
        kev: Option<PathBuf>,
        /// `epss_scores-YYYY-MM-DD.csv[.gz]`.
        #[arg(long)]
        epss: Option<PathBuf>,
    },
}

impl Command {
    /// Read the `*_FILE` secrets of this subcommand's configuration (after parsing).
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        match self {
            Command::Serve(cfg) | Command::Worker(cfg) => cfg.read_secret_files(),
            Command::Migrate(db)
            | Command::Backup { db, .. }
            | Command::Restore { db, .. }
            | Command::Ingest(IngestArgs { db, .. })
            | Command::Apikey(
                ApikeyCommand::Create { db, .. }
                | ApikeyCommand::List { db }
                | ApikeyCommand::Revoke { db, .. },
            )
            | Command::Check(CheckArgs { db, .. })
            | Command::Feeds(FeedsCommand::Import { db, .. }) => db.read_secret_files(),
            Command::Openapi => Ok(()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Make a key; prints it as the last word of the output (it is not shown again).
    Create {
        #[command(flatten)]
        db: DbConfig,
        /// reader, ingester, triager or admin.
        #[arg(long)]
        role: String,
        /// When the key stops working: a duration (`30d`, `12h`) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        /// A name to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbConfig,
    },
    /// Revoke a key by id.
    Revoke {
        #[command(flatten)]
        db: DbConfig,
        /// The key id (16 hex characters; the part after `svk_`).
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub ingest: IngestConfig,
    /// Image name, overriding the reports'.
    #[arg(long)]
    pub image: Option<String>,
    /// Image tag, overriding the reports'.
    #[arg(long)]
    pub tag: Option<String>,
    /// Manifest digest, overriding the reports'.
    #[arg(long)]
    pub digest: Option<String>,
    /// Post the reports to a running service at this URL instead of opening the database
    /// (with the key in SCANVAULT_API_KEY or --api-key-file).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The API key for --server (an ingester or admin key).
    #[arg(
        long,
        env = "SCANVAULT_API_KEY",
        value_name = "SCANVAULT_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<secrecy::SecretString>,
    /// A file holding the API key for --server (its content, trimmed).
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Attempts per report when the service answers 429 or 503 or cannot be reached.
    #[arg(long, default_value_t = 5)]
    pub attempts: u32,
    /// Report files (Trivy, trivy k8s, Grype or CycloneDX JSON), directories (every
    /// `*.json` below them) or `-` for standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
