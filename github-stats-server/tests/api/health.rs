//! `/health` with the store and, when polling, the components' snapshots.

use std::sync::Arc;

use github_stats_core::{IngestSnapshot, PollerSnapshot};
use github_stats_server::api::AppState;
use poem::http::StatusCode;

use crate::helpers::{client_for, client_with, get, json_time, raw_events, recorded_store};

#[tokio::test]
async fn health_reports_the_store() {
    let client = client_for(recorded_store().await);
    let answer = get(&client, "/health").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = &answer.body;
    let raw = raw_events();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["is_connected"], true);
    assert_eq!(body["backend_type"], "memory");
    assert_eq!(body["total_events"], raw.len() as u64);
    let newest = raw.iter().map(|e| e.created_at).max().unwrap();
    assert_eq!(json_time(&body["last_event_ts"]), newest);
    assert!(body["store"].is_object(), "{body}");
    assert_eq!(body["store"]["degraded"], false, "{body}");
    assert!(body["store"].get("error").is_none(), "{body}");
    // Without a poller (--no-poll) there is nothing to say about it.
    assert!(body.get("poller").is_none(), "{body}");
    assert!(body.get("error").is_none(), "{body}");
}

#[tokio::test]
async fn a_troubled_poller_makes_health_degraded_but_200() {
    let mut state = AppState::new(recorded_store().await);
    state.poller = Some(Arc::new(|| {
        let mut poller = PollerSnapshot::default();
        poller.last_error = Some("503 from GitHub".into());
        poller.counters.polls = 3;
        poller.consecutive_failures = 1;
        poller.degraded = true;
        poller
    }));
    state.ingest = Some(Arc::new(IngestSnapshot::default));
    let client = client_with(state, std::time::Duration::from_secs(5));
    let answer = get(&client, "/health").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["status"], "degraded");
    assert_eq!(answer.body["poller"]["last_error"], "503 from GitHub");
    assert_eq!(answer.body["ingest"]["buffered"], 0);
    assert!(answer.body["error"].as_str().unwrap().contains("poller"));
}
