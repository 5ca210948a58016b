//! Connecting (with a clear word when the URL is ClickHouse's native port), migrating every
//! node to the current schema version, and the maintenance statements (merges, recount).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clickhouse::Client;

use super::config::http_url;
use super::errors::native_port_error;
use super::race_check::{Checker, RaceChecks};
use super::schema::{Schema, Step};
use super::{ClickHouseConfig, ClickHouseStore, clamp_ts};
use crate::id_set::RecentIds;
use crate::store::StoreError;

/// Limit on each statement of a migration: version 2 fills its tables from `events` (a few
/// seconds per 10 million events), far longer than an ordinary request.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(3600);

impl ClickHouseStore {
    /// Connects, creates the database when missing and applies pending migrations.
    ///
    /// Fails with [`StoreError::Config`] for what [`ClickHouseConfig::validate`] refuses, and with
    /// [`StoreError::Unavailable`] when the server does not answer (the message says so when
    /// the URL points at the native protocol's port 9000 instead of the HTTP one, 8123).
    pub async fn connect(config: ClickHouseConfig) -> Result<ClickHouseStore, StoreError> {
        if let Err(problems) = config.validate() {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(StoreError::Config(lines.join("; ")));
        }
        let schema = Schema::new(
            &config.database,
            config.cluster.as_deref(),
            config.replicated,
        )?;
        let url = http_url("CLICKHOUSE_URL", &config.url)
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let native_port_hint = matches!(url.port(), Some(9000 | 9440));
        let client = Client::default()
            .with_url(config.url.expose_secret())
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
            race_checks: Arc::new(RaceChecks::new(config.race_check_delay)),
            partial: Default::default(),
            schema_lost: Default::default(),
            schema_restore: tokio::sync::Mutex::new(()),
            #[cfg(feature = "testsuite")]
            insert_gate: std::sync::Mutex::new(None),
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
        }
        store.migrate_all(false).await?;
        store.race_checks.start(Checker {
            client: store.client.clone(),
            schema: store.schema.clone(),
            origin: store.origin.clone(),
            timeout: store.timeout,
            native_port_hint: store.native_port_hint,
        });
        Ok(store)
    }

    /// Migrates the one server, or every node of the cluster. With `again`, the steps of
    /// migrations already applied run too: every one creates only what is missing (`IF NOT
    /// EXISTS`, columns checked first), so a table dropped while its migration stays recorded
    /// is created again, a derived one filled from `events` as when it was first made.
    async fn migrate_all(&self, again: bool) -> Result<(), StoreError> {
        if self.nodes.is_empty() {
            return self.migrate(&self.client, &self.origin, true, again).await;
        }
        for node in &self.nodes {
            // Derived tables are filled on every node of a cluster without replication (each
            // holds its own events), and on the first replica of each shard of a replicated one
            // (replication passes the rows on).
            let filler = !self.schema.is_replicated() || node.is_first_replica();
            self.migrate(&node.client, &node.origin, filler, again)
                .await?;
        }
        Ok(())
    }

    /// Creates the schema again, as at start, when a request found the database or a table
    /// missing (`DROP DATABASE` while the store runs); called first by every operation of the
    /// store. What the store remembered of the lost tables (the recent ids, the inserts
    /// stored in part) is forgotten: a later insert of those events stores them again.
    /// Fails, and is tried again by the next request, while the schema cannot be created.
    pub(super) async fn restore_schema_if_lost(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        if !self.schema_lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _restoring = self.schema_restore.lock().await;
        // Another request may have done it while this one waited.
        if !self.schema_lost.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        tracing::warn!(
            origin = %self.origin,
            database = self.schema.database(),
            "the store's database or a table is missing: creating the schema again"
        );
        if let Err(e) = self.migrate_all(true).await {
            self.schema_lost.store(true, Ordering::SeqCst);
            return Err(e);
        }
        self.writer.lock().await.clear();
        self.partial.forget();
        tracing::info!(
            origin = %self.origin,
            database = self.schema.database(),
            "created the schema again"
        );
        Ok(())
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
        // Replicated tables merge on one replica and pass the merge on (the same statement on
        // two replicas at once is refused by 18.16).
        let nodes = if self.schema.is_replicated() {
            self.shard_leaders()
        } else {
            self.table_holders()
        };
        for (client, origin) in nodes {
            for sql in self.schema.optimize_final() {
                match self.execute_on(client, origin, &sql).await {
                    // 18.16 answers this for a replicated table without any part: nothing to
                    // merge.
                    Err(StoreError::Backend(message))
                        if message.contains("Unknown log entry type: 0") => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// Corrects the count tables (`hourly_type_counts`, `repo_type_counts`) to the counts of
    /// `events` read with `FINAL`: after two writers raced on the same events, these tables
    /// count the copies (`docs/clickhouse.md`, "Two writers racing"); a recount makes every count
    /// exact again. It inserts the differences (nothing when there are none), on the one server
    /// or on the first replica of each shard; queries and inserts go on meanwhile, but an event
    /// inserted while it runs may be counted twice: run it while nothing writes.
    pub async fn recount(&self) -> Result<(), StoreError> {
        self.recount_within(self.timeout.max(MIGRATION_TIMEOUT))
            .await
    }

    /// [`ClickHouseStore::recount`], each statement within `timeout`.
    pub(super) async fn recount_within(&self, timeout: Duration) -> Result<(), StoreError> {
        let statements = self.schema.recount();
        for (client, origin) in self.shard_leaders() {
            // Two recounts can insert the same differences, which a replicated table would
            // drop as a repeated block: every one counts.
            let client = client.clone().with_setting("insert_deduplicate", "0");
            for sql in &statements {
                self.run_within(origin, timeout, client.query(sql).execute())
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

    /// Drops the whole database, on every node in cluster mode (tests, benches). The store is
    /// unusable afterwards.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        for (client, origin) in self.table_holders() {
            self.execute_on(client, origin, &self.schema.drop_database())
                .await?;
        }
        Ok(())
    }

    async fn execute_on(&self, client: &Client, origin: &str, sql: &str) -> Result<(), StoreError> {
        self.run_at(origin, client.query(sql).execute()).await
    }

    /// Applies the migrations not recorded yet. Every step is idempotent, so a race with
    /// another process applying the same migration only repeats work; a statement that fails
    /// because the other process is creating the same table is retried.
    /// In cluster mode this runs on each node in turn, each recording its own versions;
    /// `filler` says whether this node fills the tables derived from `events`
    /// ([`Step::CreateDerived`]).
    async fn migrate(
        &self,
        client: &Client,
        origin: &str,
        filler: bool,
        again: bool,
    ) -> Result<(), StoreError> {
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
                if again {
                    for step in &migration.steps {
                        self.run_step(client, origin, step, filler).await?;
                    }
                }
                continue;
            }
            tracing::info!(
                origin,
                database = self.schema.database(),
                version = migration.version,
                name = migration.name,
                "applying clickhouse migration"
            );
            for step in &migration.steps {
                self.run_step(client, origin, step, filler).await?;
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

    /// Runs one step of a migration on one node.
    async fn run_step(
        &self,
        client: &Client,
        origin: &str,
        step: &Step,
        filler: bool,
    ) -> Result<(), StoreError> {
        let timeout = self.timeout.max(MIGRATION_TIMEOUT);
        match step {
            Step::Run(sql) => self.execute_retrying(client, origin, sql, timeout).await,
            Step::CreateDerived { sync, .. } => {
                if filler && let Some(sync) = sync {
                    self.execute_retrying(client, origin, sync, timeout).await?;
                }
                self.execute_retrying(client, origin, step.sql(filler), timeout)
                    .await
            }
            Step::AddColumn {
                database,
                table,
                column,
                sql,
            } => {
                let exists = self
                    .run_at(
                        origin,
                        self.schema
                            .q_column_exists(client, database, table, column)
                            .fetch_one::<u64>(),
                    )
                    .await?
                    > 0;
                if exists {
                    return Ok(());
                }
                match self
                    .run_within(origin, timeout, client.query(sql).execute())
                    .await
                {
                    // Another process, or ClickHouse passing on the ALTER of another replica,
                    // added it meanwhile.
                    Err(StoreError::Backend(message)) if message.contains("already exists") => {
                        Ok(())
                    }
                    other => other,
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
