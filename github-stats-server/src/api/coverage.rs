//! `GET /coverage`: which hours rest on GH Archive's complete record and which on the poller's
//! sample, and the coverage fields every window answer carries.

use chrono::{DateTime, Duration, Utc};
use github_stats_core::coverage::{HOUR_SECONDS, hour_floor, touched_hours};
use github_stats_core::{
    ArchiveHour, ArchiveStatus, CompleteRun, SharedStore, StoreError, TimeWindow, WindowCoverage,
};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::time::UtcTime;
use super::{ApiError, ApiTags, AppState, params};

/// The default span of `/coverage`: the last 48 hours.
pub const DEFAULT_COVERAGE_HOURS: i64 = 48;
/// The longest span of `/coverage`: 31 days.
pub const MAX_COVERAGE_DAYS: i64 = 31;

/// Where an hour's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ArchiveState {
    /// GH Archive's file of the hour was imported whole: its counts are GitHub's, exact.
    Imported,
    /// Not imported yet (not published yet, not reached yet, or no archive follower): only the
    /// poller's sample.
    Pending,
    /// GH Archive has no file for this hour (a permanent hole): only the poller's sample.
    Missing,
    /// The hour's file could not be read whole; what could be read is stored.
    Damaged,
}

impl From<ArchiveStatus> for ArchiveState {
    fn from(status: ArchiveStatus) -> ArchiveState {
        match status {
            ArchiveStatus::Imported => ArchiveState::Imported,
            ArchiveStatus::Missing => ArchiveState::Missing,
            ArchiveStatus::Damaged => ArchiveState::Damaged,
        }
    }
}

/// One hour of `/coverage`.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct CoverageHour {
    /// The hour's start (UTC).
    pub hour: UtcTime,
    /// Where the hour's events come from.
    pub archive: ArchiveState,
    /// Distinct kept events in GH Archive's file of the hour (of what could be read, when
    /// damaged); `null` when pending or missing.
    pub archive_events: Option<u64>,
    /// Of `archive_events`, how many the poller had stored before the archive's copy arrived;
    /// `null` when pending or missing.
    pub polled_before_archive: Option<u64>,
    /// `polled_before_archive / archive_events`, 0 to 1: the share of the hour the poller saw;
    /// `null` unless imported with at least one event.
    pub poller_coverage: Option<f64>,
    /// Distinct events of the hour stored now, from every source.
    pub stored_events: u64,
}

/// What the answers of a span rest on, hour by hour.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct CoverageBody {
    /// Start of the span asked (inclusive).
    pub since: UtcTime,
    /// End of the span asked (exclusive).
    pub until: UtcTime,
    /// Every hour the span touches, oldest first.
    pub hours: Vec<CoverageHour>,
    /// Start of the latest unbroken run of imported hours (over all time, not only this span);
    /// `null` when no hour was imported.
    pub complete_from: Option<UtcTime>,
    /// End (exclusive) of that run's last hour; `null` when no hour was imported.
    pub complete_until: Option<UtcTime>,
    /// The hours of the span GH Archive does not have (permanent holes), oldest first.
    pub missing_hours: Vec<UtcTime>,
}

/// How much of a window GH Archive covers, for the window answers.
pub async fn window_coverage(
    store: &SharedStore,
    window: TimeWindow,
) -> Result<WindowCoverage, StoreError> {
    let records = store.archive_hours(touched_hours(&window)).await?;
    Ok(WindowCoverage::of(&window, &records))
}

/// The bounds of a run, or two `null`s.
pub fn run_bounds(run: Option<CompleteRun>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    (run.map(|r| r.from), run.map(|r| r.until))
}

/// Coverage.
pub struct CoverageApi {
    store: SharedStore,
}

impl CoverageApi {
    /// Coverage of `state`'s store.
    pub fn new(state: &AppState) -> CoverageApi {
        CoverageApi {
            store: state.store.clone(),
        }
    }
}

#[OpenApi(tag = "ApiTags::Metrics")]
impl CoverageApi {
    /// What each hour rests on
    ///
    /// For every hour of `[since, until)`: whether GH Archive's complete record of it was
    /// imported (`imported`), is not yet (`pending`), does not exist (`missing`) or could not
    /// be read whole (`damaged`), and for imported hours the share of their events the poller
    /// had seen first. Counts over imported hours are GitHub's own; elsewhere they are the
    /// poller's sample. Default span: the last 48 hours; at most 31 days.
    #[oai(path = "/coverage", method = "get")]
    async fn coverage(
        &self,
        /// Start of the span (inclusive), RFC 3339 such as `2026-12-01T00:00:00Z`; default:
        /// 48 hours before `until`.
        since: Query<Option<DateTime<Utc>>>,
        /// End of the span (exclusive), RFC 3339 such as `2026-12-02T00:00:00Z` (encode `+` as
        /// `%2B`); default: now.
        until: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<CoverageBody>, ApiError> {
        let until = match until.0 {
            Some(until) => params::checked_time("until", until)?,
            None => Utc::now(),
        };
        let since = since
            .0
            .unwrap_or_else(|| until - Duration::hours(DEFAULT_COVERAGE_HOURS));
        let window = params::span(Some(since), Some(until))?;
        if window.until - window.since > Duration::days(MAX_COVERAGE_DAYS) {
            return Err(ApiError::bad_request(format!(
                "the span from since to until is at most {MAX_COVERAGE_DAYS} days; got {} hours",
                (window.until - window.since).num_hours()
            )));
        }
        let hours = touched_hours(&window);
        // Independent reads: a store that answers over the network serves them at once.
        let (records, stored, run) = tokio::try_join!(
            self.store.archive_hours(hours),
            self.store.timeline(hours, HOUR_SECONDS),
            self.store.complete_run(),
        )?;
        Ok(Json(coverage_body(window, &records, &stored, run)))
    }
}

/// The answer of `/coverage`, from the records of the hours `window` touches and a timeline of
/// those hours in hour buckets.
fn coverage_body(
    window: TimeWindow,
    records: &[ArchiveHour],
    stored: &github_stats_core::Timeline,
    run: Option<CompleteRun>,
) -> CoverageBody {
    let mut records = records.iter().peekable();
    let mut hours = Vec::with_capacity(stored.bucket_starts.len());
    let mut missing_hours = Vec::new();
    for (i, &hour) in stored.bucket_starts.iter().enumerate() {
        debug_assert_eq!(hour, hour_floor(hour));
        while records.next_if(|r| r.hour < hour).is_some() {}
        let record = records.next_if(|r| r.hour == hour);
        let archive = record.map_or(ArchiveState::Pending, |r| r.status.into());
        if archive == ArchiveState::Missing {
            missing_hours.push(hour.into());
        }
        let measured = matches!(archive, ArchiveState::Imported | ArchiveState::Damaged);
        hours.push(CoverageHour {
            hour: hour.into(),
            archive,
            archive_events: record.filter(|_| measured).map(|r| r.archive_events),
            polled_before_archive: record.filter(|_| measured).map(|r| r.polled_before_archive),
            poller_coverage: record.and_then(ArchiveHour::poller_coverage),
            stored_events: stored.counts.iter().map(|c| c[i]).sum(),
        });
    }
    let (complete_from, complete_until) = run_bounds(run);
    CoverageBody {
        since: window.since.into(),
        until: window.until.into(),
        hours,
        complete_from: complete_from.map(UtcTime),
        complete_until: complete_until.map(UtcTime),
        missing_hours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use github_stats_core::Timeline;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn every_touched_hour_is_listed_with_its_state() {
        let h = |i: i64| t(1_800_000_000 / 3600 * 3600 + i * 3600);
        let window = TimeWindow::new(h(0) + Duration::minutes(30), h(4)).unwrap();
        let hours = touched_hours(&window);
        let stored = Timeline {
            window: hours,
            bucket_seconds: HOUR_SECONDS,
            bucket_starts: (0..4).map(h).collect(),
            counts: [vec![1, 2, 3, 4], vec![0, 0, 1, 0], vec![0, 0, 0, 0]],
        };
        let records = [
            ArchiveHour::new(h(-1), ArchiveStatus::Imported, 9, 9, h(9)),
            ArchiveHour::new(h(0), ArchiveStatus::Imported, 10, 4, h(9)),
            ArchiveHour::new(h(2), ArchiveStatus::Missing, 0, 0, h(9)),
            ArchiveHour::new(h(3), ArchiveStatus::Damaged, 7, 1, h(9)),
        ];
        let run = CompleteRun::latest([h(0).timestamp()]);
        let body = coverage_body(window, &records, &stored, run);
        let states: Vec<_> = body.hours.iter().map(|h| h.archive).collect();
        assert_eq!(
            states,
            [
                ArchiveState::Imported,
                ArchiveState::Pending,
                ArchiveState::Missing,
                ArchiveState::Damaged
            ]
        );
        assert_eq!(body.hours[0].poller_coverage, Some(0.4));
        assert_eq!(body.hours[1].archive_events, None);
        assert_eq!(body.hours[2].archive_events, None);
        assert_eq!(body.hours[3].archive_events, Some(7));
        assert_eq!(body.hours[3].poller_coverage, None);
        assert_eq!(
            body.hours
                .iter()
                .map(|h| h.stored_events)
                .collect::<Vec<_>>(),
            [1, 2, 4, 4]
        );
        assert_eq!(body.missing_hours, [UtcTime(h(2))]);
        assert_eq!(
            (body.complete_from, body.complete_until),
            (Some(UtcTime(h(0))), Some(UtcTime(h(1))))
        );
    }
}
