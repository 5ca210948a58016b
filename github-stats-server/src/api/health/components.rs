//! The `poller`, `ingest` and `archive` objects of `/health`: the API's own types, mapped field
//! by field from core's status snapshots here and nowhere else, so that a field core renames,
//! adds or drops changes this file (it no longer compiles, or a field has to be added), never the
//! answer silently.

use github_stats_core::source::gharchive::{CurrentHour, FetchState, HourFetch, PendingHour};
use github_stats_core::{ArchiveFollowerSnapshot, IngestSnapshot, PollerSnapshot};
use poem_openapi::{Enum, Object};

use crate::api::time::UtcTime;

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<UtcTime> {
    t.map(UtcTime)
}

/// The GitHub poller.
#[derive(Debug, Clone, Object)]
pub struct PollerHealth {
    /// The API polled (no credentials).
    pub api_url: String,
    /// Whether a token is configured (the token itself is never shown).
    pub authenticated: bool,
    /// When the last page-1 request was answered, or failed.
    pub last_poll_at: Option<UtcTime>,
    /// When the last poll answered 200 or 304.
    pub last_successful_poll_at: Option<UtcTime>,
    /// When the next page-1 request is due.
    pub next_poll_at: Option<UtcTime>,
    /// The current wait between polls, in seconds, from `X-Poll-Interval`.
    pub poll_interval_seconds: u64,
    /// `X-RateLimit-Limit` of the last answer.
    pub rate_limit_limit: Option<u64>,
    /// `X-RateLimit-Remaining` of the last answer.
    pub rate_limit_remaining: Option<u64>,
    /// `X-RateLimit-Reset` of the last answer.
    pub rate_limit_reset_at: Option<UtcTime>,
    /// Failed or rate-limited polls in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Whether the last poll failed or was refused for the rate limit: the poller is backing
    /// off or waiting, and events may be missed meanwhile (gaps alone do not make it degraded).
    pub degraded: bool,
    /// The last error (a failed poll, a page that could not be read, a file not written).
    pub last_error: Option<String>,
    /// When `last_error` happened.
    pub last_error_at: Option<UtcTime>,
    /// What the poller saw: how much of GitHub's stream it covers (kept across restarts).
    pub counters: PollCounters,
    /// The share of GitHub's public stream the poller reads, estimated from its polls (since
    /// the process started).
    pub capture: PollerCapture,
}

/// How much of GitHub's public stream the poller reads (`docs/poller.md`, "Capture").
#[derive(Debug, Clone, Object)]
pub struct PollerCapture {
    /// `interval` or `adaptive` (`POLL_MODE`).
    pub mode: String,
    /// The stream's estimated rate, in events a second; `null` until two polls overlapped.
    pub stream_rate: Option<f64>,
    /// Estimated share of the stream read since the process started (0 to 1); `null` until
    /// the rate is known.
    pub seen_share: Option<f64>,
    /// The same over the last hour.
    pub seen_share_last_hour: Option<f64>,
    /// Estimated events published but not read since the process started.
    pub missed_estimate: u64,
    /// New events read since the process started (all types).
    pub seen_events: u64,
}

/// The poller's coverage counters, kept in its state file across restarts.
#[derive(Debug, Clone, Object)]
pub struct PollCounters {
    /// Page-1 requests GitHub answered (200 or 304).
    pub polls: u64,
    /// Polls answered `304 Not Modified`: nothing new.
    pub not_modified: u64,
    /// Polls that failed (network, 5xx, bad JSON, refused): retried with backoff.
    pub failed_polls: u64,
    /// Answers that said to wait for the rate limit (403/429).
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
    /// New events of the kept types with a field no store may hold: skipped.
    pub invalid_events: u64,
    /// Polls sharing at least one event with the previous one: nothing missed in between.
    pub overlapping_polls: u64,
    /// Polls sharing no event with the previous one: events were missed in between (a gap).
    pub gaps: u64,
}

/// The ingest loop: sources to store.
#[derive(Debug, Clone, Object)]
pub struct IngestHealth {
    /// Whether the loop is running.
    pub running: bool,
    /// Events waiting to be stored (the insert in flight included).
    pub buffered: u64,
    /// Events the buffer holds before pulling pauses.
    pub capacity: u64,
    /// Whether pulling is paused because the buffer is full.
    pub paused: bool,
    /// Whether the store is failing or the buffer is full: events are waiting.
    pub degraded: bool,
    /// Batches received from the source.
    pub batches: u64,
    /// Kept events received from the source.
    pub received: u64,
    /// Events of the kept types the parser refused as invalid, never stored.
    pub invalid: u64,
    /// Input bytes the source read.
    pub bytes: u64,
    /// Events the store inserted (new ids).
    pub inserted: u64,
    /// Events the store already had.
    pub duplicates: u64,
    /// Events the store refused as invalid, dropped.
    pub rejected: u64,
    /// Failed inserts (each retried).
    pub store_failures: u64,
    /// Failed inserts in a row (0 after a success).
    pub consecutive_store_failures: u32,
    /// The last store error.
    pub last_store_error: Option<String>,
    /// When the last insert succeeded.
    pub last_insert_at: Option<UtcTime>,
    /// Errors of the source (failed polls, unreadable files).
    pub source_errors: u64,
    /// The last source error.
    pub last_source_error: Option<String>,
    /// Whether the source is exhausted (finite sources only).
    pub source_exhausted: bool,
    /// How long the store took to answer each insert, failed ones included (the buckets are
    /// on `/metrics`).
    pub insert_duration: InsertDurations,
}

/// Insert durations: how many, and their sum.
#[derive(Debug, Clone, Object)]
pub struct InsertDurations {
    /// Inserts timed.
    pub count: u64,
    /// Their total duration, in seconds.
    pub sum_seconds: f64,
}

/// The GH Archive follower.
#[derive(Debug, Clone, Object)]
pub struct ArchiveHealth {
    /// Where the hour files come from (no credentials).
    pub base_url: String,
    /// The configured first hour.
    pub from: Option<UtcTime>,
    /// The configured end (exclusive), for a backfill.
    pub until: Option<UtcTime>,
    /// The first hour not committed: every hour before it is stored and recorded.
    pub next_hour: Option<UtcTime>,
    /// Whole hours between `next_hour` and the current hour: 0 or 1 when up to date.
    pub hours_behind: i64,
    /// Hours by what became of them (since the state file was created).
    pub counters: ArchiveHourCounters,
    /// The hours being fetched, in hour order (the first is the one being imported).
    pub fetching: Vec<HourFetchStatus>,
    /// The hour being imported.
    pub current_hour: Option<CurrentHourStatus>,
    /// The last hour imported whole.
    pub last_imported_hour: Option<UtcTime>,
    /// Hours given up as pending in this run (backfills), in hour order.
    pub pending_hours: Vec<PendingHourStatus>,
    /// Failed downloads in a row, of any hour (0 after a download read whole).
    pub consecutive_failures: u32,
    /// Downloads that failed since the start, each retried.
    pub failed_downloads: u64,
    /// When the next request of the hour being imported is due, while it waits.
    pub next_attempt_at: Option<UtcTime>,
    /// Whether downloads are failing.
    pub degraded: bool,
    /// Whether a backfill's range is done.
    pub finished: bool,
    /// The last error (a failed download, a store that refused a record).
    pub last_error: Option<String>,
    /// When `last_error` happened.
    pub last_error_at: Option<UtcTime>,
}

/// Archive hours by what became of them.
#[derive(Debug, Clone, Object)]
pub struct ArchiveHourCounters {
    /// Hours imported whole.
    pub imported: u64,
    /// Hours recorded as missing (the archive has no file for them).
    pub missing: u64,
    /// Hours recorded as damaged (their file could not be read whole).
    pub damaged: u64,
    /// Hours skipped without a download: the store already recorded them.
    pub skipped: u64,
    /// Hours given up as not published yet (backfills only; nothing recorded).
    pub pending: u64,
}

/// What is happening to an hour being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum HourFetchState {
    /// Checking whether the store already recorded the hour.
    Checking,
    /// Waiting for the hour to be due, or for a retry.
    Waiting,
    /// Downloading and parsing.
    Downloading,
    /// Read to its end; waiting for the hours before it to be imported.
    Downloaded,
    /// A state this version of the server does not know (a newer core).
    Unknown,
}

/// An hour being fetched.
#[derive(Debug, Clone, Object)]
pub struct HourFetchStatus {
    /// The hour.
    pub hour: UtcTime,
    /// What is happening to it.
    pub state: HourFetchState,
    /// Requests made for it so far.
    pub attempts: u32,
    /// Failed downloads of it in a row.
    pub failures: u32,
    /// Compressed bytes received in the current attempt.
    pub bytes_received: u64,
    /// When the next request is due, while waiting.
    pub next_attempt_at: Option<UtcTime>,
}

/// The hour being imported.
#[derive(Debug, Clone, Object)]
pub struct CurrentHourStatus {
    /// The hour.
    pub hour: UtcTime,
    /// Distinct kept events read so far.
    pub archive_events: u64,
    /// Of those, stored before the archive's copy arrived (the poller saw them).
    pub polled_before_archive: u64,
    /// Uncompressed bytes parsed so far.
    pub bytes: u64,
}

/// An hour a backfill gave up on without recording it.
#[derive(Debug, Clone, Object)]
pub struct PendingHourStatus {
    /// The hour.
    pub hour: UtcTime,
    /// Why: not published yet, or the download's last error.
    pub reason: String,
    /// Whether its downloads failed (rather than the archive not having it yet).
    pub failed: bool,
}

impl From<&PollerSnapshot> for PollerHealth {
    fn from(s: &PollerSnapshot) -> PollerHealth {
        let c = &s.counters;
        PollerHealth {
            api_url: s.api_url.clone(),
            authenticated: s.authenticated,
            last_poll_at: time(s.last_poll_at),
            last_successful_poll_at: time(s.last_successful_poll_at),
            next_poll_at: time(s.next_poll_at),
            poll_interval_seconds: s.poll_interval_seconds,
            rate_limit_limit: s.rate_limit_limit,
            rate_limit_remaining: s.rate_limit_remaining,
            rate_limit_reset_at: time(s.rate_limit_reset_at),
            consecutive_failures: s.consecutive_failures,
            degraded: s.degraded,
            last_error: s.last_error.clone(),
            last_error_at: time(s.last_error_at),
            counters: PollCounters {
                polls: c.polls,
                not_modified: c.not_modified,
                failed_polls: c.failed_polls,
                rate_limited: c.rate_limited,
                pages: c.pages,
                events_seen: c.events_seen,
                new_events: c.new_events,
                duplicate_events: c.duplicate_events,
                kept_events: c.kept_events,
                invalid_events: c.invalid_events,
                overlapping_polls: c.overlapping_polls,
                gaps: c.gaps,
            },
            capture: PollerCapture {
                mode: s.capture.mode.clone(),
                stream_rate: s.capture.stream_rate,
                seen_share: s.capture.seen_share,
                seen_share_last_hour: s.capture.seen_share_last_hour,
                missed_estimate: s.capture.missed_estimate,
                seen_events: s.capture.seen_events,
            },
        }
    }
}

impl From<&IngestSnapshot> for IngestHealth {
    fn from(s: &IngestSnapshot) -> IngestHealth {
        IngestHealth {
            running: s.running,
            buffered: s.buffered,
            capacity: s.capacity,
            paused: s.paused,
            degraded: s.degraded,
            batches: s.batches,
            received: s.received,
            invalid: s.invalid,
            bytes: s.bytes,
            inserted: s.inserted,
            duplicates: s.duplicates,
            rejected: s.rejected,
            store_failures: s.store_failures,
            consecutive_store_failures: s.consecutive_store_failures,
            last_store_error: s.last_store_error.clone(),
            last_insert_at: time(s.last_insert_at),
            source_errors: s.source_errors,
            last_source_error: s.last_source_error.clone(),
            source_exhausted: s.source_exhausted,
            insert_duration: InsertDurations {
                count: s.insert_duration.count,
                sum_seconds: s.insert_duration.sum_seconds,
            },
        }
    }
}

impl From<&ArchiveFollowerSnapshot> for ArchiveHealth {
    fn from(s: &ArchiveFollowerSnapshot) -> ArchiveHealth {
        let c = &s.counters;
        ArchiveHealth {
            base_url: s.base_url.clone(),
            from: time(s.from),
            until: time(s.until),
            next_hour: time(s.next_hour),
            hours_behind: s.hours_behind,
            counters: ArchiveHourCounters {
                imported: c.imported,
                missing: c.missing,
                damaged: c.damaged,
                skipped: c.skipped,
                pending: c.pending,
            },
            fetching: s.fetching.iter().map(HourFetchStatus::from).collect(),
            current_hour: s.current_hour.as_ref().map(CurrentHourStatus::from),
            last_imported_hour: time(s.last_imported_hour),
            pending_hours: s
                .pending_hours
                .iter()
                .map(PendingHourStatus::from)
                .collect(),
            consecutive_failures: s.consecutive_failures,
            failed_downloads: s.failed_downloads,
            next_attempt_at: time(s.next_attempt_at),
            degraded: s.degraded,
            finished: s.finished,
            last_error: s.last_error.clone(),
            last_error_at: time(s.last_error_at),
        }
    }
}

impl From<&HourFetch> for HourFetchStatus {
    fn from(f: &HourFetch) -> HourFetchStatus {
        HourFetchStatus {
            hour: UtcTime(f.hour),
            state: match f.state {
                FetchState::Checking => HourFetchState::Checking,
                FetchState::Waiting => HourFetchState::Waiting,
                FetchState::Downloading => HourFetchState::Downloading,
                FetchState::Downloaded => HourFetchState::Downloaded,
                _ => HourFetchState::Unknown,
            },
            attempts: f.attempts,
            failures: f.failures,
            bytes_received: f.bytes_received,
            next_attempt_at: time(f.next_attempt_at),
        }
    }
}

impl From<&CurrentHour> for CurrentHourStatus {
    fn from(h: &CurrentHour) -> CurrentHourStatus {
        CurrentHourStatus {
            hour: UtcTime(h.hour),
            archive_events: h.archive_events,
            polled_before_archive: h.polled_before_archive,
            bytes: h.bytes,
        }
    }
}

impl From<&PendingHour> for PendingHourStatus {
    fn from(h: &PendingHour) -> PendingHourStatus {
        PendingHourStatus {
            hour: UtcTime(h.hour),
            reason: h.reason.clone(),
            failed: h.failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use poem_openapi::types::ToJSON;

    use super::*;

    fn at(seconds: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(seconds, 0)
    }

    /// The typed objects answer what core's snapshots serialize to: the same names and values.
    #[test]
    fn the_typed_objects_answer_what_the_snapshots_serialize_to() {
        let mut poller = PollerSnapshot::default();
        poller.api_url = "https://api.github.com".into();
        poller.authenticated = true;
        poller.last_poll_at = at(1_764_655_200);
        poller.last_successful_poll_at = at(1_764_655_201);
        poller.rate_limit_remaining = Some(4321);
        poller.last_error = Some("503 from GitHub".into());
        poller.consecutive_failures = 2;
        poller.degraded = true;
        poller.counters.polls = 3;
        poller.counters.gaps = 1;
        assert_eq!(
            PollerHealth::from(&poller).to_json().unwrap(),
            serde_json::to_value(&poller).unwrap()
        );

        let mut ingest = IngestSnapshot::default();
        ingest.running = true;
        ingest.buffered = 12;
        ingest.last_insert_at = at(1_764_655_300);
        ingest.last_store_error = Some("connection refused".into());
        ingest
            .insert_duration
            .record(std::time::Duration::from_millis(3));
        assert_eq!(
            IngestHealth::from(&ingest).to_json().unwrap(),
            serde_json::to_value(&ingest).unwrap()
        );

        let mut archive = ArchiveFollowerSnapshot::default();
        archive.base_url = "https://data.gharchive.org".into();
        archive.from = at(1_764_000_000);
        archive.next_hour = at(1_764_003_600);
        archive.hours_behind = 4;
        archive.counters.imported = 7;
        archive.last_error = Some("cut short".into());
        assert_eq!(
            ArchiveHealth::from(&archive).to_json().unwrap(),
            serde_json::to_value(&archive).unwrap()
        );
    }
}
