//! The application built as `main` builds it, over a real socket, in process: serving, the data
//! directory lock, graceful shutdown, and a restart that answers the same.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use github_stats_core::MemoryStore;
use github_stats_server::{Application, Config, StartupError};

use crate::helpers::load_recorded;

fn config(data_dir: &Path) -> Config {
    Config::try_parse_from([
        "github-stats-server",
        "--no-poll",
        "--database-backend",
        "memory",
        "--bind-address",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ])
    .unwrap()
}

/// Writes the recorded events into a memory store's data directory, then closes it.
pub async fn prepare_data_dir(dir: &Path) {
    let store = MemoryStore::open(dir).unwrap();
    load_recorded(&store).await;
}

/// The answers a restart must keep.
pub const PROBES: &[&str] = &[
    "/debug/total-events",
    "/metrics/events?offset=60&until=2015-01-01T13:00:00Z",
    "/metrics/events?offset=180&until=2021-07-21T09:00:00Z",
    "/debug/repos-by-event-count?limit=5",
    "/metrics/pr-average/KSP-CKAN/NetKAN",
];

pub async fn probe_all(base: &str) -> Vec<serde_json::Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for path in PROBES {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        out.push(response.json().await.unwrap());
    }
    out
}

#[tokio::test]
async fn serves_stops_gracefully_and_restarts_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    prepare_data_dir(dir.path()).await;

    let app = Application::build(config(dir.path())).await.unwrap();
    assert_ne!(app.port(), 0);
    let base = format!("http://{}", app.address());
    let token = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    let first = probe_all(&base).await;
    assert!(
        first[0]["total_events"].as_u64().unwrap() > 1000,
        "{}",
        first[0]
    );

    // The data directory is locked while the server runs.
    let second = Application::build(config(dir.path())).await.unwrap_err();
    assert!(matches!(second, StartupError::Store { .. }), "{second}");
    let cause = std::error::Error::source(&second).unwrap().to_string();
    assert!(cause.contains("in use"), "{cause}");

    let stopping = Instant::now();
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stopped within 10 s")
        .unwrap()
        .unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(10));
    assert!(
        reqwest::get(format!("{base}/health")).await.is_err(),
        "still accepting after shutdown"
    );

    let app = Application::build(config(dir.path())).await.unwrap();
    let base = format!("http://{}", app.address());
    let token = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    assert_eq!(
        probe_all(&base).await,
        first,
        "a restart changed the answers"
    );
    token.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.bind_address = taken.local_addr().unwrap().to_string();
    let err = Application::build(config).await.unwrap_err();
    assert!(matches!(err, StartupError::Bind { .. }), "{err}");
    assert!(err.to_string().contains("cannot listen on"), "{err}");
}
