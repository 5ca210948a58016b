//! What the archive follower reports: counters and a status snapshot for `/health`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::coverage::hour_floor;
use crate::status::{ComponentSnapshot, StatusCell};

/// Hours by what became of them. Persisted in the state file, so they survive restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ArchiveCounters {
    /// Hours imported whole.
    pub imported: u64,
    /// Hours recorded as missing (the archive has no file for them).
    pub missing: u64,
    /// Hours recorded as damaged (their file could not be read whole).
    pub damaged: u64,
    /// Hours skipped without a download: the store already recorded them (another process,
    /// an earlier backfill).
    pub skipped: u64,
    /// Hours given up as not published yet (backfills only; nothing recorded).
    pub pending: u64,
}

/// What is happening to one hour being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FetchState {
    /// Checking whether the store already recorded the hour.
    Checking,
    /// Waiting for the hour to be due (its end plus the publishing delay), or for a retry.
    Waiting,
    /// Downloading and parsing.
    Downloading,
    /// Read to its end; waiting for the hours before it to be imported.
    Downloaded,
}

/// One hour being fetched.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HourFetch {
    /// The hour.
    pub hour: DateTime<Utc>,
    /// What is happening to it.
    pub state: FetchState,
    /// Requests made for it so far.
    pub attempts: u32,
    /// Failed downloads of it in a row (not counting "not published yet" answers).
    pub failures: u32,
    /// Compressed bytes received in the current attempt.
    pub bytes_received: u64,
    /// When the next request is due, while waiting.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The hour being imported (the earliest one not committed).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CurrentHour {
    /// The hour.
    pub hour: DateTime<Utc>,
    /// Distinct kept events read so far.
    pub archive_events: u64,
    /// Of those, stored before the archive's copy arrived (the poller saw them).
    pub polled_before_archive: u64,
    /// Uncompressed bytes parsed so far.
    pub bytes: u64,
}

/// An hour a backfill gave up on without recording it: a later run takes it again.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PendingHour {
    /// The hour.
    pub hour: DateTime<Utc>,
    /// Why: not published yet, or the download's last error.
    pub reason: String,
    /// Whether its downloads failed (rather than the archive not having it yet).
    pub failed: bool,
}

/// A point-in-time view of the archive follower, for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ArchiveFollowerSnapshot {
    /// Where the hour files come from (no credentials).
    pub base_url: String,
    /// The configured first hour.
    pub from: Option<DateTime<Utc>>,
    /// The configured end (exclusive), for a backfill.
    pub until: Option<DateTime<Utc>>,
    /// The first hour not committed: every hour before it is stored and recorded.
    pub next_hour: Option<DateTime<Utc>>,
    /// Whole hours between `next_hour` and the current hour: 0 or 1 when up to date (the last
    /// hour is published an hour or two after it ends).
    pub hours_behind: i64,
    /// Hours by what became of them (since the state file was created).
    pub counters: ArchiveCounters,
    /// The hours being fetched, in hour order (the first is the one being imported).
    pub fetching: Vec<HourFetch>,
    /// The hour being imported.
    pub current_hour: Option<CurrentHour>,
    /// The last hour imported whole.
    pub last_imported_hour: Option<DateTime<Utc>>,
    /// Hours given up as pending in this run (backfills), in hour order.
    pub pending_hours: Vec<PendingHour>,
    /// Failed downloads in a row, of any hour (0 after a download read whole).
    pub consecutive_failures: u32,
    /// Downloads that failed since the start (network, server errors, cut or corrupt files),
    /// each retried.
    pub failed_downloads: u64,
    /// When the next request of the hour being imported is due, while it waits.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Whether downloads are failing (`consecutive_failures > 0`).
    pub degraded: bool,
    /// Whether a backfill's range is done.
    pub finished: bool,
    /// The last error (a failed download, a store that refused a record).
    pub last_error: Option<String>,
    /// When [`last_error`](ArchiveFollowerSnapshot::last_error) happened.
    pub last_error_at: Option<DateTime<Utc>>,
}

/// A cheaply cloneable handle on the follower's status; the server's `/health` embeds its
/// [`snapshot`](ArchiveFollowerStatus::snapshot).
pub type ArchiveFollowerStatus = StatusCell<ArchiveFollowerSnapshot>;

impl ComponentSnapshot for ArchiveFollowerSnapshot {
    fn complete(&mut self) {
        self.degraded = self.consecutive_failures > 0;
        self.hours_behind = self.next_hour.map_or(0, |next| {
            ((hour_floor(Utc::now()) - next).num_hours()).max(0)
        });
        self.next_attempt_at = self
            .fetching
            .first()
            .filter(|f| f.state == FetchState::Waiting)
            .and_then(|f| f.next_attempt_at);
    }

    fn is_degraded(&self) -> bool {
        self.degraded
    }
}

impl StatusCell<ArchiveFollowerSnapshot> {
    /// Updates the entry of `hour` in `fetching` (created in hour order if absent).
    pub(crate) fn fetch(&self, hour: DateTime<Utc>, f: impl FnOnce(&mut HourFetch)) {
        self.update(|s| {
            let at = match s.fetching.binary_search_by_key(&hour, |h| h.hour) {
                Ok(at) => at,
                Err(at) => {
                    s.fetching.insert(
                        at,
                        HourFetch {
                            hour,
                            state: FetchState::Checking,
                            attempts: 0,
                            failures: 0,
                            bytes_received: 0,
                            next_attempt_at: None,
                        },
                    );
                    at
                }
            };
            f(&mut s.fetching[at]);
        });
    }

    /// Drops the entry of `hour` from `fetching`.
    pub(crate) fn fetched(&self, hour: DateTime<Utc>) {
        self.update(|s| s.fetching.retain(|h| h.hour != hour));
    }

    pub(crate) fn error(&self, message: String) {
        self.update(|s| {
            s.last_error = Some(message);
            s.last_error_at = Some(Utc::now());
        });
    }
}
