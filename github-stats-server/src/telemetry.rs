//! Logging through `tracing`: `LOG_LEVEL` sets the level (`RUST_LOG`, when set, wins), and
//! `LOG_FORMAT` the shape of a line: `text` for people, `json` for log shippers.
//!
//! Secrets never reach a log: the configuration's `Debug` redacts the token, the password and
//! the credentials of URLs ([`redact_url`]), and nothing logs them otherwise.

use std::borrow::Cow;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The shape of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-25T12:00:00.123456Z  INFO github_stats_server::startup: listening address=…`,
    /// coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp` (RFC 3339, UTC), `level`, `target`, `message`, and
    /// the event's fields beside them (`{"timestamp":"…","level":"INFO","message":"listening",
    /// "address":"127.0.0.1:8000",…,"target":"github_stats_server::startup"}`).
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

/// The filter for `log_level`, unless `RUST_LOG` is set (then that one).
pub fn env_filter(log_level: &str) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(log_level))
        }
        _ => EnvFilter::new(log_level),
    }
}

/// Installs the global subscriber, writing to stderr: text lines (colours only on a terminal)
/// or JSON lines. Call once, from `main`.
pub fn init(log_level: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter(log_level))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// `url` with the credentials of its authority replaced (`https://user:secret@host/x` gives
/// `https://<redacted>@host/x`), for logs and messages; text without credentials is returned as
/// is.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    match url[authority_start..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!(
            "{}<redacted>@{}",
            &url[..authority_start],
            &url[authority_start + at + 1..]
        )),
        None => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_and_nothing_else() {
        for (url, shown) in [
            (
                "https://user:secret@host:8123/db?x=1",
                "https://<redacted>@host:8123/db?x=1",
            ),
            (
                "http://token@github.example/api/v3",
                "http://<redacted>@github.example/api/v3",
            ),
            ("http://a:b@c@host", "http://<redacted>@host"),
            ("http://host?next=a@b", "http://host?next=a@b"),
            (
                "https://host/path@not-credentials",
                "https://host/path@not-credentials",
            ),
            ("https://api.github.com", "https://api.github.com"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn log_formats_by_name() {
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse(" TEXT "), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse("logfmt"), None);
    }
}
