//! `GET /metrics/pr-average/{owner}/{repo}` and `GET /metrics/events`.

use chrono::{DateTime, Utc};
use github_stats_core::{EventType, PrAverage, SharedStore, TypeCounts};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::{ApiError, ApiTags, AppState, params, repository};

/// The largest `offset`: one year of minutes.
pub const MAX_OFFSET_MINUTES: u32 = 525_600;

/// Average time between the opened pull requests of a repository.
#[derive(Debug, Clone, Object)]
pub struct PrAverageBody {
    /// `owner/name`.
    pub repository: String,
    /// Mean seconds between consecutive openings, `(last - first) / (n - 1)`; `null` with fewer
    /// than two opened pull requests.
    pub average_time_seconds: Option<f64>,
    /// Distinct `PullRequestEvent`s with action `opened`.
    pub total_pull_requests: u64,
    /// The earliest opening, `null` when none.
    pub first_opened_at: Option<DateTime<Utc>>,
    /// The latest opening, `null` when none.
    pub last_opened_at: Option<DateTime<Utc>>,
}

impl From<PrAverage> for PrAverageBody {
    fn from(avg: PrAverage) -> PrAverageBody {
        PrAverageBody {
            average_time_seconds: avg.average_seconds(),
            repository: avg.repository,
            total_pull_requests: avg.opened_count,
            first_opened_at: avg.first_opened_at,
            last_opened_at: avg.last_opened_at,
        }
    }
}

/// A count per event type; every type is present, zero included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Object)]
pub struct EventTypeCounts {
    /// Stars.
    #[oai(rename = "WatchEvent")]
    pub watch_event: u64,
    /// Pull request activity (every action).
    #[oai(rename = "PullRequestEvent")]
    pub pull_request_event: u64,
    /// Issue activity (every action).
    #[oai(rename = "IssuesEvent")]
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
#[derive(Debug, Clone, Object)]
pub struct EventCountsBody {
    /// The window's length in minutes, as asked.
    pub offset_minutes: u32,
    /// Start of the window, inclusive: `until - offset_minutes`.
    pub since: DateTime<Utc>,
    /// End of the window, exclusive (second precision).
    pub until: DateTime<Utc>,
    /// Distinct events of each type with `since <= created_at < until`.
    pub event_counts: EventTypeCounts,
    /// The sum of `event_counts`.
    pub total_events: u64,
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
    /// pull requests, not an error.
    #[oai(path = "/metrics/pr-average/:owner/:repo", method = "get")]
    async fn pr_average(
        &self,
        /// Repository owner (letters, digits, `-`).
        owner: Path<String>,
        /// Repository name (letters, digits, `-`, `_`, `.`); at most 140 characters with the owner.
        repo: Path<String>,
    ) -> Result<Json<PrAverageBody>, ApiError> {
        let repo = repository(&owner, &repo)?;
        let avg = self.store.pr_average(&repo).await?;
        Ok(Json(avg.into()))
    }

    /// Events by type in the last N minutes
    ///
    /// Distinct stored events of each type (`WatchEvent`, `PullRequestEvent`, `IssuesEvent`)
    /// with `until - offset <= created_at < until`. Every type is present, zero included.
    #[oai(path = "/metrics/events", method = "get")]
    async fn events(
        &self,
        /// The window's length in whole minutes, 1 to 525600 (one year).
        #[oai(validator(minimum(value = "1"), maximum(value = "525600")))]
        offset: Query<u32>,
        /// End of the window (exclusive), RFC 3339 such as `2026-01-25T12:00:00Z` (encode `+`
        /// as `%2B`); default: now.
        until: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<EventCountsBody>, ApiError> {
        let window = params::window(until.0, offset.0)?;
        let counts = self.store.event_counts(window).await?;
        Ok(Json(EventCountsBody {
            offset_minutes: offset.0,
            since: counts.window.since,
            until: counts.window.until,
            event_counts: counts.counts.into(),
            total_events: counts.counts.total(),
        }))
    }
}
