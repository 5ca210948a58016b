//! Configuration of the GH Archive follower.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::SecretUrl;
use crate::source::file::DEFAULT_MAX_RECORD_BYTES;

/// GH Archive's own server (`GHARCHIVE_URL`).
pub const DEFAULT_GHARCHIVE_URL: &str = "https://data.gharchive.org";

/// The `User-Agent` sent: the tool, its version, and where to find it, so GH Archive's
/// operator knows who is asking.
pub const DEFAULT_USER_AGENT: &str = concat!(
    "github-stats/",
    env!("CARGO_PKG_VERSION"),
    " (+",
    env!("CARGO_PKG_REPOSITORY"),
    ")"
);

/// `GHARCHIVE_MISSING_AFTER`'s default: an hour still not published a day after its end is
/// a hole.
pub const DEFAULT_MISSING_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How the [`GhArchiveSource`](super::GhArchiveSource) follows GH Archive.
///
/// Build it with [`GhArchiveConfig::new`] (the first hour) and set what differs:
///
/// ```
/// use github_stats_core::source::gharchive::{GhArchiveConfig, parse_hour};
/// let now = chrono::Utc::now();
/// let mut config = GhArchiveConfig::new(parse_hour("24h", now).unwrap());
/// config.state_file = Some("state/gharchive-state.json".into());
/// assert_eq!(config.base_url.expose_secret(), "https://data.gharchive.org");
/// ```
///
/// `Debug` shows the base URL without credentials (a private mirror may carry some).
#[derive(Clone)]
#[non_exhaustive]
pub struct GhArchiveConfig {
    /// Where the hour files are (`GHARCHIVE_URL`): `https://data.gharchive.org`, another HTTP
    /// mirror, or `file:///some/dir`, a local directory of the same names.
    /// `/{YYYY-MM-DD-H}.json.gz` is appended. Credentials in it (a private mirror's) are sent
    /// as basic authentication and never shown.
    pub base_url: SecretUrl,
    /// The first hour (truncated to its hour). A state file resumes later than this, unless
    /// this is earlier than the start it recorded (see `docs/gharchive.md`, "State").
    pub from: DateTime<Utc>,
    /// The end, exclusive: `Some` for a backfill (the source is exhausted there), `None` to
    /// follow the archive as it grows.
    pub until: Option<DateTime<Utc>>,
    /// When an hour's end is this far in the past and the archive still has no file for it, it
    /// is recorded as missing (`GHARCHIVE_MISSING_AFTER`, 24 h). Also the grace period before a
    /// file that keeps failing is recorded as damaged.
    pub missing_after: Duration,
    /// No hour is requested before its end plus this (15 minutes): GH Archive publishes an
    /// hour some time after it ends.
    pub publish_delay: Duration,
    /// Whether an hour not published yet is waited for (`true`, following live). `false` (a
    /// backfill): an hour not published, or failing, within its grace period is given up as
    /// *pending* (no record; a later run takes it) instead of being waited for.
    pub wait_for_publication: bool,
    /// Whether an hour the store records as damaged is fetched again (`false`: following live,
    /// the follower moves on; a backfill sets `true`). Hours recorded as imported or missing
    /// are always skipped without a download.
    pub retry_damaged: bool,
    /// Hours fetched at once (3): the hour being imported and the next ones, fetched ahead.
    pub parallel: usize,
    /// The `User-Agent` header ([`DEFAULT_USER_AGENT`]).
    pub user_agent: String,
    /// Where the position survives restarts; `None` keeps it in memory.
    pub state_file: Option<PathBuf>,
    /// The first wait after a failed download (2 s); it doubles with each failure in a row,
    /// with jitter.
    pub min_retry: Duration,
    /// The longest wait between failed downloads (5 minutes).
    pub max_retry: Duration,
    /// The first wait after an hour that should be published soon was not (5 minutes); it
    /// doubles with each answer in a row, with jitter.
    pub unpublished_retry: Duration,
    /// The longest wait between requests for an hour not published yet (30 minutes).
    pub max_unpublished_retry: Duration,
    /// Failed downloads of an hour, past its grace period, before it is recorded as damaged (5).
    pub failures_before_damaged: u32,
    /// Kept events per batch handed to the ingest loop (5,000).
    pub batch_size: usize,
    /// Batches an hour may hold ready before its download pauses (16). Bounds the memory of
    /// each hour in flight to about `prefetch_batches × batch_size` events (80,000 kept events,
    /// about ten megabytes), enough for the hours fetched ahead to download far ahead.
    pub prefetch_batches: usize,
    /// A download that receives nothing for this long (60 s), or a server that does not
    /// answer a request within it, fails and is retried.
    pub stall_timeout: Duration,
    /// Timeout of establishing a connection (30 s).
    pub connect_timeout: Duration,
    /// Bytes of decompressed JSON lines parsed per chunk (1 MiB).
    pub chunk_bytes: usize,
    /// The longest line read (16 MiB); a longer one is counted as a bad line and skipped.
    pub max_record_bytes: usize,
}

impl GhArchiveConfig {
    /// Following GH Archive live from `from`, with the defaults.
    pub fn new(from: DateTime<Utc>) -> GhArchiveConfig {
        GhArchiveConfig {
            base_url: SecretUrl::from(DEFAULT_GHARCHIVE_URL),
            from,
            until: None,
            missing_after: DEFAULT_MISSING_AFTER,
            publish_delay: Duration::from_secs(15 * 60),
            wait_for_publication: true,
            retry_damaged: false,
            parallel: 3,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            state_file: None,
            min_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(300),
            unpublished_retry: Duration::from_secs(300),
            max_unpublished_retry: Duration::from_secs(1800),
            failures_before_damaged: 5,
            batch_size: 5_000,
            prefetch_batches: 16,
            stall_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            chunk_bytes: crate::source::file::DEFAULT_CHUNK_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// The same, reading from `base_url` (see [`base_url`](GhArchiveConfig::base_url)).
    pub fn with_url(mut self, base_url: impl Into<SecretUrl>) -> GhArchiveConfig {
        self.base_url = base_url.into();
        self
    }

    /// A backfill of `[from, until)`: the source ends at `until`, hours not published yet are
    /// given up as pending, and hours recorded as damaged are fetched again.
    pub fn backfill(from: DateTime<Utc>, until: DateTime<Utc>) -> GhArchiveConfig {
        GhArchiveConfig {
            until: Some(until),
            wait_for_publication: false,
            retry_damaged: true,
            ..GhArchiveConfig::new(from)
        }
    }
}

impl std::fmt::Debug for GhArchiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhArchiveConfig")
            .field("base_url", &self.base_url)
            .field("from", &self.from)
            .field("until", &self.until)
            .field("missing_after", &self.missing_after)
            .field("publish_delay", &self.publish_delay)
            .field("wait_for_publication", &self.wait_for_publication)
            .field("retry_damaged", &self.retry_damaged)
            .field("parallel", &self.parallel)
            .field("user_agent", &self.user_agent)
            .field("state_file", &self.state_file)
            .field("min_retry", &self.min_retry)
            .field("max_retry", &self.max_retry)
            .field("unpublished_retry", &self.unpublished_retry)
            .field("max_unpublished_retry", &self.max_unpublished_retry)
            .field("failures_before_damaged", &self.failures_before_damaged)
            .field("batch_size", &self.batch_size)
            .field("prefetch_batches", &self.prefetch_batches)
            .field("stall_timeout", &self.stall_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("chunk_bytes", &self.chunk_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_are_never_shown() {
        let config = GhArchiveConfig::new(chrono::Utc::now())
            .with_url("https://reader:hunter2@mirror.example/gharchive");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("mirror.example"), "{shown}");
    }
}
