//! What the poller reports: coverage counters and a status snapshot for `/health`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::status::{ComponentSnapshot, StatusCell};

/// Counters of what the poller saw: how much of GitHub's stream it covers. Persisted in the
/// state file, so they survive restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PollCounters {
    /// Page-1 requests GitHub answered (200 or 304).
    pub polls: u64,
    /// Polls answered `304 Not Modified`: nothing new.
    pub not_modified: u64,
    /// Polls that failed (network, 5xx, bad JSON, refused): retried with backoff.
    pub failed_polls: u64,
    /// Answers that said to wait for the rate limit (403/429 with `Retry-After` or nothing left).
    pub rate_limited: u64,
    /// Pages answered 200 (page 1 and the following ones).
    pub pages: u64,
    /// Events in the answers, every type, repeats included.
    pub events_seen: u64,
    /// Events not seen in an earlier answer.
    pub new_events: u64,
    /// Events already seen in an earlier answer (overlapping polls), dropped.
    pub duplicate_events: u64,
    /// New events of the kept types, handed to the store.
    pub kept_events: u64,
    /// New events of the kept types with a field no store may hold (a repository name GitHub
    /// does not allow, a time outside 1970-2105, …): skipped, not stored.
    pub invalid_events: u64,
    /// Polls sharing at least one event with the previous one: nothing was missed in between.
    pub overlapping_polls: u64,
    /// Polls sharing no event with the previous one: events were missed in between (a gap).
    pub gaps: u64,
}

/// A point-in-time view of the poller, for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PollerSnapshot {
    /// The API polled (no credentials).
    pub api_url: String,
    /// Whether a token is configured (the token itself is never shown).
    pub authenticated: bool,
    /// When the last page-1 request was answered, or failed.
    pub last_poll_at: Option<DateTime<Utc>>,
    /// When the last poll answered 200 or 304.
    pub last_successful_poll_at: Option<DateTime<Utc>>,
    /// When the next page-1 request is due.
    pub next_poll_at: Option<DateTime<Utc>>,
    /// The current wait between polls, in seconds, from `X-Poll-Interval`.
    pub poll_interval_seconds: u64,
    /// `X-RateLimit-Limit` of the last answer.
    pub rate_limit_limit: Option<u64>,
    /// `X-RateLimit-Remaining` of the last answer.
    pub rate_limit_remaining: Option<u64>,
    /// `X-RateLimit-Reset` of the last answer.
    pub rate_limit_reset_at: Option<DateTime<Utc>>,
    /// Failed or rate-limited polls in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Whether the last poll failed or was refused for the rate limit: the poller is backing
    /// off or waiting, and events may be missed meanwhile. (Gaps alone do not make it degraded:
    /// one poller always misses part of the firehose.)
    pub degraded: bool,
    /// The last error (a failed poll, a page that could not be read, a file not written).
    pub last_error: Option<String>,
    /// When [`last_error`](PollerSnapshot::last_error) happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Coverage counters.
    pub counters: PollCounters,
    /// The share of the stream read: mode, estimated stream rate, seen share, missed events.
    pub capture: super::capture::CaptureSnapshot,
}

/// A cheaply cloneable handle on the poller's status; the server's `/health` embeds its
/// [`snapshot`](StatusCell::snapshot).
pub type PollerStatus = StatusCell<PollerSnapshot>;

impl ComponentSnapshot for PollerSnapshot {
    fn complete(&mut self) {
        self.degraded = self.consecutive_failures > 0;
    }

    fn is_degraded(&self) -> bool {
        self.degraded
    }
}
