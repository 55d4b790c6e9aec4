//! Tests of the configuration: values, validation, secrets.

use super::*;

#[test]
fn durations_parse_like_the_original() {
    assert_eq!("15s".parse::<Dur>().unwrap().0, Duration::from_secs(15));
    assert_eq!(
        "72h".parse::<Dur>().unwrap().0,
        Duration::from_secs(72 * 3600)
    );
    assert_eq!("1h30m".parse::<Dur>().unwrap().0, Duration::from_secs(5400));
    assert_eq!("0".parse::<Dur>().unwrap().0, Duration::ZERO);
    assert!("15x".parse::<Dur>().is_err());
    assert!("soon".parse::<Dur>().is_err());
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!("32MiB".parse::<ByteSize>().unwrap().0, 32 << 20);
    assert_eq!("10MB".parse::<ByteSize>().unwrap().0, 10_000_000);
    assert_eq!("1024".parse::<ByteSize>().unwrap().0, 1024);
    assert!("12 parsecs".parse::<ByteSize>().is_err());
}

fn serve(args: &[&str]) -> ServeConfig {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from(["scanvault", "serve"].iter().chain(args))
        .unwrap_or_else(|e| panic!("{e}"));
    match cli.command {
        crate::cli::Command::Serve(cfg) => *cfg,
        _ => unreachable!(),
    }
}

const KEY: &str = "bootstrap-key-hunter2-0123456789";

fn log() -> LogSettings {
    LogSettings {
        level: "info".into(),
        format: LogFormat::Json,
    }
}

/// The README's configuration table: each row's variable names and the default written in
/// backticks for each, where the row gives one per name.
fn readme_settings() -> Vec<(String, Option<String>)> {
    let readme = include_str!("../../../../README.md");
    let table = readme
        .split("| variable | default | meaning |")
        .nth(1)
        .expect("the README has a configuration table");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut out = vec![];
    for line in table.lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let names = ticked(cells[1]);
        let defaults = ticked(cells[2]);
        let defaults_apply = defaults.len() == names.len();
        for (i, name) in names.into_iter().enumerate() {
            out.push((name, defaults_apply.then(|| defaults[i].clone())));
        }
    }
    out
}

#[test]
fn the_logged_configuration_is_the_readme_table_in_its_notation() {
    let cfg = serve(&[]);
    let logged = cfg.describe(&log());
    let logged_names: Vec<&str> = logged.iter().map(|(k, _)| *k).collect();
    let documented = readme_settings();
    assert!(
        documented.len() > 30,
        "the table was not read: {documented:?}"
    );
    for (name, default) in &documented {
        let Some((_, value)) = logged.iter().find(|(k, _)| k == name) else {
            panic!("{name} is documented but not logged at start; logged: {logged_names:?}");
        };
        if let Some(default) = default {
            assert_eq!(value, default, "{name}: logged default vs README");
        }
    }
    for name in &logged_names {
        assert!(
            documented.iter().any(|(n, _)| n == name),
            "{name} is logged but not in the README's table"
        );
    }
}

#[test]
fn durations_print_in_the_readme_notation() {
    for (secs, text) in [
        (86_400, "24h"),
        (5_400, "1h30m"),
        (600, "10m"),
        (30, "30s"),
        (0, "0"),
        (259_200, "72h"),
    ] {
        assert_eq!(Dur(Duration::from_secs(secs)).to_string(), text);
    }
    assert_eq!(Dur(Duration::from_millis(1500)).to_string(), "1s500ms");
    for text in ["24h", "1h30m", "1s500ms", "15s"] {
        assert_eq!(text.parse::<Dur>().unwrap().to_string(), text);
    }
}

#[test]
fn secrets_stay_out_of_debug_and_the_logged_configuration() {
    let cfg = serve(&[
        "--database-url",
        "postgres://u:hunter2@db/scanvault",
        "--trivy-server-url",
        "http://trivy:hunter2@trivy:4954",
        "--bootstrap-admin-key",
        KEY,
    ]);
    cfg.validate().unwrap();
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");
    let described: Vec<String> = cfg
        .describe(&log())
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let described = described.join("\n");
    assert!(!described.contains("hunter2"), "{described}");
    assert!(described.contains("DATABASE_URL=postgres://u:***@db/scanvault"));
    assert!(described.contains("TRIVY_SERVER_URL=http://trivy:***@trivy:4954/"));
    assert!(described.contains("BOOTSTRAP_ADMIN_KEY=***"));
    // What leaves the secret on purpose: the store's and the scanner's options.
    assert_eq!(
        cfg.db.store_options().database_url.as_deref(),
        Some("postgres://u:hunter2@db/scanvault")
    );
    assert_eq!(
        cfg.worker.exposed_trivy_server_url().as_deref(),
        Some("http://trivy:hunter2@trivy:4954")
    );
}

#[test]
fn secret_files_are_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    };
    let (db, trivy, key) = (
        file("db", "  postgres://u:p@db/scanvault\n"),
        file("trivy", "http://trivy:4954\n\n"),
        file("key", &format!("{KEY}\n")),
    );
    let mut cfg = serve(&[
        "--database-url-file",
        &db,
        "--trivy-server-url-file",
        &trivy,
        "--bootstrap-admin-key-file",
        &key,
    ]);
    cfg.read_secret_files().unwrap();
    cfg.validate().unwrap();
    let exposed = |s: &Option<SecretString>| s.as_ref().unwrap().expose_secret().to_string();
    assert_eq!(exposed(&cfg.db.database_url), "postgres://u:p@db/scanvault");
    assert_eq!(exposed(&cfg.worker.trivy_server_url), "http://trivy:4954");
    assert_eq!(exposed(&cfg.bootstrap_admin_key), KEY);
}

#[test]
fn a_secret_and_its_file_together_are_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, KEY).unwrap();
    let path = path.display().to_string();
    for (value, file, name) in [
        ("--database-url", "--database-url-file", "DATABASE_URL"),
        (
            "--trivy-server-url",
            "--trivy-server-url-file",
            "TRIVY_SERVER_URL",
        ),
        (
            "--bootstrap-admin-key",
            "--bootstrap-admin-key-file",
            "BOOTSTRAP_ADMIN_KEY",
        ),
    ] {
        let err = serve(&[value, KEY, file, &path])
            .read_secret_files()
            .unwrap_err();
        assert_eq!(
            err,
            format!("both {name} and {name}_FILE are set; set only one")
        );
        assert!(!err.contains(KEY));
    }
}

#[test]
fn an_unreadable_secret_file_is_an_error_naming_the_variable_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").display().to_string();
    for (file, name) in [
        ("--database-url-file", "DATABASE_URL_FILE"),
        ("--trivy-server-url-file", "TRIVY_SERVER_URL_FILE"),
        ("--bootstrap-admin-key-file", "BOOTSTRAP_ADMIN_KEY_FILE"),
    ] {
        let err = serve(&[file, &missing]).read_secret_files().unwrap_err();
        assert!(
            err.starts_with(&format!("{name}: cannot read {missing}: ")),
            "{err}"
        );
    }
    // A directory cannot be read as a file either.
    let dir_path = dir.path().display().to_string();
    let err = serve(&["--database-url-file", &dir_path])
        .read_secret_files()
        .unwrap_err();
    assert!(
        err.contains("DATABASE_URL_FILE") && err.contains(&dir_path),
        "{err}"
    );
}
