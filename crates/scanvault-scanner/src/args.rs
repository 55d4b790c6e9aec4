//! Extra-argument splitting/validation, command-line redaction, duration text.

use std::time::Duration;

/// Flags that would break the contract "JSON report on stdout, success = exit 0", or make
/// Trivy scan something other than the requested image. `-f`/`-o` also match their glued
/// forms (`-fjson`, `-o=x`).
const FORBIDDEN_FLAGS: &[(&str, &str)] = &[
    ("--format", "the report must be JSON"),
    ("-f", "the report must be JSON"),
    ("--output", "the report must go to stdout"),
    ("-o", "the report must go to stdout"),
    ("--exit-code", "a non-zero exit is treated as a failed scan"),
    (
        "--exit-on-eol",
        "a non-zero exit is treated as a failed scan",
    ),
    ("--input", "the image reference is given by the service"),
    (
        "--image-src",
        "images are pulled from the registry (remote)",
    ),
];

/// Splits `TRIVY_EXTRA_ARGS` like a POSIX shell would (single/double quotes, backslash escapes;
/// no variable expansion, globbing or command substitution) and rejects flags that would break
/// the scanner's contract (`--format`, `--output`, `--exit-code`, `--input`, ...).
pub fn parse_extra_args(s: &str) -> Result<Vec<String>, String> {
    let args = shell_words::split(s).map_err(|e| format!("cannot split {s:?}: {e}"))?;
    for a in &args {
        if a == "--" {
            return Err("\"--\" is not allowed (the image reference is added last)".into());
        }
        for (flag, why) in FORBIDDEN_FLAGS {
            let glued_short = flag.len() == 2 && a.starts_with(flag) && a.len() > 2;
            let with_value = a.starts_with(&format!("{flag}="));
            if a == flag || with_value || glued_short {
                return Err(format!("{flag} is not allowed in extra args: {why}"));
            }
        }
    }
    Ok(args)
}

/// Flags whose value is a secret and must not be logged.
const SECRET_FLAGS: &[&str] = &[
    "--password",
    "--registry-token",
    "--token",
    "--custom-headers",
];

/// Renders a command line for logs: arguments quoted as needed, values of secret flags and
/// URL user-info replaced by `***`.
pub(crate) fn display_command(program: &str, args: &[String]) -> String {
    let program = shell_words::quote(program);
    match display_args(args) {
        rest if rest.is_empty() => program.into_owned(),
        rest => format!("{program} {rest}"),
    }
}

/// Arguments for logs, as [`display_command`] shows them.
pub fn display_args(args: &[String]) -> String {
    let mut out = vec![];
    let mut redact_next = false;
    for a in args {
        let shown = if redact_next {
            redact_next = false;
            "***".to_string()
        } else if let Some(flag) = SECRET_FLAGS
            .iter()
            .find(|f| a.starts_with(&format!("{f}=")))
        {
            format!("{flag}=***")
        } else {
            redact_next = SECRET_FLAGS.contains(&a.as_str());
            redact_userinfo(a)
        };
        out.push(shell_words::quote(&shown).into_owned());
    }
    out.join(" ")
}

/// `https://user:pass@host/x` → `https://***@host/x`.
fn redact_userinfo(a: &str) -> String {
    if let Some(scheme_end) = a.find("://") {
        let rest = &a[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{}://***@{}", &a[..scheme_end], &rest[at + 1..]);
        }
    }
    a.to_string()
}

/// Go-duration text for Trivy's `--timeout` and for messages: `30s`, `1500ms`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
    }
}

/// Parses `TRIVY_TIMEOUT`: a bare number of seconds (`300`) or Go-style `1h2m3s`, `90s`,
/// `1.5m`, `1500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => {
                return Err(format!(
                    "unknown unit {u:?} in duration {s:?} (use ms, s, m, h)"
                ))
            }
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(parse_extra_args("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_extra_args("   ").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_extra_args("--skip-db-update --offline-scan").unwrap(),
            ["--skip-db-update", "--offline-scan"]
        );
        assert_eq!(
            parse_extra_args(r#"--severity HIGH,CRITICAL --ignorefile '/etc/trivy/my ignore' --skip-dirs "a b" c\ d"#)
                .unwrap(),
            [
                "--severity",
                "HIGH,CRITICAL",
                "--ignorefile",
                "/etc/trivy/my ignore",
                "--skip-dirs",
                "a b",
                "c d"
            ]
        );
        assert_eq!(
            parse_extra_args("--scanners=vuln\t--list-all-pkgs\n").unwrap(),
            ["--scanners=vuln", "--list-all-pkgs"]
        );
        assert_eq!(parse_extra_args(r#"--x "it's""#).unwrap(), ["--x", "it's"]);
        assert_eq!(parse_extra_args("--x ''").unwrap(), ["--x", ""]);
    }

    #[test]
    fn rejects_unbalanced_quotes() {
        let e = parse_extra_args("--ignorefile 'oops").unwrap_err();
        assert!(e.contains("cannot split"), "{e}");
        assert!(parse_extra_args(r#"--x "abc"#).is_err());
    }

    #[test]
    fn rejects_contract_breaking_flags() {
        for bad in [
            "--format table",
            "--format=sarif",
            "-f json",
            "-fjson",
            "-o /tmp/x",
            "--output=/tmp/x",
            "--exit-code 1",
            "--input image.tar",
            "--image-src docker",
            "--quiet -- other",
        ] {
            assert!(parse_extra_args(bad).is_err(), "{bad} accepted");
        }
        // Similar-looking flags are fine.
        assert!(parse_extra_args("--offline-scan --format-x --ignore-unfixed").is_ok());
    }

    #[test]
    fn redacts_secrets_for_logs() {
        let args: Vec<String> = [
            "image",
            "--password",
            "hunter2",
            "--registry-token=abc",
            "--server",
            "https://u:p@trivy:4954",
            "--severity",
            "HIGH",
            "r/x@sha256:00",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let shown = display_command("/usr/bin/trivy", &args);
        assert_eq!(
            shown,
            "/usr/bin/trivy image --password '***' '--registry-token=***' --server \
             'https://***@trivy:4954' --severity HIGH r/x@sha256:00"
        );
        assert!(!shown.contains("hunter2") && !shown.contains("abc") && !shown.contains("u:p"));
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_millis(0)), "1ms");
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("10d").is_err());
    }
}
