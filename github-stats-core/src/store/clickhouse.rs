//! The ClickHouse store: the production backend, over ClickHouse's HTTP
//! interface with the official `clickhouse` crate (one pooled client, RowBinary inserts,
//! client-side bound parameters).
//!
//! The schema and every SQL statement are in `schema.rs`. At [`ClickHouseStore::connect`] the
//! database is created when missing and the versioned migrations not yet recorded in
//! `schema_migrations` are run; each statement is idempotent (`IF NOT EXISTS`), so two
//! processes starting at once both succeed.
//!
//! # Deduplication
//!
//! [`EventStore::insert_events`] keeps an event id once, at two levels:
//!
//! 1. within the batch (the first copy wins);
//! 2. against what is stored: ids in a bounded cache of recently stored ids (this process's
//!    inserts and ids it found stored) are skipped without asking the server; for the others,
//!    one query fetches the ids stored in the batch's `created_at` range (reading only those
//!    partitions and primary-key ranges), or, when that range holds more than 500,000 events,
//!    one query per 10,000 ids asks which of them exist.
//!
//! Inserts of one store instance are serialised, so within a process the [`InsertOutcome`]
//! is exact.
//!
//! # Two writers racing
//!
//! Two processes (or two store instances) inserting the same new event at the same moment may
//! both find it absent and both insert it: `events` then holds two copies until
//! `ReplacingMergeTree` merges them (same sorting key, same partition; `OPTIMIZE … FINAL`
//! forces it), and each writer reports it as inserted. Then:
//!
//! - `repo_opened_prs` keeps `uniqExactState(id)`, a set of ids, which absorbs the second copy, and
//!   `min`/`max` of the opening times are unaffected by a repeated value: the PR average stays
//!   exact;
//! - every count (windows, timelines, totals, per-repository counts, the ranking) counts rows:
//!   the copy is counted. In `events` it goes when parts merge, but the count tables
//!   (`hourly_type_counts`, `repo_type_counts`) received it through their views and keep it
//!   until [`ClickHouseStore::recount`] corrects them to the counts of `events` read with
//!   `FINAL`. The partial hours at a window's ends read `events` itself: exact once its parts
//!   merged.
//!
//! Exact counts even then would need distinct counts of ids at query time, about 0.2 s per
//! million rows on 18.16 (a year-long window over 10M events took 1.7 s, and a year of GitHub
//! is a billion kept events), or id sets per repository, which grow with the busiest one. The
//! issue asked for exactness under races "where cheap"; for counts it is not: they trade it for
//! answers within 20 ms at 10M events (`benches/README.md`).
//!
//! With one writer (a server, or a backfill while no server writes) every metric is exact.
//!
//! # Cluster mode
//!
//! With [`ClickHouseConfig::cluster`] set, the store reads the cluster's nodes from
//! `system.clusters` at connect, creates the local tables and the `Distributed` tables over
//! them on every node (`docs/clickhouse.md`), and sends everything through the node at `url`:
//! inserts into the `Distributed` `events` table (synchronous where the server has
//! `insert_distributed_sync`), queries on the `Distributed` tables. A shard that does not
//! answer makes the queries that need it fail with [`StoreError::Unavailable`] within the
//! request timeout; [`EventStore::health`] lists every node and whether it answers, and says
//! `degraded` when one does not. Deduplication reads every shard, so it is as exact as on one
//! server.

pub(crate) mod schema;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use clickhouse::Client;
use serde::{Deserialize, Serialize};

use crate::coverage::{ArchiveHour, ArchiveStatus, CompleteRun};
use crate::event::{Event, RepoName, utc_from_timestamp};
use crate::id_set::{IdSet, RecentIds};
use crate::metrics::{
    EventCounts, InsertOutcome, PrAverage, RepoEventCount, RepoEventCounts, StoreHealth,
    TimeWindow, Timeline, TypeCounts, timeline_buckets,
};
use crate::store::{EventStore, MetricsQuery, StoreError};

use schema::{Schema, type_code, type_from_code};

/// Default HTTP interface address.
pub const DEFAULT_URL: &str = "http://localhost:8123";
/// Default database.
pub const DEFAULT_DATABASE: &str = "github_stats";

/// Limit on each statement of a migration: version 2 fills its tables from `events` (a few
/// seconds per 10 million events), far longer than an ordinary request.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Ids per existence query: keeps the query text under 18.16's `max_query_size` (256 KiB)
/// even with 20-digit ids.
const IDS_PER_LOOKUP: usize = 10_000;

/// How to reach ClickHouse. The password is redacted in `Debug` and never logged.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://localhost:8123` (not the native protocol's port 9000).
    pub url: String,
    /// Database, created when missing; a plain identifier.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password; may be empty.
    pub password: String,
    /// Limit on every request to the server; past it the store reports itself unavailable.
    pub request_timeout: Duration,
    /// Cluster mode (`CLICKHOUSE_CLUSTER`): the name of a cluster in the servers'
    /// `remote_servers`. `url` is then the node the store sends queries and inserts to; the
    /// schema is created on every node of the cluster (`docs/clickhouse.md`).
    pub cluster: Option<String>,
    /// Cluster mode: make the local tables `Replicated…MergeTree` (`CLICKHOUSE_REPLICATED`);
    /// needs ZooKeeper or ClickHouse Keeper and the `{shard}`/`{replica}` macros on each node.
    pub replicated: bool,
    /// Cluster mode: the HTTP URLs of the cluster's nodes (`CLICKHOUSE_CLUSTER_NODES`), in the
    /// order of `system.clusters` (by shard, then replica). Empty: `http://HOST:8123` for each
    /// host of `system.clusters`, which lists the native protocol's ports only.
    pub cluster_nodes: Vec<String>,
    /// How many recently stored ids are remembered to skip the existence query.
    pub recent_ids_capacity: usize,
    /// Most rows sent in one `INSERT`.
    pub max_rows_per_insert: usize,
    /// Most ids the existence check fetches by time range before it asks by id instead.
    pub range_scan_limit: usize,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: DEFAULT_URL.to_owned(),
            database: DEFAULT_DATABASE.to_owned(),
            user: "default".to_owned(),
            password: String::new(),
            request_timeout: Duration::from_secs(30),
            cluster: None,
            replicated: false,
            cluster_nodes: Vec::new(),
            recent_ids_capacity: 500_000,
            max_rows_per_insert: 100_000,
            range_scan_limit: 500_000,
        }
    }
}

impl ClickHouseConfig {
    /// The defaults with another URL.
    pub fn new(url: impl Into<String>) -> ClickHouseConfig {
        ClickHouseConfig {
            url: url.into(),
            ..ClickHouseConfig::default()
        }
    }

    /// The defaults with `http://host:port` (`CLICKHOUSE_HOST` + `CLICKHOUSE_PORT`).
    pub fn from_host_port(host: &str, port: u16) -> ClickHouseConfig {
        ClickHouseConfig::new(format!("http://{host}:{port}"))
    }

    /// The same configuration with another database.
    pub fn with_database(mut self, database: impl Into<String>) -> ClickHouseConfig {
        self.database = database.into();
        self
    }

    /// The same configuration with credentials.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> ClickHouseConfig {
        self.user = user.into();
        self.password = password.into();
        self
    }

    /// The same configuration in cluster mode on the cluster `name` (see
    /// [`ClickHouseConfig::cluster`]), with the nodes' HTTP URLs (empty: derived from
    /// `system.clusters`).
    pub fn with_cluster(
        mut self,
        name: impl Into<String>,
        nodes: impl IntoIterator<Item = impl Into<String>>,
    ) -> ClickHouseConfig {
        self.cluster = Some(name.into());
        self.cluster_nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// The same configuration with replicated local tables or not (cluster mode).
    pub fn with_replication(mut self, replicated: bool) -> ClickHouseConfig {
        self.replicated = replicated;
        self
    }

    /// The same configuration with another request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> ClickHouseConfig {
        self.request_timeout = timeout;
        self
    }
}

impl fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &redacted_origin(&self.url))
            .field("database", &self.database)
            .field("user", &self.user)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("request_timeout", &self.request_timeout)
            .field("cluster", &self.cluster)
            .field("replicated", &self.replicated)
            .field(
                "cluster_nodes",
                &self
                    .cluster_nodes
                    .iter()
                    .map(|u| redacted_origin(u))
                    .collect::<Vec<_>>(),
            )
            .field("recent_ids_capacity", &self.recent_ids_capacity)
            .field("max_rows_per_insert", &self.max_rows_per_insert)
            .field("range_scan_limit", &self.range_scan_limit)
            .finish()
    }
}

/// `scheme://host:port` of a URL, without credentials, path or query: what may be logged.
fn redacted_origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "<invalid url>".to_owned(),
    }
}

/// One row of `events`, as sent in RowBinary (`DateTime` is seconds as `u32`, `Enum8` an `i8`).
#[derive(clickhouse::Row, Serialize)]
struct EventRow<'a> {
    id: u64,
    event_type: i8,
    repo_id: u64,
    repo_name: &'a str,
    created_at: u32,
    action: &'a str,
}

#[derive(clickhouse::Row, Deserialize)]
struct CodeCount {
    code: i8,
    n: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct BucketCount {
    code: i8,
    bucket: u64,
    n: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct PrRow {
    opened: u64,
    first: u32,
    last: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct ArchiveHourRow {
    hour: u32,
    status: u8,
    archive_events: u64,
    polled_before_archive: u64,
    recorded_at: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct TotalsRow {
    n: u64,
    last_hour: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct RepoCountRow {
    repo_name: String,
    n: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct ClusterRow {
    shard: u32,
    replica: u32,
    host: String,
    port: u16,
}

/// One node of the cluster (cluster mode).
struct Node {
    shard: u32,
    replica: u32,
    /// Host and native port, as in `system.clusters`.
    host: String,
    port: u16,
    /// Its HTTP interface, without credentials.
    origin: String,
    client: Client,
}

/// The ClickHouse store; see the [module documentation](self).
pub struct ClickHouseStore {
    client: Client,
    schema: Schema,
    /// Cluster mode: every node of the cluster, in `system.clusters` order; empty otherwise.
    nodes: Vec<Node>,
    origin: String,
    native_port_hint: bool,
    timeout: Duration,
    max_rows_per_insert: usize,
    range_scan_limit: usize,
    /// Serialises inserts and holds the recent-ids cache.
    writer: tokio::sync::Mutex<RecentIds>,
    /// The version of the last archive-hour record written: milliseconds since the epoch, made
    /// strictly increasing so two records of one hour in the same millisecond keep their order.
    archive_version: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("origin", &self.origin)
            .field("database", &self.schema.database())
            .finish_non_exhaustive()
    }
}

impl ClickHouseStore {
    /// Connects, creates the database when missing and applies pending migrations.
    ///
    /// Fails with [`StoreError::Config`] for a bad URL or database name, and with
    /// [`StoreError::Unavailable`] when the server does not answer (the message says so when
    /// the URL points at the native protocol's port 9000 instead of the HTTP one, 8123).
    pub async fn connect(config: ClickHouseConfig) -> Result<ClickHouseStore, StoreError> {
        let schema = Schema::new(
            &config.database,
            config.cluster.as_deref(),
            config.replicated,
        )?;
        let url = reqwest::Url::parse(&config.url).map_err(|e| {
            StoreError::Config(format!(
                "CLICKHOUSE_URL {:?} is not a URL: {e}",
                redacted_origin(&config.url)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(StoreError::Config(format!(
                "CLICKHOUSE_URL must be an http:// or https:// address of ClickHouse's HTTP \
                 interface (usually port 8123), not {}://",
                url.scheme()
            )));
        }
        let native_port_hint = matches!(url.port(), Some(9000 | 9440));
        let client = Client::default()
            .with_url(config.url.as_str())
            .with_user(config.user.as_str())
            .with_password(config.password.as_str())
            .with_validation(false);
        let mut store = ClickHouseStore {
            client,
            schema,
            nodes: Vec::new(),
            origin: url.origin().ascii_serialization(),
            native_port_hint,
            timeout: config.request_timeout,
            max_rows_per_insert: config.max_rows_per_insert.max(1),
            range_scan_limit: config.range_scan_limit,
            writer: tokio::sync::Mutex::new(RecentIds::new(config.recent_ids_capacity)),
            archive_version: std::sync::atomic::AtomicU64::new(0),
        };
        let version = match store.server_version().await {
            Ok(version) => version,
            Err(StoreError::Unavailable(message)) => {
                if let Some(answer) = probe_native_port(&url).await {
                    return Err(native_port_error(&store.origin, &answer));
                }
                return Err(StoreError::Unavailable(message));
            }
            Err(other) => return Err(other),
        };
        tracing::info!(
            origin = %store.origin,
            database = store.schema.database(),
            server_version = %version,
            "connected to clickhouse"
        );
        if let Some(cluster) = store.schema.cluster().map(str::to_owned) {
            store.join_cluster(&cluster, &config).await?;
            for node in &store.nodes {
                store.migrate(&node.client, &node.origin).await?;
            }
        } else {
            store.migrate(&store.client, &store.origin).await?;
        }
        Ok(store)
    }

    /// Cluster mode: reads the cluster's nodes from `system.clusters`, pairs them with their
    /// HTTP URLs, and sets the query settings that bound a shard's failure (and make inserts
    /// through `Distributed` synchronous where the server supports it).
    async fn join_cluster(
        &mut self,
        cluster: &str,
        config: &ClickHouseConfig,
    ) -> Result<(), StoreError> {
        let rows = self
            .run(
                self.schema
                    .q_cluster_nodes(&self.client, cluster)
                    .fetch_all::<ClusterRow>(),
            )
            .await?;
        if rows.is_empty() {
            return Err(StoreError::Config(format!(
                "CLICKHOUSE_CLUSTER {cluster:?} is not a cluster of {}: declare it in the \
                 servers' remote_servers configuration (see system.clusters)",
                self.origin
            )));
        }
        let urls: Vec<String> = if config.cluster_nodes.is_empty() {
            let scheme = reqwest::Url::parse(&config.url)
                .map(|u| u.scheme().to_owned())
                .unwrap_or_else(|_| "http".to_owned());
            rows.iter()
                .map(|r| {
                    if r.host.contains(':') {
                        format!("{scheme}://[{}]:8123", r.host)
                    } else {
                        format!("{scheme}://{}:8123", r.host)
                    }
                })
                .collect()
        } else if config.cluster_nodes.len() == rows.len() {
            config.cluster_nodes.clone()
        } else {
            return Err(StoreError::Config(format!(
                "CLICKHOUSE_CLUSTER_NODES lists {} URLs but cluster {cluster:?} has {} nodes \
                 in system.clusters: give one HTTP URL per node, by shard then replica",
                config.cluster_nodes.len(),
                rows.len()
            )));
        };
        // Bounded failures: a shard that does not answer fails a query within about the
        // request timeout instead of the default five minutes. Both settings exist in 18.16
        // and current releases.
        let seconds = self.timeout.as_secs().max(1).to_string();
        let mut options = vec![
            ("receive_timeout", seconds.clone()),
            ("send_timeout", seconds),
        ];
        // Inserts through `Distributed` are queued and sent in the background by default:
        // make them synchronous so that an insert that succeeds is stored on its shard (and a
        // shard that is down fails the insert instead of piling up a queue).
        let sync = self
            .run(
                self.schema
                    .q_setting_exists(&self.client, "insert_distributed_sync")
                    .fetch_one::<u64>(),
            )
            .await?
            > 0;
        if sync {
            options.push(("insert_distributed_sync", "1".to_owned()));
        } else {
            tracing::warn!(
                origin = %self.origin,
                "clickhouse lacks insert_distributed_sync: inserts reach the shards asynchronously"
            );
        }
        for (name, value) in &options {
            self.client = self.client.clone().with_setting(*name, value.as_str());
        }
        for (row, url) in rows.into_iter().zip(urls) {
            let parsed = reqwest::Url::parse(&url).map_err(|e| {
                StoreError::Config(format!(
                    "CLICKHOUSE_CLUSTER_NODES entry {:?} is not a URL: {e}",
                    redacted_origin(&url)
                ))
            })?;
            // A copy of the main client (credentials, settings) for this node.
            let client = self.client.clone().with_url(url.as_str());
            self.nodes.push(Node {
                shard: row.shard,
                replica: row.replica,
                host: row.host,
                port: row.port,
                origin: parsed.origin().ascii_serialization(),
                client,
            });
        }
        tracing::info!(
            cluster,
            nodes = self.nodes.len(),
            insert_distributed_sync = sync,
            replicated = self.schema.is_replicated(),
            "clickhouse cluster mode"
        );
        Ok(())
    }

    /// Clients of every node holding tables: the cluster's nodes, or the one server.
    fn table_holders(&self) -> Vec<(&Client, &str)> {
        if self.nodes.is_empty() {
            vec![(&self.client, self.origin.as_str())]
        } else {
            self.nodes
                .iter()
                .map(|n| (&n.client, n.origin.as_str()))
                .collect()
        }
    }

    /// The database the store's tables are in.
    pub fn database(&self) -> &str {
        self.schema.database()
    }

    /// The server's version string (`SELECT version()`).
    pub async fn server_version(&self) -> Result<String, StoreError> {
        self.run(
            self.schema
                .q_server_version(&self.client)
                .fetch_one::<String>(),
        )
        .await
    }

    /// Runs `OPTIMIZE TABLE … FINAL` on every table: merges everything now. Metrics do not
    /// depend on it (tests check that); it only reclaims space.
    pub async fn optimize_final(&self) -> Result<(), StoreError> {
        for (client, origin) in self.table_holders() {
            for sql in self.schema.optimize_final() {
                self.execute_on(client, origin, &sql).await?;
            }
        }
        Ok(())
    }

    /// Corrects the count tables (`hourly_type_counts`, `repo_type_counts`) to the counts of
    /// `events` read with `FINAL`: after two writers raced on the same events, these tables
    /// count the copies (see the [module documentation](self)); a recount makes every count
    /// exact again. It inserts the differences (nothing when there are none), on the one server
    /// or on the first replica of each shard; queries and inserts go on meanwhile, but an event
    /// inserted while it runs may be counted twice: run it while nothing writes.
    pub async fn recount(&self) -> Result<(), StoreError> {
        let statements = self.schema.recount();
        for (client, origin) in self.shard_leaders() {
            for sql in &statements {
                self.run_within(
                    origin,
                    self.timeout.max(MIGRATION_TIMEOUT),
                    client.query(sql).execute(),
                )
                .await?;
            }
            tracing::info!(
                origin,
                database = self.schema.database(),
                "recounted events"
            );
        }
        Ok(())
    }

    /// One node per shard (its first replica, whose inserts replicate to the others), or the
    /// one server.
    fn shard_leaders(&self) -> Vec<(&Client, &str)> {
        if self.nodes.is_empty() {
            return vec![(&self.client, self.origin.as_str())];
        }
        let mut seen = HashSet::new();
        self.nodes
            .iter()
            .filter(|n| seen.insert(n.shard))
            .map(|n| (&n.client, n.origin.as_str()))
            .collect()
    }

    /// Drops the whole database, on every node in cluster mode (tests, benches). The store is
    /// unusable afterwards.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        for (client, origin) in self.table_holders() {
            self.execute_on(client, origin, &self.schema.drop_database())
                .await?;
        }
        Ok(())
    }

    /// Cluster mode: the HTTP URLs (without credentials) of the cluster's nodes, in
    /// `system.clusters` order; empty on one server.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.origin.clone()).collect()
    }

    async fn execute_on(&self, client: &Client, origin: &str, sql: &str) -> Result<(), StoreError> {
        self.run_at(origin, client.query(sql).execute()).await
    }

    /// Applies the migrations not recorded yet. Every statement is idempotent, so a race with
    /// another process applying the same migration only repeats work; a statement that fails
    /// because the other process is creating the same table is retried.
    /// In cluster mode this runs on each node in turn, each recording its own versions.
    async fn migrate(&self, client: &Client, origin: &str) -> Result<(), StoreError> {
        self.execute_retrying(client, origin, &self.schema.create_database(), self.timeout)
            .await?;
        self.execute_retrying(
            client,
            origin,
            &self.schema.create_migrations_table(),
            self.timeout,
        )
        .await?;
        let applied: HashSet<u32> = self
            .run_at(
                origin,
                self.schema.q_applied_versions(client).fetch_all::<u32>(),
            )
            .await?
            .into_iter()
            .collect();
        for migration in self.schema.migrations() {
            if applied.contains(&migration.version) {
                continue;
            }
            tracing::info!(
                origin,
                database = self.schema.database(),
                version = migration.version,
                name = migration.name,
                "applying clickhouse migration"
            );
            for sql in &migration.statements {
                self.execute_retrying(client, origin, sql, self.timeout.max(MIGRATION_TIMEOUT))
                    .await?;
            }
            let now = clamp_ts(Utc::now().timestamp());
            self.run_at(
                origin,
                self.schema
                    .q_record_migration(client, &migration, now)
                    .execute(),
            )
            .await?;
        }
        Ok(())
    }

    /// Runs an idempotent DDL statement, retrying a few times when it fails for another reason
    /// than an outage (two processes creating the same table at once).
    async fn execute_retrying(
        &self,
        client: &Client,
        origin: &str,
        sql: &str,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            match self
                .run_within(origin, timeout, client.query(sql).execute())
                .await
            {
                Err(StoreError::Backend(message)) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(attempt, error = %message, "retrying schema statement");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// Awaits a request to the main server with the configured timeout, mapping errors.
    async fn run<T>(
        &self,
        request: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, StoreError> {
        self.run_at(&self.origin, request).await
    }

    /// Awaits a request to the server at `origin` with the configured timeout, mapping errors.
    async fn run_at<T>(
        &self,
        origin: &str,
        request: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, StoreError> {
        self.run_within(origin, self.timeout, request).await
    }

    /// Awaits a request to the server at `origin` for at most `timeout`, mapping errors.
    async fn run_within<T>(
        &self,
        origin: &str,
        timeout: Duration,
        request: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.map_error(origin, e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "clickhouse at {origin} did not answer within {timeout:?}"
            ))),
        }
    }

    fn map_error(&self, origin: &str, e: clickhouse::error::Error) -> StoreError {
        use clickhouse::error::Error;
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        if message.contains("is for clickhouse-client") {
            return native_port_error(origin, &message);
        }
        if let Some(code) = server_error_code(&message)
            && UNAVAILABLE_CODES.contains(&code)
        {
            return StoreError::Unavailable(format!(
                "clickhouse at {origin} could not reach part of the cluster: {message}"
            ));
        }
        match e {
            Error::Network(_) | Error::TimedOut => {
                let hint = if self.native_port_hint {
                    " (port 9000 is ClickHouse's native protocol; this store speaks HTTP, \
                     which listens on port 8123 by default: set CLICKHOUSE_URL=http://HOST:8123)"
                } else {
                    ""
                };
                StoreError::Unavailable(format!(
                    "clickhouse at {origin} unreachable: {message}{hint}"
                ))
            }
            _ => StoreError::Backend(message),
        }
    }

    /// Ids among `candidates` (no repeats, none cached) already in `events`.
    ///
    /// First every id stored in the candidates' time range, when there are at most
    /// `range_scan_limit`: one round trip, and nothing to read for new hours. Past that
    /// (a batch spanning a long, full history), the candidates sorted by time are looked up
    /// [`IDS_PER_LOOKUP`] at a time, each chunk in its own time range.
    async fn stored_among(&self, candidates: &[&Event]) -> Result<IdSet, StoreError> {
        let range = |events: &[&Event]| {
            events.iter().fold((u32::MAX, 0u32), |(min, max), e| {
                let ts = e.timestamp() as u32;
                (min.min(ts), max.max(ts))
            })
        };
        let (min, max) = range(candidates);
        let in_range = self
            .run(
                self.schema
                    .q_ids_in_range(&self.client, min, max, self.range_scan_limit as u64 + 1)
                    .fetch_all::<u64>(),
            )
            .await?;
        if in_range.len() <= self.range_scan_limit {
            let wanted: IdSet = candidates.iter().map(|e| e.id).collect();
            return Ok(in_range
                .into_iter()
                .filter(|id| wanted.contains(id))
                .collect());
        }
        let mut sorted = candidates.to_vec();
        sorted.sort_unstable_by_key(|e| e.timestamp());
        let mut found = IdSet::default();
        for chunk in sorted.chunks(IDS_PER_LOOKUP) {
            let (min, max) = range(chunk);
            let ids: Vec<u64> = chunk.iter().map(|e| e.id).collect();
            let rows = self
                .run(
                    self.schema
                        .q_existing_ids(&self.client, min, max, &ids)
                        .fetch_all::<u64>(),
                )
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Sends `events` in RowBinary, at most `max_rows_per_insert` per `INSERT`, and adds the
    /// ids of every completed `INSERT` to `recent`.
    async fn send(&self, events: &[&Event], recent: &mut RecentIds) -> Result<(), StoreError> {
        let table = self.schema.events_table();
        for chunk in events.chunks(self.max_rows_per_insert) {
            let sent = async {
                let mut insert = self
                    .client
                    .insert_unescaped::<EventRow<'_>>(&table)
                    .await?
                    .with_timeouts(Some(self.timeout), Some(self.timeout));
                for e in chunk {
                    insert
                        .write(&EventRow {
                            id: e.id,
                            event_type: type_code(e.event_type),
                            repo_id: e.repo_id,
                            repo_name: &e.repo_name,
                            created_at: e.timestamp() as u32,
                            action: &e.action,
                        })
                        .await?;
                }
                insert.end().await
            };
            self.run(sent).await?;
            for e in chunk {
                recent.insert(e.id);
            }
        }
        Ok(())
    }
}

/// Server error codes that mean another server (a shard of the cluster) could not be reached,
/// not that the query is wrong: `NETWORK_ERROR` (210), `SOCKET_TIMEOUT` (209),
/// `ALL_CONNECTION_TRIES_FAILED` (279) and `ALL_REPLICAS_ARE_STALE` (369); the same codes in
/// 18.16 and current releases.
const UNAVAILABLE_CODES: [u32; 4] = [209, 210, 279, 369];

/// The `Code: N` of a server's error message (`Code: 279, e.displayText() = …` in 18.16,
/// `Code: 279. DB::NetException: …` in current releases).
fn server_error_code(message: &str) -> Option<u32> {
    let at = message.find("Code: ")? + "Code: ".len();
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn native_port_error(origin: &str, answer: &str) -> StoreError {
    StoreError::Config(format!(
        "{origin} is ClickHouse's native protocol port (9000 by default), not its HTTP interface \
         (8123 by default), which this store uses: point CLICKHOUSE_URL at the HTTP port (the \
         server said: {:?})",
        answer.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

/// Asks `url`'s port, over plain TCP, what it is: ClickHouse's native port answers an HTTP
/// request with a line of text telling to use the HTTP port, which HTTP clients cannot parse
/// (18.16) or get as an error status. Returns that text when it names `clickhouse-client`.
async fn probe_native_port(url: &reqwest::Url) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 512];
        while answer.len() < 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        text.contains("clickhouse-client").then_some(text)
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .ok()
        .flatten()
}

/// Times `DateTime` can hold: seconds in `u32`.
fn check_storable(e: &Event) -> Result<(), StoreError> {
    let ts = e.timestamp();
    if (0..=i64::from(u32::MAX)).contains(&ts) {
        Ok(())
    } else {
        Err(StoreError::InvalidEvent {
            id: e.id,
            reason: format!(
                "created_at {} is outside ClickHouse's DateTime range (1970 to 2106)",
                e.created_at
            ),
        })
    }
}

/// Seconds since the epoch clamped to what `DateTime` holds, for query bounds.
fn clamp_ts(ts: i64) -> u32 {
    ts.clamp(0, i64::from(u32::MAX)) as u32
}

fn counts_from(rows: Vec<CodeCount>) -> TypeCounts {
    let mut counts = TypeCounts::default();
    for row in rows {
        if let Some(t) = type_from_code(row.code) {
            counts[t] += row.n;
        }
    }
    counts
}

#[async_trait]
impl EventStore for ClickHouseStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome, StoreError> {
        for e in events {
            check_storable(e)?;
        }
        let mut recent = self.writer.lock().await;
        let mut outcome = InsertOutcome::default();
        // Level 1: within the batch, and against the recent ids.
        let mut seen = IdSet::with_capacity_and_hasher(events.len(), Default::default());
        let mut candidates = Vec::with_capacity(events.len());
        for e in events {
            if !seen.insert(e.id) || recent.contains(e.id) {
                outcome.duplicates += 1;
            } else {
                candidates.push(e);
            }
        }
        if candidates.is_empty() {
            return Ok(outcome);
        }
        // Level 2: against what is stored, in the batch's time range.
        let stored = self.stored_among(&candidates).await?;
        let fresh: Vec<&Event> = candidates
            .into_iter()
            .filter(|e| {
                if stored.contains(&e.id) {
                    outcome.duplicates += 1;
                    false
                } else {
                    true
                }
            })
            .collect();
        for id in stored {
            recent.insert(id);
        }
        self.send(&fresh, &mut recent).await?;
        outcome.inserted = fresh.len() as u64;
        tracing::debug!(
            inserted = outcome.inserted,
            duplicates = outcome.duplicates,
            "inserted events into clickhouse"
        );
        Ok(outcome)
    }

    async fn count_stored(&self, events: &[Event]) -> Result<u64, StoreError> {
        let mut seen = IdSet::default();
        let mut known = 0;
        let mut candidates = Vec::with_capacity(events.len());
        {
            let recent = self.writer.lock().await;
            for e in events {
                if !seen.insert(e.id) {
                    continue;
                }
                if recent.contains(e.id) {
                    known += 1;
                } else if check_storable(e).is_ok() {
                    candidates.push(e);
                }
            }
        }
        if candidates.is_empty() {
            return Ok(known);
        }
        Ok(known + self.stored_among(&candidates).await?.len() as u64)
    }

    async fn health(&self) -> StoreHealth {
        let probe = async {
            let version = self.server_version().await?;
            Ok::<_, StoreError>((version, self.totals().await))
        };
        let mut health = match probe.await {
            // In cluster mode the node the store talks to answers but a shard does not: the
            // store is up, degraded; queries needing that shard give `Unavailable`.
            Ok((version, Err(e))) if self.schema.is_clustered() => {
                let mut health = StoreHealth::new(self.backend_name(), true, 0, None);
                health
                    .details
                    .insert("server_version".into(), version.into());
                health.degraded = true;
                health.error = Some(e.to_string());
                health
            }
            Ok((_, Err(e))) | Err(e) => {
                StoreHealth::unreachable(self.backend_name(), e.to_string())
            }
            Ok((version, Ok((total, last)))) => {
                let mut health = StoreHealth::new(self.backend_name(), true, total, last);
                health
                    .details
                    .insert("server_version".into(), version.into());
                health
            }
        };
        if let Some(cluster) = self.schema.cluster() {
            let nodes = self.node_health().await;
            let up = nodes.iter().filter(|n| n["up"] == true).count();
            if health.connected && up < nodes.len() {
                health.degraded = true;
            }
            health.details.insert("cluster".into(), cluster.into());
            health
                .details
                .insert("replicated".into(), self.schema.is_replicated().into());
            health.details.insert("nodes_up".into(), up.into());
            health
                .details
                .insert("nodes_total".into(), nodes.len().into());
            health.details.insert("nodes".into(), nodes.into());
        }
        health
            .details
            .insert("url".into(), self.origin.clone().into());
        health
            .details
            .insert("database".into(), self.schema.database().into());
        health
    }

    async fn record_archive_hour(&self, record: &ArchiveHour) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let now = Utc::now().timestamp_millis().max(0) as u64;
        let previous = self
            .archive_version
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(0);
        let version = now.max(previous + 1);
        self.run(
            self.schema
                .q_record_archive_hour(&self.client, record, version)
                .execute(),
        )
        .await
    }

    fn backend_name(&self) -> &'static str {
        "clickhouse"
    }
}

/// How long health waits for one node of the cluster.
const NODE_PING_TIMEOUT: Duration = Duration::from_secs(5);

impl ClickHouseStore {
    /// Stored events and the newest event time: the total and the newest hour from the hourly
    /// counts, then the newest time within that hour from `events` (one hour read, not all).
    async fn totals(&self) -> Result<(u64, Option<chrono::DateTime<Utc>>), StoreError> {
        let totals = self
            .run(
                self.schema
                    .q_health_totals(&self.client)
                    .fetch_one::<TotalsRow>(),
            )
            .await?;
        if totals.n == 0 {
            return Ok((0, None));
        }
        let last = self
            .run(
                self.schema
                    .q_last_event_since(&self.client, totals.last_hour)
                    .fetch_one::<u32>(),
            )
            .await?;
        Ok((totals.n, utc_from_timestamp(i64::from(last))))
    }

    /// Cluster mode: pings every node at once; one JSON object per node, in `system.clusters`
    /// order: `shard`, `replica`, `host`, `port` (native), `url` (HTTP), `up`, and `error`
    /// when down.
    async fn node_health(&self) -> Vec<serde_json::Value> {
        let limit = self.timeout.min(NODE_PING_TIMEOUT);
        let pings: Vec<_> = self
            .nodes
            .iter()
            .map(|node| {
                let query = self.schema.q_ping(&node.client);
                tokio::spawn(async move {
                    match tokio::time::timeout(limit, query.fetch_one::<u8>()).await {
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(_) => Some(format!("no answer within {limit:?}")),
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(pings.len());
        for (node, ping) in self.nodes.iter().zip(pings) {
            let error = ping
                .await
                .unwrap_or_else(|e| Some(format!("health probe failed: {e}")));
            let mut entry = serde_json::json!({
                "shard": node.shard,
                "replica": node.replica,
                "host": node.host,
                "port": node.port,
                "url": node.origin,
                "up": error.is_none(),
            });
            if let Some(error) = error {
                entry["error"] = error.into();
            }
            out.push(entry);
        }
        out
    }
}

#[async_trait]
impl MetricsQuery for ClickHouseStore {
    async fn pr_average(&self, repo: &RepoName) -> Result<PrAverage, StoreError> {
        let row = self
            .run(
                self.schema
                    .q_pr_average(&self.client, repo.as_str())
                    .fetch_one::<PrRow>(),
            )
            .await?;
        Ok(PrAverage::from_extremes(
            repo.as_str(),
            row.opened,
            utc_from_timestamp(i64::from(row.first)),
            utc_from_timestamp(i64::from(row.last)),
        ))
    }

    async fn event_counts(&self, window: TimeWindow) -> Result<EventCounts, StoreError> {
        let rows = self
            .run(
                self.schema
                    .q_event_counts(
                        &self.client,
                        clamp_ts(window.since_ts()),
                        clamp_ts(window.until_ts()),
                    )
                    .fetch_all::<CodeCount>(),
            )
            .await?;
        Ok(EventCounts {
            window,
            counts: counts_from(rows),
        })
    }

    async fn timeline(
        &self,
        window: TimeWindow,
        bucket_seconds: i64,
    ) -> Result<Timeline, StoreError> {
        let starts = timeline_buckets(&window, bucket_seconds)?;
        let first = starts.first().copied().unwrap_or(window.since_ts());
        let rows = self
            .run(
                self.schema
                    .q_timeline(
                        &self.client,
                        first,
                        bucket_seconds,
                        clamp_ts(window.since_ts()),
                        clamp_ts(window.until_ts()),
                    )
                    .fetch_all::<BucketCount>(),
            )
            .await?;
        let mut counts: [Vec<u64>; 3] = std::array::from_fn(|_| vec![0; starts.len()]);
        for row in rows {
            if let Some(t) = type_from_code(row.code)
                && let Some(slot) = counts[t.index()].get_mut(row.bucket as usize)
            {
                *slot += row.n;
            }
        }
        Ok(Timeline {
            window,
            bucket_seconds,
            bucket_starts: starts.into_iter().filter_map(utc_from_timestamp).collect(),
            counts,
        })
    }

    async fn repo_event_counts(&self, repo: &RepoName) -> Result<RepoEventCounts, StoreError> {
        let rows = self
            .run(
                self.schema
                    .q_repo_event_counts(&self.client, repo.as_str())
                    .fetch_all::<CodeCount>(),
            )
            .await?;
        Ok(RepoEventCounts {
            repository: repo.as_str().to_owned(),
            counts: counts_from(rows),
        })
    }

    async fn total_events(&self) -> Result<u64, StoreError> {
        self.run(self.schema.q_total_events(&self.client).fetch_one::<u64>())
            .await
    }

    async fn pr_average_in(
        &self,
        repo: &RepoName,
        window: TimeWindow,
    ) -> Result<PrAverage, StoreError> {
        let row = self
            .run(
                self.schema
                    .q_pr_average_in(
                        &self.client,
                        repo.as_str(),
                        clamp_ts(window.since_ts()),
                        clamp_ts(window.until_ts()),
                    )
                    .fetch_one::<PrRow>(),
            )
            .await?;
        Ok(PrAverage::from_extremes(
            repo.as_str(),
            row.opened,
            utc_from_timestamp(i64::from(row.first)),
            utc_from_timestamp(i64::from(row.last)),
        ))
    }

    async fn archive_hours(&self, window: TimeWindow) -> Result<Vec<ArchiveHour>, StoreError> {
        let rows = self
            .run(
                self.schema
                    .q_archive_hours(
                        &self.client,
                        clamp_ts(window.since_ts()),
                        clamp_ts(window.until_ts()),
                    )
                    .fetch_all::<ArchiveHourRow>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(ArchiveHour::new(
                    utc_from_timestamp(i64::from(r.hour))?,
                    ArchiveStatus::from_code(r.status)?,
                    r.archive_events,
                    r.polled_before_archive,
                    utc_from_timestamp(i64::from(r.recorded_at))?,
                ))
            })
            .collect())
    }

    async fn complete_run(&self) -> Result<Option<CompleteRun>, StoreError> {
        let hours = self
            .run(
                self.schema
                    .q_imported_hours(&self.client)
                    .fetch_all::<u32>(),
            )
            .await?;
        Ok(CompleteRun::latest(hours.into_iter().map(i64::from)))
    }

    async fn top_repositories(&self, limit: usize) -> Result<Vec<RepoEventCount>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .run(
                self.schema
                    .q_top_repositories(&self.client, limit as u64)
                    .fetch_all::<RepoCountRow>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| RepoEventCount {
                repository: r.repo_name,
                event_count: r.n,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_password_and_url_credentials() {
        let config = ClickHouseConfig::new("http://alice:s3cret@db.example:8123/?x=1")
            .with_credentials("bob", "hunter2");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("db.example:8123"), "{shown}");
    }

    #[tokio::test]
    async fn bad_configuration_is_refused_before_any_request() {
        let err = ClickHouseStore::connect(ClickHouseConfig::default().with_database("x-y"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err}");
        let err = ClickHouseStore::connect(ClickHouseConfig::new("tcp://localhost:9000"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Config(_)), "{err}");
    }

    #[tokio::test]
    async fn the_native_port_gets_a_message_saying_so() {
        // Nothing listens on this port here, as for a 9000 that does not answer HTTP.
        let config = ClickHouseConfig::new("http://127.0.0.1:9000")
            .with_request_timeout(Duration::from_secs(5));
        match ClickHouseStore::connect(config).await {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains("native protocol"), "{message}");
                assert!(message.contains("8123"), "{message}");
            }
            // A real HTTP server on 9000 would be fine; anything else is not.
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => {}
        }
    }
}
