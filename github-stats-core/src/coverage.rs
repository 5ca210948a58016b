//! What every answer rests on: GH Archive's complete hours, or the poller's sample.
//!
//! The Events API shows one token a few percent of GitHub's public events. GH Archive publishes
//! every public event, hour by hour, an hour or two after the hour ends. When an archive hour is
//! imported, the store holds every kept event of that hour: counts over it are exact. For each
//! hour the archive follower records an [`ArchiveHour`] in the store (both stores keep them, so
//! restarts and every process of a cluster share them):
//!
//! - `imported`: the whole hour file was read and stored;
//! - `missing`: the archive still had no file for the hour long after its end (GH Archive has
//!   permanent holes, e.g. during GitHub outages);
//! - `damaged`: the file could not be read whole after many tries; what was read is stored;
//! - an hour without a record is `pending` (not attempted yet, or not published yet).
//!
//! Each imported hour also says how many of its events were already stored before the archive's
//! copy arrived: those the poller saw first. Their share is the poller's coverage of the hour.
//!
//! Windows are *complete* when every hour they touch was imported;
//! [`WindowCoverage::archived_share`] is the share of a window's duration covered by imported
//! hours.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::answers::TimeWindow;

/// Seconds in an hour.
pub const HOUR_SECONDS: i64 = 3600;

/// What importing an archive hour found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveStatus {
    /// The whole hour file was read and stored.
    Imported,
    /// The archive has no file for the hour, long after its end.
    Missing,
    /// The file could not be read whole; what was read of it is stored.
    Damaged,
}

impl ArchiveStatus {
    /// Every status, in code order.
    pub const ALL: [ArchiveStatus; 3] = [
        ArchiveStatus::Imported,
        ArchiveStatus::Missing,
        ArchiveStatus::Damaged,
    ];

    /// `imported`, `missing` or `damaged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveStatus::Imported => "imported",
            ArchiveStatus::Missing => "missing",
            ArchiveStatus::Damaged => "damaged",
        }
    }

    /// A stable small number for storage (1, 2, 3).
    pub fn code(self) -> u8 {
        match self {
            ArchiveStatus::Imported => 1,
            ArchiveStatus::Missing => 2,
            ArchiveStatus::Damaged => 3,
        }
    }

    /// Inverse of [`ArchiveStatus::code`].
    pub fn from_code(code: u8) -> Option<ArchiveStatus> {
        ArchiveStatus::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl std::fmt::Display for ArchiveStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record of one archive hour, as stores keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArchiveHour {
    /// The hour's start (a whole hour, UTC).
    pub hour: DateTime<Utc>,
    /// What importing it found.
    pub status: ArchiveStatus,
    /// Distinct kept events of the hour's file (of what could be read, when damaged; zero when
    /// missing).
    pub archive_events: u64,
    /// Of those, how many were stored before the archive's copy arrived: the poller saw them
    /// first.
    pub polled_before_archive: u64,
    /// When the record was made (second precision). A later record of the same hour replaces
    /// an earlier one.
    pub recorded_at: DateTime<Utc>,
}

impl ArchiveHour {
    /// A record of `hour` (truncated to its whole hour).
    pub fn new(
        hour: DateTime<Utc>,
        status: ArchiveStatus,
        archive_events: u64,
        polled_before_archive: u64,
        recorded_at: DateTime<Utc>,
    ) -> ArchiveHour {
        ArchiveHour {
            hour: hour_floor(hour),
            status,
            archive_events,
            polled_before_archive: polled_before_archive.min(archive_events),
            recorded_at: DateTime::from_timestamp(recorded_at.timestamp(), 0)
                .unwrap_or(recorded_at),
        }
    }

    /// The share of the hour's archived events the poller had stored first, 0 to 1; `None`
    /// unless the hour was imported with at least one event.
    pub fn poller_coverage(&self) -> Option<f64> {
        (self.status == ArchiveStatus::Imported && self.archive_events > 0)
            .then(|| self.polled_before_archive as f64 / self.archive_events as f64)
    }

    /// The hour's end (exclusive).
    pub fn end(&self) -> DateTime<Utc> {
        self.hour + Duration::hours(1)
    }
}

/// The start of the whole hour (UTC) holding `t`.
pub fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let s = t.timestamp().div_euclid(HOUR_SECONDS) * HOUR_SECONDS;
    DateTime::from_timestamp(s, 0).unwrap_or(t)
}

/// An unbroken run of imported hours: `[from, until)`, `until` being the end of its last hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteRun {
    /// The first hour's start.
    pub from: DateTime<Utc>,
    /// The last hour's end (exclusive).
    pub until: DateTime<Utc>,
}

impl CompleteRun {
    /// The latest unbroken run of imported hours among `imported` hour starts (seconds, in
    /// any order, repeats allowed); `None` when there are none.
    pub fn latest(imported: impl IntoIterator<Item = i64>) -> Option<CompleteRun> {
        let mut hours: Vec<i64> = imported
            .into_iter()
            .map(|h| h.div_euclid(HOUR_SECONDS) * HOUR_SECONDS)
            .collect();
        hours.sort_unstable();
        hours.dedup();
        let last = *hours.last()?;
        let mut first = last;
        for &h in hours.iter().rev().skip(1) {
            if h + HOUR_SECONDS != first {
                break;
            }
            first = h;
        }
        Some(CompleteRun {
            from: DateTime::from_timestamp(first, 0)?,
            until: DateTime::from_timestamp(last + HOUR_SECONDS, 0)?,
        })
    }
}

/// How much of a window rests on imported archive hours.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowCoverage {
    /// Every hour the window touches was imported: its counts are GitHub's, not a sample.
    pub complete: bool,
    /// The share of the window's duration covered by imported hours, 0 to 1.
    pub archived_share: f64,
}

impl WindowCoverage {
    /// The coverage of `window` given the archive records of the hours it touches (others are
    /// ignored; hours without a record are pending).
    pub fn of(window: &TimeWindow, records: &[ArchiveHour]) -> WindowCoverage {
        let (since, until) = (window.since_ts(), window.until_ts());
        let mut covered: i64 = 0;
        let mut imported: Vec<i64> = records
            .iter()
            .filter(|r| r.status == ArchiveStatus::Imported)
            .map(|r| r.hour.timestamp())
            .collect();
        imported.sort_unstable();
        imported.dedup();
        for h in &imported {
            let start = since.max(*h);
            let end = until.min(h + HOUR_SECONDS);
            if start < end {
                covered += end - start;
            }
        }
        let duration = until - since;
        WindowCoverage {
            complete: covered == duration,
            archived_share: if duration > 0 {
                (covered as f64 / duration as f64).clamp(0.0, 1.0)
            } else {
                0.0
            },
        }
    }
}

/// The whole hours touched by `window`: from the hour holding `since` to the end of the hour
/// holding the last second before `until`. What to ask [`archive_hours`] for.
///
/// [`archive_hours`]: crate::store::MetricsQuery::archive_hours
pub fn touched_hours(window: &TimeWindow) -> TimeWindow {
    let since = hour_floor(window.since);
    let last = hour_floor(window.until - Duration::seconds(1));
    TimeWindow {
        since,
        until: last + Duration::hours(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn rec(hour: i64, status: ArchiveStatus) -> ArchiveHour {
        ArchiveHour::new(t(hour * HOUR_SECONDS), status, 10, 3, t(0))
    }

    #[test]
    fn the_latest_run_stops_at_the_first_gap() {
        let h = |i: i64| i * HOUR_SECONDS;
        assert_eq!(CompleteRun::latest([]), None);
        let run = CompleteRun::latest([h(9), h(3), h(4), h(5), h(7), h(8), h(8)]).unwrap();
        assert_eq!((run.from, run.until), (t(h(7)), t(h(10))));
        let run = CompleteRun::latest([h(2)]).unwrap();
        assert_eq!((run.from, run.until), (t(h(2)), t(h(3))));
    }

    #[test]
    fn a_window_is_complete_only_when_every_touched_hour_was_imported() {
        let h = HOUR_SECONDS;
        // [1:30, 3:30): touches hours 1, 2 and 3.
        let window = TimeWindow::new(t(h + h / 2), t(3 * h + h / 2)).unwrap();
        assert_eq!(
            touched_hours(&window),
            TimeWindow::new(t(h), t(4 * h)).unwrap()
        );
        let all = [
            rec(1, ArchiveStatus::Imported),
            rec(2, ArchiveStatus::Imported),
            rec(3, ArchiveStatus::Imported),
        ];
        let c = WindowCoverage::of(&window, &all);
        assert!(c.complete);
        assert_eq!(c.archived_share, 1.0);
        // Hour 3 missing: half an hour of the two-hour window is not archived.
        let holed = [
            rec(1, ArchiveStatus::Imported),
            rec(2, ArchiveStatus::Imported),
            rec(3, ArchiveStatus::Missing),
        ];
        let c = WindowCoverage::of(&window, &holed);
        assert!(!c.complete);
        assert_eq!(c.archived_share, 0.75);
        // Nothing recorded: pending.
        let c = WindowCoverage::of(&window, &[]);
        assert!(!c.complete);
        assert_eq!(c.archived_share, 0.0);
    }

    #[test]
    fn a_window_ending_on_an_hour_does_not_touch_the_next() {
        let h = HOUR_SECONDS;
        let window = TimeWindow::new(t(h), t(2 * h)).unwrap();
        assert_eq!(touched_hours(&window), window);
        assert!(WindowCoverage::of(&window, &[rec(1, ArchiveStatus::Imported)]).complete);
    }

    #[test]
    fn coverage_is_a_share_of_imported_hours_only() {
        let r = ArchiveHour::new(t(7200 + 5), ArchiveStatus::Imported, 8, 2, t(1));
        assert_eq!(r.hour, t(7200));
        assert_eq!(r.poller_coverage(), Some(0.25));
        let damaged = ArchiveHour::new(t(0), ArchiveStatus::Damaged, 8, 2, t(1));
        assert_eq!(damaged.poller_coverage(), None);
        // More polled than archived cannot be: clamped.
        let r = ArchiveHour::new(t(0), ArchiveStatus::Imported, 4, 9, t(1));
        assert_eq!(r.poller_coverage(), Some(1.0));
        for s in ArchiveStatus::ALL {
            assert_eq!(ArchiveStatus::from_code(s.code()), Some(s));
        }
    }
}
