//! A slow store: a real ClickHouse behind a TCP proxy that, once switched, holds every answer
//! 40 s (and, without ClickHouse, a memory store whose health check sleeps). `/metrics` and
//! `/health` still answer within 2 s, from the last health check that answered, and say the
//! store is slow; when the store answers again, so do they.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use github_stats_core::{
    ArchiveHour, CompleteRun, Event, EventCounts, EventStore, InsertOutcome, MetricsQuery,
    PrAverage, RepoEventCount, RepoEventCounts, RepoName, SharedStore, StoreError, StoreHealth,
    TimeWindow, Timeline,
};
use github_stats_server::api::AppState;
use github_stats_server::api::health::StoreDetails;
use github_stats_server::store_monitor::{MonitorSettings, StoreMonitor};
use github_stats_server::{Application, Config};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use tokio_util::sync::CancellationToken;

use crate::helpers::{client_with, get, load_recorded, recorded_store};

/// How long the proxy holds each answer while delaying.
const DELAY: Duration = Duration::from_secs(40);
/// What a scrape may take, whatever the store does (Prometheus' default scrape timeout is 10 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Forwards connections to `upstream`; while `delaying`, each chunk of an answer waits
/// [`DELAY`] before it is passed on (requests go through at once).
struct DelayingProxy {
    address: std::net::SocketAddr,
    delaying: Arc<AtomicBool>,
}

impl DelayingProxy {
    async fn start(upstream: std::net::SocketAddr) -> DelayingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let delaying = Arc::new(AtomicBool::new(false));
        let flag = delaying.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let requests = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        let _ = server_write.shutdown().await;
                    });
                    let mut chunk = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(DELAY).await;
                        }
                        if client_write.write_all(&chunk[..n]).await.is_err() {
                            break;
                        }
                    }
                    requests.abort();
                });
            }
        });
        DelayingProxy { address, delaying }
    }

    fn delay(&self, on: bool) {
        self.delaying.store(on, Ordering::SeqCst);
    }
}

/// `GET base/path`, which must answer within [`ANSWER_WITHIN`]: its status and body.
async fn timed_get(base: &str, path: &str) -> (u16, String) {
    let started = Instant::now();
    let response = tokio::time::timeout(ANSWER_WITHIN, reqwest::get(format!("{base}{path}")))
        .await
        .unwrap_or_else(|_| panic!("{path} did not answer within {ANSWER_WITHIN:?}"))
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!(
        started.elapsed() < ANSWER_WITHIN,
        "{path} took {:?}",
        started.elapsed()
    );
    (status, body)
}

/// The value of an unlabelled sample (or the first sample) of `name` in a scrape.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_clickhouse_leaves_metrics_and_health_answering_in_time() {
    let Ok(url) = std::env::var("CLICKHOUSE_URL") else {
        eprintln!("CLICKHOUSE_URL is not set: scripts/test.sh runs this test against ClickHouse");
        return;
    };
    let upstream: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("CLICKHOUSE_URL is http://IP:PORT");
    let database = "gs_server_slow_store";
    reqwest::Client::new()
        .post(&url)
        .body(format!("DROP DATABASE IF EXISTS {database}"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let proxy = DelayingProxy::start(upstream).await;
    let config = Config::try_parse_from([
        "github-stats-server".to_owned(),
        "--no-poll".to_owned(),
        "--bind-address=127.0.0.1:0".to_owned(),
        "--database-backend=clickhouse".to_owned(),
        format!("--clickhouse-url=http://{}", proxy.address),
        format!("--clickhouse-database={database}"),
    ])
    .unwrap();
    let app = Application::build(config).await.unwrap();
    load_recorded(app.store().as_ref()).await;
    // Every key ClickHouse puts in its health details has a typed field in `/health`.
    let health = app.store().health().await;
    let details = StoreDetails::from_health(&health);
    assert!(details.unknown_keys().is_empty(), "{:?}", health.details);
    assert!(details.server_version.is_some() && details.race_checks.is_some());
    let base = format!("http://{}", app.address());
    let token = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());

    // A store that answers: fresh figures.
    let (status, body) = timed_get(&base, "/health").await;
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["store"]["slow"], false, "{health}");
    let total = health["total_events"].as_u64().unwrap();
    assert!(total > 1000, "{health}");
    let (_, scrape) = timed_get(&base, "/metrics").await;
    assert_eq!(
        sample(&scrape, "github_stats_store_up"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "github_stats_store_slow"), Some(0.0));
    assert_eq!(
        sample(&scrape, "github_stats_store_events"),
        Some(total as f64)
    );

    // Every ClickHouse answer now takes 40 s: each request still answers within 2 s, and once
    // the check in flight is older than its timeout (10 s) both say the store is slow.
    proxy.delay(true);
    let delayed = Instant::now();
    let (health, scrape) = loop {
        let (status, body) = timed_get(&base, "/health").await;
        let (scrape_status, scrape) = timed_get(&base, "/metrics").await;
        assert_eq!(scrape_status, 200, "{scrape}");
        let health: Value = serde_json::from_str(&body).unwrap();
        if health["store"]["slow"] == true
            && sample(&scrape, "github_stats_store_slow") == Some(1.0)
        {
            assert_eq!(status, 503, "{health}");
            break (health, scrape);
        }
        assert_eq!(status, 200, "not slow yet: {health}");
        assert!(
            delayed.elapsed() < Duration::from_secs(25),
            "never said slow: {health}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        delayed.elapsed() >= Duration::from_secs(10),
        "slow too early"
    );
    assert_eq!(health["status"], "unavailable", "{health}");
    assert_eq!(health["is_connected"], false, "{health}");
    let error = health["store"]["error"].as_str().unwrap();
    assert!(
        error.contains("store health check has not answered for"),
        "{error}"
    );
    assert!(
        health["error"].as_str().unwrap().contains("slow"),
        "{health}"
    );
    // The figures of the last check that answered, with their age.
    assert_eq!(health["total_events"], total, "{health}");
    assert!(health["store"]["checked_at"].is_string(), "{health}");
    assert!(
        health["store"]["check_age_seconds"].as_f64().unwrap() >= 9.0,
        "{health}"
    );
    assert_eq!(
        sample(&scrape, "github_stats_store_up"),
        Some(0.0),
        "{scrape}"
    );
    assert!(sample(&scrape, "github_stats_store_health_age_seconds").unwrap() >= 9.0);
    assert_eq!(
        sample(&scrape, "github_stats_store_events"),
        Some(total as f64)
    );

    // The store answers again: so does the health check, and both say so.
    proxy.delay(false);
    let recovered = Instant::now();
    loop {
        let (status, body) = timed_get(&base, "/health").await;
        let health: Value = serde_json::from_str(&body).unwrap();
        if status == 200 && health["status"] == "ok" {
            assert_eq!(health["store"]["slow"], false, "{health}");
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(30),
            "never recovered: {health}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, scrape) = timed_get(&base, "/metrics").await;
    assert_eq!(
        sample(&scrape, "github_stats_store_up"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "github_stats_store_slow"), Some(0.0));
    assert!(sample(&scrape, "github_stats_store_health_age_seconds").unwrap() < 6.0);

    token.cancel();
    running.await.unwrap().unwrap();
}

/// The memory store, whose health check sleeps 40 s once `slow` is set: the same behaviour
/// without a ClickHouse, with a 1 s check timeout.
struct SleepyStore {
    inner: SharedStore,
    slow: AtomicBool,
}

#[async_trait]
impl EventStore for SleepyStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome, StoreError> {
        self.inner.insert_events(events).await
    }
    async fn count_stored(&self, events: &[Event]) -> Result<u64, StoreError> {
        self.inner.count_stored(events).await
    }
    async fn health(&self) -> StoreHealth {
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(DELAY).await;
        }
        self.inner.health().await
    }
    fn backend_name(&self) -> &'static str {
        "memory"
    }
    async fn record_archive_hour(&self, record: &ArchiveHour) -> Result<(), StoreError> {
        self.inner.record_archive_hour(record).await
    }
}

#[async_trait]
impl MetricsQuery for SleepyStore {
    async fn pr_average(&self, repo: &RepoName) -> Result<PrAverage, StoreError> {
        self.inner.pr_average(repo).await
    }
    async fn pr_average_in(&self, repo: &RepoName, w: TimeWindow) -> Result<PrAverage, StoreError> {
        self.inner.pr_average_in(repo, w).await
    }
    async fn event_counts(&self, w: TimeWindow) -> Result<EventCounts, StoreError> {
        self.inner.event_counts(w).await
    }
    async fn timeline(&self, w: TimeWindow, bucket: i64) -> Result<Timeline, StoreError> {
        self.inner.timeline(w, bucket).await
    }
    async fn repo_event_counts(&self, repo: &RepoName) -> Result<RepoEventCounts, StoreError> {
        self.inner.repo_event_counts(repo).await
    }
    async fn total_events(&self) -> Result<u64, StoreError> {
        self.inner.total_events().await
    }
    async fn top_repositories(&self, limit: usize) -> Result<Vec<RepoEventCount>, StoreError> {
        self.inner.top_repositories(limit).await
    }
    async fn archive_hours(&self, w: TimeWindow) -> Result<Vec<ArchiveHour>, StoreError> {
        self.inner.archive_hours(w).await
    }
    async fn complete_run(&self) -> Result<Option<CompleteRun>, StoreError> {
        self.inner.complete_run().await
    }
}

#[tokio::test]
async fn a_store_whose_health_check_hangs_is_slow_within_the_timeout() {
    let sleepy = Arc::new(SleepyStore {
        inner: recorded_store().await,
        slow: AtomicBool::new(false),
    });
    let store: SharedStore = sleepy.clone();
    let mut state = AppState::new(store.clone());
    let settings = MonitorSettings {
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(1),
        fresh_wait: Duration::from_millis(500),
    };
    state.store_health = StoreMonitor::with_settings(store, settings, CancellationToken::new());
    let client = client_with(state, Duration::from_secs(30));
    let ok = get(&client, "/health").await;
    assert_eq!(ok.body["status"], "ok", "{}", ok.body);
    let total = ok.body["total_events"].clone();

    sleepy.slow.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let health = loop {
        let asked = Instant::now();
        let answer = get(&client, "/health").await;
        assert!(
            asked.elapsed() < ANSWER_WITHIN,
            "took {:?}",
            asked.elapsed()
        );
        if answer.body["store"]["slow"] == true {
            assert_eq!(answer.status, 503, "{}", answer.body);
            break answer.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "slow before the timeout"
    );
    assert_eq!(health["status"], "unavailable");
    assert_eq!(
        health["total_events"], total,
        "the last answer's figures: {health}"
    );
    assert!(
        health["store"]["error"]
            .as_str()
            .unwrap()
            .contains("store health check has not answered for"),
        "{health}"
    );
    let asked = Instant::now();
    let scrape = client.get("/metrics").send().await.0;
    let text = scrape.into_body().into_string().await.unwrap();
    assert!(asked.elapsed() < ANSWER_WITHIN);
    assert_eq!(sample(&text, "github_stats_store_up"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "github_stats_store_slow"),
        Some(1.0),
        "{text}"
    );

    // Answering again ends it.
    sleepy.slow.store(false, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        let answer = get(&client, "/health").await;
        if answer.body["status"] == "ok" {
            assert_eq!(answer.body["store"]["slow"], false);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
