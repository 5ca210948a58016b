//! The GitHub Events API poller: an [`EventSource`] over `GET /events` that follows GitHub's
//! rules (ETag, `X-Poll-Interval`, rate limits, pagination) and survives whatever GitHub answers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), github_stats_core::SourceError> {
//! use std::sync::Arc;
//! use github_stats_core::source::github::{GitHubConfig, GitHubPoller};
//! let mut config = GitHubConfig::default();
//! config.state_file = Some("state/client-state.json".into());
//! let poller = Arc::new(GitHubPoller::new(config)?);
//! let status = poller.status(); // for /health: status.snapshot()
//! # Ok(()) }
//! ```
//!
//! One call of [`EventSource::next_batch`] is one poll: it waits until the poll is due, fetches
//! page 1 (with `If-None-Match`), then pages 2 and 3 through `Link: rel="next"`, and returns the
//! new events of the kept types as one batch. A `304 Not Modified` is not a batch: the call
//! waits for the next poll. A failed poll is returned as an error after scheduling the retry, so
//! the next call waits for the backoff. With [`PollMode::Adaptive`] polls come as often as the
//! rate limit allows and pages 2 and 3 only when the page before shares nothing with the
//! previous poll; [`capture`] estimates the share of the stream read. See `docs/poller.md`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Checkpoint, EventBatch, EventSource, SourceError, StoredBatch};
use crate::backoff::Backoff;
use crate::id_set::{IdSet, RecentIds};
use crate::parse::{ParseStats, RecordOutcome, parse_record};
use crate::source::{describe_http_error, same_host_redirects};

pub mod capture;
mod config;
pub mod hour_files;
mod state;
mod status;

use super::state_file::StateFile;
use capture::CaptureEstimator;
pub use capture::CaptureSnapshot;
pub use config::{
    DEFAULT_API_URL, DEFAULT_MAX_PAGE_BYTES, DEFAULT_MIN_POLL_INTERVAL, DEFAULT_POLL_INTERVAL_SECS,
    DEFAULT_USER_AGENT, GitHubConfig, MAX_HEADER_WAIT_SECS, PollMode, SaveFormat,
};
use hour_files::HourFiles;
use state::{PollState, STATE_VERSION};
pub use status::{PollCounters, PollerSnapshot, PollerStatus};

/// The longest a restart waits for a `next_poll_time` read from the state file, in seconds of
/// GitHub's headers (a rate-limit reset is at most an hour away).
const MAX_STARTUP_WAIT_SECS: f64 = 3600.0;

/// The longest ETag kept and sent back as `If-None-Match`. GitHub's are under 100 bytes; a
/// longer one (a proxy's, a hostile server's) could make every later request too large to be
/// accepted (`431`), and would stick in the state file across restarts.
pub const MAX_ETAG_BYTES: usize = 512;

/// In adaptive mode, after this many gaps in a row the next poll comes sooner (see
/// `adaptive_pace`): a poll that overlaps again measures the stream's rate, without which a
/// gap's loss cannot be estimated. It reads half the pages' worth of new events for up to three
/// requests once in 16 polls: about 1% of the budget.
const PROBE_AFTER_GAPS: u32 = 16;

/// Resets this many seconds apart or less belong to the same rate-limit window.
const SAME_WINDOW_SECS: i64 = 5;

/// The window the adaptive pace assumes when `X-RateLimit-Reset` is past or too far ahead.
const FALLBACK_WINDOW_SECS: f64 = 3600.0;

/// Polls GitHub's public events. Implements [`EventSource`]; share it as `Arc<GitHubPoller>`
/// and read its [`status`](GitHubPoller::status) for `/health`.
pub struct GitHubPoller {
    config: GitHubConfig,
    client: reqwest::Client,
    events_url: Url,
    auth: Option<HeaderValue>,
    /// Held for a whole poll (one poll at a time).
    poll: tokio::sync::Mutex<PollLoop>,
    /// What the state file holds; never held across an await.
    shared: Mutex<PersistedState>,
    status: PollerStatus,
    /// Whether an ETag over [`MAX_ETAG_BYTES`] was reported already (once is enough).
    etag_warned: std::sync::atomic::AtomicBool,
    /// Whether headers that cannot be true (or none) were reported already (once is enough).
    rate_headers_warned: std::sync::atomic::AtomicBool,
    /// Whether a reserve leaving no request for polling was reported already.
    reserve_warned: std::sync::atomic::AtomicBool,
    state_file: Option<StateFile<PollState>>,
    /// Where time is counted from for the capture estimator.
    origin: Instant,
}

impl std::fmt::Debug for GitHubPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubPoller")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// State of the polling loop itself.
struct PollLoop {
    next_poll_at: Option<Instant>,
    consecutive_failures: u32,
    /// The ETag of the last page 1 answered, sent as `If-None-Match`.
    etag: Option<String>,
    recent: RecentIds,
    /// Every event id of the last poll answered 200, for gap detection.
    previous_poll_ids: IdSet,
    /// When the last successful poll's page 1 was sent (its snapshot of the stream).
    previous_poll_at: Option<Instant>,
    /// Polls in a row that shared no event with the previous one.
    gaps_in_row: u32,
    capture: CaptureEstimator,
    /// The rate limit of the last answer.
    last_rate: RateLimit,
    /// `SAVE_EVENTS_FORMAT=gharchive`: the hour files (taken out while a write runs).
    hour_files: Option<HourFiles>,
}

/// What is persisted.
struct PersistedState {
    persisted: PollState,
}

/// The position after a poll ([`Checkpoint`]): persisted once the poll's events are stored.
struct PollCheckpoint {
    /// The poll's page-1 ETag.
    etag: Option<String>,
    /// Every event id the poll read.
    ids: Vec<u64>,
}

/// What one page-1 request led to.
enum PollOutcome {
    Batch(EventBatch),
    NotModified,
    Failed(String),
}

/// An answer of GitHub, headers read.
struct Answer {
    status: StatusCode,
    rate: RateLimit,
    poll_interval: Option<u64>,
    retry_after: Option<u64>,
    etag: Option<String>,
    next: Option<Url>,
    body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default)]
struct RateLimit {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<i64>,
}

impl RateLimit {
    /// The later state of the budget of two answers of one poll: the later window's, or, in
    /// the same window, the one with fewer requests left. Pages fetched at once may be answered
    /// in any order; the last one read is not always the last one counted.
    fn latest(self, other: RateLimit) -> RateLimit {
        if self.remaining.is_none() {
            return other;
        }
        if other.remaining.is_none() {
            return self;
        }
        // Resets a few seconds apart are one window (a reset computed and rounded per answer).
        let (a, b) = (self.reset.unwrap_or(0), other.reset.unwrap_or(0));
        if b.saturating_sub(a) > SAME_WINDOW_SECS {
            return other;
        }
        if a.saturating_sub(b) > SAME_WINDOW_SECS {
            return self;
        }
        if other.remaining < self.remaining {
            other
        } else {
            self
        }
    }
}

impl GitHubPoller {
    /// A poller with `config`. Reads the state file (a corrupt one is reported and replaced) and
    /// creates the events directory when one is set. Fails only on a configuration that cannot
    /// work: an invalid API URL, a token that is not a valid header value, an events directory
    /// that cannot be created.
    pub fn new(config: GitHubConfig) -> Result<GitHubPoller, SourceError> {
        let base = config.api_url.expose_secret().trim_end_matches('/');
        let events_url = Url::parse(&format!("{base}/events?per_page={}", config.per_page))
            .map_err(|e| SourceError::Config(format!("invalid GitHub API URL: {e}")))?;
        if !matches!(events_url.scheme(), "http" | "https") {
            return Err(SourceError::Config(
                "GitHub API URL must be http or https".into(),
            ));
        }
        let auth = match config.token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        SourceError::Config(
                            "GitHub token contains characters not allowed in an HTTP header".into(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .redirect(same_host_redirects())
            .build()
            .map_err(|e| SourceError::Config(format!("cannot build HTTP client: {e}")))?;
        if let Some(dir) = &config.events_dir {
            std::fs::create_dir_all(dir).map_err(|source| SourceError::File {
                path: dir.clone(),
                source,
            })?;
        }

        let status = PollerStatus::default();
        let mut startup_error = None;
        let state_file = config
            .state_file
            .clone()
            .map(|path| StateFile::<PollState>::new(path, "poller state"));
        let loaded = match &state_file {
            None => None,
            Some(file) => match file.load_blocking() {
                Ok(state) => state,
                Err(e) => {
                    warn!(error = %e, "poller state file unusable, starting afresh and replacing it");
                    startup_error = Some(e.to_string());
                    None
                }
            },
        };
        let replace_corrupt = startup_error.is_some();
        let mut persisted = loaded.unwrap_or_default();
        if persisted
            .etag
            .as_ref()
            .is_some_and(|etag| etag.len() > MAX_ETAG_BYTES)
        {
            warn!(
                max_etag_bytes = MAX_ETAG_BYTES,
                "poller state file holds an etag too long to send back, dropping it"
            );
            persisted.etag = None;
        }

        let mut recent = RecentIds::new(config.recent_ids.max(1));
        for &id in &persisted.last_poll_event_ids {
            recent.insert(id);
        }
        let next_poll_at = persisted.next_poll_time.and_then(|t| {
            let wait = (t - Utc::now()).to_std().ok()?;
            let wait = wait.min(config.seconds(MAX_STARTUP_WAIT_SECS));
            info!(
                wait_ms = wait.as_millis() as u64,
                "waiting for the next poll time from the state file"
            );
            Some(Instant::now() + wait)
        });
        let interval = persisted
            .poll_interval
            .unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
        status.update(|s| {
            s.api_url = config.api_url.to_string();
            s.authenticated = auth.is_some();
            s.last_successful_poll_at = persisted.last_successful_poll;
            s.next_poll_at = persisted.next_poll_time;
            s.poll_interval_seconds = interval;
            s.counters = persisted.counters;
            if let Some(e) = &startup_error {
                s.last_error = Some(e.clone());
                s.last_error_at = Some(Utc::now());
            }
        });
        let hour_files = match (&config.events_dir, config.save_format) {
            (Some(dir), SaveFormat::GhArchive) => {
                Some(HourFiles::new(dir).map_err(|source| SourceError::File {
                    path: dir.clone(),
                    source,
                })?)
            }
            _ => None,
        };
        status.update(|s| {
            s.capture.mode = config.mode.as_str().to_owned();
        });
        let poll = PollLoop {
            next_poll_at,
            consecutive_failures: 0,
            etag: persisted.etag.clone(),
            recent,
            previous_poll_ids: persisted.last_poll_event_ids.iter().copied().collect(),
            previous_poll_at: None,
            gaps_in_row: 0,
            capture: CaptureEstimator::new(u64::from(config.max_pages.max(1) * config.per_page)),
            last_rate: RateLimit::default(),
            hour_files,
        };
        let poller = GitHubPoller {
            config,
            client,
            events_url,
            auth,
            poll: tokio::sync::Mutex::new(poll),
            shared: Mutex::new(PersistedState { persisted }),
            status,
            etag_warned: std::sync::atomic::AtomicBool::new(false),
            rate_headers_warned: std::sync::atomic::AtomicBool::new(false),
            reserve_warned: std::sync::atomic::AtomicBool::new(false),
            state_file,
            origin: Instant::now(),
        };
        if replace_corrupt
            && let Some(file) = &poller.state_file
            && let Err(e) = file.save_blocking(&poller.snapshot_state())
        {
            warn!(error = %e, "cannot replace the poller state file");
            poller.record_error(e.to_string());
        }
        Ok(poller)
    }

    /// [`GitHubPoller::new`], after checking that the state file belongs to `store`: a state
    /// file naming stored events (an ETag, the last poll's ids) beside a store that holds no
    /// event at all outlived its store (a wiped `DATA_DIR`, a new database); trusting it would
    /// skip the events it names for good. It is set aside (renamed to `*.orphaned`, with a
    /// warning) and the poller starts afresh. A store that cannot answer is not waited for:
    /// the state file is kept.
    pub async fn open(
        config: GitHubConfig,
        store: &dyn crate::store::MetricsQuery,
    ) -> Result<GitHubPoller, SourceError> {
        if let Some(path) = config.state_file.clone() {
            let loaded = tokio::task::spawn_blocking({
                let path = path.clone();
                move || StateFile::<PollState>::new(path, "poller state").load_blocking()
            })
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
            let claims_stored =
                loaded.is_some_and(|s| s.etag.is_some() || !s.last_poll_event_ids.is_empty());
            if claims_stored {
                match store.total_events().await {
                    Ok(0) => set_aside(&path),
                    Ok(_) => {}
                    Err(e) => {
                        warn!(error = %e, "cannot check the poller state file against the store, keeping it")
                    }
                }
            }
        }
        GitHubPoller::new(config)
    }

    /// A handle on the poller's status, for `/health`.
    pub fn status(&self) -> PollerStatus {
        self.status.clone()
    }

    /// The configuration in use.
    pub fn config(&self) -> &GitHubConfig {
        &self.config
    }

    fn lock_shared(&self) -> std::sync::MutexGuard<'_, PersistedState> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot_state(&self) -> PollState {
        let mut snapshot = self.lock_shared().persisted.clone();
        snapshot.version = STATE_VERSION;
        snapshot
    }

    /// Writes the state file (if any) on the blocking pool; saves land in the order taken.
    async fn save_state(&self) -> Result<(), SourceError> {
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        Ok(file.save(self.snapshot_state()).await?)
    }

    async fn save_state_logged(&self) {
        if let Err(e) = self.save_state().await {
            warn!(error = %e, "cannot save poller state");
            self.record_error(e.to_string());
        }
    }

    fn record_error(&self, message: String) {
        self.status.update(|s| {
            s.last_error = Some(message);
            s.last_error_at = Some(Utc::now());
        });
    }

    /// Sends one GET; the error text never holds the token (it is only in a sensitive header).
    async fn fetch(&self, url: &Url, etag: Option<&str>) -> Result<Answer, String> {
        let mut request = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(auth) = &self.auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| describe_http_error(&e, "GitHub", Some(self.config.request_timeout)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_capped(response, self.config.max_page_bytes)
            .await
            .map_err(|e| match e {
                BodyError::Http(e) => {
                    describe_http_error(&e, "GitHub", Some(self.config.request_timeout))
                }
                BodyError::TooLarge(message) => message,
            })?;
        Ok(Answer {
            status,
            rate: RateLimit {
                limit: header_u64(&headers, "x-ratelimit-limit"),
                remaining: header_u64(&headers, "x-ratelimit-remaining"),
                reset: header_u64(&headers, "x-ratelimit-reset")
                    .and_then(|r| i64::try_from(r).ok()),
            },
            poll_interval: header_u64(&headers, "x-poll-interval"),
            retry_after: header_u64(&headers, header::RETRY_AFTER.as_str()),
            etag: headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .and_then(|etag| self.keepable_etag(etag)),
            next: next_link(&headers, url),
            body,
        })
    }

    /// `etag` if it is short enough to be sent back; otherwise `None`, reported once.
    fn keepable_etag(&self, etag: &str) -> Option<String> {
        if etag.len() <= MAX_ETAG_BYTES {
            return Some(etag.to_owned());
        }
        if !self
            .etag_warned
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            warn!(
                etag_bytes = etag.len(),
                max_etag_bytes = MAX_ETAG_BYTES,
                "github sent an etag too long to send back, polling without one"
            );
        }
        None
    }

    /// Records the rate limit of an answer; the wait until its reset when it is below the
    /// threshold.
    fn note_rate_limit(&self, rate: RateLimit) -> Option<Duration> {
        if rate.remaining.is_none() && rate.reset.is_none() {
            return None;
        }
        let reset_at = rate.reset.and_then(|r| DateTime::from_timestamp(r, 0));
        self.status.update(|s| {
            s.rate_limit_limit = rate.limit.or(s.rate_limit_limit);
            s.rate_limit_remaining = rate.remaining;
            s.rate_limit_reset_at = reset_at;
        });
        match rate.remaining {
            Some(remaining) if remaining < self.rate_floor(rate) => {
                let wait = self.until_reset(rate);
                if self.config.mode == PollMode::Adaptive {
                    // The pace ends each window at the reserve: reaching it is the plan.
                    debug!(
                        remaining,
                        reset_in_s = wait.map(|w| w.as_secs()),
                        "poll budget spent, waiting for the reset"
                    );
                } else {
                    warn!(
                        remaining,
                        reset_in_s = wait.map(|w| w.as_secs()),
                        "rate limit low, waiting for the reset"
                    );
                }
                wait
            }
            _ => None,
        }
    }

    /// Requests of the rate limit adaptive mode leaves for others.
    fn reserve(&self, rate: RateLimit) -> u64 {
        self.config
            .reserve
            .unwrap_or_else(|| rate.limit.or(rate.remaining).unwrap_or(0) / 10)
    }

    /// The remaining requests under which no more are sent until the reset.
    fn rate_floor(&self, rate: RateLimit) -> u64 {
        match self.config.mode {
            PollMode::Interval => self.config.rate_limit_threshold,
            PollMode::Adaptive => self.reserve(rate).saturating_add(1),
        }
    }

    fn warn_rate_headers(&self, problem: &'static str, rate: RateLimit) {
        if !self
            .rate_headers_warned
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            warn!(
                problem,
                limit = rate.limit,
                remaining = rate.remaining,
                reset = rate.reset,
                "github's rate-limit headers cannot be true, pacing on bounded values"
            );
        }
    }

    /// The adaptive wait after a poll: the requests left above the reserve spread evenly until
    /// the reset, each poll waiting the share of the requests it is expected to spend, never
    /// under the minimum interval. `None` without rate-limit headers.
    ///
    /// A poll is expected to spend one request when the stream (`stream_rate`, events a second)
    /// fills less than 90% of a page between two requests at this pace: page 1 then overlaps.
    /// A faster stream outruns the budget: each poll reads every page (a page of new events
    /// per request, the most a request can read) and waits for all of them. Before the rate is
    /// known, one request: a slow stream is then read at the budget's full pace from the start,
    /// and a fast one is soon measured (its first polls overlap on page 2 or 3).
    fn adaptive_pace(
        &self,
        rate: RateLimit,
        stream_rate: Option<f64>,
        gaps_in_row: u32,
    ) -> Option<Duration> {
        let (Some(mut remaining), Some(reset)) = (rate.remaining, rate.reset) else {
            self.warn_rate_headers("no X-RateLimit-Remaining or -Reset", rate);
            return None;
        };
        if let Some(limit) = rate.limit
            && remaining > limit
        {
            self.warn_rate_headers("remaining above limit", rate);
            remaining = limit;
        }
        let now = Utc::now();
        let mut window =
            (reset - now.timestamp()) as f64 - f64::from(now.timestamp_subsec_millis()) / 1000.0;
        if !(-1.0..=MAX_HEADER_WAIT_SECS).contains(&window) {
            self.warn_rate_headers("reset in the past or too far ahead", rate);
            window = FALLBACK_WINDOW_SECS;
        }
        let window = window.max(0.0);
        if let Some(limit) = rate.limit
            && self.reserve(rate) >= limit
            && !self
                .reserve_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            warn!(
                reserve = self.reserve(rate),
                limit, "the poll reserve keeps the whole rate limit, polling once a window"
            );
        }
        let available = remaining.saturating_sub(self.reserve(rate)).max(1) as f64;
        let per_request = window / available;
        let cost = match stream_rate {
            Some(r) if r * per_request <= 0.9 * f64::from(self.config.per_page) => 1,
            Some(_) => self.config.max_pages.max(1),
            None => 1,
        };
        let mut pace = per_request * f64::from(cost);
        if gaps_in_row > 0 && gaps_in_row.is_multiple_of(PROBE_AFTER_GAPS) {
            // Soon enough for half the pages to reach the previous poll at the rate last
            // measured (a sample far from the depth, see `capture`, even if that rate is well
            // under the truth), or, without one, a half, a quarter, an eighth of the pace.
            let depth = f64::from(self.config.max_pages.max(1) * self.config.per_page);
            pace = match stream_rate {
                Some(r) if r > 0.0 => pace.min(0.5 * depth / r),
                _ => pace / f64::from(1u32 << (gaps_in_row / PROBE_AFTER_GAPS).min(3)),
            };
        }
        let min = self.config.min_poll_interval.as_secs_f64();
        Some(self.config.seconds(pace.max(min)))
    }

    /// The wait from now after a successful poll whose page 1 was sent at `sent`:
    /// `X-Poll-Interval` from now, or the adaptive pace from `sent` (the pace is the time
    /// between requests; the poll's own time is part of it); never before a rate-limit wait.
    #[allow(clippy::too_many_arguments)]
    fn next_delay(
        &self,
        sent: Instant,
        interval: Duration,
        rate_wait: Option<Duration>,
        rate: RateLimit,
        stream_rate: Option<f64>,
        gaps_in_row: u32,
    ) -> Duration {
        let pace = match self.config.mode {
            PollMode::Interval => interval,
            PollMode::Adaptive => match self.adaptive_pace(rate, stream_rate, gaps_in_row) {
                Some(pace) => pace.saturating_sub(sent.elapsed()),
                None => interval,
            },
        };
        rate_wait.map_or(pace, |w| w.max(pace))
    }

    /// How many pages after page 1 this poll fetches at once with it (adaptive mode): all of
    /// them when the stream's rate says more events came since the previous poll than the
    /// pages hold (a gap, in which every page is read anyway) and the budget has room. Fetched
    /// one after another, each page would find the stream moved on by the time of a request,
    /// and repeat that many events of the page before: at 200 events a second and 300 ms a
    /// request, a fifth of each page.
    fn pages_to_prefetch(&self, poll: &PollLoop, sent: Instant) -> u32 {
        let extra = self.config.max_pages.saturating_sub(1).min(2);
        if self.config.mode != PollMode::Adaptive || extra == 0 || poll.previous_poll_ids.is_empty()
        {
            return 0;
        }
        let (Some(rate), Some(previous), Some(remaining)) = (
            poll.capture.rate(),
            poll.previous_poll_at,
            poll.last_rate.remaining,
        ) else {
            return 0;
        };
        let since = sent.saturating_duration_since(previous).as_secs_f64()
            / self.config.time_unit.as_secs_f64();
        let depth = f64::from(self.config.max_pages * self.config.per_page);
        let room = remaining.saturating_sub(self.reserve(poll.last_rate));
        if rate * since > depth && room > u64::from(extra) {
            extra
        } else {
            0
        }
    }

    /// Feeds the capture estimator with a poll whose page 1 was sent at `sent`, and publishes
    /// its figures.
    fn record_capture(
        &self,
        poll: &mut PollLoop,
        sent: Instant,
        new: u64,
        overlapped: Option<bool>,
    ) {
        let unit = self.config.time_unit.as_secs_f64();
        let github_secs = |d: Duration| d.as_secs_f64() / unit;
        let since = poll
            .previous_poll_at
            .map(|previous| github_secs(sent.saturating_duration_since(previous)));
        let at = github_secs(sent.saturating_duration_since(self.origin));
        poll.capture.record(at, since, new, overlapped);
        poll.previous_poll_at = Some(sent);
        let mut snapshot = poll.capture.snapshot(at);
        snapshot.mode = self.config.mode.as_str().to_owned();
        self.status.update(|s| s.capture = snapshot);
    }

    /// The wait until `X-RateLimit-Reset`, plus a second of margin (the header has second
    /// precision), in scaled time.
    fn until_reset(&self, rate: RateLimit) -> Option<Duration> {
        let reset = rate.reset?;
        let now = Utc::now();
        let distance =
            (reset - now.timestamp()) as f64 - f64::from(now.timestamp_subsec_millis()) / 1000.0;
        Some(self.config.seconds(distance.max(0.0) + 1.0))
    }

    fn backoff(&self, failures: u32) -> Duration {
        Backoff::new(self.config.min_backoff, self.config.max_backoff).wait(failures)
    }

    fn schedule(&self, poll: &mut PollLoop, delay: Duration) {
        poll.next_poll_at = Some(Instant::now() + delay);
        let at = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|d| Utc::now().checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.lock_shared().persisted.next_poll_time = Some(at);
        self.status.update(|s| s.next_poll_at = Some(at));
    }

    fn set_interval(&self, header: Option<u64>) -> Duration {
        // What is shown and kept is the wait itself: a header past the cap waits the cap.
        let secs = header
            .filter(|&s| s > 0)
            .unwrap_or(DEFAULT_POLL_INTERVAL_SECS)
            .min(MAX_HEADER_WAIT_SECS as u64);
        self.lock_shared().persisted.poll_interval = Some(secs);
        self.status.update(|s| s.poll_interval_seconds = secs);
        self.config.seconds(secs as f64)
    }

    async fn fail(
        &self,
        poll: &mut PollLoop,
        message: String,
        retry_after: Option<u64>,
    ) -> PollOutcome {
        poll.consecutive_failures = poll.consecutive_failures.saturating_add(1);
        let mut delay = self.backoff(poll.consecutive_failures);
        if let Some(secs) = retry_after {
            delay = delay.max(self.config.seconds(secs as f64));
        }
        self.schedule(poll, delay);
        let counters = {
            let mut shared = self.lock_shared();
            shared.persisted.counters.failed_polls += 1;
            shared.persisted.counters
        };
        warn!(
            error = %message,
            failures = poll.consecutive_failures,
            retry_in_ms = delay.as_millis() as u64,
            "poll failed, backing off"
        );
        // An hour over is finished even while GitHub does not answer.
        self.write_hour_files(poll, Utc::now(), &[]).await;
        self.record_failure(poll, counters, message).await
    }

    /// Publishes a failed or rate-limited poll in the status and saves the state.
    async fn record_failure(
        &self,
        poll: &PollLoop,
        counters: PollCounters,
        message: String,
    ) -> PollOutcome {
        let now = Utc::now();
        self.status.update(|s| {
            s.last_poll_at = Some(now);
            s.consecutive_failures = poll.consecutive_failures;
            s.last_error = Some(message.clone());
            s.last_error_at = Some(now);
            s.counters = counters;
        });
        self.save_state_logged().await;
        PollOutcome::Failed(message)
    }

    async fn rate_limited(&self, poll: &mut PollLoop, answer: &Answer) -> PollOutcome {
        let wait = match answer.retry_after {
            Some(secs) => self.config.seconds(secs as f64),
            None => self
                .until_reset(answer.rate)
                .unwrap_or_else(|| self.config.seconds(DEFAULT_POLL_INTERVAL_SECS as f64)),
        };
        // Never sooner than the backoff: a reset already past (clock skew) or a zero
        // Retry-After answered again and again must not turn into a tight loop.
        poll.consecutive_failures = poll.consecutive_failures.saturating_add(1);
        let wait = wait
            .max(self.config.min_backoff)
            .max(self.backoff(poll.consecutive_failures));
        self.schedule(poll, wait);
        let counters = {
            let mut shared = self.lock_shared();
            shared.persisted.counters.rate_limited += 1;
            shared.persisted.counters
        };
        let message = format!(
            "rate limited by GitHub (HTTP {}), waiting {:.1} s",
            answer.status.as_u16(),
            wait.as_secs_f64()
        );
        warn!(
            status = answer.status.as_u16(),
            remaining = answer.rate.remaining,
            wait_ms = wait.as_millis() as u64,
            "rate limited, waiting as github says"
        );
        self.write_hour_files(poll, Utc::now(), &[]).await;
        self.record_failure(poll, counters, message).await
    }

    /// One poll: page 1, then the following pages.
    async fn poll_once(&self, poll: &mut PollLoop) -> PollOutcome {
        let polled_at = Utc::now();
        let sent = Instant::now();
        let etag = poll.etag.as_deref();
        let (first, prefetched) = match self.pages_to_prefetch(poll, sent) {
            0 => (self.fetch(&self.events_url, etag).await, VecDeque::new()),
            1 => {
                let second = page_url(&self.events_url, 2);
                let (first, second) = tokio::join!(
                    self.fetch(&self.events_url, etag),
                    self.fetch(&second, None)
                );
                (first, VecDeque::from([second]))
            }
            _ => {
                let (second, third) =
                    (page_url(&self.events_url, 2), page_url(&self.events_url, 3));
                let (first, second, third) = tokio::join!(
                    self.fetch(&self.events_url, etag),
                    self.fetch(&second, None),
                    self.fetch(&third, None)
                );
                (first, VecDeque::from([second, third]))
            }
        };
        let first = match first {
            Ok(answer) => answer,
            Err(message) => return self.fail(poll, message, None).await,
        };
        poll.last_rate = first.rate;
        let rate_wait = self.note_rate_limit(first.rate);
        match first.status {
            StatusCode::NOT_MODIFIED => {
                let interval = self.set_interval(first.poll_interval);
                let delay = self.next_delay(
                    sent,
                    interval,
                    rate_wait,
                    first.rate,
                    poll.capture.rate(),
                    poll.gaps_in_row,
                );
                poll.consecutive_failures = 0;
                // Not a sample of the rate: GitHub's answer is the one of the previous poll,
                // and the next 200 measures from that poll, across this one.
                self.write_hour_files(poll, polled_at, &[]).await;
                self.schedule(poll, delay);
                let counters = {
                    let mut shared = self.lock_shared();
                    let c = &mut shared.persisted.counters;
                    c.polls += 1;
                    c.not_modified += 1;
                    shared.persisted.last_successful_poll = Some(polled_at);
                    shared.persisted.counters
                };
                self.status.update(|s| {
                    s.last_poll_at = Some(polled_at);
                    s.last_successful_poll_at = Some(polled_at);
                    s.consecutive_failures = 0;
                    s.counters = counters;
                });
                debug!(next_in_ms = delay.as_millis() as u64, "not modified");
                self.save_state_logged().await;
                PollOutcome::NotModified
            }
            StatusCode::OK => {
                self.read_pages(poll, first, prefetched, rate_wait, polled_at, sent)
                    .await
            }
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
                if first.retry_after.is_some() || first.rate.remaining == Some(0) =>
            {
                self.rate_limited(poll, &first).await
            }
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE if poll.etag.is_some() => {
                // Most likely our If-None-Match: never send that ETag again.
                warn!("github refused the request's headers as too large, dropping the etag");
                poll.etag = None;
                self.lock_shared().persisted.etag = None;
                let message =
                    "GitHub answered HTTP 431 to a conditional request: its ETag is dropped"
                        .to_owned();
                self.fail(poll, message, first.retry_after).await
            }
            status if status.is_redirection() => {
                let message = format!(
                    "GitHub answered HTTP {} redirecting to another host, not followed",
                    status.as_u16()
                );
                self.fail(poll, message, first.retry_after).await
            }
            status => {
                let message = format!(
                    "GitHub answered HTTP {status}{}",
                    error_message(&first.body)
                );
                self.fail(poll, message, first.retry_after).await
            }
        }
    }

    async fn read_pages(
        &self,
        poll: &mut PollLoop,
        first: Answer,
        mut prefetched: VecDeque<Result<Answer, String>>,
        mut rate_wait: Option<Duration>,
        polled_at: DateTime<Utc>,
        sent: Instant,
    ) -> PollOutcome {
        // Each page is parsed once: into the byte ranges of its elements, kept beside it.
        let first_elements = match crate::parse::json_array_elements(&first.body) {
            Ok(ranges) => ranges,
            Err(e) => {
                return self
                    .fail(
                        poll,
                        format!("GitHub answered invalid JSON on page 1: {e}"),
                        None,
                    )
                    .await;
            }
        };
        let interval = self.set_interval(first.poll_interval);
        let mut rate = first.rate;
        let etag = first.etag.clone();
        let mut next = first.next.clone();
        let mut bodies = vec![first.body];
        let mut ranges = vec![first_elements];
        let mut page_error = None;
        while bodies.len() < self.config.max_pages.max(1) as usize && rate_wait.is_none() {
            if self.config.mode == PollMode::Adaptive
                && page_overlaps(
                    &bodies[bodies.len() - 1],
                    &ranges[ranges.len() - 1],
                    &poll.previous_poll_ids,
                )
            {
                // The events after this page were read by the previous poll.
                break;
            }
            let Some(url) = next.take() else { break };
            let fetched = match prefetched.pop_front() {
                Some(fetched) => fetched,
                None if url.origin() != self.events_url.origin() => {
                    page_error = Some(format!(
                        "not following a next page on another origin ({})",
                        url.origin().ascii_serialization()
                    ));
                    break;
                }
                None => self.fetch(&url, None).await,
            };
            let answer = match fetched {
                Ok(answer) => answer,
                Err(e) => {
                    page_error = Some(format!("page {}: {e}", bodies.len() + 1));
                    break;
                }
            };
            if answer.rate.remaining.is_some() {
                rate = rate.latest(answer.rate);
                poll.last_rate = rate;
            }
            rate_wait = self.note_rate_limit(rate);
            if answer.status.is_redirection() {
                page_error = Some(format!(
                    "page {}: GitHub answered HTTP {} redirecting to another host, not followed",
                    bodies.len() + 1,
                    answer.status.as_u16()
                ));
                break;
            }
            if answer.status != StatusCode::OK {
                page_error = Some(format!(
                    "page {}: GitHub answered HTTP {}{}",
                    bodies.len() + 1,
                    answer.status,
                    error_message(&answer.body)
                ));
                break;
            }
            match crate::parse::json_array_elements(&answer.body) {
                Ok(page) => ranges.push(page),
                Err(e) => {
                    page_error = Some(format!(
                        "page {}: GitHub answered invalid JSON: {e}",
                        bodies.len() + 1
                    ));
                    break;
                }
            }
            next = answer.next;
            bodies.push(answer.body);
        }
        if let Some(message) = &page_error {
            warn!(error = %message, "poll incomplete, keeping the pages read");
            self.record_error(message.clone());
        }

        let elements: Vec<&str> = bodies
            .iter()
            .zip(&ranges)
            .flat_map(|(body, page)| {
                page.iter().map(move |r| {
                    std::str::from_utf8(&body[r.clone()]).expect("validated as JSON, so UTF-8")
                })
            })
            .collect();
        let bytes: u64 = bodies.iter().map(|b| b.len() as u64).sum();

        if let Some(dir) = &self.config.events_dir
            && self.config.save_format == SaveFormat::Poll
        {
            let mut json = String::with_capacity(bytes as usize + 2);
            json.push('[');
            for (i, e) in elements.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                json.push_str(e);
            }
            json.push(']');
            let dir = dir.clone();
            let written =
                tokio::task::spawn_blocking(move || write_poll_file(&dir, polled_at, &json))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            match written {
                Ok(path) => debug!(path = %path.display(), events = elements.len(), "poll saved"),
                Err(e) => {
                    warn!(error = %e, "cannot save the poll's events to a file");
                    self.record_error(format!("cannot save poll file: {e}"));
                }
            }
        }

        // From here on nothing awaits: the poll is accounted for and returned as one step.
        let mut stats = ParseStats::default();
        let mut events = Vec::new();
        let mut ids = Vec::with_capacity(elements.len());
        let mut new_events = 0u64;
        let mut duplicates = 0u64;
        let mut new_elements = Vec::new();
        for element in &elements {
            let id = event_id(element);
            if let Some(id) = id {
                ids.push(id);
                if !poll.recent.insert(id) {
                    duplicates += 1;
                    continue;
                }
            }
            new_events += 1;
            if poll.hour_files.is_some() {
                new_elements.push(*element);
            }
            let outcome = parse_record(element.as_bytes());
            if let RecordOutcome::Invalid(reason) = &outcome {
                warn!(id, error = %reason, "github sent an event no store may hold, skipped");
            }
            stats.count(outcome, &mut events);
        }
        let overlaps = if poll.previous_poll_ids.is_empty() || ids.is_empty() {
            None
        } else {
            Some(ids.iter().any(|id| poll.previous_poll_ids.contains(id)))
        };
        if !ids.is_empty() {
            poll.previous_poll_ids = ids.iter().copied().collect();
        }
        if overlaps == Some(false) {
            warn!(
                events = elements.len(),
                "poll shares no event with the previous one: events were missed in between"
            );
        }
        poll.consecutive_failures = 0;
        poll.etag = etag.clone();
        poll.gaps_in_row = match overlaps {
            Some(false) => poll.gaps_in_row.saturating_add(1),
            _ => 0,
        };
        self.record_capture(poll, sent, new_events, overlaps);
        let delay = self.next_delay(
            sent,
            interval,
            rate_wait,
            rate,
            poll.capture.rate(),
            poll.gaps_in_row,
        );
        self.schedule(poll, delay);
        let counters = {
            let mut shared = self.lock_shared();
            shared.persisted.last_successful_poll = Some(polled_at);
            let c = &mut shared.persisted.counters;
            c.polls += 1;
            c.pages += bodies.len() as u64;
            c.events_seen += elements.len() as u64;
            c.new_events += new_events;
            c.duplicate_events += duplicates;
            c.kept_events += events.len() as u64;
            c.invalid_events += stats.invalid;
            match overlaps {
                Some(true) => c.overlapping_polls += 1,
                Some(false) => c.gaps += 1,
                None => {}
            }
            *c
        };
        self.status.update(|s| {
            s.last_poll_at = Some(polled_at);
            s.last_successful_poll_at = Some(polled_at);
            s.consecutive_failures = 0;
            s.counters = counters;
        });
        info!(
            pages = bodies.len(),
            events = elements.len(),
            new = new_events,
            kept = events.len(),
            next_in_ms = delay.as_millis() as u64,
            "polled github events"
        );
        self.write_hour_files(poll, polled_at, &new_elements).await;
        self.save_state_logged().await;
        let mut batch = EventBatch::new(
            events,
            stats,
            format!("GET {} ({} pages)", self.events_url.path(), bodies.len()),
        )
        .with_checkpoint(Checkpoint::new(PollCheckpoint { etag, ids }));
        batch.bytes = bytes;
        PollOutcome::Batch(batch)
    }
}

impl GitHubPoller {
    /// Appends a poll's new events to the hour files, on the blocking pool.
    async fn write_hour_files(&self, poll: &mut PollLoop, at: DateTime<Utc>, events: &[&str]) {
        let Some(mut files) = poll.hour_files.take() else {
            return;
        };
        let owned: Vec<String> = events.iter().map(|e| (*e).to_owned()).collect();
        let joined = tokio::task::spawn_blocking(move || {
            let events: Vec<&str> = owned.iter().map(String::as_str).collect();
            let result = files.write(at, &events);
            (files, result)
        })
        .await;
        match joined {
            Ok((files, result)) => {
                poll.hour_files = Some(files);
                if let Err(e) = result {
                    warn!(error = %e, "cannot write the hour file of received events");
                    self.record_error(format!("cannot write hour file: {e}"));
                }
            }
            Err(e) => {
                warn!(error = %e, "hour file writer failed, saving no more events");
                self.record_error(format!("hour file writer failed: {e}"));
            }
        }
    }
}

/// `events_url` asking for page `n` (GitHub's `page` parameter, as its `Link`s do).
fn page_url(events_url: &Url, n: u32) -> Url {
    let mut url = events_url.clone();
    url.query_pairs_mut().append_pair("page", &n.to_string());
    url
}

/// Whether a page (its body and elements' byte ranges) holds an event of `previous`.
fn page_overlaps(body: &[u8], ranges: &[std::ops::Range<usize>], previous: &IdSet) -> bool {
    !previous.is_empty()
        && ranges.iter().any(|r| {
            std::str::from_utf8(&body[r.clone()])
                .ok()
                .and_then(event_id)
                .is_some_and(|id| previous.contains(&id))
        })
}

#[async_trait]
impl EventSource for GitHubPoller {
    /// Waits until the next poll is due, polls, and returns its new kept events (possibly
    /// none). A `304` is not returned: the call waits for the following poll. A failed poll
    /// returns an error after scheduling its retry. Cancel-safe: dropping the future abandons
    /// the poll in progress, which the next call makes again.
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        let mut poll = self.poll.lock().await;
        loop {
            if let Some(at) = poll.next_poll_at {
                tokio::time::sleep_until(at).await;
            }
            match self.poll_once(&mut poll).await {
                PollOutcome::Batch(batch) => return Ok(Some(batch)),
                PollOutcome::NotModified => continue,
                PollOutcome::Failed(message) => return Err(SourceError::Remote(message)),
            }
        }
    }

    /// The poll's events are stored: its ETag and event ids go to the state file, which is
    /// written now.
    async fn checkpoint(&self, checkpoint: Checkpoint, _: StoredBatch) -> Result<(), SourceError> {
        let Some(PollCheckpoint { etag, ids }) = checkpoint.into_inner::<PollCheckpoint>() else {
            return Ok(());
        };
        {
            let mut shared = self.lock_shared();
            shared.persisted.etag = etag;
            if !ids.is_empty() {
                shared.persisted.last_poll_event_ids = ids;
            }
        }
        self.save_state().await
    }
}

/// Renames a state file that outlived its store to `*.orphaned`.
fn set_aside(path: &Path) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".orphaned");
    let aside = PathBuf::from(aside);
    match std::fs::rename(path, &aside) {
        Ok(()) => warn!(
            state_file = %path.display(),
            set_aside_as = %aside.display(),
            "poller state file names stored events but the store holds none: it belongs to another store, starting afresh"
        ),
        Err(e) => warn!(
            state_file = %path.display(),
            error = %e,
            "cannot set aside a poller state file that belongs to another store"
        ),
    }
}

/// Writes a poll's events to `dir/YYYY-MM-DDTHH-MM-SS.json` (with `-N` added when two polls
/// share a second), atomically.
fn write_poll_file(dir: &Path, at: DateTime<Utc>, json: &str) -> std::io::Result<PathBuf> {
    let stem = at.format("%Y-%m-%dT%H-%M-%S").to_string();
    let mut path = dir.join(format!("{stem}.json"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{stem}-{n}.json"));
        n += 1;
    }
    super::write_atomically(&path, json.as_bytes())?;
    Ok(path)
}

/// The id of an event (a numeric string, or a number), without parsing the rest: GitHub sends
/// it first (`{"id":"123",`), read straight off the bytes; anything else goes through serde.
fn event_id(element: &str) -> Option<u64> {
    if let Some(rest) = element.strip_prefix("{\"id\":\"")
        && let Some(end) = rest.find('"')
        && end > 0
        && end <= 20
        && rest.as_bytes()[..end].iter().all(u8::is_ascii_digit)
    {
        return rest[..end].parse().ok();
    }
    event_id_parsed(element)
}

fn event_id_parsed(element: &str) -> Option<u64> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id<'a> {
        Text(&'a str),
        Number(u64),
    }
    #[derive(Deserialize)]
    struct OnlyId<'a> {
        #[serde(borrow, default)]
        id: Option<Id<'a>>,
    }
    match serde_json::from_str::<OnlyId<'_>>(element).ok()?.id? {
        Id::Text(text) => text.parse().ok(),
        Id::Number(n) => Some(n),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The `rel="next"` target of a `Link` header, resolved against the request URL.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let part = part.trim();
            let Some(rest) = part.strip_prefix('<') else {
                continue;
            };
            let Some((target, params)) = rest.split_once('>') else {
                continue;
            };
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| r.trim_matches('"').split_whitespace().any(|r| r == "next"))
                    .unwrap_or(false)
            });
            if is_next {
                return base.join(target.trim()).ok();
            }
        }
    }
    None
}

/// Why an answer's body was not read.
enum BodyError {
    Http(reqwest::Error),
    TooLarge(String),
}

/// Reads `response`'s body, refusing one over `cap` bytes: by its `Content-Length` before
/// reading anything, and by counting what arrives (a body may be chunked, or lie about its
/// length), so no more than `cap` bytes are ever held.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    let too_large = |what: String| {
        BodyError::TooLarge(format!(
            "GitHub's answer is larger than the {cap}-byte page cap ({what}), not read"
        ))
    };
    let declared = response.content_length();
    if let Some(length) = declared.filter(|&l| l > cap as u64) {
        return Err(too_large(format!("Content-Length {length}")));
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |l| l as usize));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large(format!(
                "{} bytes and more",
                body.len() + chunk.len()
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `: <message>` from a GitHub error body (`{"message": …}`), short; empty otherwise.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct GitHubError {
        message: String,
    }
    match serde_json::from_slice::<GitHubError>(body) {
        Ok(e) => {
            let mut message: String = e.message.chars().take(200).collect();
            message.insert_str(0, ": ");
            message
        }
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_give_the_next_page() {
        let base = Url::parse("http://127.0.0.1:9/events?per_page=100").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            HeaderValue::from_static(
                "<https://api.github.com/events?page=2>; rel=\"next\", <https://api.github.com/events?page=10>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_link(&headers, &base).unwrap().as_str(),
            "https://api.github.com/events?page=2"
        );
        headers.insert(
            header::LINK,
            HeaderValue::from_static("</events?page=3>; rel=\"prev\", </events?page=4>; rel=next"),
        );
        assert_eq!(
            next_link(&headers, &base).unwrap().as_str(),
            "http://127.0.0.1:9/events?page=4"
        );
        headers.insert(header::LINK, HeaderValue::from_static("<x>; rel=\"last\""));
        assert!(next_link(&headers, &base).is_none());
    }

    #[test]
    fn event_ids_are_read_from_strings_and_numbers() {
        assert_eq!(event_id(r#"{"id":"123","type":"PushEvent"}"#), Some(123));
        assert_eq!(event_id(r#"{"type":"X","id":7}"#), Some(7));
        assert_eq!(event_id(r#"{"type":"X"}"#), None);
        assert_eq!(event_id(r#"{"id":"abc"}"#), None);
        // The fast path and serde agree, on GitHub's shape and on others.
        for element in [
            r#"{"id":"45","type":"X"}"#,
            r#"{"id":"","type":"X"}"#,
            r#"{"id":"99999999999999999999999","type":"X"}"#,
            r#"{"id":"12\u0033"}"#,
            r#"{ "id":"7"}"#,
        ] {
            assert_eq!(event_id(element), event_id_parsed(element), "{element}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut config = GitHubConfig::new("http://127.0.0.1:9");
        config.min_backoff = Duration::from_millis(100);
        config.max_backoff = Duration::from_millis(1000);
        let poller = GitHubPoller::new(config).unwrap();
        for _ in 0..50 {
            let first = poller.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = poller.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let many = poller.backoff(40);
            assert!(many >= Duration::from_millis(500) && many <= Duration::from_millis(1000));
        }
    }

    /// How many warnings `f` logs whose message contains `needle`.
    fn warnings_of(needle: &'static str, f: impl FnOnce()) -> usize {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tracing_subscriber::layer::SubscriberExt;

        struct Count(&'static str, Arc<AtomicUsize>);
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
            fn on_event(
                &self,
                event: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                let mut message = Message(String::new());
                event.record(&mut message);
                if *event.metadata().level() == tracing::Level::WARN && message.0.contains(self.0) {
                    self.1.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let count = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Count(needle, Arc::clone(&count)));
        tracing::subscriber::with_default(subscriber, f);
        count.load(Ordering::SeqCst)
    }

    fn rate(limit: u64, remaining: u64, reset_in: i64) -> RateLimit {
        RateLimit {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(Utc::now().timestamp() + reset_in),
        }
    }

    fn near(pace: Duration, secs: f64) -> bool {
        (pace.as_secs_f64() - secs).abs() < 0.02
    }

    #[test]
    fn the_adaptive_pace_spreads_the_budget_and_follows_its_size() {
        let mut config = GitHubConfig::new("http://127.0.0.1:9");
        config.mode = PollMode::Adaptive;
        config.min_poll_interval = Duration::from_millis(10);
        let poller = GitHubPoller::new(config.clone()).unwrap();
        // 4,500 requests above the reserve (10% of 5,000) over an hour: one each 0.8 s.
        let pace = poller
            .adaptive_pace(rate(5000, 5000, 3600), None, 0)
            .unwrap();
        assert!(near(pace, 0.8), "{pace:?}");
        // A budget three times larger paces three times faster.
        let pace = poller
            .adaptive_pace(rate(15000, 15000, 3600), None, 0)
            .unwrap();
        assert!(near(pace, 0.8 / 3.0), "{pace:?}");
        // A stream that fills a page between two requests: each poll waits for three.
        let pace = poller
            .adaptive_pace(rate(5000, 5000, 3600), Some(200.0), 0)
            .unwrap();
        assert!(near(pace, 2.4), "{pace:?}");
        // After 16 gaps in a row, a poll soon enough to overlap: half the pages at 200/s.
        let pace = poller
            .adaptive_pace(rate(5000, 5000, 3600), Some(200.0), 16)
            .unwrap();
        assert!(near(pace, 0.75), "{pace:?}");
        // At the reserve, or with no header, there is no pace: the reset or the interval.
        let at_reserve = poller
            .adaptive_pace(rate(5000, 500, 3600), None, 0)
            .unwrap();
        assert!(
            (3598.0..=3600.0).contains(&at_reserve.as_secs_f64()),
            "{at_reserve:?}"
        );
        let no_headers = RateLimit::default();
        assert!(poller.adaptive_pace(no_headers, None, 0).is_none());
        // Never under the minimum interval.
        config.min_poll_interval = DEFAULT_MIN_POLL_INTERVAL;
        let poller = GitHubPoller::new(config).unwrap();
        let pace = poller
            .adaptive_pace(rate(15000, 15000, 3600), None, 0)
            .unwrap();
        assert_eq!(pace, DEFAULT_MIN_POLL_INTERVAL);
    }

    #[test]
    fn a_reserve_of_the_whole_budget_polls_once_a_window_and_says_so() {
        let mut config = GitHubConfig::new("http://127.0.0.1:9");
        config.mode = PollMode::Adaptive;
        config.reserve = Some(5000);
        let poller = GitHubPoller::new(config).unwrap();
        let warnings = warnings_of("keeps the whole rate limit", || {
            for _ in 0..3 {
                let pace = poller
                    .adaptive_pace(rate(5000, 5000, 3600), None, 0)
                    .unwrap();
                assert!(pace.as_secs_f64() > 3598.0, "{pace:?}");
            }
        });
        assert_eq!(warnings, 1);
        // At the reserve, the poller waits for the reset rather than polling.
        assert!(poller.note_rate_limit(rate(5000, 5000, 3600)).is_some());
    }

    #[test]
    fn pages_answered_out_of_order_leave_the_lowest_budget() {
        let page = |remaining, reset| RateLimit {
            limit: Some(5000),
            remaining: Some(remaining),
            reset: Some(reset),
        };
        // Page 3 counted before page 2, read after it.
        let merged = page(10, 100).latest(page(8, 100)).latest(page(9, 100));
        assert_eq!(merged.remaining, Some(8));
        // A reset a second off is the same window.
        assert_eq!(page(9, 100).latest(page(8, 101)).remaining, Some(8));
        assert_eq!(page(8, 101).latest(page(9, 100)).remaining, Some(8));
        // A new window is the newer state, however much it has left.
        let merged = page(2, 100).latest(page(4999, 3700));
        assert_eq!((merged.remaining, merged.reset), (Some(4999), Some(3700)));
        assert_eq!(page(3, 3700).latest(page(1, 100)).remaining, Some(3));
        assert_eq!(RateLimit::default().latest(page(7, 1)).remaining, Some(7));
        assert_eq!(page(7, 1).latest(RateLimit::default()).remaining, Some(7));
    }

    #[test]
    fn rate_headers_that_lie_give_a_bounded_pace_and_one_warning() {
        let mut config = GitHubConfig::new("http://127.0.0.1:9");
        config.mode = PollMode::Adaptive;
        config.min_poll_interval = Duration::from_millis(10);
        let poller = GitHubPoller::new(config).unwrap();
        let warnings = warnings_of("cannot be true", || {
            for _ in 0..3 {
                // Remaining above the limit: the limit's worth, 4,500 over an hour.
                let pace = poller
                    .adaptive_pace(rate(5000, 1_000_000, 3600), None, 0)
                    .unwrap();
                assert!(near(pace, 0.8), "{pace:?}");
                // A reset in the past, or years ahead: taken as an hour away.
                let pace = poller
                    .adaptive_pace(rate(5000, 4000, -600), None, 0)
                    .unwrap();
                assert!(near(pace, 3600.0 / 3500.0), "{pace:?}");
                let years = 10 * 365 * 86_400;
                let pace = poller
                    .adaptive_pace(rate(5000, 4000, years), None, 0)
                    .unwrap();
                assert!(near(pace, 3600.0 / 3500.0), "{pace:?}");
                // Headers stating no budget at all.
                assert!(
                    poller
                        .adaptive_pace(RateLimit::default(), None, 0)
                        .is_none()
                );
            }
        });
        assert_eq!(warnings, 1);
    }

    #[test]
    fn the_token_is_never_shown() {
        let config = GitHubConfig {
            token: Some("ghp_supersecret".into()),
            ..GitHubConfig::default()
        };
        let poller = GitHubPoller::new(config).unwrap();
        assert!(!format!("{poller:?}").contains("supersecret"));
        let with_user = GitHubConfig {
            api_url: "https://me:hunter2@ghe.example/api/v3".into(),
            ..GitHubConfig::default()
        };
        assert!(!format!("{with_user:?}").contains("hunter2"));
        let status = GitHubPoller::new(with_user).unwrap().status().snapshot();
        assert_eq!(status.api_url, "https://<redacted>@ghe.example/api/v3");
        assert!(poller.status().snapshot().authenticated);
        let bad = GitHubConfig {
            token: Some("ghp_super\nsecret".into()),
            ..GitHubConfig::default()
        };
        let err = GitHubPoller::new(bad).unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
