//! Shared test helpers: a memory store loaded from the real recorded events, the application
//! over it, an independent brute-force reading of the same JSON for expectations, and the fake
//! GitHub of the end-to-end tests.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use github_stats_core::conformance::fixtures;
use github_stats_core::fake_github::{FakeGitHub, Reply};
use github_stats_core::parse::parse_document;
use github_stats_core::{Event, EventStore, MemoryStore, ParseStats, SharedStore};
use github_stats_server::api::{self, AppState};
use poem::Endpoint;
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::Value;

/// The recorded files the tests load: a full 2015 GH Archive hour, a 2021 sample, and a 2026
/// Events API answer.
pub const FILES: &[&str] = &[
    "gharchive/2015-01-01-12.json.gz",
    "samples/2021-07-21-few-hours.jsonl",
    "api-responses/events-2026-01-25.json",
];

pub const KEPT: [&str; 3] = ["WatchEvent", "PullRequestEvent", "IssuesEvent"];

/// One kept event as read directly from the JSON, without the project's parser.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub event_type: String,
    pub repo: String,
    pub created_at: DateTime<Utc>,
    pub action: String,
}

/// The kept events of [`FILES`], distinct by id, read with serde_json only (once per process).
pub fn raw_events() -> Vec<RawEvent> {
    static RAW: OnceLock<Vec<RawEvent>> = OnceLock::new();
    RAW.get_or_init(read_raw_events).clone()
}

fn read_raw_events() -> Vec<RawEvent> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for file in FILES {
        for record in fixtures::json_records(file) {
            let Some(event_type) = record["type"].as_str() else {
                continue;
            };
            if !KEPT.contains(&event_type) {
                continue;
            }
            let Some(id) = record["id"].as_str() else {
                continue;
            };
            if !seen.insert(id.to_owned()) {
                continue;
            }
            out.push(RawEvent {
                event_type: event_type.to_owned(),
                repo: record["repo"]["name"].as_str().unwrap().to_owned(),
                created_at: DateTime::parse_from_rfc3339(record["created_at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&Utc),
                action: record["payload"]["action"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    out
}

/// Counts per type of `events` with `since <= created_at < until`, as the contract defines.
pub fn window_counts(
    events: &[RawEvent],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = KEPT.iter().map(|t| (t.to_string(), 0)).collect();
    for e in events {
        if since <= e.created_at && e.created_at < until {
            *counts.get_mut(&e.event_type).unwrap() += 1;
        }
    }
    counts
}

/// The events of each file of [`FILES`], parsed by core's parser (once per process).
fn parsed_files() -> &'static [(&'static str, Vec<Event>)] {
    static PARSED: OnceLock<Vec<(&'static str, Vec<Event>)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        FILES
            .iter()
            .map(|file| {
                let mut stats = ParseStats::default();
                let mut events = Vec::new();
                parse_document(&fixtures::read(file), &mut stats, &mut events);
                (*file, events)
            })
            .collect()
    })
}

/// Loads every file of [`FILES`] into `store`, twice (the second pass must add nothing).
pub async fn load_recorded(store: &dyn EventStore) {
    for pass in 0..2 {
        for (file, events) in parsed_files() {
            let outcome = store.insert_events(events).await.unwrap();
            if pass == 1 {
                assert_eq!(outcome.inserted, 0, "second load of {file} added events");
            }
        }
    }
}

/// A memory store holding the recorded events.
pub async fn recorded_store() -> SharedStore {
    let store = Arc::new(MemoryStore::new());
    load_recorded(store.as_ref()).await;
    store
}

/// The application in process, over `store`.
pub fn client_for(
    store: SharedStore,
) -> TestClient<impl Endpoint<Output = poem::Response> + 'static> {
    client_with(AppState::new(store), Duration::from_secs(30))
}

/// The application in process, over `state`, with a request timeout.
pub fn client_with(
    state: AppState,
    timeout: Duration,
) -> TestClient<impl Endpoint<Output = poem::Response> + 'static> {
    TestClient::new(api::app(state, timeout))
}

/// What the tests read from an answer.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

/// `GET uri` through `client`, the body parsed as JSON (the test fails if it is not).
pub async fn get<E: Endpoint>(client: &TestClient<E>, uri: &str) -> Answer {
    let response = client.get(uri).send().await.0;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().into_vec().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "GET {uri} ({status}): body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer {
        status,
        content_type,
        body,
    }
}

/// Asserts that `answer` is an error with `status`, in the `{"error": "..."}` shape, and returns
/// the message.
pub fn assert_error(answer: &Answer, status: StatusCode, context: &str) -> String {
    assert_eq!(answer.status, status, "{context}: {}", answer.body);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{context}: content type {}",
        answer.content_type
    );
    let object = answer
        .body
        .as_object()
        .unwrap_or_else(|| panic!("{context}: not an object: {}", answer.body));
    assert_eq!(object.len(), 1, "{context}: {}", answer.body);
    let message = object["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: no error string: {}", answer.body));
    assert!(!message.is_empty(), "{context}");
    message.to_owned()
}

/// An RFC 3339 time from a literal.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A time from the JSON of an answer.
pub fn json_time(value: &Value) -> DateTime<Utc> {
    at(value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}")))
}

/// The recorded Events API answers the end-to-end tests' fake GitHub serves, as one page.
pub const SERVED_BODIES: &[&str] = &[
    "api-responses/events-2020-04-25/01.body.json",
    "api-responses/events-2017-12-29/01.body.json",
];

/// Every event of [`SERVED_BODIES`], as JSON.
pub fn served_events() -> Vec<Value> {
    SERVED_BODIES
        .iter()
        .flat_map(|b| fixtures::json_records(b))
        .collect()
}

/// A fake GitHub answering every request with [`served_events`] and GitHub's headers (an ETag,
/// `X-Poll-Interval: 1`, rate limits), and 304 to a poll sending that ETag back.
pub async fn fake_github_serving_recorded_events() -> FakeGitHub {
    let fake = FakeGitHub::start(vec![]).await;
    fake.set_fallback(
        Reply::events(&served_events(), "W/\"fake-etag-1\"")
            .header("X-Poll-Interval", 1)
            .rate(5000, 4990)
            .conditional(),
    );
    fake
}

/// A 200 with the events of the recorded answer `body` (one of [`SERVED_BODIES`]), `etag`, a
/// poll interval of 1 s and `remaining` requests of 5000 left.
pub fn recorded_events_reply(body: &str, etag: &str, remaining: u64) -> Reply {
    Reply::events(&fixtures::json_records(body), etag)
        .rate(5000, remaining)
        .header("X-Poll-Interval", 1)
}
