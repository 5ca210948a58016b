//! The API benchmark's yardstick (`benches/README.md`, section API): a bare poem server whose
//! handlers answer the JSON shapes of `GET /metrics/events`,
//! `GET /metrics/pr-average/{owner}/{repo}` and `GET /debug/total-events` from constants, with no store, no validation, no
//! middleware and no spec. What the server does beyond this is what the benchmark measures.
//!
//! ```text
//! cargo run --release -p github-stats-server --example bare_handler -- 127.0.0.1:18081
//! ```

use anyhow::Context;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use poem::listener::TcpListener;
use poem::web::{Json, Path};
use poem::{Route, Server, get, handler};
use serde::Serialize;

#[derive(Serialize)]
struct EventTypeCounts {
    #[serde(rename = "WatchEvent")]
    watch_event: u64,
    #[serde(rename = "PullRequestEvent")]
    pull_request_event: u64,
    #[serde(rename = "IssuesEvent")]
    issues_event: u64,
}

#[derive(Serialize)]
struct EventCountsBody {
    offset_minutes: u32,
    since: String,
    until: String,
    event_counts: EventTypeCounts,
    total_events: u64,
    complete: bool,
    archived_share: f64,
}

#[derive(Serialize)]
struct PrAverageBody {
    repository: String,
    average_time_seconds: Option<f64>,
    total_pull_requests: u64,
    first_opened_at: Option<String>,
    last_opened_at: Option<String>,
    since: Option<String>,
    until: Option<String>,
    complete: Option<bool>,
    archived_share: Option<f64>,
    complete_from: Option<String>,
    complete_until: Option<String>,
}

/// A time as the server writes it.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[handler]
fn events() -> Json<EventCountsBody> {
    // Like the server: `until` is now, to the second.
    let until = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default();
    Json(EventCountsBody {
        offset_minutes: 60,
        since: rfc3339(until - Duration::minutes(60)),
        until: rfc3339(until),
        event_counts: EventTypeCounts {
            watch_event: 1024,
            pull_request_event: 512,
            issues_event: 256,
        },
        total_events: 1792,
        complete: false,
        archived_share: 0.0,
    })
}

#[derive(Serialize)]
struct TotalEventsBody {
    total_events: u64,
}

#[handler]
fn total_events() -> Json<TotalEventsBody> {
    Json(TotalEventsBody {
        total_events: 1_000_000,
    })
}

#[handler]
fn pr_average(Path((owner, repo)): Path<(String, String)>) -> Json<PrAverageBody> {
    let first = DateTime::from_timestamp(1_420_113_600, 0).unwrap_or_default();
    Json(PrAverageBody {
        repository: format!("{owner}/{repo}"),
        average_time_seconds: Some(12.5),
        total_pull_requests: 655,
        first_opened_at: Some(rfc3339(first)),
        last_opened_at: Some(rfc3339(first + Duration::hours(2))),
        since: None,
        until: None,
        complete: None,
        archived_share: None,
        complete_from: None,
        complete_until: None,
    })
}

fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    // The server's runtime: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Route::new()
            .at("/metrics/events", get(events))
            .at("/metrics/pr-average/:owner/:repo", get(pr_average))
            .at("/debug/total-events", get(total_events));
        Server::new(TcpListener::bind(address))
            .run(app)
            .await
            .context("server error")
    })
}
