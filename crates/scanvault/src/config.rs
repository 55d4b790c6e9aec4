//! Configuration: environment variables with matching CLI flags, the original service's
//! names and defaults. Built once in `main`, validated, logged with secrets masked, and
//! passed down.
//!
//! Secrets (`DATABASE_URL`, `TRIVY_SERVER_URL`, `BOOTSTRAP_ADMIN_KEY`) are
//! [`SecretString`]s, so no `Debug` of a configuration shows them; each may instead be given
//! as a file (`NAME_FILE`, e.g. a mounted container secret), read by
//! [`ServeConfig::read_secret_files`] and friends right after parsing.

use clap::{Args, ValueEnum};
use scanvault_core::report::Severity;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A duration such as `15s`, `30m`, `72h`, `1h30m` or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "0" {
            return Ok(Dur(Duration::ZERO));
        }
        humantime::parse_duration(s)
            .map(Dur)
            .map_err(|e| format!("{e} (expected a duration like 15s, 30m, 72h)"))
    }
}

/// In the README's notation: hours, minutes, seconds and milliseconds, largest first, no
/// spaces (`24h`, `1h30m`, `1s500ms`).
impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0");
        }
        let secs = self.0.as_secs();
        let parts = [
            (secs / 3600, "h"),
            (secs / 60 % 60, "m"),
            (secs % 60, "s"),
            (u64::from(self.0.subsec_millis()), "ms"),
        ];
        let mut any = false;
        for (n, unit) in parts {
            if n > 0 {
                write!(f, "{n}{unit}")?;
                any = true;
            }
        }
        if !any {
            write!(f, "{}us", self.0.subsec_micros())?;
        }
        Ok(())
    }
}

/// A size in bytes such as `32MiB`, `10MB`, `512KiB` or `1048576`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let idx = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(idx);
        let n: usize = num
            .parse()
            .map_err(|_| format!("{s:?} is not a size (expected e.g. 32MiB, 10MB, 1048576)"))?;
        let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} (use B, KB, KiB, MB, MiB, GB, GiB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_multiple_of(1 << 20) && self.0 > 0 {
            write!(f, "{}MiB", self.0 >> 20)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Console,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Console => "console",
        }
    }
}

/// `LOG_LEVEL` and `LOG_FORMAT`: options of every command, logged with a server's settings.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// HTTP API only.
    Api,
    /// Scan and retention workers only.
    Worker,
    /// Both (a single-node install is one process).
    All,
}

/// Reads a secret given as a file: `NAME_FILE=/path` sets `NAME` to the file's content,
/// trimmed. Giving both is an error, as is a file that cannot be read.
fn read_secret_file(
    name: &str,
    value: &mut Option<SecretString>,
    file: Option<&Path>,
) -> Result<(), String> {
    let Some(path) = file else {
        return Ok(());
    };
    if value.is_some() {
        return Err(format!("both {name} and {name}_FILE are set; set only one"));
    }
    let content = std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|e| format!("{name}_FILE: cannot read {}: {e}", path.display()))?;
    *value = Some(SecretString::from(content.expose_secret().trim()));
    Ok(())
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse_strict(s)
        .ok_or_else(|| format!("{s:?} is not one of CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN"))
}

/// Settings shared by every subcommand that opens the database.
#[derive(Debug, Clone, Args)]
pub struct DbConfig {
    /// Database URL: `postgres://…` for PostgreSQL; unset for the embedded SQLite file.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<SecretString>,
    /// A file holding DATABASE_URL (its content, trimmed); instead of DATABASE_URL.
    #[arg(long, env = "DATABASE_URL_FILE", value_name = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Directory of the embedded SQLite file `scanvault.db` (default: the working directory).
    #[arg(long, env = "DATA_DIR", value_name = "DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Maximum connections in the pool.
    #[arg(
        long,
        env = "DB_MAX_CONNS",
        value_name = "DB_MAX_CONNS",
        default_value_t = 25
    )]
    pub db_max_conns: u32,
    /// Connections kept open when idle.
    #[arg(
        long,
        env = "DB_MIN_CONNS",
        value_name = "DB_MIN_CONNS",
        default_value_t = 2
    )]
    pub db_min_conns: u32,
    /// A connection is closed after this long.
    #[arg(
        long,
        env = "DB_MAX_CONN_LIFETIME",
        value_name = "DB_MAX_CONN_LIFETIME",
        default_value = "30m"
    )]
    pub db_max_conn_lifetime: Dur,
    /// An idle connection is closed after this long.
    #[arg(
        long,
        env = "DB_MAX_CONN_IDLE_TIME",
        value_name = "DB_MAX_CONN_IDLE_TIME",
        default_value = "5m"
    )]
    pub db_max_conn_idle_time: Dur,
    /// How often the database is pinged in the background (readiness and the `scanvault_db_up` gauge).
    #[arg(
        long,
        env = "DB_HEALTH_CHECK_PERIOD",
        value_name = "DB_HEALTH_CHECK_PERIOD",
        default_value = "1m"
    )]
    pub db_health_check_period: Dur,
}

impl DbConfig {
    /// Read DATABASE_URL_FILE into DATABASE_URL.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        read_secret_file(
            "DATABASE_URL",
            &mut self.database_url,
            self.database_url_file.as_deref(),
        )
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.db_max_conns < 1 {
            return Err("DB_MAX_CONNS must be at least 1".into());
        }
        if self.db_min_conns > self.db_max_conns {
            return Err("DB_MIN_CONNS must be <= DB_MAX_CONNS".into());
        }
        if self.db_health_check_period.0.is_zero() {
            return Err("DB_HEALTH_CHECK_PERIOD must be > 0".into());
        }
        Ok(())
    }

    /// The store's options. The store needs the URL itself, so this is where it leaves
    /// its [`SecretString`].
    pub fn store_options(&self) -> crate::store::StoreOptions {
        let nonzero = |d: Dur| (!d.0.is_zero()).then_some(d.0);
        crate::store::StoreOptions {
            database_url: self
                .database_url
                .as_ref()
                .map(|u| u.expose_secret())
                .filter(|u| !u.trim().is_empty())
                .map(str::to_string),
            data_dir: self.data_dir.clone(),
            max_connections: self.db_max_conns,
            min_connections: self.db_min_conns,
            max_lifetime: nonzero(self.db_max_conn_lifetime),
            idle_timeout: nonzero(self.db_max_conn_idle_time),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Settings of ingest (HTTP and CLI).
#[derive(Debug, Clone, Args)]
pub struct IngestConfig {
    /// The lowest severity that makes a scan non-compliant (`is_compliant = false`).
    #[arg(long, env = "COMPLIANCE_FAIL_SEVERITY", value_name = "COMPLIANCE_FAIL_SEVERITY", default_value = "CRITICAL", value_parser = parse_severity)]
    pub compliance_fail_severity: Severity,
    /// Most findings (unique triples) accepted in one report; more is a 422.
    #[arg(
        long,
        env = "MAX_FINDINGS_PER_REPORT",
        value_name = "MAX_FINDINGS_PER_REPORT",
        default_value_t = 100_000
    )]
    pub max_findings_per_report: usize,
}

/// `scanvault serve` / `scanvault worker`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub db: DbConfig,
    #[command(flatten)]
    pub ingest: IngestConfig,
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// What this process runs.
    #[arg(
        long,
        env = "SCANVAULT_ROLE",
        value_name = "SCANVAULT_ROLE",
        value_enum,
        default_value = "all"
    )]
    pub role: Role,
    /// Address to listen on.
    #[arg(
        long,
        env = "SERVER_HOST",
        value_name = "SERVER_HOST",
        default_value = "0.0.0.0"
    )]
    pub server_host: String,
    /// HTTP port (0 picks a free one).
    #[arg(
        long,
        env = "SERVER_PORT",
        value_name = "SERVER_PORT",
        default_value_t = 8080
    )]
    pub server_port: u16,
    /// PEM certificate chain: serve HTTPS (with TLS_KEY_FILE).
    #[arg(long, env = "TLS_CERT_FILE", value_name = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of TLS_CERT_FILE.
    #[arg(long, env = "TLS_KEY_FILE", value_name = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Longest time to receive a request's headers and body.
    #[arg(
        long,
        env = "HTTP_READ_TIMEOUT",
        value_name = "HTTP_READ_TIMEOUT",
        default_value = "15s"
    )]
    pub http_read_timeout: Dur,
    /// Longest time to produce a response (a request that takes longer gets a 503).
    #[arg(
        long,
        env = "HTTP_WRITE_TIMEOUT",
        value_name = "HTTP_WRITE_TIMEOUT",
        default_value = "15s"
    )]
    pub http_write_timeout: Dur,
    /// A keep-alive connection with no request for this long is closed.
    #[arg(
        long,
        env = "HTTP_IDLE_TIMEOUT",
        value_name = "HTTP_IDLE_TIMEOUT",
        default_value = "60s"
    )]
    pub http_idle_timeout: Dur,
    /// Largest request body accepted; larger is a 413.
    #[arg(
        long,
        env = "HTTP_MAX_BODY_SIZE",
        value_name = "HTTP_MAX_BODY_SIZE",
        default_value = "32MiB"
    )]
    pub http_max_body_size: ByteSize,
    /// How often the retention worker runs, and how often the catalog is swept of entries
    /// no finding references (when a deletion may have left some).
    #[arg(
        long,
        env = "CLEANUP_INTERVAL",
        value_name = "CLEANUP_INTERVAL",
        default_value = "1h"
    )]
    pub cleanup_interval: Dur,
    /// Delete scans older than this (0 disables the age rule).
    #[arg(
        long,
        env = "CLEANUP_MAX_AGE",
        value_name = "CLEANUP_MAX_AGE",
        default_value = "0"
    )]
    pub cleanup_max_age: Dur,
    /// Keep only the newest N scans of each image reference (0 disables the count rule).
    #[arg(
        long,
        env = "CLEANUP_KEEP_PER_IMAGE",
        value_name = "CLEANUP_KEEP_PER_IMAGE",
        default_value_t = 0
    )]
    pub cleanup_keep_per_image: i64,
    /// Turn authentication off (local trials only; logged as a warning at every start).
    #[arg(
        long,
        env = "AUTH_DISABLED",
        value_name = "AUTH_DISABLED",
        default_value_t = false
    )]
    pub auth_disabled: bool,
    /// Sustained requests per second allowed per API key (0 disables rate limiting).
    #[arg(
        long,
        env = "RATE_LIMIT_PER_SECOND",
        value_name = "RATE_LIMIT_PER_SECOND",
        default_value_t = 100.0
    )]
    pub rate_limit_per_second: f64,
    /// Requests a key may make in a burst above the sustained rate.
    #[arg(
        long,
        env = "RATE_LIMIT_BURST",
        value_name = "RATE_LIMIT_BURST",
        default_value_t = 200.0
    )]
    pub rate_limit_burst: f64,
    /// Serve `/metrics`, `/health` and `/ready` on this port of its own, without
    /// authentication, in every role (default: `/metrics` on the API port, for any valid key).
    #[arg(long, env = "METRICS_PORT", value_name = "METRICS_PORT")]
    pub metrics_port: Option<u16>,
    /// The secret of the first admin key, instead of a random one (only used while the
    /// database has no keys). Usually given as BOOTSTRAP_ADMIN_KEY_FILE.
    #[arg(
        long,
        env = "BOOTSTRAP_ADMIN_KEY",
        value_name = "BOOTSTRAP_ADMIN_KEY",
        hide_env_values = true
    )]
    pub bootstrap_admin_key: Option<SecretString>,
    /// A file holding BOOTSTRAP_ADMIN_KEY (its content, trimmed); instead of BOOTSTRAP_ADMIN_KEY.
    #[arg(
        long,
        env = "BOOTSTRAP_ADMIN_KEY_FILE",
        value_name = "BOOTSTRAP_ADMIN_KEY_FILE"
    )]
    pub bootstrap_admin_key_file: Option<PathBuf>,
    /// Do not apply migrations at start.
    #[arg(
        long,
        env = "NO_MIGRATE",
        value_name = "NO_MIGRATE",
        default_value_t = false
    )]
    pub no_migrate: bool,
    /// How long running requests and scans may take to finish at shutdown.
    #[arg(
        long,
        env = "SHUTDOWN_TIMEOUT",
        value_name = "SHUTDOWN_TIMEOUT",
        default_value = "30s"
    )]
    pub shutdown_timeout: Dur,
    /// One webhook delivery attempt's time limit.
    #[arg(
        long,
        env = "WEBHOOK_TIMEOUT",
        value_name = "WEBHOOK_TIMEOUT",
        default_value = "10s"
    )]
    pub webhook_timeout: Dur,
    /// How long after its event a failing webhook delivery is retried before it is dead.
    #[arg(
        long,
        env = "WEBHOOK_RETRY_FOR",
        value_name = "WEBHOOK_RETRY_FOR",
        default_value = "1h"
    )]
    pub webhook_retry_for: Dur,
    /// Download CISA's KEV catalog from here every FEEDS_INTERVAL (off when unset).
    #[arg(long, env = "KEV_URL", value_name = "KEV_URL")]
    pub kev_url: Option<String>,
    /// Download FIRST's EPSS scores (CSV, plain or gzip) from here every FEEDS_INTERVAL.
    #[arg(long, env = "EPSS_URL", value_name = "EPSS_URL")]
    pub epss_url: Option<String>,
    /// How old an imported feed may get before it is downloaded again.
    #[arg(
        long,
        env = "FEEDS_INTERVAL",
        value_name = "FEEDS_INTERVAL",
        default_value = "24h"
    )]
    pub feeds_interval: Dur,
    /// The first retry's delay (doubling, with jitter, up to 10 minutes).
    #[arg(
        long,
        env = "WEBHOOK_BACKOFF_BASE",
        value_name = "WEBHOOK_BACKOFF_BASE",
        default_value = "5s"
    )]
    pub webhook_backoff_base: Dur,
}

/// The scan worker's settings.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Scans run at once by this process (0 disables the in-process worker).
    #[arg(
        long,
        env = "WORKER_CONCURRENCY",
        value_name = "WORKER_CONCURRENCY",
        default_value_t = 2
    )]
    pub worker_concurrency: usize,
    /// Of those, how many only take scans requested through the API (the ad-hoc lane), so
    /// that scheduled scans and re-matches never hold every slot (at most all but one).
    #[arg(
        long,
        env = "WORKER_ADHOC_SLOTS",
        value_name = "WORKER_ADHOC_SLOTS",
        default_value_t = 0
    )]
    pub worker_adhoc_slots: usize,
    /// How long a claimed job is held without renewal before another worker may take it.
    #[arg(
        long,
        env = "JOB_LEASE",
        value_name = "JOB_LEASE",
        default_value = "60s"
    )]
    pub job_lease: Dur,
    /// Attempts before a job with transient errors fails.
    #[arg(
        long,
        env = "JOB_MAX_ATTEMPTS",
        value_name = "JOB_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub job_max_attempts: i64,
    /// First retry delay; doubles per attempt (with jitter) up to JOB_BACKOFF_MAX.
    #[arg(
        long,
        env = "JOB_BACKOFF_BASE",
        value_name = "JOB_BACKOFF_BASE",
        default_value = "5s"
    )]
    pub job_backoff_base: Dur,
    #[arg(
        long,
        env = "JOB_BACKOFF_MAX",
        value_name = "JOB_BACKOFF_MAX",
        default_value = "10m"
    )]
    pub job_backoff_max: Dur,
    /// How often idle workers look for jobs (they are also woken on new jobs).
    #[arg(
        long,
        env = "JOB_POLL_INTERVAL",
        value_name = "JOB_POLL_INTERVAL",
        default_value = "2s"
    )]
    pub job_poll_interval: Dur,
    /// A completed scan of the same digest younger than this is reused instead of rescanning (0 disables).
    #[arg(
        long,
        env = "SCAN_CACHE_MAX_AGE",
        value_name = "SCAN_CACHE_MAX_AGE",
        default_value = "24h"
    )]
    pub scan_cache_max_age: Dur,
    /// At most one re-match of the fleet's stored inventories per this long, when Trivy's
    /// vulnerability database changed (0 disables; `POST /rematch` still works).
    #[arg(
        long,
        env = "REMATCH_INTERVAL",
        value_name = "REMATCH_INTERVAL",
        default_value = "6h"
    )]
    pub rematch_interval: Dur,
    /// Trivy binary.
    #[arg(
        long,
        env = "TRIVY_PATH",
        value_name = "TRIVY_PATH",
        default_value = "trivy"
    )]
    pub trivy_path: PathBuf,
    /// Trivy server for client/server mode (`--server`).
    #[arg(
        long,
        env = "TRIVY_SERVER_URL",
        value_name = "TRIVY_SERVER_URL",
        hide_env_values = true
    )]
    pub trivy_server_url: Option<SecretString>,
    /// A file holding TRIVY_SERVER_URL (its content, trimmed); instead of TRIVY_SERVER_URL.
    #[arg(
        long,
        env = "TRIVY_SERVER_URL_FILE",
        value_name = "TRIVY_SERVER_URL_FILE"
    )]
    pub trivy_server_url_file: Option<PathBuf>,
    /// Longest a Trivy run may take; it is killed after that.
    #[arg(
        long,
        env = "TRIVY_TIMEOUT",
        value_name = "TRIVY_TIMEOUT",
        default_value = "10m"
    )]
    pub trivy_timeout: Dur,
    /// Trivy's cache directory (its vulnerability DB lives there).
    #[arg(long, env = "TRIVY_CACHE_DIR", value_name = "TRIVY_CACHE_DIR")]
    pub trivy_cache_dir: Option<PathBuf>,
    /// Extra arguments for `trivy image`, split like a shell would.
    #[arg(
        long,
        env = "TRIVY_EXTRA_ARGS",
        value_name = "TRIVY_EXTRA_ARGS",
        allow_hyphen_values = true
    )]
    pub trivy_extra_args: Option<String>,
    /// Docker `config.json`-style file with registry credentials.
    #[arg(long, env = "REGISTRY_AUTH_FILE", value_name = "REGISTRY_AUTH_FILE")]
    pub registry_auth_file: Option<PathBuf>,
    /// Registries (`host` or `host:port`, comma-separated) reached over plain HTTP.
    #[arg(
        long,
        env = "REGISTRY_INSECURE_HOSTS",
        value_name = "REGISTRY_INSECURE_HOSTS",
        value_delimiter = ','
    )]
    pub registry_insecure_hosts: Vec<String>,
    /// Timeout of one registry request.
    #[arg(
        long,
        env = "REGISTRY_TIMEOUT",
        value_name = "REGISTRY_TIMEOUT",
        default_value = "30s"
    )]
    pub registry_timeout: Dur,
}

impl ServeConfig {
    /// Read the `*_FILE` secrets: DATABASE_URL_FILE, TRIVY_SERVER_URL_FILE and
    /// BOOTSTRAP_ADMIN_KEY_FILE.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        self.db.read_secret_files()?;
        self.worker.read_secret_files()?;
        read_secret_file(
            "BOOTSTRAP_ADMIN_KEY",
            &mut self.bootstrap_admin_key,
            self.bootstrap_admin_key_file.as_deref(),
        )
    }

    pub fn validate(&self) -> Result<(), String> {
        self.db.validate()?;
        if self.cleanup_keep_per_image < 0 {
            return Err("CLEANUP_KEEP_PER_IMAGE must be >= 0".into());
        }
        for (name, url) in [("KEV_URL", &self.kev_url), ("EPSS_URL", &self.epss_url)] {
            if let Some(u) = url {
                let ok = url::Url::parse(u)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    return Err(format!("{name} must be an http:// or https:// URL"));
                }
            }
        }
        if self.feeds_interval.0 < Duration::from_secs(60) {
            return Err("FEEDS_INTERVAL must be at least 1m".into());
        }
        if self.webhook_timeout.0.is_zero() || self.webhook_backoff_base.0.is_zero() {
            return Err("WEBHOOK_TIMEOUT and WEBHOOK_BACKOFF_BASE must be > 0".into());
        }
        let cleanup = !self.cleanup_max_age.0.is_zero() || self.cleanup_keep_per_image > 0;
        if cleanup && self.cleanup_interval.0.is_zero() {
            return Err("CLEANUP_INTERVAL must be > 0 when cleanup is enabled".into());
        }
        if self.http_max_body_size.0 == 0 {
            return Err("HTTP_MAX_BODY_SIZE must be > 0".into());
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err("TLS_CERT_FILE and TLS_KEY_FILE go together: set both, or neither".into());
        }
        for (name, d) in [
            ("HTTP_READ_TIMEOUT", self.http_read_timeout),
            ("HTTP_WRITE_TIMEOUT", self.http_write_timeout),
            ("HTTP_IDLE_TIMEOUT", self.http_idle_timeout),
        ] {
            if d.0.is_zero() {
                return Err(format!("{name} must be > 0"));
            }
        }
        if !(self.rate_limit_per_second.is_finite() && self.rate_limit_per_second >= 0.0) {
            return Err("RATE_LIMIT_PER_SECOND must be a number >= 0".into());
        }
        if !(self.rate_limit_burst.is_finite() && self.rate_limit_burst >= 0.0) {
            return Err("RATE_LIMIT_BURST must be a number >= 0".into());
        }
        if let Some(k) = &self.bootstrap_admin_key {
            let k = k.expose_secret();
            let ok = (20..=128).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(
                    "BOOTSTRAP_ADMIN_KEY must be 20-128 characters of A-Z, a-z, 0-9, '-' or '_'"
                        .into(),
                );
            }
        }
        if self.ingest.max_findings_per_report == 0 {
            return Err("MAX_FINDINGS_PER_REPORT must be > 0".into());
        }
        self.worker.validate()
    }

    /// `NAME=value` lines of the effective configuration, secrets masked.
    /// Every setting the README documents, as the server runs with it (secrets masked),
    /// in the README's notation.
    pub fn describe(&self, log: &LogSettings) -> Vec<(&'static str, String)> {
        let db_url = match self.db.database_url.as_ref().map(|u| u.expose_secret()) {
            Some(u) if !u.trim().is_empty() => crate::redact::redact_url(u),
            _ => "(embedded SQLite)".into(),
        };
        let opt = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        vec![
            ("LOG_LEVEL", log.level.clone()),
            ("LOG_FORMAT", log.format.as_str().into()),
            ("DATABASE_URL", db_url),
            ("AUTH_DISABLED", self.auth_disabled.to_string()),
            (
                "RATE_LIMIT_PER_SECOND",
                self.rate_limit_per_second.to_string(),
            ),
            ("RATE_LIMIT_BURST", self.rate_limit_burst.to_string()),
            (
                "METRICS_PORT",
                self.metrics_port.map(|p| p.to_string()).unwrap_or_default(),
            ),
            (
                "BOOTSTRAP_ADMIN_KEY",
                if self.bootstrap_admin_key.is_some() {
                    "***".into()
                } else {
                    String::new()
                },
            ),
            ("DATA_DIR", opt(&self.db.data_dir)),
            ("SCANVAULT_ROLE", format!("{:?}", self.role).to_lowercase()),
            ("SERVER_HOST", self.server_host.clone()),
            ("SERVER_PORT", self.server_port.to_string()),
            ("TLS_CERT_FILE", opt(&self.tls_cert_file)),
            ("TLS_KEY_FILE", opt(&self.tls_key_file)),
            ("HTTP_READ_TIMEOUT", self.http_read_timeout.to_string()),
            ("HTTP_WRITE_TIMEOUT", self.http_write_timeout.to_string()),
            ("HTTP_IDLE_TIMEOUT", self.http_idle_timeout.to_string()),
            ("HTTP_MAX_BODY_SIZE", self.http_max_body_size.to_string()),
            ("DB_MAX_CONNS", self.db.db_max_conns.to_string()),
            ("DB_MIN_CONNS", self.db.db_min_conns.to_string()),
            (
                "DB_MAX_CONN_LIFETIME",
                self.db.db_max_conn_lifetime.to_string(),
            ),
            (
                "DB_MAX_CONN_IDLE_TIME",
                self.db.db_max_conn_idle_time.to_string(),
            ),
            (
                "DB_HEALTH_CHECK_PERIOD",
                self.db.db_health_check_period.to_string(),
            ),
            ("CLEANUP_INTERVAL", self.cleanup_interval.to_string()),
            ("CLEANUP_MAX_AGE", self.cleanup_max_age.to_string()),
            (
                "CLEANUP_KEEP_PER_IMAGE",
                self.cleanup_keep_per_image.to_string(),
            ),
            (
                "COMPLIANCE_FAIL_SEVERITY",
                self.ingest.compliance_fail_severity.to_string(),
            ),
            (
                "MAX_FINDINGS_PER_REPORT",
                self.ingest.max_findings_per_report.to_string(),
            ),
            (
                "WORKER_CONCURRENCY",
                self.worker.worker_concurrency.to_string(),
            ),
            (
                "WORKER_ADHOC_SLOTS",
                self.worker.worker_adhoc_slots.to_string(),
            ),
            ("JOB_LEASE", self.worker.job_lease.to_string()),
            ("JOB_MAX_ATTEMPTS", self.worker.job_max_attempts.to_string()),
            ("JOB_BACKOFF_BASE", self.worker.job_backoff_base.to_string()),
            ("JOB_BACKOFF_MAX", self.worker.job_backoff_max.to_string()),
            (
                "JOB_POLL_INTERVAL",
                self.worker.job_poll_interval.to_string(),
            ),
            (
                "SCAN_CACHE_MAX_AGE",
                self.worker.scan_cache_max_age.to_string(),
            ),
            ("REMATCH_INTERVAL", self.worker.rematch_interval.to_string()),
            ("TRIVY_PATH", self.worker.trivy_path.display().to_string()),
            (
                "TRIVY_SERVER_URL",
                self.worker
                    .trivy_server_url
                    .as_ref()
                    .map(|u| crate::redact::redact_url(u.expose_secret()))
                    .unwrap_or_default(),
            ),
            ("TRIVY_TIMEOUT", self.worker.trivy_timeout.to_string()),
            ("TRIVY_CACHE_DIR", opt(&self.worker.trivy_cache_dir)),
            (
                "TRIVY_EXTRA_ARGS",
                self.worker
                    .trivy_extra_args
                    .as_deref()
                    .map(|a| match scanvault_scanner::parse_extra_args(a) {
                        Ok(args) => scanvault_scanner::display_args(&args),
                        Err(_) => "(not valid: see the error below)".into(),
                    })
                    .unwrap_or_default(),
            ),
            ("REGISTRY_AUTH_FILE", opt(&self.worker.registry_auth_file)),
            (
                "REGISTRY_INSECURE_HOSTS",
                self.worker.registry_insecure_hosts.join(","),
            ),
            ("REGISTRY_TIMEOUT", self.worker.registry_timeout.to_string()),
            ("NO_MIGRATE", self.no_migrate.to_string()),
            ("SHUTDOWN_TIMEOUT", self.shutdown_timeout.to_string()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|u| crate::redact::redact_url(&u))
                    .unwrap_or_default(),
            ),
            (
                "KEV_URL",
                self.kev_url
                    .as_deref()
                    .map(crate::redact::redact_url)
                    .unwrap_or_default(),
            ),
            (
                "EPSS_URL",
                self.epss_url
                    .as_deref()
                    .map(crate::redact::redact_url)
                    .unwrap_or_default(),
            ),
            ("FEEDS_INTERVAL", self.feeds_interval.to_string()),
            ("WEBHOOK_TIMEOUT", self.webhook_timeout.to_string()),
            ("WEBHOOK_RETRY_FOR", self.webhook_retry_for.to_string()),
            (
                "WEBHOOK_BACKOFF_BASE",
                self.webhook_backoff_base.to_string(),
            ),
        ]
    }
}

impl WorkerConfig {
    /// Read TRIVY_SERVER_URL_FILE into TRIVY_SERVER_URL.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        read_secret_file(
            "TRIVY_SERVER_URL",
            &mut self.trivy_server_url,
            self.trivy_server_url_file.as_deref(),
        )
    }

    /// The Trivy server's URL for the scanner, whose configuration takes a plain string.
    pub fn exposed_trivy_server_url(&self) -> Option<String> {
        self.trivy_server_url
            .as_ref()
            .map(|u| u.expose_secret())
            .filter(|u| !u.trim().is_empty())
            .map(str::to_string)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.job_lease.0 < Duration::from_secs(1) {
            return Err("JOB_LEASE must be at least 1s".into());
        }
        if self.job_max_attempts < 1 {
            return Err("JOB_MAX_ATTEMPTS must be at least 1".into());
        }
        if self.trivy_timeout.0.is_zero() {
            return Err("TRIVY_TIMEOUT must be > 0".into());
        }
        if self.job_poll_interval.0.is_zero() {
            return Err("JOB_POLL_INTERVAL must be > 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
