//! Two writers racing on the same new events, forced: both stores are past their existence
//! check before either inserts (`ClickHouseStore::set_insert_gate`, feature `testsuite`), so
//! every event of the overlap is stored and counted twice. Each store then takes its copies
//! back that a merge does not keep (`docs/clickhouse.md`, "Two writers racing"): within
//! `race_check_delay` every metric equals one writer's (a memory store given the same events),
//! on one server, through the two-shard cluster and through the replicated cluster, with no
//! recount; each extra copy is taken back exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use github_stats_core::MetricsQuery;
use github_stats_core::{ClickHouseConfig, ClickHouseStore, Event, EventStore, MemoryStore};

use crate::clickhouse::{clickhouse_url, recorded_events, snapshot_of};
use crate::cluster::{Cluster, config_at, replicated_cluster, sync_replicas};

/// How long after an insert the stores check for racing copies.
const DELAY: Duration = Duration::from_secs(5);

/// How long the copies may take to disappear from the counts after the race: the delay, and
/// time for the checks on a loaded machine.
const BOUND: Duration = Duration::from_secs(25);

/// Repositories whose own metrics are compared: the raced ones first (each is a few queries,
/// tens of milliseconds through a cluster).
const REPOS: usize = 80;

fn distinct(events: &[Event]) -> u64 {
    let mut ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len() as u64
}

/// The race, between `a` and `b` (fresh, on the same empty database, of `cluster` if any).
async fn race(a: ClickHouseStore, b: ClickHouseStore, cluster: Option<&Cluster>) {
    let sync = async || {
        if let Some(cluster) = cluster {
            sync_replicas(cluster, a.database()).await;
        }
    };
    let events = recorded_events();
    let third = events.len() / 3;
    // A's batch and B's batch share the middle third.
    let (first, second) = (&events[..2 * third], &events[third..]);
    let overlap = distinct(first) + distinct(second) - distinct(&events);
    assert!(overlap > 100, "{overlap} events in both batches");

    // The repositories of the raced events, whose counts the copies inflate.
    let mut repos: Vec<&str> = events[third..2 * third]
        .iter()
        .map(|e| e.repo_name.as_str())
        .collect();
    repos.sort_unstable();
    repos.dedup();
    repos.truncate(REPOS);

    // One writer: the answers the race must come back to.
    let one = MemoryStore::new();
    one.insert_events(first).await.unwrap();
    one.insert_events(second).await.unwrap();
    let expected = snapshot_of(&one, &events, &repos).await;

    let gate = Arc::new(tokio::sync::Barrier::new(2));
    a.set_insert_gate(Some(gate.clone()));
    b.set_insert_gate(Some(gate));
    // A writer schedules its check during its insert: no earlier than this.
    let racing_from = Instant::now();
    let (from_a, from_b) = tokio::join!(a.insert_events(first), b.insert_events(second));
    let raced_at = Instant::now();
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    a.set_insert_gate(None);
    b.set_insert_gate(None);
    // The writers wrote through different nodes: each replica gets the other's rows.
    sync().await;
    // Both found nothing stored: the overlap went in twice, and the counts see it.
    assert_eq!(
        from_a.inserted + from_b.inserted,
        distinct(&events) + overlap,
        "the race was not forced"
    );
    let counted = a.total_events().await.unwrap();
    assert_eq!(
        counted,
        distinct(&events) + overlap,
        "the copies are counted right after the race"
    );

    // No recount, nothing called: the copies leave the counts within the bound (the total,
    // one cheap query, polled; then every metric compared).
    let taken = |details: &serde_json::Map<String, serde_json::Value>| {
        details["race_checks"]["copies_taken_back"]
            .as_u64()
            .unwrap_or_else(|| panic!("no race_checks in {details:?}"))
    };
    loop {
        let total = a.total_events().await.unwrap();
        let (a_health, b_health) = (a.health().await, b.health().await);
        let taken_back = taken(&a_health.details) + taken(&b_health.details);
        if total == distinct(&events) && taken_back == overlap {
            break;
        }
        assert!(
            raced_at.elapsed() < BOUND,
            "{total} events counted, {taken_back} copies of {overlap} taken back {BOUND:?} \
             after the race: {} {}",
            a_health.details["race_checks"],
            b_health.details["race_checks"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let exact_at = racing_from.elapsed();
    assert!(
        exact_at >= DELAY,
        "taken back before the delay: {exact_at:?}"
    );
    sync().await;
    // Every metric, through either writer (a replica may take a moment to fetch the
    // corrections: a few reads are allowed).
    for (store, name) in [(&a, "a"), (&b, "b")] {
        let mut answer = snapshot_of(store, &events, &repos).await;
        for _ in 0..10 {
            if answer == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            answer = snapshot_of(store, &events, &repos).await;
        }
        assert_eq!(
            answer, expected,
            "through writer {name}, the total exact {exact_at:?} after the race"
        );
    }
    // Each copy taken back once, by one of the two writers (none taken back twice since).
    let (a_health, b_health) = (a.health().await, b.health().await);
    assert_eq!(
        taken(&a_health.details) + taken(&b_health.details),
        overlap,
        "{} {}",
        a_health.details["race_checks"],
        b_health.details["race_checks"]
    );
    // The count tables themselves are exact: merges and a recount change nothing.
    a.optimize_final().await.unwrap();
    a.recount().await.unwrap();
    sync().await;
    assert_eq!(snapshot_of(&a, &events, &repos).await, expected);
}

async fn connect(config: ClickHouseConfig) -> ClickHouseStore {
    ClickHouseStore::connect(config.with_race_check_delay(DELAY))
        .await
        .unwrap_or_else(|e| panic!("ClickHouse is configured but does not answer: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_count_as_one_on_one_server() {
    let Some(url) = clickhouse_url("two_writers_racing_count_as_one_on_one_server") else {
        return;
    };
    let config = || crate::clickhouse::config(&url, "gs_race_one_server");
    connect(config()).await.drop_database().await.unwrap();
    race(connect(config()).await, connect(config()).await, None).await;
}

async fn race_through(cluster: &Cluster, database: &str) {
    let timeout = Duration::from_secs(60);
    // Two writers talking to different nodes, as two API servers would.
    let a_url = &cluster.urls[0];
    let b_url = cluster.urls.last().unwrap();
    connect(config_at(cluster, a_url, database, timeout))
        .await
        .drop_database()
        .await
        .unwrap();
    race(
        connect(config_at(cluster, a_url, database, timeout)).await,
        connect(config_at(cluster, b_url, database, timeout)).await,
        Some(cluster),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_count_as_one_through_the_two_shard_cluster() {
    let Some(cluster) =
        crate::cluster::two_shard_cluster("two_writers_racing_count_as_one_two_shards")
    else {
        return;
    };
    race_through(&cluster, "gs_race_two_shards").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_count_as_one_through_the_replicated_cluster() {
    let Some(cluster) = replicated_cluster("two_writers_racing_count_as_one_replicated") else {
        return;
    };
    race_through(&cluster, "gs_race_replicated").await;
}
