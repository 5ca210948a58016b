//! Issue #14: `GET /metrics` read with a parser of the exposition format and checked against
//! `/health` and against what a fake GitHub served; route labels that stay bounded; a store
//! that cannot be reached. (CORS is in `cors`, JSON logs in `binary`.)

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use github_stats_server::{Application, Config};
use poem::http::StatusCode;
use serde_json::Value;

use crate::errors::{BrokenStore, Failure};
use crate::exposition::{self, Exposition};
use crate::helpers::{KEPT, SERVED_BODIES, at, client_for, recorded_events_reply, recorded_store};
use github_stats_core::fake_github::{FakeGitHub, Reply};

/// Every counter of `/metrics` and where `/health` shows the same number.
const SAME_AS_HEALTH: &[(&str, &str)] = &[
    ("github_stats_poller_polls_total", "/poller/counters/polls"),
    (
        "github_stats_poller_not_modified_total",
        "/poller/counters/not_modified",
    ),
    ("github_stats_poller_pages_total", "/poller/counters/pages"),
    (
        "github_stats_poller_events_seen_total",
        "/poller/counters/events_seen",
    ),
    (
        "github_stats_poller_events_new_total",
        "/poller/counters/new_events",
    ),
    (
        "github_stats_poller_events_duplicate_total",
        "/poller/counters/duplicate_events",
    ),
    (
        "github_stats_poller_events_kept_total",
        "/poller/counters/kept_events",
    ),
    (
        "github_stats_poller_events_invalid_total",
        "/poller/counters/invalid_events",
    ),
    (
        "github_stats_poller_overlapping_polls_total",
        "/poller/counters/overlapping_polls",
    ),
    ("github_stats_poller_gaps_total", "/poller/counters/gaps"),
    (
        "github_stats_poller_failed_polls_total",
        "/poller/counters/failed_polls",
    ),
    (
        "github_stats_poller_rate_limited_total",
        "/poller/counters/rate_limited",
    ),
    (
        "github_stats_poller_missed_events_estimate_total",
        "/poller/capture/missed_estimate",
    ),
    (
        "github_stats_poller_rate_limit_remaining",
        "/poller/rate_limit_remaining",
    ),
    (
        "github_stats_poller_rate_limit_limit",
        "/poller/rate_limit_limit",
    ),
    (
        "github_stats_poller_poll_interval_seconds",
        "/poller/poll_interval_seconds",
    ),
    (
        "github_stats_poller_consecutive_failures",
        "/poller/consecutive_failures",
    ),
    ("github_stats_ingest_buffered_events", "/ingest/buffered"),
    (
        "github_stats_ingest_buffer_capacity_events",
        "/ingest/capacity",
    ),
    ("github_stats_ingest_batches_total", "/ingest/batches"),
    (
        "github_stats_ingest_received_events_total",
        "/ingest/received",
    ),
    (
        "github_stats_ingest_invalid_events_total",
        "/ingest/invalid",
    ),
    ("github_stats_ingest_read_bytes_total", "/ingest/bytes"),
    (
        "github_stats_ingest_inserted_events_total",
        "/ingest/inserted",
    ),
    (
        "github_stats_ingest_duplicate_events_total",
        "/ingest/duplicates",
    ),
    (
        "github_stats_ingest_rejected_events_total",
        "/ingest/rejected",
    ),
    (
        "github_stats_ingest_store_failures_total",
        "/ingest/store_failures",
    ),
    (
        "github_stats_ingest_source_errors_total",
        "/ingest/source_errors",
    ),
    (
        "github_stats_ingest_consecutive_store_failures",
        "/ingest/consecutive_store_failures",
    ),
    (
        "github_stats_ingest_insert_duration_seconds_count",
        "/ingest/insert_duration/count",
    ),
    ("github_stats_store_events", "/total_events"),
];

fn config(dir: &Path, github: &str) -> Config {
    Config::try_parse_from([
        "github-stats-server",
        "--database-backend",
        "memory",
        "--bind-address",
        "127.0.0.1:0",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--client-state-file",
        dir.join("state.json").to_str().unwrap(),
        "--github-api-url",
        github,
    ])
    .unwrap()
}

/// GETs `url`, returning the status and the body.
async fn fetch(url: &str) -> (StatusCode, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.text().await.unwrap())
}

async fn scrape(base: &str) -> Exposition {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Every metric of `metrics` is listed in docs/operations.md, is prefixed and has a help text.
fn assert_documented(metrics: &Exposition) {
    let operations = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .unwrap();
    for (name, family) in &metrics.families {
        assert!(name.starts_with("github_stats_"), "{name}");
        assert!(
            operations.contains(&format!("`{name}`")) || operations.contains(&format!("`{name}{{")),
            "{name} is not listed in docs/operations.md"
        );
        assert!(
            family.help.as_deref().is_some_and(|h| h.len() > 10),
            "{name} has no help"
        );
    }
}

/// The recorded answer `body` as JSON events.
fn events_of(body: &str) -> Vec<Value> {
    github_stats_core::conformance::fixtures::json_records(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_agree_with_health_and_with_what_the_fake_github_served() {
    // Two answers sharing no event (a gap), a failure, a rate limit, then a 304 that asks for
    // an hour's wait: the poller's state is then still while the test reads it.
    let wait_an_hour = Reply::new(304)
        .rate(5000, 4321)
        .header("X-Poll-Interval", 3600);
    let fake = FakeGitHub::start(vec![
        recorded_events_reply(SERVED_BODIES[0], "\"first\"", 4990),
        recorded_events_reply(SERVED_BODIES[1], "\"second\"", 4989),
        Reply::new(500).rate(5000, 4988),
        Reply::new(429).rate(5000, 4987).header("Retry-After", 1),
        wait_an_hour.clone(),
    ])
    .await;
    fake.set_fallback(wait_an_hour);
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(config(dir.path(), &fake.url()))
        .await
        .unwrap();
    let base = format!("http://{}", app.address());
    let token = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());

    // What the fake served, read with serde_json alone.
    let (first, second) = (events_of(SERVED_BODIES[0]), events_of(SERVED_BODIES[1]));
    let id = |e: &Value| e["id"].as_str().unwrap().to_owned();
    let first_ids: HashSet<String> = first.iter().map(id).collect();
    let second_ids: HashSet<String> = second.iter().map(id).collect();
    assert!(first_ids.is_disjoint(&second_ids), "the script needs a gap");
    let seen = (first.len() + second.len()) as f64;
    let distinct = first_ids.len() + second_ids.len();
    let mut kept_ids = HashSet::new();
    let kept: Vec<&Value> = first
        .iter()
        .chain(&second)
        .filter(|e| KEPT.contains(&e["type"].as_str().unwrap()))
        .filter(|e| kept_ids.insert(id(e)))
        .collect();
    let newest = kept
        .iter()
        .map(|e| at(e["created_at"].as_str().unwrap()))
        .max()
        .unwrap();

    // Until the 304 has been answered and the events are stored.
    let started = Instant::now();
    let mut health_requests = 0.0;
    let health: Value = loop {
        let (status, body) = fetch(&format!("{base}/health")).await;
        health_requests += 1.0;
        assert_eq!(status, StatusCode::OK, "{body}");
        let health: Value = serde_json::from_str(&body).unwrap();
        if health.pointer("/poller/counters/not_modified") == Some(&1.into())
            && health.pointer("/ingest/inserted") == Some(&kept.len().into())
        {
            break health;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the script was not played: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(fake.seen().len(), 5, "{health}");
    // Two polls with nothing in common and a 304 between them: the stream's rate is unknown,
    // so is the share read, and /metrics leaves both out rather than guess.
    let capture = &health["poller"]["capture"];
    assert_eq!(capture["mode"], "interval", "{health}");
    assert!(capture["seen_share"].is_null(), "{health}");
    assert!(capture["stream_rate"].is_null(), "{health}");
    assert_eq!(capture["missed_estimate"], 0, "{health}");

    let metrics = scrape(&base).await;
    let scraped_at = chrono::Utc::now();

    // /metrics says what /health says.
    for (name, pointer) in SAME_AS_HEALTH {
        let shown = health
            .pointer(pointer)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{pointer} in {health}"));
        assert_eq!(metrics.get(name), shown, "{name} against /health{pointer}");
    }
    let sum = health["ingest"]["insert_duration"]["sum_seconds"]
        .as_f64()
        .unwrap();
    let scraped_sum = metrics.get("github_stats_ingest_insert_duration_seconds_sum");
    assert!((scraped_sum - sum).abs() < 1e-6, "{scraped_sum} {sum}");
    let last_success = at(health["poller"]["last_successful_poll_at"]
        .as_str()
        .unwrap());
    assert_eq!(
        metrics.get("github_stats_poller_last_success_timestamp_seconds"),
        last_success.timestamp_millis() as f64 / 1000.0
    );
    let age = metrics.get("github_stats_poller_seconds_since_last_success");
    let most = (scraped_at - last_success).num_milliseconds() as f64 / 1000.0;
    assert!((0.0..=most).contains(&age), "{age} s, at most {most} s");

    // … and what the fake served.
    for (name, expected) in [
        ("github_stats_poller_polls_total", 3.0), // two 200s and the 304
        ("github_stats_poller_not_modified_total", 1.0),
        ("github_stats_poller_pages_total", 2.0),
        ("github_stats_poller_events_seen_total", seen),
        ("github_stats_poller_events_new_total", distinct as f64),
        (
            "github_stats_poller_events_duplicate_total",
            seen - distinct as f64,
        ),
        ("github_stats_poller_events_kept_total", kept.len() as f64),
        ("github_stats_poller_gaps_total", 1.0),
        ("github_stats_poller_overlapping_polls_total", 0.0),
        ("github_stats_poller_failed_polls_total", 1.0),
        ("github_stats_poller_rate_limited_total", 1.0),
        ("github_stats_poller_rate_limit_remaining", 4321.0),
        ("github_stats_poller_rate_limit_limit", 5000.0),
        ("github_stats_poller_poll_interval_seconds", 3600.0),
        ("github_stats_poller_consecutive_failures", 0.0),
        ("github_stats_ingest_batches_total", 2.0),
        (
            "github_stats_ingest_received_events_total",
            kept.len() as f64,
        ),
        (
            "github_stats_ingest_inserted_events_total",
            kept.len() as f64,
        ),
        ("github_stats_ingest_duplicate_events_total", 0.0),
        ("github_stats_ingest_buffered_events", 0.0),
        ("github_stats_ingest_store_failures_total", 0.0),
        ("github_stats_ingest_paused", 0.0),
        ("github_stats_store_events", kept.len() as f64),
        (
            "github_stats_store_newest_event_timestamp_seconds",
            newest.timestamp() as f64,
        ),
    ] {
        assert_eq!(metrics.get(name), expected, "{name}");
    }
    for absent in [
        "github_stats_poller_seen_share",
        "github_stats_poller_stream_events_per_second",
    ] {
        assert_eq!(metrics.samples(absent).count(), 0, "{absent}");
    }
    assert_eq!(
        metrics.value("github_stats_store_up", &[("backend", "memory")]),
        Some(1.0)
    );
    // Two failed polls were source errors of the ingest loop too.
    assert_eq!(metrics.get("github_stats_ingest_source_errors_total"), 2.0);
    // Each insert was timed.
    let inserts = metrics.get("github_stats_ingest_insert_duration_seconds_count");
    assert!(inserts >= 2.0, "{inserts}");
    assert_eq!(
        metrics.value(
            "github_stats_ingest_insert_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(inserts)
    );
    assert!(metrics.get("github_stats_ingest_last_insert_timestamp_seconds") > 0.0);
    assert_eq!(
        metrics.value(
            "github_stats_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    // The HTTP layer counted the requests above by route template and status: this scrape is
    // counted once answered, so the next one sees it.
    for path in [
        "/metrics/pr-average/a/b",
        "/metrics/pr-average/c/d",
        "/nope",
    ] {
        fetch(&format!("{base}{path}")).await;
    }
    let metrics = scrape(&base).await;
    let requests = |route: &str, status: &str| {
        metrics.value(
            "github_stats_http_requests_total",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/health", "200"), Some(health_requests));
    assert_eq!(requests("/metrics", "200"), Some(1.0));
    assert_eq!(
        requests("/metrics/pr-average/{owner}/{repo}", "200"),
        Some(2.0)
    );
    assert_eq!(requests("unmatched", "404"), Some(1.0));
    assert_eq!(
        metrics.value(
            "github_stats_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/health")]
        ),
        Some(health_requests)
    );
    // The scrape being answered is the only request in flight.
    assert_eq!(metrics.get("github_stats_http_requests_in_flight"), 1.0);
    assert_eq!(metrics.get("github_stats_http_connections_max"), 512.0);

    // Connections are counted while open, idle or not.
    let idle: Vec<tokio::net::TcpStream> = {
        let mut idle = Vec::new();
        for _ in 0..5 {
            idle.push(
                tokio::net::TcpStream::connect(&base["http://".len()..])
                    .await
                    .unwrap(),
            );
        }
        idle
    };
    let started = Instant::now();
    loop {
        let open = scrape(&base)
            .await
            .get("github_stats_http_connections_open");
        if open >= 6.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{open} connections open with 5 idle ones and a scrape"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(idle);
    // … and no longer once closed.
    let started = Instant::now();
    while scrape(&base)
        .await
        .get("github_stats_http_connections_open")
        >= 6.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "closed connections still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert!(
        metrics.families.len() >= 40,
        "{:?}",
        metrics.families.keys()
    );
    assert_documented(&metrics);

    token.cancel();
    running.await.unwrap().unwrap();
}

/// Random paths and repositories never become label values: the series stay as many as the
/// routes, whatever the requests.
#[tokio::test]
async fn route_labels_stay_bounded_whatever_is_requested() {
    let client = client_for(recorded_store().await);
    let mut raw_paths = Vec::new();
    for n in 0..60 {
        for path in [
            format!("/metrics/pr-average/owner{n}/repo{n}"),
            format!("/debug/repo-events/someone{n}/thing{n}"),
            format!("/random/{n}/path{n}"),
            format!("/metrics/pr-average/owner{n}"),
            format!("/metrics/events?offset={}", n + 1),
        ] {
            client.get(&path).send().await;
            raw_paths.push(path);
        }
        client.post(format!("/health{n}")).send().await;
        client
            .request(
                poem::http::Method::from_bytes(format!("X{n}").as_bytes()).unwrap(),
                "/health",
            )
            .send()
            .await;
    }
    let response = client.get("/metrics").send().await;
    response.assert_status_is_ok();
    let text = response.0.into_body().into_string().await.unwrap();
    let metrics = exposition::parse(&text).unwrap();
    let series: Vec<_> = metrics
        .samples("github_stats_http_requests_total")
        .map(|s| s.labels.clone())
        .collect();
    let routes: BTreeSet<&str> = series.iter().map(|l| l["route"].as_str()).collect();
    let methods: BTreeSet<&str> = series.iter().map(|l| l["method"].as_str()).collect();
    assert_eq!(
        routes,
        BTreeSet::from([
            "/debug/repo-events/{owner}/{repo}",
            "/health",
            "/metrics/events",
            "/metrics/pr-average/{owner}/{repo}",
            "unmatched",
        ]),
        "{series:?}"
    );
    assert_eq!(methods, BTreeSet::from(["GET", "POST", "other"]));
    assert!(series.len() <= 10, "{series:?}");
    for path in &raw_paths {
        let first_segment_value = path.split('/').nth(3).unwrap_or_default();
        if first_segment_value.starts_with("owner") || first_segment_value.starts_with("someone") {
            assert!(
                !text.contains(first_segment_value),
                "{first_segment_value} in the scrape"
            );
        }
    }
    let by_route: BTreeMap<&str, f64> = metrics
        .samples("github_stats_http_requests_total")
        .filter(|s| s.labels["method"] == "GET")
        .fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s.labels["route"].as_str()).or_default() += s.value;
            m
        });
    assert_eq!(by_route["/metrics/pr-average/{owner}/{repo}"], 60.0);
    assert_eq!(by_route["unmatched"], 120.0);
}

/// A cluster with a shard down: up, degraded, and no totals rather than zeros.
#[tokio::test]
async fn a_shard_down_is_degraded_without_totals() {
    let client = client_for(Arc::new(BrokenStore(Failure::ShardDown)));
    let response = client.get("/metrics").send().await;
    response.assert_status_is_ok();
    let text = response.0.into_body().into_string().await.unwrap();
    let metrics = exposition::parse(&text).unwrap();
    assert_eq!(
        metrics.value("github_stats_store_up", &[("backend", "broken")]),
        Some(1.0)
    );
    assert_eq!(metrics.get("github_stats_store_degraded"), 1.0);
    assert!(
        metrics
            .samples("github_stats_store_events")
            .next()
            .is_none(),
        "{text}"
    );
    // A store that answers whole is not degraded.
    let client = client_for(recorded_store().await);
    let text = client
        .get("/metrics")
        .send()
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap();
    let metrics = exposition::parse(&text).unwrap();
    assert_eq!(metrics.get("github_stats_store_degraded"), 0.0);
    assert!(metrics.get("github_stats_store_events") > 1000.0);
}

/// A store that cannot be reached: still 200, `github_stats_store_up` 0, and no totals rather
/// than zeros.
#[tokio::test]
async fn an_unreachable_store_is_a_zero_not_an_error() {
    let client = client_for(Arc::new(BrokenStore(Failure::Unreachable)));
    let response = client.get("/metrics").send().await;
    response.assert_status_is_ok();
    let text = response.0.into_body().into_string().await.unwrap();
    let metrics = exposition::parse(&text).unwrap();
    let up: Vec<_> = metrics.samples("github_stats_store_up").collect();
    assert_eq!(up.len(), 1, "{text}");
    assert_eq!(up[0].value, 0.0);
    assert!(
        metrics
            .samples("github_stats_store_events")
            .next()
            .is_none()
    );
    // Without a poller (--no-poll) there are no poller or ingest metrics.
    assert!(
        !metrics
            .families
            .keys()
            .any(|k| k.starts_with("github_stats_poller_") || k.starts_with("github_stats_ingest_")),
        "{text}"
    );
}

/// The GH Archive follower's metrics, after a run over a fake archive with a hole, an hour and a
/// damaged hour: what its snapshot says and what the fake served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_followers_metrics_say_what_became_of_each_hour() {
    use chrono::{TimeZone, Timelike};
    use github_stats_core::fake_gharchive::{Answer, FakeArchive, FakeHour, RecordedHour};
    use github_stats_core::ingest::{Ingest, IngestConfig};
    use github_stats_core::{GhArchiveConfig, GhArchiveSource, MemoryStore};
    use github_stats_server::api::AppState;
    use github_stats_server::prometheus::Exporter;
    use tokio_util::sync::CancellationToken;

    // Three hours from 04:00 three days ago, older than the archive's publishing delay: no
    // file for the first (missing), the second whole (imported), the third cut three times
    // (damaged).
    let day = (chrono::Utc::now() - chrono::Duration::days(3)).date_naive();
    let base = chrono::Utc.from_utc_datetime(&day.and_hms_opt(4, 0, 0).unwrap());
    let hour = |n: i64| base + chrono::Duration::hours(n);
    let imported = FakeHour::build(RecordedHour::Noon, hour(1));
    let damaged = FakeHour::build(RecordedHour::Midnight, hour(2));
    let archive = FakeArchive::start().await;
    archive.put_hour(&imported);
    archive.put_hour(&damaged);
    archive.script(
        &damaged.file_name(),
        vec![Answer::CutAfter(damaged.gzip.len() / 3); 3],
    );
    let mut config = GhArchiveConfig::backfill(hour(0), hour(3));
    config.base_url = archive.url().into();
    config.wait_for_publication = true; // following, as the server does
    config.retry_damaged = false;
    config.failures_before_damaged = 3;
    config.min_retry = Duration::from_millis(20);
    config.max_retry = Duration::from_millis(100);
    config.unpublished_retry = Duration::from_millis(50);
    config.max_unpublished_retry = Duration::from_millis(200);
    let store = Arc::new(MemoryStore::new());
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    let status = source.status();
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        Ingest::run(
            source,
            store.clone(),
            IngestConfig::default(),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("the run ends");
    assert!(report.completed, "{report:?}");

    let mut state = AppState::new(store);
    let mut exporter = Exporter::new();
    exporter.register_archive_follower(status.clone());
    state.exporter = Arc::new(exporter);
    let client = crate::helpers::client_with(state, Duration::from_secs(30));
    let before = chrono::Utc::now();
    let response = client.get("/metrics").send().await;
    let after = chrono::Utc::now();
    response.assert_status_is_ok();
    let text = response.0.into_body().into_string().await.unwrap();
    let metrics = exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let hours =
        |status: &str| metrics.value("github_stats_archive_hours_total", &[("status", status)]);
    assert_eq!(hours("imported"), Some(1.0), "{text}");
    assert_eq!(hours("missing"), Some(1.0));
    assert_eq!(hours("damaged"), Some(1.0));
    assert_eq!(hours("skipped"), Some(0.0));
    assert_eq!(hours("pending"), Some(0.0));
    let snapshot = status.snapshot();
    assert_eq!(
        (
            snapshot.counters.imported,
            snapshot.counters.missing,
            snapshot.counters.damaged
        ),
        (1, 1, 1)
    );
    // The cut downloads of the damaged hour.
    assert_eq!(
        metrics.get("github_stats_archive_failed_downloads_total"),
        3.0
    );
    assert_eq!(
        metrics.get("github_stats_archive_failed_downloads_total"),
        snapshot.failed_downloads as f64
    );
    // Every hour up to hour(3) is done: behind by the hours from there to now.
    assert_eq!(
        metrics.get("github_stats_archive_next_hour_timestamp_seconds"),
        hour(3).timestamp() as f64
    );
    let behind = |now: chrono::DateTime<chrono::Utc>| {
        let floor = now.with_minute(0).unwrap().with_second(0).unwrap();
        (floor.with_nanosecond(0).unwrap() - hour(3)).num_hours() as f64
    };
    let scraped = metrics.get("github_stats_archive_hours_behind");
    assert!(
        scraped == behind(before) || scraped == behind(after),
        "{scraped} hours behind"
    );
    assert!(scraped >= 60.0, "{scraped}");
    assert_eq!(
        metrics.get("github_stats_archive_consecutive_failures"),
        f64::from(snapshot.consecutive_failures)
    );
    assert_documented(&metrics);
}
