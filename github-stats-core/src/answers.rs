//! The answers of the metric queries (counts, averages, timelines, health), with the
//! definitions every store implements exactly (see
//! [`MetricsQuery`](crate::MetricsQuery)).

use std::ops::{Index, IndexMut};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::EventType;

/// A count per kept event type, indexed by [`EventType`]. Every type is always present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCounts(pub [u64; 3]);

impl TypeCounts {
    /// Sum over the three types.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(type, count)` pairs in [`EventType::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (EventType, u64)> + '_ {
        EventType::ALL.into_iter().map(|t| (t, self.0[t.index()]))
    }
}

impl Index<EventType> for TypeCounts {
    type Output = u64;
    fn index(&self, t: EventType) -> &u64 {
        &self.0[t.index()]
    }
}

impl IndexMut<EventType> for TypeCounts {
    fn index_mut(&mut self, t: EventType) -> &mut u64 {
        &mut self.0[t.index()]
    }
}

/// A half-open time window `[since, until)`, second precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Inclusive start.
    pub since: DateTime<Utc>,
    /// Exclusive end.
    pub until: DateTime<Utc>,
}

/// Why a window or timeline request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowError {
    /// `until` is not after `since`.
    #[error("the window is empty: since must be before until")]
    Empty,
    /// A bucket of zero or negative length.
    #[error("bucket length must be at least one second")]
    BadBucket,
    /// More buckets than a timeline may hold.
    #[error("too many buckets: {0} (at most {MAX_TIMELINE_BUCKETS})")]
    TooManyBuckets(u64),
    /// A bound or a bucket falls outside the times that can be represented (chrono's range,
    /// about 262,000 years either side of year 0).
    #[error("the window reaches beyond the representable times")]
    OutOfRange,
}

/// Upper bound on the number of buckets of one timeline, so a request cannot ask for millions.
pub const MAX_TIMELINE_BUCKETS: u64 = 10_000;

/// The longest window the HTTP API accepts, in minutes: a year (365 days). The server's
/// validators, its error hints and its OpenAPI spec all say this number.
pub const MAX_WINDOW_MINUTES: u32 = 525_600;

impl TimeWindow {
    /// `[since, until)`; refused when empty. Sub-second parts are truncated.
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> Result<TimeWindow, WindowError> {
        let since = truncate_to_second(since);
        let until = truncate_to_second(until);
        if since >= until {
            return Err(WindowError::Empty);
        }
        Ok(TimeWindow { since, until })
    }

    /// The `minutes` before `until`: `[until - minutes, until)`; refused when `until - minutes`
    /// cannot be represented (checked: a user's `until` can be any representable time).
    pub fn last_minutes(until: DateTime<Utc>, minutes: u32) -> Result<TimeWindow, WindowError> {
        let until = truncate_to_second(until);
        let since = until
            .checked_sub_signed(Duration::minutes(i64::from(minutes)))
            .ok_or(WindowError::OutOfRange)?;
        TimeWindow::new(since, until)
    }

    /// `since` in seconds since the epoch.
    pub fn since_ts(&self) -> i64 {
        self.since.timestamp()
    }

    /// `until` in seconds since the epoch.
    pub fn until_ts(&self) -> i64 {
        self.until.timestamp()
    }

    /// Whether `t` (seconds since the epoch) is inside the window.
    pub fn contains_ts(&self, t: i64) -> bool {
        self.since_ts() <= t && t < self.until_ts()
    }
}

fn truncate_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Events of each kept type in a window: distinct event ids with `since <= created_at < until`,
/// every type present (zero included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    /// The window counted.
    pub window: TimeWindow,
    /// Count per type, zero included.
    pub counts: TypeCounts,
}

/// Average time between opened pull requests of one repository: over its distinct
/// `PullRequestEvent`s with action `opened`, sorted by `created_at`, the mean gap between
/// consecutive ones, which is `(last - first) / (n - 1)` ([`PrAverage::average_seconds`]); none
/// with fewer than two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrAverage {
    /// `owner/name`.
    pub repository: String,
    /// Distinct `PullRequestEvent`s with action `opened`.
    pub opened_count: u64,
    /// The earliest opening, if any.
    pub first_opened_at: Option<DateTime<Utc>>,
    /// The latest opening, if any.
    pub last_opened_at: Option<DateTime<Utc>>,
}

impl PrAverage {
    /// Builds the result from a count and the first and last opening times.
    pub fn from_extremes(
        repository: impl Into<String>,
        opened_count: u64,
        first: Option<DateTime<Utc>>,
        last: Option<DateTime<Utc>>,
    ) -> PrAverage {
        PrAverage {
            repository: repository.into(),
            opened_count,
            first_opened_at: if opened_count == 0 { None } else { first },
            last_opened_at: if opened_count == 0 { None } else { last },
        }
    }

    /// The mean of consecutive gaps, in seconds: `(last - first) / (n - 1)`; `None` below two.
    pub fn average_seconds(&self) -> Option<f64> {
        match (self.first_opened_at, self.last_opened_at) {
            (Some(first), Some(last)) if self.opened_count >= 2 => {
                Some((last - first).num_seconds() as f64 / (self.opened_count - 1) as f64)
            }
            _ => None,
        }
    }
}

/// Events stored for one repository, by type (all actions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoEventCounts {
    /// `owner/name`.
    pub repository: String,
    /// Count per type.
    pub counts: TypeCounts,
}

/// One row of the most active repositories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoEventCount {
    /// `owner/name`.
    pub repository: String,
    /// Stored events of the kept types.
    pub event_count: u64,
}

/// Counts per type per time bucket over a window.
///
/// Buckets are aligned to multiples of the bucket length since the Unix epoch: bucket `i` starts
/// at `first_bucket + i * bucket`. The first and last may stick out of the window; only events
/// inside the window are counted, so the buckets add up to [`EventCounts`] of the same window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// The window counted.
    pub window: TimeWindow,
    /// Bucket length in seconds.
    pub bucket_seconds: i64,
    /// Start of every bucket, ascending.
    pub bucket_starts: Vec<DateTime<Utc>>,
    /// `counts[type.index()][bucket]`; empty buckets are zero.
    pub counts: [Vec<u64>; 3],
}

/// The buckets of a timeline over `window` with buckets of `bucket_seconds`: their starts, in
/// seconds since the epoch. Shared by every store so that they all bucket the same way.
///
/// Checked: a window and a bucket length from user input never overflow; a first bucket that
/// would start before the earliest representable time is [`WindowError::OutOfRange`], so every
/// start converts to a time.
pub fn timeline_buckets(window: &TimeWindow, bucket_seconds: i64) -> Result<Vec<i64>, WindowError> {
    if bucket_seconds <= 0 {
        return Err(WindowError::BadBucket);
    }
    let first = window
        .since_ts()
        .div_euclid(bucket_seconds)
        .checked_mul(bucket_seconds)
        .filter(|&first| crate::event::utc_from_timestamp(first).is_some())
        .ok_or(WindowError::OutOfRange)?;
    // The window is not empty, so `span >= 1` and `count >= 1`.
    let span = window
        .until_ts()
        .checked_sub(first)
        .ok_or(WindowError::OutOfRange)?;
    let count = span.div_euclid(bucket_seconds) + i64::from(span % bucket_seconds != 0);
    if count as u64 > MAX_TIMELINE_BUCKETS {
        return Err(WindowError::TooManyBuckets(count as u64));
    }
    Ok((0..count).map(|i| first + i * bucket_seconds).collect())
}

/// What a store says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoreHealth {
    /// `memory` or `clickhouse`.
    pub backend: String,
    /// Whether the store answered.
    pub connected: bool,
    /// The store answers, but part of it does not (a node of a ClickHouse cluster: the queries
    /// that need that part fail with [`StoreError::Unavailable`](crate::StoreError)), or it
    /// cannot store (the memory store's last write to its data file failed).
    pub degraded: bool,
    /// What is wrong, in the store's words, when it is not connected or is degraded.
    pub error: Option<String>,
    /// Distinct stored events.
    pub total_events: u64,
    /// The newest `created_at` stored.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Backend details: server version, data file, cluster nodes…
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl StoreHealth {
    /// A health report without details, not degraded, without error.
    pub fn new(
        backend: impl Into<String>,
        connected: bool,
        total_events: u64,
        last_event_at: Option<DateTime<Utc>>,
    ) -> StoreHealth {
        StoreHealth {
            backend: backend.into(),
            connected,
            degraded: false,
            error: None,
            total_events,
            last_event_at,
            details: serde_json::Map::new(),
        }
    }

    /// A store that does not answer, and why.
    pub fn unreachable(backend: impl Into<String>, error: impl Into<String>) -> StoreHealth {
        StoreHealth {
            error: Some(error.into()),
            ..StoreHealth::new(backend, false, 0, None)
        }
    }
}

/// What one `insert_events` call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InsertOutcome {
    /// Events stored for the first time.
    pub inserted: u64,
    /// Events whose id was already stored (or repeated within the batch), skipped.
    pub duplicates: u64,
    /// The distinct ids of the batch the store held before this insert (repeats within the
    /// batch are not in it), in no particular order: what another source, or an earlier run,
    /// saw first. The ingest loop tells each source's batch its share of them.
    #[serde(default)]
    pub stored_before: Vec<u64>,
}

impl InsertOutcome {
    /// An outcome of `inserted` new events and `duplicates` skipped, none known to be stored
    /// before (for stores outside this crate that do not tell).
    pub fn new(inserted: u64, duplicates: u64) -> InsertOutcome {
        InsertOutcome {
            inserted,
            duplicates,
            stored_before: Vec::new(),
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: InsertOutcome) {
        self.inserted += other.inserted;
        self.duplicates += other.duplicates;
        self.stored_before.extend(other.stored_before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::utc_from_timestamp;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn average_is_span_over_gaps() {
        let avg = PrAverage::from_extremes("a/b", 3, Some(t(100)), Some(t(400)));
        assert_eq!(avg.average_seconds(), Some(150.0));
        assert_eq!(
            PrAverage::from_extremes("a/b", 1, Some(t(1)), Some(t(1))).average_seconds(),
            None
        );
        assert_eq!(
            PrAverage::from_extremes("a/b", 0, None, None).average_seconds(),
            None
        );
    }

    #[test]
    fn buckets_are_aligned_and_cover_the_window() {
        let w = TimeWindow::new(t(130), t(400)).unwrap();
        assert_eq!(
            timeline_buckets(&w, 60).unwrap(),
            vec![120, 180, 240, 300, 360]
        );
        let w = TimeWindow::new(t(120), t(180)).unwrap();
        assert_eq!(timeline_buckets(&w, 60).unwrap(), vec![120]);
        assert_eq!(timeline_buckets(&w, 0), Err(WindowError::BadBucket));
        let w = TimeWindow::new(t(0), t(1_000_000)).unwrap();
        assert!(matches!(
            timeline_buckets(&w, 1),
            Err(WindowError::TooManyBuckets(_))
        ));
    }

    #[test]
    fn extreme_times_are_refused_not_panicked_on() {
        let earliest = DateTime::<Utc>::MIN_UTC;
        let latest = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            TimeWindow::last_minutes(earliest, 1),
            Err(WindowError::OutOfRange)
        );
        assert_eq!(
            TimeWindow::last_minutes(earliest + Duration::seconds(59), 1),
            Err(WindowError::OutOfRange)
        );
        // A window starting at the earliest time, but whose first bucket would start before it.
        let w = TimeWindow::last_minutes(earliest + Duration::minutes(525_600), 525_600).unwrap();
        let bucket = 7 * 86_400 + 60;
        assert_ne!(w.since_ts() % bucket, 0);
        assert_eq!(timeline_buckets(&w, bucket), Err(WindowError::OutOfRange));
        // The latest times work, and so does every bucket length up to the largest.
        let w = TimeWindow::last_minutes(latest, u32::MAX).unwrap();
        for bucket in [1, 60, 86_400, i64::MAX / 2, i64::MAX] {
            match timeline_buckets(&w, bucket) {
                Ok(starts) => assert!(starts.iter().all(|&s| utc_from_timestamp(s).is_some())),
                Err(e) => assert!(
                    matches!(e, WindowError::TooManyBuckets(_) | WindowError::OutOfRange),
                    "{bucket}: {e}"
                ),
            }
        }
        // A whole sweep of both ends never panics, and every start it gives converts to a time.
        let span = (latest - earliest).num_seconds();
        for step in 0..=64_i64 {
            let until = earliest + Duration::seconds(span / 64 * step);
            for minutes in [0, 1, 59, 525_600, u32::MAX] {
                let Ok(w) = TimeWindow::last_minutes(until, minutes) else {
                    continue;
                };
                for bucket in [1, 60, 3_600, 604_800, 31_536_000, i64::MAX] {
                    if let Ok(starts) = timeline_buckets(&w, bucket) {
                        assert!(!starts.is_empty());
                        assert!(starts.iter().all(|&s| utc_from_timestamp(s).is_some()));
                        assert!(starts[0] <= w.since_ts());
                        assert!(*starts.last().unwrap() < w.until_ts());
                    }
                }
            }
        }
    }

    #[test]
    fn empty_windows_are_refused() {
        assert_eq!(TimeWindow::new(t(5), t(5)), Err(WindowError::Empty));
        assert_eq!(TimeWindow::last_minutes(t(600), 0), Err(WindowError::Empty));
        assert_eq!(TimeWindow::last_minutes(t(600), 10).unwrap().since, t(0));
    }
}
