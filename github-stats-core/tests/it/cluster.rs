//! The ClickHouse store in cluster mode, against real clusters: the two-shard cluster of
//! `scripts/clickhouse-cluster.sh` (`CLICKHOUSE_CLUSTER_NAME`, `CLICKHOUSE_CLUSTER_URLS`, shard 1
//! first) and the replicated one of `scripts/clickhouse-replicated.sh` (two shards of two
//! replicas and ZooKeeper: `CLICKHOUSE_REPLICATED_CLUSTER_NAME`, `…_URLS`). Unset, each
//! test prints a notice and returns; set, a cluster that does not answer fails them. Every test
//! (and every conformance case) works in a fresh database named after it.
//!
//! The shard-down test starts a two-server cluster of its own, which it may stop; the failures
//! of the replicated cluster are tested through the server
//! (`github-stats-server/tests/api/replicated.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clickhouse_process::{ClickHouseProcess, replicated, sql};
use chrono::DateTime;
use github_stats_core::conformance::{self, event};
use github_stats_core::parse::{ParseStats, parse_json_lines};
use github_stats_core::{ClickHouseConfig, ClickHouseStore};
use github_stats_core::{
    Event, EventStore, EventType, MetricsQuery, RepoName, SharedStore, StoreError, TimeWindow,
};

/// A cluster of the test harness: its name, its nodes' HTTP URLs (by shard, then replica), and
/// whether its tables are replicated.
pub struct Cluster {
    pub name: String,
    pub urls: Vec<String>,
    pub replicated: bool,
}

impl Cluster {
    /// One node per shard: the first replica of each.
    pub fn shard_nodes(&self) -> Vec<&str> {
        let step = if self.replicated { 2 } else { 1 };
        self.urls.iter().step_by(step).map(String::as_str).collect()
    }
}

pub fn two_shard_cluster(test: &str) -> Option<Cluster> {
    let name = std::env::var("CLICKHOUSE_CLUSTER_NAME").unwrap_or_default();
    let urls = std::env::var("CLICKHOUSE_CLUSTER_URLS").unwrap_or_default();
    if name.is_empty() || urls.is_empty() {
        eprintln!(
            "notice: CLICKHOUSE_CLUSTER_NAME/CLICKHOUSE_CLUSTER_URLS are not set, skipping the \
             ClickHouse cluster test {test}"
        );
        return None;
    }
    let urls: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
    assert_eq!(
        urls.len(),
        2,
        "CLICKHOUSE_CLUSTER_URLS: two shards expected"
    );
    Some(Cluster {
        name,
        urls,
        replicated: false,
    })
}

/// The replicated cluster as a [`Cluster`].
pub fn replicated_cluster(test: &str) -> Option<Cluster> {
    replicated(test).map(|r| Cluster {
        name: r.name,
        urls: r.urls,
        replicated: true,
    })
}

pub fn config(cluster: &Cluster, database: &str, timeout: Duration) -> ClickHouseConfig {
    config_at(cluster, &cluster.urls[0], database, timeout)
}

/// The store's configuration with `url` as the node it sends queries and inserts to.
pub fn config_at(
    cluster: &Cluster,
    url: &str,
    database: &str,
    timeout: Duration,
) -> ClickHouseConfig {
    ClickHouseConfig::new(url)
        .with_database(database)
        .with_request_timeout(timeout)
        .with_cluster(&cluster.name, cluster.urls.iter().cloned())
        .with_replication(cluster.replicated)
}

/// A cluster-mode store on an empty database `gs_cl_<name>` (dropped first on every node).
pub async fn fresh_store(cluster: &Cluster, name: &str) -> ClickHouseStore {
    fresh_store_with(cluster, name, |c| c).await
}

/// [`fresh_store`] with a configuration of the test's own.
pub async fn fresh_store_with(
    cluster: &Cluster,
    name: &str,
    adjust: impl Fn(ClickHouseConfig) -> ClickHouseConfig,
) -> ClickHouseStore {
    let database = format!("gs_cl_{name}");
    let timeout = Duration::from_secs(60);
    drop_everywhere(cluster, &database).await;
    ClickHouseStore::connect(adjust(config(cluster, &database, timeout)))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the cluster {} is set but a fresh database cannot be made on it: {e}",
                cluster.name
            )
        })
}

/// Drops `database` on every node of `cluster` (a replicated table's ZooKeeper path goes with
/// its last replica); fails when a node does not answer.
pub async fn drop_everywhere(cluster: &Cluster, database: &str) {
    for url in &cluster.urls {
        sql(url, &format!("DROP DATABASE IF EXISTS {database}")).await;
    }
}

/// Replicated: waits until every replica of `database` has fetched what the others hold
/// (`SYSTEM SYNC REPLICA` of each of its replicated tables on every node). Replication is
/// asynchronous and a read through `Distributed` may be served by either replica of a shard (by
/// `in_order`, unless ClickHouse prefers the other for its recent connection errors, as after
/// the server's failure tests): checks of exact answers right after a write wait for this
/// first. Nothing without replication.
pub async fn sync_replicas(cluster: &Cluster, database: &str) {
    if !cluster.replicated {
        return;
    }
    for url in &cluster.urls {
        let tables = sql(
            url,
            &format!("SELECT name FROM system.tables WHERE database = '{database}' AND engine LIKE 'Replicated%'"),
        )
        .await;
        for table in tables.lines().filter(|t| !t.is_empty()) {
            sql(url, &format!("SYSTEM SYNC REPLICA {database}.{table}")).await;
        }
    }
}

pub async fn sql_u64(url: &str, query: &str) -> u64 {
    let text = sql(url, query).await;
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{query}: {text:?}: {e}"))
}

fn t(s: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(s, 0).unwrap()
}

async fn passes_the_conformance_suite(cluster: Cluster, prefix: &'static str) {
    let cluster = Arc::new(cluster);
    conformance::run_suite(|case| {
        let cluster = cluster.clone();
        async move {
            Arc::new(fresh_store(&cluster, &format!("{prefix}_{case}")).await) as SharedStore
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_passes_the_conformance_suite() {
    let Some(cluster) = two_shard_cluster("cluster_store_passes_the_conformance_suite") else {
        return;
    };
    passes_the_conformance_suite(cluster, "conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_store_passes_the_conformance_suite() {
    let Some(cluster) = replicated_cluster("replicated_store_passes_the_conformance_suite") else {
        return;
    };
    passes_the_conformance_suite(cluster, "rconf").await;
}

/// The recorded GH Archive hour, inserted as the backfill does (large batches), gives the
/// metrics an independent count of the parsed events gives, with the events spread over both
/// shards and each repository on one shard only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gh_archive_hour_spreads_over_both_shards_with_exact_metrics() {
    let name = "gh_archive_hour";
    let Some(cluster) = two_shard_cluster(name) else {
        return;
    };
    a_gh_archive_hour_through(&cluster, name).await;
}

/// The same through the replicated cluster: each shard's replicas hold the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gh_archive_hour_through_the_replicated_cluster_has_exact_metrics() {
    let name = "gh_archive_hour_replicated";
    let Some(cluster) = replicated_cluster(name) else {
        return;
    };
    a_gh_archive_hour_through(&cluster, name).await;
}

async fn a_gh_archive_hour_through(cluster: &Cluster, name: &str) {
    let store = fresh_store(cluster, name).await;
    let mut stats = ParseStats::default();
    let mut events = Vec::new();
    parse_json_lines(
        &conformance::fixtures::read("gharchive/2015-01-01-12.json.gz"),
        &mut stats,
        &mut events,
    );
    assert!(events.len() > 1000, "{} events parsed", events.len());

    // The independent count: distinct ids, per type, per repository, PR openings.
    let mut by_id: HashMap<u64, &Event> = HashMap::new();
    for e in &events {
        by_id.entry(e.id).or_insert(e);
    }
    let distinct: Vec<&Event> = by_id.values().copied().collect();
    let mut per_type = [0u64; 3];
    let mut per_repo: HashMap<&str, [u64; 3]> = HashMap::new();
    let mut opened: HashMap<&str, (u64, i64, i64)> = HashMap::new();
    for e in &distinct {
        per_type[e.event_type.index()] += 1;
        per_repo.entry(&e.repo_name).or_default()[e.event_type.index()] += 1;
        if e.is_pull_request_opened() {
            let o = opened
                .entry(&e.repo_name)
                .or_insert((0, i64::MAX, i64::MIN));
            o.0 += 1;
            o.1 = o.1.min(e.timestamp());
            o.2 = o.2.max(e.timestamp());
        }
    }

    // Backfill-style: big batches, then the whole hour again (all duplicates).
    let mut inserted = 0;
    for chunk in events.chunks(20_000) {
        inserted += store.insert_events(chunk).await.unwrap().inserted;
    }
    assert_eq!(inserted, distinct.len() as u64);
    assert_eq!(store.insert_events(&events).await.unwrap().inserted, 0);
    let db = store.database().to_owned();
    sync_replicas(cluster, &db).await;

    // Spread: both shards hold events, together all of them, each repository on one.
    let db = store.database().to_owned();
    let mut on_shard = Vec::new();
    let mut repos_on_shard = Vec::new();
    for url in cluster.shard_nodes() {
        on_shard.push(sql_u64(url, &format!("SELECT count() FROM {db}.events_local")).await);
        repos_on_shard.push(
            sql_u64(
                url,
                &format!("SELECT uniqExact(repo_name) FROM {db}.events_local"),
            )
            .await,
        );
    }
    let total = distinct.len() as u64;
    assert_eq!(
        on_shard.iter().sum::<u64>(),
        total,
        "rows per shard {on_shard:?}"
    );
    for (i, n) in on_shard.iter().enumerate() {
        assert!(
            *n > total / 5,
            "shard {} holds {n} of {total} events: not spread",
            i + 1
        );
    }
    assert_eq!(
        repos_on_shard.iter().sum::<u64>(),
        per_repo.len() as u64,
        "a repository is on one shard only ({repos_on_shard:?})"
    );

    // Metrics through the Distributed tables against the independent count.
    assert_eq!(store.total_events().await.unwrap(), total);
    let min = distinct.iter().map(|e| e.timestamp()).min().unwrap();
    let max = distinct.iter().map(|e| e.timestamp()).max().unwrap();
    let window = TimeWindow::new(t(min), t(max + 1)).unwrap();
    let counts = store.event_counts(window).await.unwrap().counts;
    for ty in EventType::ALL {
        assert_eq!(counts[ty], per_type[ty.index()], "{ty:?}");
    }
    let timeline = store.timeline(window, 600).await.unwrap();
    for ty in EventType::ALL {
        assert_eq!(
            timeline.counts[ty.index()].iter().sum::<u64>(),
            per_type[ty.index()],
            "timeline {ty:?}"
        );
    }
    let top = store.top_repositories(10).await.unwrap();
    let mut expected_top: Vec<(&str, u64)> = per_repo
        .iter()
        .map(|(r, c)| (*r, c.iter().sum::<u64>()))
        .collect();
    expected_top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let got_top: Vec<(&str, u64)> = top
        .iter()
        .map(|r| (r.repository.as_str(), r.event_count))
        .collect();
    assert_eq!(got_top, expected_top[..10]);
    let mut checked = 0;
    let mut repos: Vec<&&str> = opened.keys().collect();
    repos.sort();
    for repo in repos.into_iter().take(40) {
        let Ok(name) = repo.parse::<RepoName>() else {
            continue;
        };
        let (n, first, last) = opened[*repo];
        let avg = store.pr_average(&name).await.unwrap();
        assert_eq!(avg.opened_count, n, "{repo}");
        assert_eq!(avg.first_opened_at, Some(t(first)), "{repo}");
        assert_eq!(avg.last_opened_at, Some(t(last)), "{repo}");
        let counts = store.repo_event_counts(&name).await.unwrap().counts;
        for ty in EventType::ALL {
            assert_eq!(counts[ty], per_repo[*repo][ty.index()], "{repo} {ty:?}");
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} repositories with opened PRs");

    // Merges on every node change nothing, and neither does a recount of every node.
    let before = (
        store.event_counts(window).await.unwrap().counts,
        store.top_repositories(10).await.unwrap(),
    );
    store.optimize_final().await.unwrap();
    sync_replicas(cluster, &db).await;
    assert_eq!(store.total_events().await.unwrap(), total);
    assert_eq!(
        (
            store.event_counts(window).await.unwrap().counts,
            store.top_repositories(10).await.unwrap(),
        ),
        before
    );
    store.recount().await.unwrap();
    sync_replicas(cluster, &db).await;
    assert_eq!(store.total_events().await.unwrap(), total);
    assert_eq!(
        (
            store.event_counts(window).await.unwrap().counts,
            store.top_repositories(10).await.unwrap(),
        ),
        before,
        "after a recount"
    );

    // Two writers racing on every event, on every shard: the counts see the copies until a
    // recount (one per shard) corrects them.
    for url in cluster.shard_nodes() {
        // A replicated table would drop the copy as a repeated block: the store's inserts
        // never repeat one, this simulation does.
        crate::clickhouse_process::sql(
            &format!("{url}/?insert_deduplicate=0"),
            &format!("INSERT INTO {db}.events_local SELECT * FROM {db}.events_local"),
        )
        .await;
    }
    sync_replicas(cluster, &db).await;
    assert_eq!(store.total_events().await.unwrap(), 2 * total);
    store.recount().await.unwrap();
    sync_replicas(cluster, &db).await;
    assert_eq!(
        store.total_events().await.unwrap(),
        total,
        "after a recount"
    );
    // Whole hours come from the corrected counts; partial hours read `events`, where the
    // copies stay until parts merge.
    let hours = TimeWindow::new(t(min / 3600 * 3600), t(max / 3600 * 3600 + 3600)).unwrap();
    assert_eq!(
        (
            store.event_counts(hours).await.unwrap().counts,
            store.top_repositories(10).await.unwrap(),
        ),
        before,
        "every count after a recount"
    );

    let health = store.health().await;
    assert!(health.connected);
    assert_eq!(health.total_events, total);
    assert!(!health.degraded);
    assert_eq!(health.details["nodes_up"], cluster.urls.len());
    assert_eq!(health.details["cluster"], cluster.name.as_str());

    if cluster.replicated {
        // Every replica holds its shard's rows, derived tables included.
        for (i, url) in cluster.urls.iter().enumerate() {
            for table in [
                "events_local",
                "hourly_type_counts_local",
                "repo_type_counts_local",
            ] {
                sql(url, &format!("SYSTEM SYNC REPLICA {db}.{table}")).await;
            }
            let first = cluster.urls[i / 2 * 2].as_str();
            for query in [
                format!("SELECT count() FROM {db}.events_local FINAL"),
                format!("SELECT toUInt64(sum(n)) FROM {db}.hourly_type_counts_local"),
                format!("SELECT toUInt64(sum(n)) FROM {db}.repo_type_counts_local"),
            ] {
                assert_eq!(
                    sql_u64(url, &query).await,
                    sql_u64(first, &query).await,
                    "{query} on replica {url} and on {first}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_cluster_is_a_config_error() {
    let name = "misconfigured";
    let Some(cluster) = two_shard_cluster(name) else {
        return;
    };
    let timeout = Duration::from_secs(30);
    let database = format!("gs_cl_{name}");
    let other = |name: &str| Cluster {
        name: name.to_owned(),
        urls: cluster.urls.clone(),
        replicated: false,
    };
    match ClickHouseStore::connect(config(&other("no_such_cluster"), &database, timeout)).await {
        Err(StoreError::Config(message)) => {
            assert!(message.contains("no_such_cluster"), "{message}");
            assert!(message.contains("remote_servers"), "{message}");
        }
        other => panic!("unknown cluster: {:?}", other.map(|_| ())),
    }
    let one_url = Cluster {
        name: cluster.name.clone(),
        urls: cluster.urls[..1].to_vec(),
        replicated: false,
    };
    match ClickHouseStore::connect(config(&one_url, &database, timeout)).await {
        Err(StoreError::Config(message)) => {
            assert!(message.contains("CLICKHOUSE_CLUSTER_NODES"), "{message}");
        }
        other => panic!("one URL for two nodes: {:?}", other.map(|_| ())),
    }
    let err = ClickHouseStore::connect(config(&other("bad-name"), &database, timeout))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err}");
}

/// One shard stopped: health says which node is down and that the store is degraded; queries
/// and inserts that need the shard fail with `Unavailable` within the timeout, not a hang;
/// when it is back, the same store works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_down_gives_degraded_health_and_unavailable_then_recovers() {
    let name = "shard_down";
    if two_shard_cluster(name).is_none() {
        return;
    }
    let mut shards = [
        ClickHouseProcess::with_own_config(),
        ClickHouseProcess::with_own_config(),
    ];
    let tcp: Vec<u16> = shards.iter().map(|s| s.tcp).collect();
    for shard in &mut shards {
        shard.declare_cluster("own_pair", &tcp);
        shard.spawn();
    }
    for shard in &shards {
        shard.wait_ready().await;
    }
    let urls: Vec<String> = shards.iter().map(ClickHouseProcess::url).collect();
    let timeout = Duration::from_secs(10);
    let pair = Cluster {
        name: "own_pair".to_owned(),
        urls: urls.clone(),
        replicated: false,
    };
    let store = ClickHouseStore::connect(config(&pair, "gs_cl_shard_down", timeout))
        .await
        .unwrap();
    assert_eq!(store.node_urls(), urls);

    let base = 1_700_000_000;
    let batch = |from: u64| -> Vec<Event> {
        (from..from + 40)
            .map(|i| {
                event(
                    i,
                    EventType::PullRequestEvent,
                    &format!("o/r{}", i % 8),
                    base + i as i64,
                    "opened",
                )
            })
            .collect()
    };
    assert_eq!(store.insert_events(&batch(0)).await.unwrap().inserted, 40);
    let on_second = sql_u64(
        &urls[1],
        "SELECT count() FROM gs_cl_shard_down.events_local",
    )
    .await;
    assert!(
        on_second > 0 && on_second < 40,
        "{on_second} of 40 on shard 2"
    );

    // Stop shard 2; the store talks to shard 1.
    shards[1].kill();
    let window = TimeWindow::new(t(base), t(base + 1000)).unwrap();
    let repo: RepoName = "o/r1".parse().unwrap();
    let started = Instant::now();
    let err = store.event_counts(window).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "event_counts: {err}"
    );
    // The error says which shard, by the native address of its one replica.
    assert!(
        err.to_string().contains(&format!(
            "shard 2 (127.0.0.1:{}) has no replica answering",
            shards[1].tcp
        )),
        "{err}"
    );
    let err = store.pr_average(&repo).await.unwrap_err();
    assert!(err.is_unavailable(), "pr_average: {err}");
    let err = store.total_events().await.unwrap_err();
    assert!(err.is_unavailable(), "total_events: {err}");
    let err = store.insert_events(&batch(100)).await.unwrap_err();
    assert!(err.is_unavailable(), "insert: {err}");
    assert!(
        started.elapsed() < 4 * timeout,
        "four failures took {:?}",
        started.elapsed()
    );

    let health = store.health().await;
    assert!(health.connected, "shard 1 answers: {:?}", health.details);
    assert!(health.degraded);
    assert_eq!(health.details["nodes_up"], 1);
    assert_eq!(health.details["nodes_total"], 2);
    let nodes = health.details["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["up"], true);
    assert_eq!(nodes[0]["shard"], 1);
    assert_eq!(nodes[1]["up"], false);
    assert_eq!(nodes[1]["shard"], 2);
    assert_eq!(nodes[1]["url"], urls[1].as_str());
    assert!(nodes[1]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(health.error.as_deref().is_some_and(|e| !e.is_empty()));

    // Back: the same store instance, no reconnect by hand.
    shards[1].spawn();
    shards[1].wait_ready().await;
    let mut retried = None;
    for _ in 0..50 {
        match store.insert_events(&batch(100)).await {
            Ok(outcome) => {
                retried = Some(outcome);
                break;
            }
            Err(e) if e.is_unavailable() => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("insert after recovery: {e}"),
        }
    }
    assert_eq!(retried.expect("shard 2 is used again").inserted, 40);
    assert_eq!(store.total_events().await.unwrap(), 80);
    assert_eq!(
        store.event_counts(window).await.unwrap().counts[EventType::PullRequestEvent],
        80
    );
    let expected: HashSet<u64> = (0..40).chain(100..140).filter(|i| i % 8 == 1).collect();
    assert_eq!(
        store.pr_average(&repo).await.unwrap().opened_count,
        expected.len() as u64
    );
    let health = store.health().await;
    assert!(health.connected);
    assert!(!health.degraded);
    assert_eq!(health.details["nodes_up"], 2);
    assert_eq!(health.total_events, 80);
}
