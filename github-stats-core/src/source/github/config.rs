//! Configuration of the GitHub poller.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::SecretUrl;

/// GitHub's own API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The wait between page-1 polls when GitHub sends no `X-Poll-Interval`.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 60;

/// The longest wait any header can impose, in seconds: a rate-limit reset is at most an hour
/// away, plus a margin.
pub const MAX_HEADER_WAIT_SECS: f64 = 3700.0;

/// The largest answer read from GitHub by default: 16 MiB. A page of 100 events is 100-400 KB;
/// a larger answer is damage or an attack, and reading it whole would take that much memory.
pub const DEFAULT_MAX_PAGE_BYTES: usize = 16 << 20;

/// The `User-Agent` sent by default (GitHub refuses requests without one).
pub const DEFAULT_USER_AGENT: &str = concat!("github-stats/", env!("CARGO_PKG_VERSION"));

/// How the poller paces its page-1 requests (`POLL_MODE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PollMode {
    /// Waits GitHub's `X-Poll-Interval` (60 s) between polls and reads pages 1 to 3 each time:
    /// about 300 events a minute, a few percent of the public stream.
    #[default]
    Interval,
    /// Polls page 1 as often as the rate limit allows (the requests left spread evenly until
    /// the reset, keeping a reserve), and pages 2 and 3 only while the page before shares no
    /// event with the previous poll: nearly the whole stream on one token.
    Adaptive,
}

impl PollMode {
    /// `interval` or `adaptive`.
    pub fn as_str(self) -> &'static str {
        match self {
            PollMode::Interval => "interval",
            PollMode::Adaptive => "adaptive",
        }
    }
}

/// How the poller saves what it receives (`SAVE_EVENTS_FORMAT`), when it has an events
/// directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveFormat {
    /// One JSON array per poll, `YYYY-MM-DDTHH-MM-SS.json` (the Python service's files).
    #[default]
    Poll,
    /// GH Archive's hour files: every event received, once, as JSON lines in
    /// `YYYY-MM-DD-H.json.gz` by receive hour (UTC).
    GhArchive,
}

/// The shortest wait between two page-1 requests in adaptive mode (`POLL_MIN_INTERVAL_MS`).
pub const DEFAULT_MIN_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How the [`GitHubPoller`](super::GitHubPoller) talks to GitHub.
///
/// Build it from [`GitHubConfig::default`] (GitHub's defaults) and set what differs:
///
/// ```
/// use github_stats_core::source::github::GitHubConfig;
/// let mut config = GitHubConfig::default();
/// config.token = Some("ghp_secret".into());
/// config.state_file = Some("state/client-state.json".into());
/// assert!(!format!("{config:?}").contains("ghp_secret"));
/// ```
///
/// The token never appears in `Debug` output, logs or error messages.
#[derive(Clone)]
#[non_exhaustive]
pub struct GitHubConfig {
    /// Base URL of the REST API (`GITHUB_API_URL`): `https://api.github.com`, a GitHub
    /// Enterprise `https://host/api/v3`, or a local fake in tests. `/events` is appended.
    /// Credentials in it (`https://user:token@host/`) are sent as basic authentication and
    /// never shown.
    pub api_url: SecretUrl,
    /// `GITHUB_TOKEN` (alias `GITHUB_READ_TOKEN`): sent as `Authorization: Bearer …`. Optional;
    /// without one GitHub allows 60 requests an hour.
    pub token: Option<String>,
    /// `CLIENT_STATE_FILE`: where the poll state survives restarts. `None` keeps it in memory.
    pub state_file: Option<PathBuf>,
    /// `EVENTS_DIRECTORY` when `SAVE_EVENTS_TO_FILES=true`: every answer's events, all types, are
    /// written there as `YYYY-MM-DDTHH-MM-SS.json` (a JSON array). `None` saves nothing.
    pub events_dir: Option<PathBuf>,
    /// Timeout of one request, body included (30 s).
    pub request_timeout: Duration,
    /// The first backoff after a failure (1 s); it doubles with each failure in a row.
    pub min_backoff: Duration,
    /// The longest backoff after failures in a row (5 minutes).
    pub max_backoff: Duration,
    /// When `X-RateLimit-Remaining` falls below this (10), the poller waits for the reset.
    pub rate_limit_threshold: u64,
    /// Pages fetched per poll, following `Link: rel="next"` (3: the feed holds 300 events).
    pub max_pages: u32,
    /// `per_page` of the first request (100, GitHub's maximum).
    pub per_page: u32,
    /// The largest answer (one page, or an error body) read, in bytes
    /// ([`DEFAULT_MAX_PAGE_BYTES`], 16 MiB). A longer page 1 is a failed poll, retried with
    /// backoff; a longer later page ends the poll with the pages read before it.
    pub max_page_bytes: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// How many recent event ids are remembered to drop repeats across overlapping polls
    /// (10,000: about 30 full polls).
    pub recent_ids: usize,
    /// How long one second of GitHub's headers lasts: `X-Poll-Interval`, `Retry-After`, the
    /// distance to `X-RateLimit-Reset`, and the 60 s default interval are multiplied by it.
    /// One second in production; tests shorten it to keep GitHub's timing rules without waiting.
    pub time_unit: Duration,
    /// `POLL_MODE`: [`PollMode::Interval`] by default.
    pub mode: PollMode,
    /// `POLL_RESERVE`: requests of the rate limit adaptive mode leaves for others (the tracked
    /// repositories); `None` keeps 10% of `X-RateLimit-Limit`.
    pub reserve: Option<u64>,
    /// `POLL_MIN_INTERVAL_MS`: the shortest wait between page-1 requests in adaptive mode,
    /// in GitHub's time (scaled by [`time_unit`](GitHubConfig::time_unit)); 500 ms.
    pub min_poll_interval: Duration,
    /// `SAVE_EVENTS_FORMAT`: how the events directory is written.
    pub save_format: SaveFormat,
}

impl Default for GitHubConfig {
    fn default() -> GitHubConfig {
        GitHubConfig {
            api_url: SecretUrl::from(DEFAULT_API_URL),
            token: None,
            state_file: None,
            events_dir: None,
            request_timeout: Duration::from_secs(30),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            rate_limit_threshold: 10,
            max_pages: 3,
            per_page: 100,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            recent_ids: 10_000,
            time_unit: Duration::from_secs(1),
            mode: PollMode::Interval,
            reserve: None,
            min_poll_interval: DEFAULT_MIN_POLL_INTERVAL,
            save_format: SaveFormat::Poll,
        }
    }
}

impl GitHubConfig {
    /// The defaults, against `api_url`.
    pub fn new(api_url: impl Into<SecretUrl>) -> GitHubConfig {
        GitHubConfig {
            api_url: api_url.into(),
            ..GitHubConfig::default()
        }
    }

    /// `n` seconds of GitHub's headers, in [`time_unit`](GitHubConfig::time_unit)s. A header
    /// asking for more than [`MAX_HEADER_WAIT_SECS`] is capped: a bogus value must not stop the
    /// poller for days.
    pub(crate) fn seconds(&self, n: f64) -> Duration {
        let n = if n.is_nan() { 0.0 } else { n };
        self.time_unit.mul_f64(n.clamp(0.0, MAX_HEADER_WAIT_SECS))
    }
}

impl fmt::Debug for GitHubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubConfig")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("state_file", &self.state_file)
            .field("events_dir", &self.events_dir)
            .field("request_timeout", &self.request_timeout)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("rate_limit_threshold", &self.rate_limit_threshold)
            .field("max_pages", &self.max_pages)
            .field("per_page", &self.per_page)
            .field("max_page_bytes", &self.max_page_bytes)
            .field("user_agent", &self.user_agent)
            .field("recent_ids", &self.recent_ids)
            .field("time_unit", &self.time_unit)
            .field("mode", &self.mode)
            .field("reserve", &self.reserve)
            .field("min_poll_interval", &self.min_poll_interval)
            .field("save_format", &self.save_format)
            .finish()
    }
}
