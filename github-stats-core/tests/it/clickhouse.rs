//! The ClickHouse store against a real server: `CLICKHOUSE_URL` (set by `scripts/test.sh`).
//! Unset, each test prints a notice and returns; set, a server that does not answer fails them.
//! Every test (and every conformance case) works in a fresh database named after it.

use std::sync::Arc;
use std::time::Duration;

use crate::clickhouse_process::{ClickHouseProcess, sql};
use chrono::DateTime;
use github_stats_core::conformance::clickhouse::version_1_statements;
use github_stats_core::conformance::{self, event};
use github_stats_core::parse::{RecordOutcome, parse_record};
use github_stats_core::{ClickHouseConfig, ClickHouseStore};
use github_stats_core::{
    Event, EventStore, EventType, MetricsQuery, RepoName, SharedStore, StoreError, TimeWindow,
};

pub fn clickhouse_url(test: &str) -> Option<String> {
    match std::env::var("CLICKHOUSE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("notice: CLICKHOUSE_URL is not set, skipping the ClickHouse test {test}");
            None
        }
    }
}

pub fn config(url: &str, database: &str) -> ClickHouseConfig {
    ClickHouseConfig::new(url)
        .with_database(database)
        .with_request_timeout(Duration::from_secs(60))
}

/// A store on an empty database `gs_it_<name>` (dropped first if a previous run left it).
async fn fresh_store(url: &str, name: &str) -> ClickHouseStore {
    let database = format!("gs_it_{name}");
    let old = ClickHouseStore::connect(config(url, &database))
        .await
        .unwrap_or_else(|e| panic!("CLICKHOUSE_URL is set but ClickHouse does not answer: {e}"));
    old.drop_database().await.expect("drop database");
    ClickHouseStore::connect(config(url, &database))
        .await
        .expect("connect to a fresh database")
}

pub fn recorded_events() -> Vec<Event> {
    conformance::fixtures::recorded_events()
        .iter()
        .filter_map(|v| match parse_record(v.to_string().as_bytes()) {
            RecordOutcome::Kept(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn t(s: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(s, 0).unwrap()
}

/// Every metric of a store over `events`, to compare before and after something.
pub async fn snapshot(store: &dyn github_stats_core::Store, events: &[Event]) -> String {
    let mut repos: Vec<&str> = events.iter().map(|e| e.repo_name.as_str()).collect();
    repos.sort_unstable();
    repos.dedup();
    repos.truncate(300);
    snapshot_of(store, events, &repos).await
}

/// The same, with the per-repository metrics of `repos` only (each a few queries: through a
/// cluster, hundreds of repositories take tens of seconds).
pub async fn snapshot_of(
    store: &dyn github_stats_core::Store,
    events: &[Event],
    repos: &[&str],
) -> String {
    let min = events.iter().map(Event::timestamp).min().unwrap();
    let max = events.iter().map(Event::timestamp).max().unwrap();
    let window = TimeWindow::new(t(min), t(max + 1)).unwrap();
    let mut out = format!(
        "total={} counts={:?} timeline={:?} top={:?}",
        store.total_events().await.unwrap(),
        store.event_counts(window).await.unwrap().counts,
        store
            .timeline(window, (max + 1 - min) / 50 + 1)
            .await
            .unwrap()
            .counts,
        store.top_repositories(25).await.unwrap(),
    );
    for name in repos.iter().filter_map(|r| r.parse::<RepoName>().ok()) {
        let avg = store.pr_average(&name).await.unwrap();
        let counts = store.repo_event_counts(&name).await.unwrap();
        // The middle of the span: whole hours from the hourly PR states, edges from events.
        let middle = TimeWindow::new(
            t(min + (max - min) / 4 + 1234),
            t(max - (max - min) / 4 - 321),
        )
        .unwrap();
        let within = store.pr_average_in(&name, middle).await.unwrap();
        out.push_str(&format!(
            "\n{name}: {} {:?} {:?} {:?} in the middle: {} {:?} {:?}",
            avg.opened_count,
            avg.first_opened_at,
            avg.last_opened_at,
            counts.counts,
            within.opened_count,
            within.first_opened_at,
            within.last_opened_at
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_store_passes_the_conformance_suite() {
    let Some(url) = clickhouse_url("clickhouse_store_passes_the_conformance_suite") else {
        return;
    };
    conformance::run_suite(|case| {
        let url = url.clone();
        async move { Arc::new(fresh_store(&url, &format!("conformance_{case}")).await) as SharedStore }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_copies_count_until_a_recount() {
    let name = "racing_copies_count_until_a_recount";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    let store = fresh_store(&url, name).await;
    let events = recorded_events();
    store.insert_events(&events).await.unwrap();
    let before = snapshot(&store, &events).await;
    // What two writers racing leave behind: every row twice in `events`, and every state
    // fed twice through the materialized views.
    let db = store.database().to_owned();
    sql(
        &url,
        &format!("INSERT INTO {db}.events SELECT * FROM {db}.events"),
    )
    .await;
    let rows = sql(&url, &format!("SELECT count() FROM {db}.events")).await;
    assert_eq!(
        rows.trim().parse::<usize>().unwrap(),
        2 * events_distinct(&events)
    );
    // The PR table keeps id sets, which absorb the copies: PR averages are unchanged. Every
    // count counts rows, so it sees the copies (docs/clickhouse.md, "Two writers racing").
    let pr_averages = |s: &str| {
        s.lines()
            .skip(1)
            .map(|l| {
                l.rsplit_once(" TypeCounts")
                    .map_or(l, |(pr, _)| pr)
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    let raced = snapshot(&store, &events).await;
    assert_eq!(
        pr_averages(&raced),
        pr_averages(&before),
        "PR averages with duplicate rows"
    );
    assert_ne!(raced, before, "counts see the racing copies");
    assert_eq!(
        store.total_events().await.unwrap(),
        2 * events_distinct(&events) as u64,
        "row counts see racing copies"
    );
    store.optimize_final().await.unwrap();
    let rows = sql(&url, &format!("SELECT count() FROM {db}.events")).await;
    assert_eq!(
        rows.trim().parse::<usize>().unwrap(),
        events_distinct(&events),
        "merges collapse the copies"
    );
    assert_eq!(
        pr_averages(&snapshot(&store, &events).await),
        pr_averages(&before),
        "PR averages after OPTIMIZE FINAL"
    );
    // Recounting from the merged events makes every count exact again; a second recount
    // finds nothing to correct.
    store.recount().await.unwrap();
    assert_eq!(snapshot(&store, &events).await, before, "after a recount");
    let rows = |table: &str| {
        let url = url.clone();
        let query = format!("SELECT count() FROM {db}.{table}");
        async move { sql(&url, &query).await.trim().to_owned() }
    };
    let counted = (
        rows("hourly_type_counts").await,
        rows("repo_type_counts").await,
    );
    store.recount().await.unwrap();
    assert_eq!(
        snapshot(&store, &events).await,
        before,
        "after a second recount"
    );
    assert_eq!(
        (
            rows("hourly_type_counts").await,
            rows("repo_type_counts").await
        ),
        counted,
        "a second recount inserts nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_final_changes_no_metric() {
    let name = "optimize_final_changes_no_metric_plain";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    let store = fresh_store(&url, name).await;
    let events = recorded_events();
    // Many small inserts: many parts to merge.
    for chunk in events.chunks(500) {
        store.insert_events(chunk).await.unwrap();
    }
    let before = snapshot(&store, &events).await;
    store.optimize_final().await.unwrap();
    assert_eq!(snapshot(&store, &events).await, before);
    store.recount().await.unwrap();
    assert_eq!(
        snapshot(&store, &events).await,
        before,
        "a recount changes nothing"
    );
}

fn events_distinct(events: &[Event]) -> usize {
    let mut ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_across_batches_and_reconnects_count_once() {
    let name = "duplicates_across_batches_and_reconnects";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    let store = fresh_store(&url, name).await;
    let events = recorded_events();
    let distinct = events_distinct(&events) as u64;
    let half = events.len() / 2;
    let first = store.insert_events(&events[..half + 100]).await.unwrap();
    let second = store.insert_events(&events[half..]).await.unwrap();
    assert_eq!(first.inserted + second.inserted, distinct);
    assert_eq!(
        first.duplicates + second.duplicates,
        events.len() as u64 + 100 - distinct
    );
    let before = snapshot(&store, &events).await;
    drop(store);

    // A restart: a new store on the same database, with an empty cache of recent ids.
    let again = ClickHouseStore::connect(config(&url, &format!("gs_it_{name}")))
        .await
        .unwrap();
    let outcome = again.insert_events(&events).await.unwrap();
    assert_eq!(outcome.inserted, 0, "nothing is new after a reconnect");
    assert_eq!(outcome.duplicates, events.len() as u64);
    assert_eq!(again.total_events().await.unwrap(), distinct);
    assert_eq!(snapshot(&again, &events).await, before);
    // The same through the lookups by id, as for a batch whose time range holds more stored
    // events than the range scan fetches.
    let mut by_id = config(&url, &format!("gs_it_{name}"));
    by_id.range_scan_limit = 10;
    let by_id = ClickHouseStore::connect(by_id).await.unwrap();
    let outcome = by_id.insert_events(&events).await.unwrap();
    assert_eq!(
        (outcome.inserted, outcome.duplicates),
        (0, events.len() as u64),
        "lookups by id"
    );
    let mut seen = std::collections::HashSet::new();
    let fresh_events: Vec<Event> = events
        .iter()
        .filter(|e| seen.insert(e.id))
        .take(50)
        .map(|e| Event {
            id: e.id + (1 << 40),
            ..e.clone()
        })
        .collect();
    let outcome = by_id.insert_events(&fresh_events).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (50, 0));
    let outcome = again.insert_events(&fresh_events).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (0, 50));
    let distinct = distinct + 50;
    let rows = sql(&url, &format!("SELECT count() FROM gs_it_{name}.events")).await;
    assert_eq!(
        rows.trim().parse::<u64>().unwrap(),
        distinct,
        "no row was written twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_migrating_at_once_both_succeed() {
    let name = "two_processes_migrating_at_once";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    fresh_store(&url, name).await.drop_database().await.unwrap();
    let database = format!("gs_it_{name}");
    let (a, b) = tokio::join!(
        ClickHouseStore::connect(config(&url, &database)),
        ClickHouseStore::connect(config(&url, &database)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    a.insert_events(&[event(
        1,
        EventType::PullRequestEvent,
        "o/r",
        1_700_000_000,
        "opened",
    )])
    .await
    .unwrap();
    assert_eq!(b.total_events().await.unwrap(), 1);
    assert_eq!(
        b.pr_average(&"o/r".parse().unwrap())
            .await
            .unwrap()
            .opened_count,
        1
    );
    let versions = sql(
        &url,
        &format!("SELECT DISTINCT version FROM {database}.schema_migrations ORDER BY version"),
    )
    .await;
    assert_eq!(versions.trim(), "1\n2\n3\n4\n5");
    let health = b.health().await;
    assert!(health.connected);
    assert_eq!(health.total_events, 1);
    assert_eq!(health.last_event_at, Some(t(1_700_000_000)));
    assert!(
        health.details["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_names_with_quotes_backslashes_and_unicode_round_trip() {
    let name = "repository_names_round_trip";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    let store = fresh_store(&url, name).await;
    let odd = [
        "o'neil/it's",
        "back\\slash/x\\\\y",
        "quote\"d/`tick`",
        "日本語/ünïcödé-🦀",
        "what?/q?uestion",
        "tab\tnew\nline/x",
    ];
    let mut events = Vec::new();
    for (i, repo) in odd.iter().enumerate() {
        for j in 0..=i {
            events.push(event(
                (i * 10 + j) as u64 + 1,
                EventType::IssuesEvent,
                repo,
                1_700_000_000 + j as i64,
                "opened",
            ));
        }
    }
    store.insert_events(&events).await.unwrap();
    let top = store.top_repositories(10).await.unwrap();
    let got: Vec<(&str, u64)> = top
        .iter()
        .map(|r| (r.repository.as_str(), r.event_count))
        .collect();
    let expected: Vec<(&str, u64)> = odd
        .iter()
        .enumerate()
        .rev()
        .map(|(i, r)| (*r, i as u64 + 1))
        .collect();
    assert_eq!(got, expected);
    // Inserting them again is recognised as duplicates (the existence query binds nothing
    // from the names, but runs next to them).
    let again = ClickHouseStore::connect(config(&url, &format!("gs_it_{name}")))
        .await
        .unwrap();
    assert_eq!(again.insert_events(&events).await.unwrap().inserted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_midway_gives_typed_errors_then_recovers() {
    let name = "server_stopped_midway";
    if clickhouse_url(name).is_none() {
        return;
    }
    let mut server = ClickHouseProcess::new();
    server.start().await;
    let store = ClickHouseStore::connect(
        ClickHouseConfig::new(server.url())
            .with_database("gs_it_server_stopped")
            .with_request_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    // Its native protocol port, given as the HTTP URL, is recognised.
    let native = format!("http://127.0.0.1:{}", server.tcp);
    match ClickHouseStore::connect(ClickHouseConfig::new(&native)).await {
        Err(StoreError::Config(message)) => {
            assert!(message.contains("native protocol"), "{message}");
            assert!(message.contains("8123"), "{message}");
        }
        Err(other) => panic!("native port: unexpected error {other}"),
        Ok(_) => panic!("native port: connected over HTTP"),
    }

    let base = 1_700_000_000;
    let batch = |from: u64| -> Vec<Event> {
        (from..from + 10)
            .map(|i| {
                event(
                    i,
                    EventType::PullRequestEvent,
                    "o/r",
                    base + i as i64,
                    "opened",
                )
            })
            .collect()
    };
    assert_eq!(store.insert_events(&batch(0)).await.unwrap().inserted, 10);

    server.kill();
    let err = store.insert_events(&batch(100)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "insert: {err}");
    let window = TimeWindow::new(t(base), t(base + 1000)).unwrap();
    let err = store.event_counts(window).await.unwrap_err();
    assert!(err.is_unavailable(), "event_counts: {err}");
    let err = store.pr_average(&"o/r".parse().unwrap()).await.unwrap_err();
    assert!(err.is_unavailable(), "pr_average: {err}");
    let health = store.health().await;
    assert!(!health.connected);
    assert!(health.error.as_deref().is_some_and(|e| !e.is_empty()));

    server.start().await;
    // The same store instance, no reconnect by hand.
    let retried = store.insert_events(&batch(100)).await.unwrap();
    assert_eq!(retried.inserted, 10);
    assert_eq!(store.total_events().await.unwrap(), 20);
    assert_eq!(
        store.event_counts(window).await.unwrap().counts[EventType::PullRequestEvent],
        20
    );
    let avg = store.pr_average(&"o/r".parse().unwrap()).await.unwrap();
    assert_eq!(avg.opened_count, 20);
    assert!(store.health().await.connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_upgraded_with_its_events_counted() {
    let name = "version_1_upgrade";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    // The expected answers: the same events in a database created at the current version.
    let reference = fresh_store(&url, &format!("{name}_reference")).await;
    let events = recorded_events();
    reference.insert_events(&events).await.unwrap();
    let expected = snapshot(&reference, &events).await;

    // A database as version 1 left it, holding those events (inserted in two statements, as
    // two batches would be, feeding version 1's views).
    let database = format!("gs_it_{name}");
    for statement in version_1_statements(&database).unwrap() {
        sql(&url, &statement).await;
    }
    sql(
        &url,
        &format!("INSERT INTO {database}.schema_migrations VALUES (1, 'v1', now())"),
    )
    .await;
    let from = format!("{}.events", reference.database());
    for half in ["id % 2 = 0", "id % 2 = 1"] {
        sql(
            &url,
            &format!(
                "INSERT INTO {database}.events SELECT id, event_type, repo_id, repo_name, \
                 created_at, action FROM {from} WHERE {half}"
            ),
        )
        .await;
    }

    // Connecting applies version 2, which counts the events already there.
    let upgraded = ClickHouseStore::connect(config(&url, &database))
        .await
        .unwrap();
    assert_eq!(snapshot(&upgraded, &events).await, expected);
    let versions = sql(
        &url,
        &format!("SELECT DISTINCT version FROM {database}.schema_migrations ORDER BY version"),
    )
    .await;
    assert_eq!(versions.trim(), "1\n2\n3\n4\n5");
    let gone = sql(
        &url,
        &format!(
            "SELECT count() FROM system.tables WHERE database = '{database}' \
             AND (name LIKE 'repo_counts%' OR name LIKE 'pr_opened%')"
        ),
    )
    .await;
    assert_eq!(
        gone.trim(),
        "0",
        "version 2 drops pr_opened, repo_counts and their views"
    );
    // Later inserts reach the new tables through their views, once.
    let late = event(
        9_999_999_999,
        EventType::WatchEvent,
        "late/comer",
        1_700_000_000,
        "started",
    );
    upgraded
        .insert_events(std::slice::from_ref(&late))
        .await
        .unwrap();
    reference
        .insert_events(std::slice::from_ref(&late))
        .await
        .unwrap();
    let mut all = events.clone();
    all.push(late);
    assert_eq!(
        snapshot(&upgraded, &all).await,
        snapshot(&reference, &all).await
    );
    // Connecting again applies nothing twice.
    let again = ClickHouseStore::connect(config(&url, &database))
        .await
        .unwrap();
    assert_eq!(
        snapshot(&again, &all).await,
        snapshot(&reference, &all).await
    );
}

/// The archive follower into ClickHouse: two hours from the fake archive, part of each stored
/// first (as a poller would have), the records and totals exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_follower_imports_hours_and_measures_what_was_stored_first() {
    use github_stats_core::coverage::ArchiveStatus;
    use github_stats_core::fake_gharchive::{FakeArchive, FakeHour, RecordedHour};
    use github_stats_core::ingest::{Ingest, IngestConfig};
    use github_stats_core::source::gharchive::{GhArchiveConfig, GhArchiveSource};
    use tokio_util::sync::CancellationToken;

    let name = "archive_follower_imports_hours";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    let store: SharedStore = Arc::new(fresh_store(&url, name).await);
    let day = (chrono::Utc::now() - chrono::Duration::days(3)).date_naive();
    let first =
        chrono::TimeZone::from_utc_datetime(&chrono::Utc, &day.and_hms_opt(7, 0, 0).unwrap());
    let second = first + chrono::Duration::hours(1);
    let hours = [
        FakeHour::build(RecordedHour::Noon, first),
        FakeHour::build(RecordedHour::Midnight, second),
    ];
    let archive = FakeArchive::start().await;
    for h in &hours {
        archive.put_hour(h);
    }
    let polled: Vec<Vec<Event>> = vec![hours[0].sample(0, 4), hours[1].sample(2, 7)];
    for events in &polled {
        store.insert_events(events).await.unwrap();
    }

    let mut config = GhArchiveConfig::backfill(first, second + chrono::Duration::hours(1))
        .with_url(archive.url());
    config.batch_size = 400;
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    let report = Ingest::run(
        source,
        Arc::clone(&store) as Arc<dyn EventStore>,
        IngestConfig::default(),
        CancellationToken::new(),
    )
    .await;
    assert!(report.completed, "{report:?}");

    let records = store
        .archive_hours(TimeWindow::new(first, second + chrono::Duration::hours(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    for ((record, hour), polled) in records.iter().zip(&hours).zip(&polled) {
        assert_eq!(record.hour, hour.hour);
        assert_eq!(record.status, ArchiveStatus::Imported);
        assert_eq!(record.archive_events, hour.kept().len() as u64);
        assert_eq!(record.polled_before_archive, polled.len() as u64);
        let window = TimeWindow::new(hour.hour, hour.hour + chrono::Duration::hours(1)).unwrap();
        assert_eq!(
            store.event_counts(window).await.unwrap().counts.0,
            hour.kept_by_type()
        );
    }
    let total: usize = hours.iter().map(|h| h.kept().len()).sum();
    assert_eq!(store.total_events().await.unwrap(), total as u64);
    let run = store.complete_run().await.unwrap().unwrap();
    assert_eq!(
        (run.from, run.until),
        (first, second + chrono::Duration::hours(1))
    );
}

/// An insert that fails after `events` stored it, before the tables its views feed did (what
/// ZooKeeper going away or a server dying mid-insert does), is found stored by its retry: the
/// store notices, reports it and repairs the derived tables in the same call, so every metric
/// equals a store that never failed. The failure is forced by a view of `events` that divides
/// by zero, named to run before the store's views (18.16 runs a table's views in name order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_stored_in_part_is_found_and_repaired_by_its_retry() {
    let Some(url) = clickhouse_url("an_insert_stored_in_part") else {
        return;
    };
    let store = fresh_store(&url, "stored_in_part").await;
    let db = "gs_it_stored_in_part";
    let events = recorded_events();
    let (first, rest) = events.split_at(events.len() / 2);
    store.insert_events(first).await.unwrap();
    sql(
        &url,
        &format!("CREATE TABLE {db}.fail_sink (x UInt64) ENGINE = Null"),
    )
    .await;
    sql(
        &url,
        &format!(
            "CREATE MATERIALIZED VIEW {db}.a_failing_mv TO {db}.fail_sink \
             AS SELECT intDiv(id, id - id) AS x FROM {db}.events"
        ),
    )
    .await;
    let err = store.insert_events(rest).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("division"), "{err}");
    sql(&url, &format!("DROP TABLE {db}.a_failing_mv")).await;

    let reference = github_stats_core::MemoryStore::new();
    reference.insert_events(&events).await.unwrap();
    let want = snapshot(&reference, &events).await;
    // `events` holds the batch, the derived tables do not: counts are short.
    let stored_in_part = snapshot(&store, &events).await;
    assert_ne!(stored_in_part, want, "the failure left the counts short");
    let stored = sql(&url, &format!("SELECT uniqExact(id) FROM {db}.events")).await;
    assert_eq!(stored.trim(), events_distinct(&events).to_string());

    let retry = store.insert_events(rest).await.unwrap();
    assert_eq!(retry.inserted, 0);
    let distinct_rest = events_distinct(rest) as u64;
    let health = store.health().await;
    assert_eq!(
        health.details["partly_stored_events"], distinct_rest,
        "{health:?}"
    );
    assert_eq!(health.details["partly_stored_repairs"], 1, "{health:?}");
    assert_eq!(health.details["partly_stored_waiting"], 0, "{health:?}");
    assert_eq!(snapshot(&store, &events).await, want);
    // Nothing more to repair: a later insert changes nothing.
    store.insert_events(rest).await.unwrap();
    assert_eq!(store.health().await.details["partly_stored_repairs"], 1);
    assert_eq!(snapshot(&store, &events).await, want);
}

/// Issue #25, finding 8: `DROP DATABASE` under a running store. The request that meets the
/// missing database is `Unavailable` in the store's own words (no ClickHouse text); the next
/// one creates the schema again, as at start: a retried insert stores its events, with the
/// counts of a store that only ever held them, and the events that were stored before the drop
/// (which the store remembered as stored) are stored again when they come again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_database_is_created_again_and_a_retried_insert_stores_its_events() {
    let name = "dropped_database";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    let store = fresh_store(&url, name).await;
    let reference = fresh_store(&url, "dropped_database_reference").await;
    let events = distinct_recorded_events();
    let (before, after) = events.split_at(events.len() / 2);
    store.insert_events(before).await.unwrap();
    assert_eq!(store.total_events().await.unwrap(), before.len() as u64);

    let plain = |err: &StoreError| {
        assert!(err.is_unavailable(), "{err}");
        let message = err.to_string();
        for raw in ["Code:", "Exception", "displayText", "doesn't exist"] {
            assert!(!message.contains(raw), "ClickHouse's text in {message:?}");
        }
        assert!(
            message.contains("missing the store's database"),
            "{message}"
        );
    };
    sql(&url, &format!("DROP DATABASE gs_it_{name}")).await;
    let failed = store.insert_events(after).await.unwrap_err();
    plain(&failed);
    // The retry, as the ingest loop makes it.
    let outcome = store.insert_events(after).await.unwrap();
    assert_eq!(
        (outcome.inserted, outcome.duplicates),
        (after.len() as u64, 0)
    );
    assert_eq!(store.total_events().await.unwrap(), after.len() as u64);
    reference.insert_events(after).await.unwrap();
    let repos: Vec<&str> = after
        .iter()
        .take(20)
        .map(|e| e.repo_name.as_str())
        .collect();
    assert_eq!(
        snapshot_of(&store, after, &repos).await,
        snapshot_of(&reference, after, &repos).await
    );
    // Gone with the database: stored again, not taken for duplicates.
    let outcome = store.insert_events(before).await.unwrap();
    assert_eq!(
        (outcome.inserted, outcome.duplicates),
        (before.len() as u64, 0)
    );

    // A query meeting the missing database is refused the same way, and the next one answers.
    sql(&url, &format!("DROP DATABASE gs_it_{name}")).await;
    plain(&store.total_events().await.unwrap_err());
    assert_eq!(store.total_events().await.unwrap(), 0);
    let outcome = store.insert_events(&events).await.unwrap();
    assert_eq!(outcome.inserted, events.len() as u64);
    reference.insert_events(before).await.unwrap();
    let repos: Vec<&str> = events
        .iter()
        .take(20)
        .map(|e| e.repo_name.as_str())
        .collect();
    assert_eq!(
        snapshot_of(&store, &events, &repos).await,
        snapshot_of(&reference, &events, &repos).await
    );
    let rows = sql(&url, &format!("SELECT count() FROM gs_it_{name}.events")).await;
    assert_eq!(rows.trim().parse::<u64>().unwrap(), events.len() as u64);
    store.drop_database().await.unwrap();
    reference.drop_database().await.unwrap();
}

/// The recorded events, each id once.
fn distinct_recorded_events() -> Vec<Event> {
    let mut seen = std::collections::HashSet::new();
    recorded_events()
        .into_iter()
        .filter(|e| seen.insert(e.id))
        .collect()
}

/// A table dropped while its migration stays recorded (`DROP TABLE` by hand) is created again
/// by the next request, a derived one filled from `events`: the counts come back exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_is_created_again_and_its_counts_come_back() {
    let name = "dropped_table";
    let Some(url) = clickhouse_url(name) else {
        return;
    };
    let store = fresh_store(&url, name).await;
    let reference = fresh_store(&url, "dropped_table_reference").await;
    let events = distinct_recorded_events();
    let (before, after) = events.split_at(events.len() / 2);
    store.insert_events(before).await.unwrap();
    reference.insert_events(&events).await.unwrap();

    // The hourly counts (and with them what the view feeding them writes to) are gone.
    sql(&url, &format!("DROP TABLE gs_it_{name}.hourly_type_counts")).await;
    let mut outcome = store.insert_events(after).await;
    for _ in 0..5 {
        if outcome.is_ok() {
            break;
        }
        let error = outcome.unwrap_err();
        assert!(error.is_unavailable(), "{error}");
        assert!(!error.to_string().contains("Code:"), "{error}");
        outcome = store.insert_events(after).await;
    }
    outcome.unwrap();
    let repos: Vec<&str> = events
        .iter()
        .take(20)
        .map(|e| e.repo_name.as_str())
        .collect();
    assert_eq!(
        snapshot_of(&store, &events, &repos).await,
        snapshot_of(&reference, &events, &repos).await
    );
    store.drop_database().await.unwrap();
    reference.drop_database().await.unwrap();
}
