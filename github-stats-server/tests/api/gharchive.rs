//! The GH Archive follower beside the poller, end to end: the real application on a loopback
//! port, polling a fake Events API that replays part of two recent hours, and following a fake
//! GH Archive that serves those hours whole. Once the hours are imported, the totals are the
//! archive's distinct kept events, each hour's `poller_coverage` is the share the fake API
//! served, nothing is counted twice, and a restart in the middle of an hour resumes it. In the
//! memory store, and in ClickHouse (one server and the two-shard cluster) when
//! `scripts/test.sh` provides them.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use github_stats_core::coverage::hour_floor;
use github_stats_core::fake_gharchive::{Answer, FakeArchive, FakeHour, KeptEvent, RecordedHour};

use github_stats_core::fake_github::{FakeGitHub, MAX_PER_PAGE};
use github_stats_server::{Application, Config};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Where the store is.
#[derive(Clone)]
enum Backend {
    Memory,
    ClickHouse { args: Vec<String> },
}

/// A running application and how to stop it.
struct Running {
    base: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), github_stats_server::startup::StartupError>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn start(
    dir: &Path,
    backend: &Backend,
    events_api: &str,
    archive: Option<(&str, DateTime<Utc>)>,
) -> Running {
    let mut args: Vec<String> = vec![
        "github-stats-server".into(),
        "--bind-address=127.0.0.1:0".into(),
        format!("--github-api-url={events_api}"),
        format!(
            "--client-state-file={}",
            dir.join("state/client.json").display()
        ),
        format!(
            "--gharchive-state-file={}",
            dir.join("state/gharchive.json").display()
        ),
    ];
    match backend {
        Backend::Memory => {
            args.push("--database-backend=memory".into());
            args.push(format!("--data-dir={}", dir.join("data").display()));
        }
        Backend::ClickHouse { args: extra } => {
            args.push("--database-backend=clickhouse".into());
            args.extend(extra.iter().cloned());
        }
    }
    if let Some((url, from)) = archive {
        args.push(format!("--gharchive-url={url}"));
        args.push(format!("--gharchive-from={}", from.to_rfc3339()));
    }
    let config = Config::load_from(args).unwrap();
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());
    Running {
        base,
        shutdown,
        task,
    }
}

async fn get(base: &str, path: &str) -> Value {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Polls `check` on the application until it says yes, or fails after a minute with the last
/// `/health` (what the follower and the poller say).
async fn wait_for(base: &str, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        if Instant::now() > deadline {
            let health = get(base, "/health").await;
            panic!("timed out waiting for {what}; /health: {health:#}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn total_of(hours: &[&FakeHour]) -> u64 {
    hours.iter().map(|h| h.kept().len() as u64).sum()
}

/// The scenario, on one backend.
async fn follow_the_archive_beside_the_poller(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // Two recent hours, due at the archive (they ended over 15 minutes ago).
    let first = hour_floor(Utc::now()) - chrono::Duration::hours(3);
    let second = first + chrono::Duration::hours(1);
    let hours = [
        FakeHour::build(RecordedHour::Noon, first),
        FakeHour::build(RecordedHour::Midnight, second),
    ];
    // The poller sees every 5th kept event of the first hour and every 9th of the second.
    let replayed: Vec<KeptEvent> = [(0, 5), (1, 9)]
        .iter()
        .flat_map(|&(h, step)| hours[h].kept().iter().step_by(step).cloned())
        .collect();
    let events_api = FakeGitHub::start_replaying(replayed.clone(), MAX_PER_PAGE).await;

    // 1. The poller alone stores its part of the hours.
    let app = start(dir.path(), &backend, &events_api.url(), None).await;
    wait_for(&app.base, "the poller's events", async || {
        get(&app.base, "/debug/total-events").await["total_events"] == replayed.len() as u64
    })
    .await;
    let health = get(&app.base, "/health").await;
    assert!(
        health.get("archive").is_none(),
        "no follower without GHARCHIVE_FROM"
    );
    app.stop().await;
    assert!(
        events_api.served_ids().len() == replayed.len(),
        "the fake served every replayed event"
    );

    // 2. The follower beside the poller. The second hour's first download stalls part way:
    // the application is stopped in the middle of that hour, and resumes it at the next start.
    let archive = FakeArchive::start().await;
    for hour in &hours {
        archive.put_hour(hour);
    }
    archive.script(
        &hours[1].file_name(),
        [Answer::Stall(hours[1].gzip.len() / 2)],
    );
    let app = start(
        dir.path(),
        &backend,
        &events_api.url(),
        Some((&archive.url(), first)),
    )
    .await;
    wait_for(
        &app.base,
        "the first hour imported and the second begun",
        async || {
            let health = get(&app.base, "/health").await;
            health["archive"]["counters"]["imported"] == 1
                && archive.bytes_served(&hours[1].file_name()) > 0
        },
    )
    .await;
    let coverage = get(
        &app.base,
        &format!(
            "/coverage?since={}&until={}",
            rfc(first),
            rfc(second + chrono::Duration::hours(1))
        ),
    )
    .await;
    assert_eq!(coverage["hours"][0]["archive"], "imported");
    assert_eq!(
        coverage["hours"][1]["archive"], "pending",
        "stalled, not committed"
    );
    app.stop().await;

    let app = start(
        dir.path(),
        &backend,
        &events_api.url(),
        Some((&archive.url(), first)),
    )
    .await;
    let span = format!(
        "since={}&until={}",
        rfc(first),
        rfc(second + chrono::Duration::hours(1))
    );
    wait_for(&app.base, "both hours imported", async || {
        get(&app.base, &format!("/coverage?{span}")).await["hours"][1]["archive"] == "imported"
    })
    .await;

    // Totals are the archive's distinct kept events: the poller's copies counted once.
    let total = get(&app.base, "/debug/total-events").await["total_events"]
        .as_u64()
        .unwrap();
    assert_eq!(total, total_of(&[&hours[0], &hours[1]]));
    let coverage = get(&app.base, &format!("/coverage?{span}")).await;
    for (i, step) in [(0usize, 5usize), (1, 9)] {
        let hour = &coverage["hours"][i];
        let kept = hours[i].kept().len() as u64;
        let polled = hours[i].kept().len().div_ceil(step) as u64;
        assert_eq!(hour["archive"], "imported", "hour {i}: {hour}");
        assert_eq!(hour["archive_events"], kept, "hour {i}");
        assert_eq!(hour["polled_before_archive"], polled, "hour {i}");
        let coverage = hour["poller_coverage"].as_f64().unwrap();
        assert!(
            (coverage - polled as f64 / kept as f64).abs() < 1e-12,
            "hour {i}: {coverage} is not the share the fake Events API served"
        );
        assert_eq!(hour["stored_events"], kept, "hour {i}");
    }
    assert_eq!(coverage["complete_from"], rfc(first));
    assert_eq!(
        coverage["complete_until"],
        rfc(second + chrono::Duration::hours(1))
    );

    // Window answers over the two hours are complete and exact, per type.
    let until = second + chrono::Duration::hours(1);
    let events = get(
        &app.base,
        &format!("/metrics/events?offset=120&until={}", rfc(until)),
    )
    .await;
    assert_eq!(events["complete"], true);
    assert_eq!(events["archived_share"], 1.0);
    for (t, name) in ["WatchEvent", "PullRequestEvent", "IssuesEvent"]
        .iter()
        .enumerate()
    {
        let expected: u64 = hours.iter().map(|h| h.kept_by_type()[t]).sum();
        assert_eq!(events["event_counts"][name], expected, "{name}");
    }
    // The stalled hour was downloaded again from its start, and nothing else was fetched twice.
    assert_eq!(archive.requests_for(&hours[0].file_name()), 1);
    assert_eq!(archive.requests_for(&hours[1].file_name()), 2);
    let health = get(&app.base, "/health").await;
    assert_eq!(health["archive"]["counters"]["missing"], 0);
    assert_eq!(health["archive"]["counters"]["damaged"], 0);

    // Prometheus reads the follower as /health does.
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = crate::exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for status in ["imported", "missing", "damaged", "skipped"] {
        assert_eq!(
            metrics.value("github_stats_archive_hours_total", &[("status", status)]),
            health["archive"]["counters"][status].as_f64(),
            "{status}"
        );
    }
    assert_eq!(
        metrics.value(
            "github_stats_archive_hours_total",
            &[("status", "imported")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metrics.get("github_stats_archive_failed_downloads_total"),
        health["archive"]["failed_downloads"].as_f64().unwrap()
    );
    let behind = metrics.get("github_stats_archive_hours_behind");
    let shown = health["archive"]["hours_behind"].as_f64().unwrap();
    assert!((behind - shown).abs() <= 1.0, "{behind} against {shown}");
    assert_eq!(
        metrics.get("github_stats_archive_next_hour_timestamp_seconds"),
        (second + chrono::Duration::hours(1)).timestamp() as f64
    );
    app.stop().await;
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_completes_the_pollers_hours_in_the_memory_store() {
    follow_the_archive_beside_the_poller(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_completes_the_pollers_hours_in_clickhouse() {
    let Ok(url) = std::env::var("CLICKHOUSE_URL") else {
        eprintln!("CLICKHOUSE_URL is not set: scripts/test.sh runs this test against ClickHouse");
        return;
    };
    let database = "gs_server_archive_beside_poller";
    drop_database(&url, database).await;
    follow_the_archive_beside_the_poller(Backend::ClickHouse {
        args: vec![
            format!("--clickhouse-url={url}"),
            format!("--clickhouse-database={database}"),
        ],
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_completes_the_pollers_hours_through_the_cluster() {
    let (Ok(cluster), Ok(urls)) = (
        std::env::var("CLICKHOUSE_CLUSTER_NAME"),
        std::env::var("CLICKHOUSE_CLUSTER_URLS"),
    ) else {
        eprintln!(
            "CLICKHOUSE_CLUSTER_NAME/CLICKHOUSE_CLUSTER_URLS are not set: scripts/test.sh runs \
             this test against a two-shard cluster"
        );
        return;
    };
    let database = "gs_server_archive_cluster";
    for node in urls.split(',') {
        drop_database(node, database).await;
    }
    let first = urls.split(',').next().unwrap().to_owned();
    follow_the_archive_beside_the_poller(Backend::ClickHouse {
        args: vec![
            format!("--clickhouse-url={first}"),
            format!("--clickhouse-database={database}"),
            format!("--clickhouse-cluster={cluster}"),
            format!("--clickhouse-cluster-nodes={urls}"),
        ],
    })
    .await;
}

async fn drop_database(url: &str, database: &str) {
    let response = reqwest::Client::new()
        .post(url)
        .body(format!("DROP DATABASE IF EXISTS {database}"))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}
