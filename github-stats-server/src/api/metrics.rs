//! `GET /metrics/pr-average/{owner}/{repo}` and `GET /metrics/events`.

use chrono::{DateTime, Utc};
use github_stats_core::{
    CompleteRun, EventType, PrAverage, SharedStore, TimeWindow, TypeCounts, WindowCoverage,
};
use poem_openapi::param::{Path, Query};
use poem_openapi::{Object, OpenApi};
use serde::Serialize;

use super::coverage::{run_bounds, window_coverage};
use super::json::DirectJson;
use super::time::UtcTime;
use super::{ApiError, ApiTags, AppState, params, repository};

/// Average time between the opened pull requests of a repository, over all time or over the
/// openings inside `[since, until)`.
#[derive(Debug, Clone, Object, Serialize)]
pub struct PrAverageBody {
    /// `owner/name`.
    pub repository: String,
    /// Mean seconds between consecutive openings, `(last - first) / (n - 1)`; `null` with fewer
    /// than two opened pull requests.
    pub average_time_seconds: Option<f64>,
    /// Distinct `PullRequestEvent`s with action `opened`.
    pub total_pull_requests: u64,
    /// The earliest opening, `null` when none.
    pub first_opened_at: Option<UtcTime>,
    /// The latest opening, `null` when none.
    pub last_opened_at: Option<UtcTime>,
    /// Start of the window asked (inclusive); `null` for all time.
    pub since: Option<UtcTime>,
    /// End of the window asked (exclusive); `null` for all time.
    pub until: Option<UtcTime>,
    /// With a window: whether every hour it touches was imported from GH Archive, so the
    /// average is over every opening GitHub recorded, not a sample; `null` for all time.
    pub complete: Option<bool>,
    /// With a window: the share of its duration covered by imported GH Archive hours, 0 to 1;
    /// `null` for all time.
    pub archived_share: Option<f64>,
    /// Start of the latest unbroken run of hours imported from GH Archive (as in
    /// `/coverage`): openings from then on are complete; `null` when none was imported.
    pub complete_from: Option<UtcTime>,
    /// End (exclusive) of that run; `null` when none was imported.
    pub complete_until: Option<UtcTime>,
}

impl PrAverageBody {
    /// The answer for `avg`, over `window` (with its coverage) or all time, with the latest
    /// complete run.
    pub fn new(
        avg: PrAverage,
        window: Option<(TimeWindow, WindowCoverage)>,
        run: Option<CompleteRun>,
    ) -> PrAverageBody {
        let (complete_from, complete_until) = run_bounds(run);
        PrAverageBody {
            average_time_seconds: avg.average_seconds(),
            repository: avg.repository,
            total_pull_requests: avg.opened_count,
            first_opened_at: avg.first_opened_at.map(UtcTime),
            last_opened_at: avg.last_opened_at.map(UtcTime),
            since: window.map(|(w, _)| UtcTime(w.since)),
            until: window.map(|(w, _)| UtcTime(w.until)),
            complete: window.map(|(_, c)| c.complete),
            archived_share: window.map(|(_, c)| c.archived_share),
            complete_from: complete_from.map(UtcTime),
            complete_until: complete_until.map(UtcTime),
        }
    }
}

/// A count per event type; every type is present, zero included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Object, Serialize)]
pub struct EventTypeCounts {
    /// Stars.
    #[oai(rename = "WatchEvent")]
    #[serde(rename = "WatchEvent")]
    pub watch_event: u64,
    /// Pull request activity (every action).
    #[oai(rename = "PullRequestEvent")]
    #[serde(rename = "PullRequestEvent")]
    pub pull_request_event: u64,
    /// Issue activity (every action).
    #[oai(rename = "IssuesEvent")]
    #[serde(rename = "IssuesEvent")]
    pub issues_event: u64,
}

impl From<TypeCounts> for EventTypeCounts {
    fn from(counts: TypeCounts) -> EventTypeCounts {
        EventTypeCounts {
            watch_event: counts[EventType::WatchEvent],
            pull_request_event: counts[EventType::PullRequestEvent],
            issues_event: counts[EventType::IssuesEvent],
        }
    }
}

/// Events by type in a window `[since, until)`.
#[derive(Debug, Clone, Object, Serialize)]
pub struct EventCountsBody {
    /// The window's length in minutes, as asked.
    pub offset_minutes: u32,
    /// Start of the window, inclusive: `until - offset_minutes`.
    pub since: UtcTime,
    /// End of the window, exclusive (second precision).
    pub until: UtcTime,
    /// Distinct events of each type with `since <= created_at < until`.
    pub event_counts: EventTypeCounts,
    /// The sum of `event_counts`.
    pub total_events: u64,
    /// Whether every hour the window touches was imported from GH Archive: the counts are
    /// GitHub's own, not the poller's sample (see `/coverage`).
    pub complete: bool,
    /// The share of the window's duration covered by imported GH Archive hours, 0 to 1.
    pub archived_share: f64,
}

/// The metrics.
pub struct MetricsApi {
    store: SharedStore,
}

impl MetricsApi {
    /// The metrics over `state`'s store.
    pub fn new(state: &AppState) -> MetricsApi {
        MetricsApi {
            store: state.store.clone(),
        }
    }
}

#[OpenApi(tag = "ApiTags::Metrics")]
impl MetricsApi {
    /// Average time between pull requests
    ///
    /// Over the repository's distinct `PullRequestEvent`s with action `opened`, sorted by
    /// `created_at`: the mean of consecutive gaps in seconds, which is
    /// `(last - first) / (n - 1)`; `null` with fewer than two. An unknown repository gives zero
    /// pull requests, not an error. With `since` and/or `until`, only the openings inside
    /// `[since, until)` count, and `complete` says whether GH Archive covers that whole
    /// window: ask for a span inside `complete_from`..`complete_until` for an exact average.
    #[oai(path = "/metrics/pr-average/:owner/:repo", method = "get")]
    async fn pr_average(
        &self,
        /// Repository owner (letters, digits, `-`).
        owner: Path<String>,
        /// Repository name (letters, digits, `-`, `_`, `.`); at most 140 characters with the owner.
        repo: Path<String>,
        /// Only openings at or after this time, RFC 3339 such as `2026-11-01T00:00:00Z`;
        /// default: all time (or the Unix epoch when only `until` is given).
        since: Query<Option<DateTime<Utc>>>,
        /// Only openings before this time, RFC 3339 (encode `+` as `%2B`); default: now when
        /// `since` is given, else all time.
        until: Query<Option<DateTime<Utc>>>,
    ) -> Result<DirectJson<PrAverageBody>, ApiError> {
        let repo = repository(&owner, &repo)?;
        // The store's reads are independent: run together (ClickHouse answers them in parallel;
        // the memory store in place, one after the other, at no cost).
        if since.0.is_none() && until.0.is_none() {
            let (avg, run) =
                tokio::try_join!(self.store.pr_average(&repo), self.store.complete_run())?;
            return Ok(DirectJson(PrAverageBody::new(avg, None, run)));
        }
        let window = params::span(since.0, until.0)?;
        let (avg, coverage, run) = tokio::try_join!(
            self.store.pr_average_in(&repo, window),
            window_coverage(&self.store, window),
            self.store.complete_run(),
        )?;
        Ok(DirectJson(PrAverageBody::new(
            avg,
            Some((window, coverage)),
            run,
        )))
    }

    /// Events by type in the last N minutes
    ///
    /// Distinct stored events of each type (`WatchEvent`, `PullRequestEvent`, `IssuesEvent`)
    /// with `until - offset <= created_at < until`. Every type is present, zero included.
    #[oai(path = "/metrics/events", method = "get")]
    async fn events(
        &self,
        /// The window's length in whole minutes, 1 to 525600 (one year).
        // The maximum is `MAX_WINDOW_MINUTES` (an attribute takes only a literal; a test checks
        // that the spec says the constant).
        #[oai(validator(minimum(value = "1"), maximum(value = "525600")))]
        offset: Query<u32>,
        /// End of the window (exclusive), RFC 3339 such as `2026-01-25T12:00:00Z` (encode `+`
        /// as `%2B`); default: now.
        until: Query<Option<DateTime<Utc>>>,
    ) -> Result<DirectJson<EventCountsBody>, ApiError> {
        let window = params::window(until.0, offset.0)?;
        let (counts, coverage) = tokio::try_join!(
            self.store.event_counts(window),
            window_coverage(&self.store, window),
        )?;
        Ok(DirectJson(EventCountsBody {
            offset_minutes: offset.0,
            since: counts.window.since.into(),
            until: counts.window.until.into(),
            event_counts: counts.counts.into(),
            total_events: counts.counts.total(),
            complete: coverage.complete,
            archived_share: coverage.archived_share,
        }))
    }
}
