//! The server on the replicated cluster of `scripts/clickhouse-replicated.sh` (ZooKeeper, two
//! shards of two replicas: `CLICKHOUSE_REPLICATED_CLUSTER_NAME`, `…_URLS`, `…_CTL`), polling a
//! fake Events API that serves a recorded GH Archive hour moved to a recent date, 30 events a
//! page, while part of the cluster fails:
//!
//! - a replica of each shard killed and restarted: no answer is a 503 while every shard has a
//!   replica up, `/health` names the nodes that are down, ingestion goes on, and the restarted
//!   replicas catch up;
//! - ZooKeeper stopped for a while: replicated tables refuse writes, the ingest loop keeps the
//!   events and inserts them once ZooKeeper is back: nothing lost, nothing counted twice;
//! - a whole shard down: metric answers are 503s naming the shard, never a partial count.
//!
//! Every scenario ends with the totals, the counts per type and the ranking equal to an
//! independent count of the events the fake served. The scenarios stop parts of the shared
//! cluster, so they run one at a time and leave every process running.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use github_stats_core::coverage::hour_floor;
use github_stats_core::fake_gharchive::{FakeHour, KeptEvent, RecordedHour};
use github_stats_server::{Application, Config};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use github_stats_core::fake_github::FakeGitHub;

/// One scenario at a time: each stops part of the shared cluster.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Events per page of the fake Events API: about 90 new events a second (three pages a poll,
/// a poll a second), so that ingestion goes on through each failure.
const PER_PAGE: usize = 30;

/// The replicated cluster of the harness.
struct Cluster {
    name: String,
    urls: Vec<String>,
    ctl: PathBuf,
}

fn cluster(test: &str) -> Option<Cluster> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(name), Some(urls), Some(ctl)) = (
        var("CLICKHOUSE_REPLICATED_CLUSTER_NAME"),
        var("CLICKHOUSE_REPLICATED_CLUSTER_URLS"),
        var("CLICKHOUSE_REPLICATED_CTL"),
    ) else {
        eprintln!(
            "CLICKHOUSE_REPLICATED_CLUSTER_NAME/_URLS/_CTL are not set: scripts/test.sh runs \
             {test} against a replicated cluster"
        );
        return None;
    };
    let urls: Vec<String> = urls.split(',').map(str::to_owned).collect();
    assert_eq!(urls.len(), 4, "two shards of two replicas expected");
    Some(Cluster {
        name,
        urls,
        ctl: PathBuf::from(ctl),
    })
}

impl Cluster {
    /// `ctl kill|stop|start NAMES`: the processes are gone, or answer, when it returns.
    async fn ctl(&self, command: &str, names: &[&str]) {
        let ctl = self.ctl.clone();
        let mut args = vec![command.to_owned()];
        args.extend(names.iter().map(|n| (*n).to_owned()));
        let output = tokio::task::spawn_blocking(move || Command::new(&ctl).args(&args).output())
            .await
            .unwrap()
            .expect("the cluster's control script runs");
        assert!(
            output.status.success(),
            "ctl {command} {names:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Starts every process of the cluster again when dropped, so that a failed scenario leaves it
/// whole for the next test.
struct Restart(PathBuf);

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new(&self.0).arg("start").status();
    }
}

async fn sql(url: &str, query: &str) -> String {
    let response = reqwest::Client::new()
        .post(url)
        .body(query.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url} does not answer: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{query}: {status} {text}");
    text
}

async fn sql_u64(url: &str, query: &str) -> u64 {
    sql(url, query).await.trim().parse().unwrap()
}

/// The application over the replicated cluster, polling the fake, and what it was given.
struct Scenario {
    cluster: Cluster,
    database: String,
    base: String,
    fake: FakeGitHub,
    events: Vec<KeptEvent>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), github_stats_server::startup::StartupError>>,
    _state: tempfile::TempDir,
}

impl Scenario {
    async fn start(cluster: Cluster, database: &str) -> Scenario {
        for url in &cluster.urls {
            sql(url, &format!("DROP DATABASE IF EXISTS {database}")).await;
        }
        let hour = hour_floor(Utc::now()) - chrono::Duration::hours(3);
        let events = FakeHour::build(RecordedHour::Noon, hour).kept().to_vec();
        let fake = FakeGitHub::start_replaying(events.clone(), PER_PAGE).await;
        let state = tempfile::tempdir().unwrap();
        let args = vec![
            "github-stats-server".to_owned(),
            "--bind-address=127.0.0.1:0".to_owned(),
            format!("--github-api-url={}", fake.url()),
            format!(
                "--client-state-file={}",
                state.path().join("client.json").display()
            ),
            "--database-backend=clickhouse".to_owned(),
            format!("--clickhouse-url={}", cluster.urls[0]),
            format!("--clickhouse-database={database}"),
            format!("--clickhouse-cluster={}", cluster.name),
            format!("--clickhouse-cluster-nodes={}", cluster.urls.join(",")),
            "--clickhouse-replicated".to_owned(),
        ];
        let app = Application::build(Config::load_from(args).unwrap())
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Scenario {
            cluster,
            database: database.to_owned(),
            base,
            fake,
            events,
            shutdown,
            task,
            _state: state,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn total(&self) -> u64 {
        let (status, body) = self.get("/debug/total-events").await;
        assert_eq!(status, 200, "{body}");
        body["total_events"].as_u64().unwrap()
    }

    fn served(&self) -> HashSet<u64> {
        self.fake.served_ids()
    }

    /// Waits until `check` says yes, or fails after `limit` with `/health`.
    async fn wait(&self, what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check().await {
            if Instant::now() > deadline {
                let health = self.get("/health").await;
                panic!("timed out waiting for {what}; /health: {health:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every event of the hour was served and is stored and each shard's replicas
    /// agree, then checks every count against the served events, counted here.
    async fn settle_and_check(&self) {
        self.wait(
            "every event of the hour served and stored",
            Duration::from_secs(180),
            async || {
                self.served().len() == self.events.len()
                    && self.total().await == self.events.len() as u64
            },
        )
        .await;
        // Every replica holds its shard's events, and the same counts: a replica that was
        // down, or cut off from ZooKeeper, fetches what the other one stored meanwhile. Until
        // it has, a read it serves lacks those rows (replication is asynchronous; see
        // docs/operations.md, "What each failure does"), so the answers are checked after.
        self.replicas_agree().await;
        let db = &self.database;
        // Nothing counted twice: the stored rows, read merged, are the served events.
        let first = &self.cluster.urls[0];
        assert_eq!(
            sql_u64(first, &format!("SELECT uniqExact(id) FROM {db}.events")).await,
            self.events.len() as u64
        );
        // An insert cut off by the failure can have been stored in part: into `events` and
        // some of the tables its views feed but not all (docs/clickhouse.md, "An insert stored
        // in part"). The store finds it on the retry and repairs the derived tables then.
        let mut result = self.counts_agree().await;
        for _ in 0..100 {
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            result = self.counts_agree().await;
        }
        let (_, health) = self.get("/health").await;
        let partly = &health["store"]["partly_stored_events"];
        if partly.as_u64().unwrap_or(0) > 0 {
            eprintln!("{partly} events of failed inserts were stored in part; repaired");
            assert!(
                health["store"]["partly_stored_repairs"]
                    .as_u64()
                    .unwrap_or(0)
                    > 0,
                "stored in part, never repaired: {health}"
            );
        }
        if let Err(why) = result {
            panic!("{why}; /health: {health}");
        }
    }

    /// Each shard's replicas hold the same events and counts.
    async fn replicas_agree(&self) {
        let db = &self.database;
        // After an outage a replica's fetches back off (seconds to minutes): make each replica
        // work through its queue now, bounded, before comparing.
        for url in &self.cluster.urls {
            for table in ["events", "hourly_type_counts", "repo_type_counts"] {
                let query = format!("SYSTEM SYNC REPLICA {db}.{table}_local");
                let _ = tokio::time::timeout(Duration::from_secs(60), sql(url, &query)).await;
            }
        }
        for (i, url) in self.cluster.urls.iter().enumerate() {
            let peer = &self.cluster.urls[i ^ 1];
            for query in [
                format!("SELECT count() FROM {db}.events_local FINAL"),
                format!("SELECT toInt64(sum(n)) FROM {db}.hourly_type_counts_local"),
                format!("SELECT toInt64(sum(n)) FROM {db}.repo_type_counts_local"),
            ] {
                let mut attempts = 0;
                loop {
                    let (mine, theirs) = (sql(url, &query).await, sql(peer, &query).await);
                    if mine == theirs {
                        break;
                    }
                    attempts += 1;
                    assert!(
                        attempts < 300,
                        "{query}: {mine} on {url}, {theirs} on its peer {peer}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Per type over the whole hour (from the hourly counts) and over a window with partial
    /// hours at both ends (from `events`), and the ranking, against the served events.
    async fn counts_agree(&self) -> Result<(), String> {
        let hour = hour_floor(self.events[0].created_at);
        for (since, until) in [
            (hour, hour + chrono::Duration::hours(1)),
            (
                hour + chrono::Duration::minutes(10),
                hour + chrono::Duration::minutes(50),
            ),
        ] {
            let minutes = (until - since).num_minutes();
            let (status, counts) = self
                .get(&format!(
                    "/metrics/events?offset={minutes}&until={}",
                    rfc(until)
                ))
                .await;
            assert_eq!(status, 200, "{counts}");
            let mut by_type: HashMap<&str, u64> = HashMap::new();
            for e in self
                .events
                .iter()
                .filter(|e| since <= e.created_at && e.created_at < until)
            {
                *by_type.entry(e.event_type.as_str()).or_default() += 1;
            }
            for name in ["WatchEvent", "PullRequestEvent", "IssuesEvent"] {
                let want = by_type.get(name).copied().unwrap_or(0);
                if counts["event_counts"][name] != want {
                    return Err(format!(
                        "{name} in [{since}, {until}): {counts}, want {want}"
                    ));
                }
            }
        }
        let mut by_repo: HashMap<&str, u64> = HashMap::new();
        for e in &self.events {
            *by_repo.entry(e.repo_name.as_str()).or_default() += 1;
        }
        let (status, top) = self.get("/debug/repos-by-event-count?limit=5").await;
        assert_eq!(status, 200, "{top}");
        let top = top.as_array().unwrap();
        assert_eq!(top.len(), 5);
        for entry in top {
            let repo = entry["repository"].as_str().unwrap();
            if entry["event_count"] != by_repo[repo] {
                return Err(format!("{repo}: {entry}, want {}", by_repo[repo]));
            }
        }
        Ok(())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        for url in &self.cluster.urls {
            sql(url, &format!("DROP DATABASE IF EXISTS {}", self.database)).await;
        }
    }
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The metric answers a dashboard asks for, each with its status.
async fn answers(scenario: &Scenario) -> Vec<(String, u16, Value)> {
    let repo = &scenario.events[0].repo_name;
    let mut out = Vec::new();
    for path in [
        "/metrics/events?offset=600".to_owned(),
        "/debug/total-events".to_owned(),
        format!("/metrics/pr-average/{repo}"),
        format!("/debug/repo-events/{repo}"),
        "/debug/repos-by-event-count?limit=5".to_owned(),
    ] {
        let (status, body) = scenario.get(&path).await;
        out.push((path, status, body));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_each_shard_killed_while_ingesting_gives_no_503_and_catches_up() {
    let Some(cluster) = cluster("a_replica_of_each_shard_killed") else {
        return;
    };
    let _one_at_a_time = CLUSTER.lock().await;
    let _restart = Restart(cluster.ctl.clone());
    let scenario = Scenario::start(cluster, "gs_server_replica_killed").await;
    scenario
        .wait("the first events", Duration::from_secs(60), async || {
            scenario.total().await > 100
        })
        .await;

    // The second replica of shard 1 and the first of shard 2 (the API talks to s1r1).
    scenario.cluster.ctl("kill", &["s1r2", "s2r1"]).await;
    let killed_at = scenario.total().await;
    let outage = Instant::now();
    let mut degraded = false;
    while outage.elapsed() < Duration::from_secs(8) {
        for (path, status, body) in answers(&scenario).await {
            assert_eq!(
                status, 200,
                "{path} with a replica of each shard down: {body}"
            );
        }
        let (status, health) = scenario.get("/health").await;
        assert_eq!(status, 200, "{health}");
        if health["status"] == "degraded" {
            degraded = true;
            let error = health["error"].as_str().unwrap();
            assert!(error.contains("shard 1 replica 2"), "{error}");
            assert!(error.contains("shard 2 replica 1"), "{error}");
            let down: Vec<&Value> = health["store"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["up"] == false)
                .collect();
            assert_eq!(down.len(), 2, "{health}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(degraded, "/health never said the replicas were down");
    let during = scenario.total().await;
    assert!(
        during > killed_at,
        "no event stored while the replicas were down ({killed_at} before, {during} after)"
    );

    scenario.cluster.ctl("start", &["s1r2", "s2r1"]).await;
    scenario.settle_and_check().await;
    let (_, health) = scenario.get("/health").await;
    assert_eq!(health["store"]["nodes_up"], 4, "{health}");
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_stopped_while_ingesting_loses_and_doubles_nothing() {
    let Some(cluster) = cluster("zookeeper_stopped_while_ingesting") else {
        return;
    };
    let _one_at_a_time = CLUSTER.lock().await;
    let _restart = Restart(cluster.ctl.clone());
    let scenario = Scenario::start(cluster, "gs_server_zookeeper_stopped").await;
    scenario
        .wait("the first events", Duration::from_secs(60), async || {
            scenario.total().await > 100
        })
        .await;

    scenario.cluster.ctl("stop", &["zookeeper"]).await;
    let outage = Instant::now();
    let mut refused = false;
    while outage.elapsed() < Duration::from_secs(15) {
        // Reads need no ZooKeeper.
        for (path, status, body) in answers(&scenario).await {
            assert_eq!(status, 200, "{path} without ZooKeeper: {body}");
        }
        let (_, health) = scenario.get("/health").await;
        let error = health["ingest"]["last_store_error"]
            .as_str()
            .unwrap_or_default();
        if health["ingest"]["buffered"].as_u64().unwrap_or(0) > 0 && error.contains("ZooKeeper") {
            refused = true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        refused,
        "no insert was refused and buffered while ZooKeeper was away"
    );

    scenario.cluster.ctl("start", &["zookeeper"]).await;
    scenario.settle_and_check().await;
    scenario.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_shard_down_answers_503_naming_it_never_a_partial_count() {
    let Some(cluster) = cluster("a_whole_shard_down") else {
        return;
    };
    let _one_at_a_time = CLUSTER.lock().await;
    let _restart = Restart(cluster.ctl.clone());
    let scenario = Scenario::start(cluster, "gs_server_shard_down").await;
    scenario
        .wait("the first events", Duration::from_secs(60), async || {
            scenario.total().await > 100
        })
        .await;

    scenario.cluster.ctl("kill", &["s2r1", "s2r2"]).await;
    for _ in 0..5 {
        for (path, status, body) in answers(&scenario).await {
            assert_eq!(status, 503, "{path} with shard 2 down: {body}");
            let error = body["error"].as_str().unwrap();
            assert!(error.contains("shard 2"), "{path}: {error}");
        }
        let (status, health) = scenario.get("/health").await;
        assert_eq!(status, 200, "the node the API talks to answers: {health}");
        assert_eq!(health["status"], "degraded", "{health}");
        let error = health["error"].as_str().unwrap();
        assert!(
            error.contains("shard 2 replica 1") && error.contains("shard 2 replica 2"),
            "{error}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    scenario.cluster.ctl("start", &["s2r1", "s2r2"]).await;
    scenario.settle_and_check().await;
    scenario.stop().await;
}
