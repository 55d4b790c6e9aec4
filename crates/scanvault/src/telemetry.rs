//! Structured logging with `tracing`: JSON (default) or console.

use crate::config::LogFormat;
use tracing_subscriber::{fmt, EnvFilter};

/// Initialise the global subscriber. `LOG_LEVEL` is a level (`info`) or a full filter
/// (`info,sqlx=warn`).
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("LOG_LEVEL {level:?} is not a valid level or filter: {e}"))?;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(std::io::IsTerminal::is_terminal(&std::io::stderr())));
    let res = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .try_init(),
        LogFormat::Console => builder.compact().try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("initialising logging: {e}"))
}

/// Colour only on a terminal, and not when `NO_COLOR` is set (no-color.org).
fn colour(terminal: bool) -> bool {
    terminal && !matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty())
}

/// For tests: prints only when `TEST_LOG` is set; safe to call many times.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .with_test_writer()
            .try_init();
    }
}
