//! Logging: `LOG_LEVEL` picks what is logged (`RUST_LOG`, when set, wins), `LOG_FORMAT` how, and
//! [`LogArgs::init`] installs the tracing subscriber they describe (the binaries' only one).

use std::io::IsTerminal;

use clap::Args;
use tracing_subscriber::EnvFilter;

/// The shape of log lines (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-25T12:00:00.123456Z  INFO github_stats_server::startup: listening address=…`,
    /// coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, `message`, and
    /// the event's fields beside them, for log shippers.
    Json,
}

impl LogFormat {
    /// `text` or `json` (any case), else `None`.
    pub fn parse(name: &str) -> Option<LogFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// `LOG_LEVEL` and `LOG_FORMAT` (docs/operations.md, "Logs").
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log level or tracing directives (`info`, `github_stats_core=debug,info`); RUST_LOG wins
    /// when set.
    #[arg(
        long,
        env = "LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL",
        help_heading = "Logging"
    )]
    pub log_level: String,

    /// Log lines: `text` for people, or `json` (one object per line, for log shippers).
    #[arg(
        long,
        env = "LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT",
        help_heading = "Logging"
    )]
    pub log_format: String,
}

impl LogArgs {
    /// The format, or the line saying why the name is unknown.
    pub fn format(&self) -> Result<LogFormat, String> {
        LogFormat::parse(&self.log_format).ok_or_else(|| {
            format!(
                "invalid LOG_FORMAT '{}', expected text or json",
                self.log_format
            )
        })
    }

    /// Every problem with the settings, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if EnvFilter::try_new(&self.log_level).is_err() {
            problems.push(format!(
                "invalid LOG_LEVEL '{}', expected error, warn, info, debug, trace or tracing \
                 directives",
                self.log_level
            ));
        }
        problems.extend(self.format().err());
        problems
    }

    /// The filter: `RUST_LOG` when set (and valid), else `LOG_LEVEL`.
    pub fn env_filter(&self) -> EnvFilter {
        let level =
            || EnvFilter::try_new(&self.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
        match std::env::var("RUST_LOG") {
            Ok(directives) if !directives.trim().is_empty() => {
                EnvFilter::try_new(&directives).unwrap_or_else(|_| level())
            }
            _ => level(),
        }
    }

    /// Installs the global subscriber, writing to stderr: text lines (coloured only on a
    /// terminal) or JSON lines. Call once, from `main`, after checking [`problems`](Self::problems).
    pub fn init(&self) {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(self.env_filter())
            .with_writer(std::io::stderr);
        match self.format().unwrap_or_default() {
            LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
            LogFormat::Json => builder.json().flatten_event(true).init(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(level: &str, format: &str) -> LogArgs {
        LogArgs {
            log_level: level.to_owned(),
            log_format: format.to_owned(),
        }
    }

    #[test]
    fn formats_and_levels_are_checked() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse(" TEXT "), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse("logfmt"), None);
        assert!(
            args("github_stats_core=debug,info", "JSON")
                .problems()
                .is_empty()
        );
        assert_eq!(args("info", "json").format(), Ok(LogFormat::Json));
        let problems = args("info,=[", "yaml").problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].starts_with("invalid LOG_LEVEL 'info,=['"));
        assert_eq!(
            problems[1],
            "invalid LOG_FORMAT 'yaml', expected text or json"
        );
    }
}
