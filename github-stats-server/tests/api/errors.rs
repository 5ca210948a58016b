//! Every bad input of the issue gives a 400 in the `{"error"}` shape naming what is wrong;
//! unknown paths a 404; an unreachable store a 503; a panic or a slow store never leaks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use github_stats_core::{
    ArchiveHour, CompleteRun, Event, EventCounts, EventStore, InsertOutcome, MetricsQuery,
    PrAverage, RepoEventCount, RepoEventCounts, RepoName, StoreError, StoreHealth, TimeWindow,
    Timeline,
};
use github_stats_server::api::AppState;
use poem::http::StatusCode;

use crate::helpers::{assert_error, client_for, client_with, get, recorded_store};

#[tokio::test]
async fn bad_offsets_are_400_naming_offset() {
    let client = client_for(recorded_store().await);
    for query in [
        "",
        "?offset=",
        "?offset=abc",
        "?offset=1.5",
        "?offset=0",
        "?offset=-1",
        "?offset=-525600",
        "?offset=525601",
        "?offset=4294967296",
        "?offset=99999999999999999999999",
        "?until=2015-01-01T13:00:00Z",
    ] {
        let answer = get(&client, &format!("/metrics/events{query}")).await;
        let message = assert_error(&answer, StatusCode::BAD_REQUEST, query);
        assert!(message.contains("offset"), "{query}: {message}");
    }
    // The bounds themselves are fine.
    for offset in [1, 525_600] {
        let answer = get(&client, &format!("/metrics/events?offset={offset}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{offset}");
    }
}

#[tokio::test]
async fn bad_until_is_400_naming_until() {
    let client = client_for(recorded_store().await);
    for until in [
        "yesterday",
        "2021-07-21",
        "2021-07-21T07:00:00",
        "12345",
        "2021-13-01T00:00:00Z",
        "2021-07-21T07:00:00+01:00",
        "2021-07-21T07:00:00%2001:00",
        "2021-07-21T07:00:00.5",
        "",
    ] {
        let query = format!("/metrics/events?offset=10&until={until}");
        let answer = get(&client, &query).await;
        let message = assert_error(&answer, StatusCode::BAD_REQUEST, &query);
        assert!(message.contains("until"), "{query}: {message}");
    }
}

#[tokio::test]
async fn bad_repositories_are_400() {
    let client = client_for(recorded_store().await);
    let long = format!("owner/{}", "r".repeat(140));
    let bad: Vec<String> = vec![
        "owner/repo/extra".into(),
        "owner//repo".into(),
        "/repo".into(),
        "owner/".into(),
        "owner".into(),
        "".into(),
        "own%00er/repo".into(),
        "owner/re%00po".into(),
        "o%27neil/repo".into(),
        "owner/re%22po".into(),
        "own%20er/repo".into(),
        "owner/re%20po".into(),
        "owner/..".into(),
        "own.er/repo".into(),
        "owner/r%C3%A9po".into(),
        "owner%2Frepo/x".into(),
        "own%3Ber/repo".into(),
        long,
    ];
    for prefix in ["/metrics/pr-average/", "/debug/repo-events/"] {
        for repo in &bad {
            let uri = format!("{prefix}{repo}");
            let answer = get(&client, &uri).await;
            let message = assert_error(&answer, StatusCode::BAD_REQUEST, &uri);
            assert!(message.contains("repository"), "{uri}: {message}");
        }
    }
    // The longest name GitHub allows is fine.
    let longest = format!("{}/{}", "o".repeat(39), "r".repeat(100));
    let answer = get(&client, &format!("/metrics/pr-average/{longest}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn bad_limits_are_400_naming_limit() {
    let client = client_for(recorded_store().await);
    for limit in ["0", "1001", "-1", "abc", "1e3", "18446744073709551616"] {
        let uri = format!("/debug/repos-by-event-count?limit={limit}");
        let answer = get(&client, &uri).await;
        let message = assert_error(&answer, StatusCode::BAD_REQUEST, &uri);
        assert!(message.contains("limit"), "{uri}: {message}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json() {
    let client = client_for(recorded_store().await);
    for path in [
        "/nope",
        // (`/metrics` itself is the Prometheus endpoint.)
        "/metrics/nothing",
        "/metrics/events/extra",
        "/debug",
        "/health/x",
    ] {
        let answer = get(&client, path).await;
        assert_error(&answer, StatusCode::NOT_FOUND, path);
    }
    let response = client.post("/metrics/events?offset=5").send().await.0;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().into_vec().await.unwrap()).unwrap();
    assert!(body["error"].is_string(), "{body}");
}

/// A store that fails in a chosen way on every call.
#[derive(Clone, Copy)]
pub enum Failure {
    Unreachable,
    /// A ClickHouse cluster with one shard down: the store answers, its queries do not.
    ShardDown,
    Panics,
    Slow,
    /// The backend's own error, as ClickHouse words it (naming tables, quoting SQL).
    Backend,
}

/// What [`Failure::Backend`] says: text no API client may see.
const BACKEND_TEXT: &str = "Code: 47, e.displayText() = DB::Exception: Missing columns: \
                            'secret' while processing query: 'SELECT secret FROM \
                            github_stats.events', version 18.16.1";

pub struct BrokenStore(pub Failure);

impl BrokenStore {
    async fn fail<T>(&self) -> Result<T, StoreError> {
        match self.0 {
            Failure::Unreachable => Err(StoreError::Unavailable(
                "connection refused (127.0.0.1:9)".into(),
            )),
            Failure::ShardDown => Err(StoreError::Unavailable(
                "could not reach part of the cluster: All connection tries failed".into(),
            )),
            Failure::Panics => panic!("the store exploded"),
            Failure::Backend => Err(StoreError::Backend(BACKEND_TEXT.into())),
            Failure::Slow => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Err(StoreError::Unavailable("too late".into()))
            }
        }
    }
}

#[async_trait]
impl EventStore for BrokenStore {
    async fn insert_events(&self, _: &[Event]) -> Result<InsertOutcome, StoreError> {
        self.fail().await
    }
    async fn health(&self) -> StoreHealth {
        match self.0 {
            Failure::Unreachable => StoreHealth::unreachable("broken", "connection refused"),
            Failure::ShardDown => {
                let mut health = StoreHealth::new("broken", true, 0, None);
                health.degraded = true;
                health.error = Some("shard 2 does not answer".into());
                health.details.insert(
                    "nodes".into(),
                    serde_json::json!([{"shard": 1, "up": true}, {"shard": 2, "up": false}]),
                );
                health
            }
            _ => self.fail::<StoreHealth>().await.unwrap(),
        }
    }
    async fn record_archive_hour(&self, _: &ArchiveHour) -> Result<(), StoreError> {
        self.fail().await
    }
    async fn count_stored(&self, _: &[Event]) -> Result<u64, StoreError> {
        self.fail().await
    }
    fn backend_name(&self) -> &'static str {
        "broken"
    }
}

#[async_trait]
impl MetricsQuery for BrokenStore {
    async fn pr_average(&self, _: &RepoName) -> Result<PrAverage, StoreError> {
        self.fail().await
    }
    async fn event_counts(&self, _: TimeWindow) -> Result<EventCounts, StoreError> {
        self.fail().await
    }
    async fn timeline(&self, _: TimeWindow, _: i64) -> Result<Timeline, StoreError> {
        self.fail().await
    }
    async fn repo_event_counts(&self, _: &RepoName) -> Result<RepoEventCounts, StoreError> {
        self.fail().await
    }
    async fn total_events(&self) -> Result<u64, StoreError> {
        self.fail().await
    }
    async fn top_repositories(&self, _: usize) -> Result<Vec<RepoEventCount>, StoreError> {
        self.fail().await
    }
    async fn pr_average_in(&self, _: &RepoName, _: TimeWindow) -> Result<PrAverage, StoreError> {
        self.fail().await
    }
    async fn archive_hours(&self, _: TimeWindow) -> Result<Vec<ArchiveHour>, StoreError> {
        self.fail().await
    }
    async fn complete_run(&self) -> Result<Option<CompleteRun>, StoreError> {
        self.fail().await
    }
}

pub const STORE_PATHS: &[&str] = &[
    "/metrics/events?offset=10",
    "/metrics/pr-average/rust-lang/rust",
    "/debug/total-events",
    "/debug/repo-events/rust-lang/rust",
    "/debug/repos-by-event-count?limit=3",
];

#[tokio::test]
async fn a_cluster_with_a_shard_down_is_degraded_and_its_queries_503() {
    let client = client_for(Arc::new(BrokenStore(Failure::ShardDown)));
    for path in STORE_PATHS {
        let answer = get(&client, path).await;
        assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, path);
    }
    let health = get(&client, "/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "degraded");
    assert_eq!(health.body["is_connected"], true);
    assert_eq!(health.body["store"]["nodes"][1]["up"], false);
    // The store's typed health keeps the `store` object's contract: `degraded` and `error`.
    assert_eq!(health.body["store"]["degraded"], true);
    assert_eq!(health.body["store"]["error"], "shard 2 does not answer");
    let error = health.body["error"].as_str().unwrap();
    assert!(error.contains("shard 2 does not answer"), "{error}");
}

#[tokio::test]
async fn an_unreachable_store_is_503_json() {
    let client = client_for(Arc::new(BrokenStore(Failure::Unreachable)));
    for path in STORE_PATHS {
        let answer = get(&client, path).await;
        let message = assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, path);
        assert!(message.contains("unavailable"), "{path}: {message}");
    }
    // Bad input is still bad input.
    let answer = get(&client, "/metrics/events?offset=0").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "offset=0 with the store down",
    );
    let health = get(&client, "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.body["status"], "unavailable");
    assert_eq!(health.body["is_connected"], false);
    assert_eq!(health.body["store"]["error"], "connection refused");
    assert_eq!(health.body["store"]["degraded"], false);
    assert!(
        health.body["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{}",
        health.body
    );
}

/// Issue #25, finding 8: a backend's own error text (ClickHouse's exception, with table names
/// and SQL) is logged, never answered.
#[tokio::test]
async fn a_backend_error_is_a_plain_500_without_the_backends_text() {
    let client = client_for(Arc::new(BrokenStore(Failure::Backend)));
    for path in STORE_PATHS {
        let answer = get(&client, path).await;
        let message = assert_error(&answer, StatusCode::INTERNAL_SERVER_ERROR, path);
        for raw in [
            "Code:",
            "DB::Exception",
            "SELECT",
            "github_stats.events",
            "secret",
        ] {
            assert!(!message.contains(raw), "{path}: {raw:?} leaked: {message}");
        }
        assert!(message.contains("server log"), "{path}: {message}");
    }
}

#[tokio::test]
async fn a_panicking_handler_is_a_plain_500_json() {
    let client = client_for(Arc::new(BrokenStore(Failure::Panics)));
    for path in STORE_PATHS.iter().chain(&["/health"]) {
        let answer = get(&client, path).await;
        let message = assert_error(&answer, StatusCode::INTERNAL_SERVER_ERROR, path);
        assert!(!message.contains("exploded"), "the panic leaked: {message}");
    }
    // The application still answers afterwards.
    let answer = get(&client, "/metrics/events?offset=0").await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "after panics");
}

#[tokio::test]
async fn a_slow_store_times_out_with_503_json() {
    let state = AppState::new(Arc::new(BrokenStore(Failure::Slow)));
    let client = client_with(state, Duration::from_millis(200));
    let started = std::time::Instant::now();
    let answer = get(&client, "/debug/total-events").await;
    let message = assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "slow store");
    assert!(message.contains("timed out"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Words of poem-openapi's own parse errors, which a person should never have to read.
const FRAMEWORK_WORDS: &[&str] = &[
    "Type \"",
    "failed to parse",
    "integer(",
    "string_date-time",
    "verification failed",
    "occurred while parsing",
    "expects an input value",
];

#[tokio::test]
async fn every_400_says_what_to_send_with_an_example() {
    let client = client_for(recorded_store().await);
    // (uri, the parameter named, what was given and must be quoted back)
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("/metrics/events", "offset", None),
        ("/metrics/events?offset=", "offset", Some("\"\"")),
        ("/metrics/events?offset=abc", "offset", Some("\"abc\"")),
        ("/metrics/events?offset=0", "offset", Some("\"0\"")),
        (
            "/metrics/events?offset=525601",
            "offset",
            Some("\"525601\""),
        ),
        ("/metrics/events?offset=-3", "offset", Some("\"-3\"")),
        (
            "/metrics/events?offset=10&until=bad",
            "until",
            Some("\"bad\""),
        ),
        (
            "/metrics/events?offset=10&until=2021-07-21",
            "until",
            Some("\"2021-07-21\""),
        ),
        (
            "/metrics/events?offset=10&until=-262143-01-01T00:00:00Z",
            "until",
            Some("-262143"),
        ),
        ("/metrics/visualization", "offset", None),
        (
            "/metrics/visualization?offset=60&bucket_minutes=x",
            "bucket_minutes",
            Some("\"x\""),
        ),
        (
            "/metrics/visualization?offset=60&bucket_minutes=0",
            "bucket_minutes",
            Some("\"0\""),
        ),
        (
            "/metrics/visualization.svg?offset=1.5",
            "offset",
            Some("\"1.5\""),
        ),
        (
            "/debug/repos-by-event-count?limit=x",
            "limit",
            Some("\"x\""),
        ),
        (
            "/debug/repos-by-event-count?limit=1001",
            "limit",
            Some("\"1001\""),
        ),
        (
            "/metrics/pr-average/owner/re%22po",
            "repository",
            Some("re\\\"po"),
        ),
        ("/metrics/pr-average/a/b/c", "repository", Some("a/b/c")),
        (
            "/debug/repo-events/owner/..",
            "repository",
            Some("owner/.."),
        ),
    ];
    for (uri, parameter, given) in cases {
        let answer = get(&client, uri).await;
        let message = assert_error(&answer, StatusCode::BAD_REQUEST, uri);
        assert!(message.contains(parameter), "{uri}: {message}");
        assert!(message.contains("such as "), "{uri}: no example: {message}");
        for words in FRAMEWORK_WORDS {
            assert!(
                !message.contains(words),
                "{uri}: framework words: {message}"
            );
        }
        match given {
            Some(given) => assert!(message.contains(given), "{uri}: {message}"),
            None => assert!(message.contains("is required"), "{uri}: {message}"),
        }
    }
    // A value too long to quote whole is cut.
    let long = "9".repeat(500);
    let answer = get(&client, &format!("/metrics/events?offset={long}")).await;
    let message = assert_error(&answer, StatusCode::BAD_REQUEST, "long offset");
    assert!(message.len() < 300, "{message}");
}

/// `until` over the whole range chrono parses (about 262,000 years either side of year 0) and
/// beyond, with the smallest and largest windows and buckets: always a 200 or a 400 naming a
/// parameter, never a 500 (an overflowing subtraction used to panic).
#[tokio::test]
async fn extreme_times_and_durations_are_400s_never_500s() {
    let client = client_for(recorded_store().await);
    let mut untils: Vec<String> = [
        "-262143-01-01T00:00:00Z",
        "-262144-12-31T23:59:59Z",
        "%2B262142-12-31T23:59:59Z",
        "%2B262143-12-31T23:59:59Z",
        "-0001-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "0000-01-01T00:00:00%2B00:01",
        "0000-01-01T00:00:00-00:01",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "2106-02-07T06:28:16Z",
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59%2B23:59",
        "10000-01-01T00:00:00Z",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A sweep of every 1000th year across chrono's range, both signs.
    for year in (-262_000..=262_000).step_by(1000) {
        let sign = if year < 0 { "-" } else { "%2B" };
        untils.push(format!("{sign}{:06}-06-15T12:00:00Z", i64::abs(year)));
    }
    let mut answered = 0;
    for until in &untils {
        for offset in ["1", "525600", "4294967295"] {
            let mut uris = vec![format!("/metrics/events?offset={offset}&until={until}")];
            for bucket in [
                "",
                "&bucket_minutes=1",
                "&bucket_minutes=10080",
                "&bucket_minutes=525600",
            ] {
                for path in ["/metrics/visualization", "/metrics/visualization.svg"] {
                    uris.push(format!("{path}?offset={offset}&until={until}{bucket}"));
                }
            }
            for uri in uris {
                let response = client.get(&uri).send().await.0;
                let status = response.status();
                let body = response.into_body().into_vec().await.unwrap();
                assert!(
                    status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                    "{uri}: {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                if status == StatusCode::BAD_REQUEST {
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let message = body["error"].as_str().unwrap();
                    assert!(
                        ["until", "offset", "bucket_minutes"]
                            .iter()
                            .any(|p| message.starts_with(p)),
                        "{uri}: {message}"
                    );
                } else {
                    answered += 1;
                }
            }
        }
    }
    assert!(answered > 100, "only {answered} answers were 200");
    // The issue's example, and the edges of the accepted range.
    for (until, status) in [
        ("-262143-01-01T00:00:00Z", StatusCode::BAD_REQUEST),
        ("-0001-12-31T23:59:59Z", StatusCode::BAD_REQUEST),
        ("0000-01-01T00:00:00Z", StatusCode::OK),
        ("9999-12-31T23:59:59Z", StatusCode::OK),
        ("10000-01-01T00:00:00Z", StatusCode::BAD_REQUEST),
    ] {
        for path in ["/metrics/events", "/metrics/visualization"] {
            let uri = format!("{path}?offset=525600&until={until}");
            let answer = get(&client, &uri).await;
            assert_eq!(answer.status, status, "{uri}: {}", answer.body);
            if status == StatusCode::BAD_REQUEST {
                let message = answer.body["error"].as_str().unwrap();
                assert!(message.starts_with("until must be"), "{uri}: {message}");
            }
        }
    }
}
