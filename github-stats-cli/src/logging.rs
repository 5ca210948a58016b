//! Logging: `LOG_LEVEL` picks what is logged (`RUST_LOG`, when set, wins), `LOG_FORMAT` how, and
//! [`LogArgs::init`] installs the tracing subscriber they describe (the binaries' only one).

use std::borrow::Cow;
use std::fmt;
use std::io::IsTerminal;

use clap::Args;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};

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
    /// terminal, every field escaped by [`EscapedFields`]) or JSON lines. Call once, from
    /// `main`, after checking [`problems`](Self::problems).
    pub fn init(&self) {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(self.env_filter())
            .with_writer(std::io::stderr);
        match self.format().unwrap_or_default() {
            LogFormat::Text => builder
                .fmt_fields(EscapedFields)
                .with_ansi(std::io::stderr().is_terminal())
                .init(),
            LogFormat::Json => builder.json().flatten_event(true).init(),
        }
    }
}

/// Whether `c` must not reach a log line or a terminal raw: control characters (a line break
/// forges a log line, an escape sequence rewrites the terminal), the Unicode line and paragraph
/// separators, and the bidirectional overrides that reorder what a terminal shows.
fn is_unsafe_in_a_line(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character (and Unicode line separator or bidirectional override)
/// written as its Rust escape (`\n`, `\r`, `\u{1b}`), so that text from outside (an error
/// body, a file name) stays on one line and cannot send escape sequences to a terminal.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_in_a_line) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe_in_a_line(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// The text format's field formatter: tracing's default layout (`message key=value …`), with
/// every control character of the message and the values escaped ([`escape_control`]). Escaping
/// here, rather than where values are logged, covers every call site: a `%error` holding a
/// GitHub error body, a file name in a message. (Field names are not set in italics on a
/// terminal: the styling would be escaped with the rest.)
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut text = String::new();
        DefaultFields::new().format_fields(Writer::new(&mut text), fields)?;
        fmt::Write::write_str(&mut writer, &escape_control(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(escape_control("a/b.json"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("boom\n2026-01-01T00:00:00Z  INFO forged\r\u{1b}[31mred\u{85}\u{2028}"),
            "boom\\n2026-01-01T00:00:00Z  INFO forged\\r\\u{1b}[31mred\\u{85}\\u{2028}"
        );
    }

    #[test]
    fn text_log_lines_hold_no_control_characters() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::fmt::MakeWriter;

        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Sink {
            type Writer = Sink;
            fn make_writer(&'a self) -> Sink {
                self.clone()
            }
        }

        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_ansi(false)
            .with_writer(sink.clone())
            .finish();
        let forged = "x\n2026-01-01T00:00:00Z  INFO forged\r\u{1b}[31m";
        let error = std::io::Error::other(forged);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("hour", name = %forged);
            let _entered = span.enter();
            tracing::warn!(error = %error, debug = ?forged, source = &error as &dyn std::error::Error, "cannot read {forged}");
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains(['\r', '\u{1b}']), "{out:?}");
        assert!(!out.lines().any(|l| l.starts_with("2026-01-01")), "{out}");
        assert!(
            out.contains("cannot read x\\n2026-01-01T00:00:00Z  INFO forged"),
            "{out}"
        );
        assert!(out.contains("error=x\\n"), "{out}");
    }

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
