//! Logging through `tracing`: `LOG_LEVEL` sets the level, and `RUST_LOG`, when set, wins.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter for `log_level`, unless `RUST_LOG` is set (then that one).
pub fn env_filter(log_level: &str) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(log_level))
        }
        _ => EnvFilter::new(log_level),
    }
}

/// Installs the global subscriber: human-readable lines on stderr (colours only on a terminal). Call once, from `main`.
pub fn init(log_level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(env_filter(log_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
