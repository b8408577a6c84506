//! Log setup on stderr, filtered by `RUST_LOG` (default `info`): human-readable
//! lines (colours only when stderr is a terminal and `NO_COLOR` is unset), or
//! one JSON object per line for log shippers (`--log-format json`).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIME LEVEL target: message key=value…`
    #[default]
    Text,
    /// `{"timestamp":…,"level":…,"fields":{"message":…,…},"target":…}`
    Json,
}

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).try_init()
        }
    };
}
