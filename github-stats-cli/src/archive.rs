//! GH Archive's settings that both binaries have: where the hour files are, and when a hour
//! that never appeared is a hole.

use std::fmt;
use std::time::Duration;

use clap::Args;
use github_stats_core::SecretUrl;
use github_stats_core::source::gharchive::{DEFAULT_GHARCHIVE_URL, parse_duration};

/// `GHARCHIVE_URL` and `GHARCHIVE_MISSING_AFTER` (docs/gharchive.md).
#[derive(Clone, Args)]
pub struct ArchiveArgs {
    /// Where GH Archive's hour files are: its server, a mirror, or file:///a/local/dir.
    /// Credentials in it are never shown.
    #[arg(
        long,
        env = "GHARCHIVE_URL",
        hide_env_values = true,
        default_value = DEFAULT_GHARCHIVE_URL,
        value_name = "URL",
        help_heading = "GH Archive"
    )]
    pub gharchive_url: SecretUrl,

    /// An hour still not published this long after its end is a hole in the archive, recorded
    /// as missing (90m, 24h, 7d); sooner, it is pending.
    #[arg(
        long,
        env = "GHARCHIVE_MISSING_AFTER",
        default_value = "24h",
        value_name = "DURATION",
        help_heading = "GH Archive"
    )]
    pub gharchive_missing_after: String,
}

impl ArchiveArgs {
    /// `GHARCHIVE_URL` trimmed, or the line saying why it cannot work: it must be `http://`,
    /// `https://` or `file://`.
    pub fn url(&self) -> Result<SecretUrl, String> {
        let url = self.gharchive_url.trimmed();
        let host_or_path = url
            .expose_secret()
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains(char::is_whitespace));
        match url.scheme().as_deref() {
            Some("http" | "https" | "file") if host_or_path => Ok(url),
            _ => Err(format!(
                "invalid GHARCHIVE_URL '{url}', expected an http://, https:// or file:// URL \
                 (https://data.gharchive.org, file:///srv/gharchive)"
            )),
        }
    }

    /// `GHARCHIVE_MISSING_AFTER`, or the line saying why it is not a duration.
    pub fn missing_after(&self) -> Result<Duration, String> {
        parse_duration(&self.gharchive_missing_after)
            .map_err(|e| format!("invalid GHARCHIVE_MISSING_AFTER: {e}"))
    }

    /// Every problem with the settings, one line each.
    pub fn problems(&self) -> Vec<String> {
        [self.url().err(), self.missing_after().err()]
            .into_iter()
            .flatten()
            .collect()
    }
}

impl fmt::Debug for ArchiveArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveArgs")
            .field("gharchive_url", &self.gharchive_url)
            .field("gharchive_missing_after", &self.gharchive_missing_after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, missing_after: &str) -> ArchiveArgs {
        ArchiveArgs {
            gharchive_url: url.into(),
            gharchive_missing_after: missing_after.to_owned(),
        }
    }

    #[test]
    fn urls_and_durations_are_checked_without_showing_credentials() {
        let good = args(" https://mirror.example/gh/ ", "90m");
        assert_eq!(good.problems(), Vec::<String>::new());
        assert_eq!(
            good.url().unwrap().expose_secret(),
            "https://mirror.example/gh"
        );
        assert_eq!(good.missing_after(), Ok(Duration::from_secs(5400)));
        assert!(args("file:///srv/gh", "24h").problems().is_empty());

        let bad = args("ftp://alice:s3cret@mirror.example/gh", "24");
        let problems = bad.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].starts_with("invalid GHARCHIVE_URL 'ftp://<redacted>@mirror.example/gh'"),
            "{problems:#?}"
        );
        assert!(problems[1].starts_with("invalid GHARCHIVE_MISSING_AFTER"));
        assert!(!format!("{bad:?}").contains("s3cret"));
        for url in ["data.gharchive.org", "http://", "https:// x"] {
            assert!(args(url, "24h").url().is_err(), "{url}");
        }
    }
}
