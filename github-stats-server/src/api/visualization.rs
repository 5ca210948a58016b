//! `GET /metrics/visualization` (a timeline as JSON), `GET /metrics/visualization.svg` (the same
//! timeline as an SVG chart, drawn by [`crate::chart`]) and the dashboard: `GET /` with its
//! script and stylesheet, embedded in the binary.

use chrono::{DateTime, Utc};
use github_stats_core::{
    EventType, MAX_TIMELINE_BUCKETS, SharedStore, Timeline, TypeCounts, WindowCoverage,
    WindowError, timeline_buckets,
};
use poem_openapi::param::Query;
use poem_openapi::payload::{Html, Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::coverage::window_coverage;
use super::metrics::EventTypeCounts;
use super::time::UtcTime;
use super::{ApiError, ApiTags, AppState, params};
use crate::chart::{ChartOptions, render_svg};

/// The dashboard page.
pub const DASHBOARD_HTML: &str = include_str!("../../assets/dashboard.html");
/// The dashboard's script.
pub const DASHBOARD_JS: &str = include_str!("../../assets/dashboard.js");
/// The dashboard's stylesheet.
pub const DASHBOARD_CSS: &str = include_str!("../../assets/dashboard.css");

/// About how many buckets the default bucket length gives.
pub const TARGET_BUCKETS: u32 = 60;

/// The bucket lengths, in minutes, that the default picks from: round lengths of time.
pub const NICE_BUCKET_MINUTES: &[u32] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10_080,
];

/// The default bucket length for a window of `offset_minutes`: the smallest round length (see
/// [`NICE_BUCKET_MINUTES`]) that gives at most [`TARGET_BUCKETS`] buckets, so between about 25
/// and 60 for any window over an hour.
pub fn default_bucket_minutes(offset_minutes: u32) -> u32 {
    NICE_BUCKET_MINUTES
        .iter()
        .copied()
        .find(|&m| offset_minutes.div_ceil(m) <= TARGET_BUCKETS)
        .unwrap_or(NICE_BUCKET_MINUTES[NICE_BUCKET_MINUTES.len() - 1])
}

/// One of the three kept event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum EventTypeName {
    /// Stars.
    WatchEvent,
    /// Pull request activity (every action).
    PullRequestEvent,
    /// Issue activity (every action).
    IssuesEvent,
}

impl From<EventType> for EventTypeName {
    fn from(t: EventType) -> EventTypeName {
        match t {
            EventType::WatchEvent => EventTypeName::WatchEvent,
            EventType::PullRequestEvent => EventTypeName::PullRequestEvent,
            EventType::IssuesEvent => EventTypeName::IssuesEvent,
        }
    }
}

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct TimelinePoint {
    /// Start of the bucket (inclusive); the bucket ends `bucket_minutes` later.
    pub t: UtcTime,
    /// Distinct events of the series' type in the bucket and inside the window.
    pub count: u64,
}

/// The buckets of one event type.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct TimelineSeries {
    /// The event type counted.
    pub event_type: EventTypeName,
    /// The sum of the points' counts: the events of this type in the window.
    pub total: u64,
    /// One point per bucket, oldest first, empty buckets included with count 0; every series
    /// has the same buckets.
    pub points: Vec<TimelinePoint>,
}

/// Events per type per time bucket over a window `[since, until)`, ready for a chart.
///
/// Buckets are aligned to multiples of their length since the Unix epoch (a 5-minute bucket
/// starts at :00, :05, …), so the first and the last may start before `since` or end after
/// `until`; only events inside the window are counted, so the series add up to
/// `/metrics/events` over the same window.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct TimelineBody {
    /// The window's length in minutes, as asked.
    pub offset_minutes: u32,
    /// The length of every bucket, in minutes: as asked, or the default for the window.
    pub bucket_minutes: u32,
    /// Start of the window, inclusive: `until - offset_minutes`.
    pub since: UtcTime,
    /// End of the window, exclusive (second precision).
    pub until: UtcTime,
    /// One series per event type, always all three, in the order WatchEvent,
    /// PullRequestEvent, IssuesEvent.
    pub series: Vec<TimelineSeries>,
    /// Events of each type in the window (the series' totals), as in `/metrics/events`.
    pub event_counts: EventTypeCounts,
    /// The sum of `event_counts`.
    pub total_events: u64,
    /// Whether every hour the window touches was imported from GH Archive: the counts are
    /// GitHub's own, not the poller's sample (see `/coverage`).
    pub complete: bool,
    /// The share of the window's duration covered by imported GH Archive hours, 0 to 1.
    pub archived_share: f64,
}

impl TimelineBody {
    /// Maps a core timeline and the window's coverage to the API's shape.
    pub fn new(
        offset_minutes: u32,
        bucket_minutes: u32,
        timeline: &Timeline,
        coverage: WindowCoverage,
    ) -> TimelineBody {
        let mut totals = TypeCounts::default();
        let series = EventType::ALL
            .into_iter()
            .map(|event_type| {
                let counts = &timeline.counts[event_type.index()];
                let points: Vec<TimelinePoint> = timeline
                    .bucket_starts
                    .iter()
                    .zip(counts)
                    .map(|(&t, &count)| TimelinePoint { t: t.into(), count })
                    .collect();
                let total = counts.iter().sum();
                totals[event_type] = total;
                TimelineSeries {
                    event_type: event_type.into(),
                    total,
                    points,
                }
            })
            .collect();
        TimelineBody {
            offset_minutes,
            bucket_minutes,
            since: timeline.window.since.into(),
            until: timeline.window.until.into(),
            series,
            event_counts: totals.into(),
            total_events: totals.total(),
            complete: coverage.complete,
            archived_share: coverage.archived_share,
        }
    }
}

/// The chart.
#[derive(Debug, ApiResponse)]
pub enum SvgResponse {
    /// The timeline drawn as an SVG document.
    #[oai(status = 200, content_type = "image/svg+xml; charset=utf-8")]
    Svg(
        PlainText<String>,
        /// Charts of a window ending now change every second: not cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// A static file of the dashboard.
#[derive(Debug, ApiResponse)]
pub enum AssetResponse {
    /// The script.
    #[oai(status = 200, content_type = "text/javascript; charset=utf-8")]
    Script(PlainText<&'static str>),
    /// The stylesheet.
    #[oai(status = 200, content_type = "text/css; charset=utf-8")]
    Stylesheet(PlainText<&'static str>),
}

/// The timeline, its chart and the dashboard.
pub struct VisualizationApi {
    store: SharedStore,
}

impl VisualizationApi {
    /// The visualizations over `state`'s store.
    pub fn new(state: &AppState) -> VisualizationApi {
        VisualizationApi {
            store: state.store.clone(),
        }
    }

    /// The timeline asked for, with the bucket length used.
    async fn timeline(
        &self,
        offset: u32,
        bucket_minutes: Option<u32>,
        until: Option<DateTime<Utc>>,
    ) -> Result<(Timeline, u32), ApiError> {
        let window = params::window(until, offset)?;
        let bucket_minutes = bucket_minutes.unwrap_or_else(|| default_bucket_minutes(offset));
        let bucket_seconds = i64::from(bucket_minutes) * 60;
        match timeline_buckets(&window, bucket_seconds) {
            Ok(_) => {}
            Err(WindowError::TooManyBuckets(_)) => {
                // At most one bucket more than offset / bucket_minutes, for the alignment.
                let smallest = offset.div_ceil(MAX_TIMELINE_BUCKETS as u32 - 1);
                return Err(ApiError::bad_request(format!(
                    "bucket_minutes={bucket_minutes} over offset={offset} makes more than \
                     {MAX_TIMELINE_BUCKETS} buckets: use bucket_minutes of at least {smallest}"
                )));
            }
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "until is too early for buckets of bucket_minutes={bucket_minutes}: until \
                     must be {}",
                    params::expectation("until").unwrap_or_default()
                )));
            }
        }
        let timeline = self.store.timeline(window, bucket_seconds).await?;
        Ok((timeline, bucket_minutes))
    }
}

#[OpenApi(tag = "ApiTags::Visualization")]
impl VisualizationApi {
    /// Timeline of events by type
    ///
    /// Distinct stored events of each type per time bucket over the window
    /// `[until - offset, until)`: one series per type, one point per bucket, empty buckets as
    /// zeros. Buckets are aligned to multiples of their length since the Unix epoch.
    #[oai(path = "/metrics/visualization", method = "get")]
    async fn visualization(
        &self,
        /// The window's length in whole minutes, 1 to 525600 (one year).
        #[oai(validator(minimum(value = "1"), maximum(value = "525600")))]
        offset: Query<u32>,
        /// Bucket length in whole minutes, 1 to 525600; default: a round length (1, 2, 5, 10,
        /// 15, 30 minutes, 1, 2, 3, 6, 12 hours, 1, 2, 7 days) giving at most 60 buckets. At
        /// most 10000 buckets.
        #[oai(validator(minimum(value = "1"), maximum(value = "525600")))]
        bucket_minutes: Query<Option<u32>>,
        /// End of the window (exclusive), RFC 3339 such as `2026-01-25T12:00:00Z` (encode `+`
        /// as `%2B`); default: now.
        until: Query<Option<DateTime<Utc>>>,
    ) -> Result<Json<TimelineBody>, ApiError> {
        let (timeline, bucket_minutes) = self.timeline(offset.0, bucket_minutes.0, until.0).await?;
        let coverage = window_coverage(&self.store, timeline.window).await?;
        Ok(Json(TimelineBody::new(
            offset.0,
            bucket_minutes,
            &timeline,
            coverage,
        )))
    }

    /// Timeline chart (SVG)
    ///
    /// The timeline of `/metrics/visualization` drawn as a line chart: one line per event
    /// type, a legend with the totals, time on the horizontal axis (UTC), counts per bucket on
    /// the vertical one. Errors are JSON, as everywhere.
    #[oai(path = "/metrics/visualization.svg", method = "get")]
    async fn visualization_svg(
        &self,
        /// The window's length in whole minutes, 1 to 525600 (one year).
        #[oai(validator(minimum(value = "1"), maximum(value = "525600")))]
        offset: Query<u32>,
        /// Bucket length in whole minutes, 1 to 525600; default: a round length giving at most
        /// 60 buckets. At most 10000 buckets.
        #[oai(validator(minimum(value = "1"), maximum(value = "525600")))]
        bucket_minutes: Query<Option<u32>>,
        /// End of the window (exclusive), RFC 3339; default: now.
        until: Query<Option<DateTime<Utc>>>,
    ) -> Result<SvgResponse, ApiError> {
        let (timeline, _) = self.timeline(offset.0, bucket_minutes.0, until.0).await?;
        let svg = render_svg(&timeline, &ChartOptions::default());
        Ok(SvgResponse::Svg(PlainText(svg), "no-store".to_owned()))
    }

    /// Dashboard
    ///
    /// An HTML page showing the counts by type for a chosen window, the chart (refreshed every
    /// few seconds), a repository's PR average and the poller and store status. Everything it
    /// loads is served by this server. The page's state is in its query string:
    /// `?offset=60&until=2026-01-25T12:00:00Z&refresh=5&repo=owner/name`.
    #[oai(path = "/", method = "get")]
    async fn dashboard(&self) -> Html<&'static str> {
        Html(DASHBOARD_HTML)
    }

    /// The dashboard's script.
    #[oai(path = "/assets/dashboard.js", method = "get", hidden)]
    async fn dashboard_js(&self) -> AssetResponse {
        AssetResponse::Script(PlainText(DASHBOARD_JS))
    }

    /// The dashboard's stylesheet.
    #[oai(path = "/assets/dashboard.css", method = "get", hidden)]
    async fn dashboard_css(&self) -> AssetResponse {
        AssetResponse::Stylesheet(PlainText(DASHBOARD_CSS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_buckets_are_round_and_about_sixty() {
        assert_eq!(default_bucket_minutes(1), 1);
        assert_eq!(default_bucket_minutes(60), 1);
        assert_eq!(default_bucket_minutes(61), 2);
        assert_eq!(default_bucket_minutes(300), 5);
        assert_eq!(default_bucket_minutes(1440), 30);
        assert_eq!(default_bucket_minutes(10_080), 180);
        assert_eq!(default_bucket_minutes(525_600), 10_080);
        for offset in [
            1, 7, 59, 60, 61, 119, 120, 121, 1000, 4321, 100_000, 525_600,
        ] {
            let m = default_bucket_minutes(offset);
            assert!(NICE_BUCKET_MINUTES.contains(&m));
            let buckets = offset.div_ceil(m);
            assert!(buckets <= TARGET_BUCKETS, "{offset}: {buckets}");
            if offset >= 60 {
                assert!(buckets >= 20, "{offset}: {buckets} buckets of {m}");
            }
        }
    }
}
