#![doc = include_str!("../README.md")]

mod args;
pub mod diagnose;
mod error;
mod process;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use args::{display_args, format_duration, parse_duration, parse_extra_args};
pub use diagnose::{classify, diagnose, extract_message, Diagnosis};
pub use error::{ErrorClass, ScanError};

/// Default wall-clock limit of one scan (same as Trivy's own default `--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How to run Trivy. Usually built from the environment with [`TrivyConfig::from_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrivyConfig {
    /// `TRIVY_PATH`, default `trivy` (looked up in `PATH`).
    pub path: PathBuf,
    /// `TRIVY_SERVER_URL` → `--server URL` (client/server mode).
    pub server_url: Option<String>,
    /// `TRIVY_TIMEOUT`: our wall-clock limit; also passed to Trivy as `--timeout`.
    pub timeout: Duration,
    /// `TRIVY_CACHE_DIR` → `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `TRIVY_EXTRA_ARGS`, split by [`TrivyConfig::parse_extra_args`]; inserted after our
    /// flags and before the image reference.
    pub extra_args: Vec<String>,
}

impl Default for TrivyConfig {
    fn default() -> Self {
        TrivyConfig {
            path: PathBuf::from("trivy"),
            server_url: None,
            timeout: DEFAULT_TIMEOUT,
            cache_dir: None,
            extra_args: Vec::new(),
        }
    }
}

impl TrivyConfig {
    /// Shell-like split of `TRIVY_EXTRA_ARGS` (quotes and backslashes supported); rejects
    /// flags that would break the scanner's contract (`--format`, `--output`, `--exit-code`,
    /// `--input`, `--image-src`, `--`).
    pub fn parse_extra_args(s: &str) -> Result<Vec<String>, String> {
        parse_extra_args(s)
    }

    /// Reads `TRIVY_PATH`, `TRIVY_SERVER_URL`, `TRIVY_TIMEOUT` (seconds or `5m`, `90s`, ...),
    /// `TRIVY_CACHE_DIR`, `TRIVY_EXTRA_ARGS`. Empty values count as unset.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`TrivyConfig::from_env`] with a custom variable source (for tests / config files).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut cfg = TrivyConfig::default();
        if let Some(p) = get("TRIVY_PATH") {
            cfg.path = PathBuf::from(p);
        }
        cfg.server_url = get("TRIVY_SERVER_URL").map(|s| s.trim().to_string());
        if let Some(t) = get("TRIVY_TIMEOUT") {
            cfg.timeout = parse_duration(&t).map_err(|e| format!("TRIVY_TIMEOUT: {e}"))?;
            if cfg.timeout.is_zero() {
                return Err("TRIVY_TIMEOUT must be greater than zero".into());
            }
        }
        cfg.cache_dir = get("TRIVY_CACHE_DIR").map(PathBuf::from);
        if let Some(x) = get("TRIVY_EXTRA_ARGS") {
            cfg.extra_args = parse_extra_args(&x).map_err(|e| format!("TRIVY_EXTRA_ARGS: {e}"))?;
        }
        Ok(cfg)
    }
}

/// One scan request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRequest<'a> {
    /// Image reference, normally `registry/repo@sha256:...`.
    pub image: &'a str,
    /// The registry speaks plain HTTP (or has a self-signed cert): pass `--insecure`.
    pub insecure: bool,
    /// Credentials given with the request (Harbor's), for Trivy's environment.
    pub auth: Option<&'a RegistryAuth>,
}

/// Registry credentials handed to Trivy through its environment (never on its command line).
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// `TRIVY_USERNAME` / `TRIVY_PASSWORD`.
    Basic { username: String, password: String },
    /// `TRIVY_REGISTRY_TOKEN`.
    Bearer(String),
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl RegistryAuth {
    fn env(&self) -> Vec<(String, String)> {
        match self {
            RegistryAuth::Basic { username, password } => vec![
                ("TRIVY_USERNAME".into(), username.clone()),
                ("TRIVY_PASSWORD".into(), password.clone()),
            ],
            RegistryAuth::Bearer(t) => vec![("TRIVY_REGISTRY_TOKEN".into(), t.clone())],
        }
    }
}

/// The vulnerability database Trivy would use, as `trivy version` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    /// `VulnerabilityDB.UpdatedAt` (RFC 3339), empty when Trivy has no database yet.
    pub updated_at: String,
}

/// Runs the Trivy binary.
#[derive(Debug, Clone)]
pub struct Trivy {
    cfg: TrivyConfig,
}

impl Trivy {
    pub fn new(cfg: TrivyConfig) -> Self {
        Trivy { cfg }
    }

    pub fn config(&self) -> &TrivyConfig {
        &self.cfg
    }

    /// Runs `trivy --version` and returns the version from its first line (`Version: 0.59.1`
    /// → `"0.59.1"`). Bounded by the configured timeout. Call it at worker startup: it fails
    /// with [`ScanError::Spawn`] (`trivy_not_found`) when the binary is missing.
    pub async fn version(&self) -> Result<String, ScanError> {
        let args = vec!["--version".to_string()];
        let never = CancellationToken::new();
        let out = process::run(&self.cfg.path, &args, self.cfg.timeout, &never).await?;
        if !out.status.success() {
            return Err(process::failed(&out));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        parse_version(&stdout).ok_or_else(|| ScanError::InvalidOutput {
            reason: format!(
                "no \"Version: X\" line in `trivy --version` output: {:?}",
                stdout.lines().next().unwrap_or_default()
            ),
            stdout_len: out.stdout.len(),
        })
    }

    /// Scans `req.image` and returns Trivy's JSON report (stdout) unparsed.
    ///
    /// Kills (and reaps) Trivy's whole process group when the configured timeout passes
    /// ([`ScanError::Timeout`]) or `cancel` fires ([`ScanError::Cancelled`]).
    pub async fn scan(
        &self,
        req: ScanRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, ScanError> {
        validate_image(req.image)?;
        if cancel.is_cancelled() {
            return Err(ScanError::Cancelled);
        }
        let args = self.scan_args(req);
        let env = req.auth.map(RegistryAuth::env).unwrap_or_default();
        let out =
            process::run_with_env(&self.cfg.path, &args, &env, self.cfg.timeout, cancel).await?;
        if !out.status.success() {
            let err = process::failed(&out);
            tracing::debug!(
                image = req.image,
                code = err.code(),
                class = %err.class(),
                stderr_tail = %out.stderr_tail,
                "trivy failed"
            );
            return Err(err);
        }
        check_report(&out.stdout)?;
        Ok(out.stdout)
    }

    /// The argument list (after the program) for a scan, in this order:
    /// `image --format json --quiet --list-all-pkgs --image-src remote [--server URL]
    /// [--cache-dir DIR] [--insecure] --timeout <T> <extra args...> <image>`. The packages
    /// make the image's inventory ([`Trivy::inventory`]).
    pub fn scan_args(&self, req: ScanRequest<'_>) -> Vec<String> {
        let mut a: Vec<String> = [
            "image",
            "--format",
            "json",
            "--quiet",
            "--list-all-pkgs",
            "--image-src",
            "remote",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.common_args(&mut a);
        if req.insecure {
            a.push("--insecure".to_string());
        }
        a.push("--timeout".to_string());
        a.push(format_duration(self.cfg.timeout));
        a.extend(self.cfg.extra_args.iter().cloned());
        a.push(req.image.to_string());
        a
    }

    /// `[--server URL] [--cache-dir DIR]`.
    fn common_args(&self, a: &mut Vec<String>) {
        if let Some(url) = &self.cfg.server_url {
            a.extend(["--server".to_string(), url.clone()]);
        }
        if let Some(dir) = &self.cfg.cache_dir {
            a.push("--cache-dir".to_string());
            a.push(os_to_string(dir.clone().into_os_string()));
        }
    }

    /// The arguments of a re-match of the inventory in `path`: `sbom --format json --quiet
    /// [--server URL] [--cache-dir DIR] --timeout <T> <extra args...> <path>`.
    pub fn sbom_args(&self, path: &str) -> Vec<String> {
        let mut a: Vec<String> = ["sbom", "--format", "json", "--quiet"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        self.common_args(&mut a);
        a.push("--timeout".to_string());
        a.push(format_duration(self.cfg.timeout));
        a.extend(self.cfg.extra_args.iter().cloned());
        a.push(path.to_string());
        a
    }

    /// Match an inventory (CycloneDX or SPDX JSON) against the vulnerability database:
    /// `trivy sbom`, with no registry access. Trivy's JSON report, unparsed.
    pub async fn scan_sbom(
        &self,
        document: &[u8],
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, ScanError> {
        let file = temp_json(document)?;
        let args = self.sbom_args(&file.path().to_string_lossy());
        let out = process::run(&self.cfg.path, &args, self.cfg.timeout, cancel).await?;
        if !out.status.success() {
            return Err(process::failed(&out));
        }
        check_report(&out.stdout)?;
        Ok(out.stdout)
    }

    /// The image's inventory as CycloneDX JSON, from the report of a scan made with
    /// `--list-all-pkgs` (`trivy convert`: no database, no registry).
    pub async fn inventory(
        &self,
        report: &[u8],
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, ScanError> {
        let file = temp_json(report)?;
        let args: Vec<String> = vec![
            "convert".into(),
            "--format".into(),
            "cyclonedx".into(),
            "--quiet".into(),
            file.path().to_string_lossy().into_owned(),
        ];
        let out = process::run(&self.cfg.path, &args, self.cfg.timeout, cancel).await?;
        if !out.status.success() {
            return Err(process::failed(&out));
        }
        check_report(&out.stdout)?;
        Ok(out.stdout)
    }

    /// The vulnerability database Trivy uses (`trivy version --format json
    /// [--cache-dir DIR]`).
    pub async fn db_info(&self) -> Result<DbInfo, ScanError> {
        let mut args: Vec<String> = vec!["version".into(), "--format".into(), "json".into()];
        if let Some(dir) = &self.cfg.cache_dir {
            args.push("--cache-dir".to_string());
            args.push(os_to_string(dir.clone().into_os_string()));
        }
        let never = CancellationToken::new();
        let out = process::run(&self.cfg.path, &args, self.cfg.timeout, &never).await?;
        if !out.status.success() {
            return Err(process::failed(&out));
        }
        parse_db_info(&out.stdout).ok_or_else(|| ScanError::InvalidOutput {
            reason: "`trivy version --format json` printed no JSON object".into(),
            stdout_len: out.stdout.len(),
        })
    }
}

/// `VulnerabilityDB.UpdatedAt` of `trivy version --format json` (absent: no database).
fn parse_db_info(stdout: &[u8]) -> Option<DbInfo> {
    let v: serde_json::Value = serde_json::from_slice(stdout).ok()?;
    let updated_at = v
        .get("VulnerabilityDB")
        .and_then(|d| d.get("UpdatedAt"))
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_string();
    v.is_object().then_some(DbInfo { updated_at })
}

/// `bytes` in a temporary `.json` file (Trivy reads documents from files).
fn temp_json(bytes: &[u8]) -> Result<tempfile::NamedTempFile, ScanError> {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .prefix("scanvault-")
        .suffix(".json")
        .tempfile()
        .map_err(|e| ScanError::Io {
            context: "creating a temporary file for trivy",
            cause: e,
        })?;
    f.write_all(bytes).map_err(|e| ScanError::Io {
        context: "writing a temporary file for trivy",
        cause: e,
    })?;
    Ok(f)
}

fn os_to_string(s: OsString) -> String {
    s.into_string()
        .unwrap_or_else(|s| s.to_string_lossy().into_owned())
}

fn validate_image(image: &str) -> Result<(), ScanError> {
    let reason = if image.trim().is_empty() {
        "empty image reference"
    } else if image.starts_with('-') {
        "image reference starts with '-' (would be read as a flag)"
    } else if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "image reference contains whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(ScanError::InvalidRequest {
        reason: format!("{reason}: {image:?}"),
    })
}

/// Cheap sanity check only; the service parses the report.
fn check_report(stdout: &[u8]) -> Result<(), ScanError> {
    let start = stdout.iter().position(|b| !b.is_ascii_whitespace());
    let ok = match start {
        None => {
            return Err(ScanError::InvalidOutput {
                reason: "stdout is empty".into(),
                stdout_len: stdout.len(),
            })
        }
        Some(i) => matches!(stdout[i], b'{' | b'[') || stdout[i..].starts_with(b"null"),
    };
    if ok {
        return Ok(());
    }
    let head: String = String::from_utf8_lossy(&stdout[start.unwrap_or(0)..])
        .chars()
        .take(80)
        .collect();
    Err(ScanError::InvalidOutput {
        reason: format!("stdout does not start with '{{', '[' or null: {head:?}"),
        stdout_len: stdout.len(),
    })
}

fn parse_version(stdout: &str) -> Option<String> {
    stdout
        .lines()
        // Not indented: the `Vulnerability DB:` section has its own `  Version: 2`.
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().trim_start_matches('v').to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_args_order() {
        let t = Trivy::new(TrivyConfig {
            path: "/usr/local/bin/trivy".into(),
            server_url: Some("http://trivy:4954".into()),
            timeout: Duration::from_secs(30),
            cache_dir: Some("/var/cache/trivy".into()),
            extra_args: vec!["--skip-db-update".into(), "--offline-scan".into()],
        });
        let args = t.scan_args(ScanRequest {
            image: "reg:5000/app@sha256:abc",
            insecure: true,
            auth: None,
        });
        assert_eq!(
            args.join(" "),
            "image --format json --quiet --list-all-pkgs --image-src remote --server http://trivy:4954 \
             --cache-dir /var/cache/trivy --insecure --timeout 30s --skip-db-update \
             --offline-scan reg:5000/app@sha256:abc"
        );
        let plain = Trivy::new(TrivyConfig::default());
        assert_eq!(
            plain
                .scan_args(ScanRequest {
                    image: "r/x@sha256:1",
                    insecure: false,
                    auth: None,
                })
                .join(" "),
            "image --format json --quiet --list-all-pkgs --image-src remote --timeout 300s r/x@sha256:1"
        );
    }

    #[test]
    fn config_from_lookup() {
        let env = |k: &str| {
            match k {
                "TRIVY_PATH" => Some("/opt/trivy"),
                "TRIVY_SERVER_URL" => Some(" http://s:4954 "),
                "TRIVY_TIMEOUT" => Some("2m"),
                "TRIVY_CACHE_DIR" => Some(""),
                "TRIVY_EXTRA_ARGS" => Some("--skip-db-update '--ignorefile=/a b'"),
                _ => None,
            }
            .map(String::from)
        };
        let cfg = TrivyConfig::from_lookup(env).unwrap();
        assert_eq!(cfg.path, PathBuf::from("/opt/trivy"));
        assert_eq!(cfg.server_url.as_deref(), Some("http://s:4954"));
        assert_eq!(cfg.timeout, Duration::from_secs(120));
        assert_eq!(cfg.cache_dir, None);
        assert_eq!(cfg.extra_args, ["--skip-db-update", "--ignorefile=/a b"]);
        assert_eq!(
            TrivyConfig::from_lookup(|_| None).unwrap(),
            TrivyConfig::default()
        );
        assert!(TrivyConfig::from_lookup(|k| (k == "TRIVY_TIMEOUT").then(|| "0".into())).is_err());
        assert!(
            TrivyConfig::from_lookup(|k| (k == "TRIVY_EXTRA_ARGS").then(|| "-f table".into()))
                .unwrap_err()
                .starts_with("TRIVY_EXTRA_ARGS:")
        );
    }

    #[test]
    fn report_sanity_check() {
        assert!(check_report(b"{\"SchemaVersion\":2}").is_ok());
        assert!(check_report(b"\n  [1]").is_ok());
        assert!(check_report(b"null\n").is_ok());
        for bad in [
            &b""[..],
            b"  \n",
            b"garbage",
            b"2024-01-01T00:00:00Z INFO x",
        ] {
            let e = check_report(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_output");
            assert_eq!(e.class(), ErrorClass::Permanent);
        }
    }

    #[test]
    fn image_validation() {
        for bad in ["", " ", "--output=/etc/passwd", "a b", "x\ny"] {
            let e = validate_image(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_request", "{bad:?}");
        }
        assert!(validate_image("127.0.0.1:5000/e2e/app@sha256:00ff").is_ok());
    }

    #[test]
    fn version_line() {
        let real = include_str!("../testdata/trivy-0.59.1/version.stdout");
        assert_eq!(parse_version(real).as_deref(), Some("0.59.1"));
        assert_eq!(
            parse_version("Version: v0.60.0\n").as_deref(),
            Some("0.60.0")
        );
        assert_eq!(parse_version("trivy dev\n"), None);
        assert_eq!(parse_version("Vulnerability DB:\n  Version: 2\n"), None);
    }
}
