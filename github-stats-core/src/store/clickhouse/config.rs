//! How to reach ClickHouse: [`ClickHouseConfig`] and its defaults.

use std::fmt;
use std::time::Duration;

/// Default HTTP interface address.
pub const DEFAULT_URL: &str = "http://localhost:8123";

/// Default database.
pub const DEFAULT_DATABASE: &str = "github_stats";

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
    /// How long after inserting events the store checks whether another writer stored some of
    /// them too, at the same moment, and takes its own copy back from the counts when a merge
    /// keeps the other one (`docs/clickhouse.md`, "Two writers racing"). Longer than another
    /// writer can take between its existence check and its insert; counts are exact again this
    /// long after a race.
    pub race_check_delay: Duration,
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
            race_check_delay: Duration::from_secs(60),
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

    /// The same configuration with another [`race_check_delay`](ClickHouseConfig::race_check_delay).
    pub fn with_race_check_delay(mut self, delay: Duration) -> ClickHouseConfig {
        self.race_check_delay = delay;
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
            .field("race_check_delay", &self.race_check_delay)
            .finish()
    }
}

/// `scheme://host:port` of a URL, without credentials, path or query: what may be logged.
pub(super) fn redacted_origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "<invalid url>".to_owned(),
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
}
