//! How to reach ClickHouse: [`ClickHouseConfig`] and its defaults.

use std::fmt;
use std::time::Duration;

use super::schema::{MAX_IDENTIFIER_LEN, is_identifier};
use crate::SecretUrl;
use crate::store::InvalidSetting;

/// Default HTTP interface address.
pub const DEFAULT_URL: &str = "http://localhost:8123";

/// Default database.
pub const DEFAULT_DATABASE: &str = "github_stats";

/// How to reach ClickHouse. The password is redacted in `Debug` and never logged.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://localhost:8123` (not the native protocol's port 9000).
    /// Never shown with its credentials.
    pub url: SecretUrl,
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
    pub cluster_nodes: Vec<SecretUrl>,
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
            url: SecretUrl::from(DEFAULT_URL),
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
    pub fn new(url: impl Into<SecretUrl>) -> ClickHouseConfig {
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
        nodes: impl IntoIterator<Item = impl Into<SecretUrl>>,
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

impl ClickHouseConfig {
    /// Checks what can be checked without a server, each problem named by its environment
    /// variable: the URLs (`http://` or `https://`, with a host), the database and cluster names
    /// (plain identifiers), replication without a cluster, a zero timeout.
    /// [`ClickHouseStore::connect`](super::ClickHouseStore::connect) refuses the same.
    pub fn validate(&self) -> Result<(), Vec<InvalidSetting>> {
        let mut problems = Vec::new();
        if let Err(e) = http_url("CLICKHOUSE_URL", &self.url) {
            problems.push(e);
        }
        let identifier = format!(
            "expected ASCII letters, digits and _, not starting with a digit, at most \
             {MAX_IDENTIFIER_LEN} characters"
        );
        if !is_identifier(&self.database) {
            problems.push(InvalidSetting::new(
                "CLICKHOUSE_DATABASE",
                &self.database,
                &identifier,
            ));
        }
        match &self.cluster {
            Some(cluster) if !is_identifier(cluster) => {
                problems.push(InvalidSetting::new(
                    "CLICKHOUSE_CLUSTER",
                    cluster,
                    &identifier,
                ));
            }
            Some(_) => {}
            None if self.replicated => problems.push(InvalidSetting::new(
                "CLICKHOUSE_REPLICATED",
                "true",
                "only with CLICKHOUSE_CLUSTER: replicated tables are a cluster layout",
            )),
            None => {}
        }
        for node in &self.cluster_nodes {
            if let Err(e) = http_url("CLICKHOUSE_CLUSTER_NODES entry", node) {
                problems.push(e);
            }
        }
        if self.request_timeout.is_zero() {
            problems.push(InvalidSetting::new(
                "REQUEST_TIMEOUT_SECS",
                "0",
                "expected at least 1",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// `url` parsed, when it is an `http://` or `https://` URL with a host.
pub(super) fn http_url(
    setting: &'static str,
    url: &SecretUrl,
) -> Result<reqwest::Url, InvalidSetting> {
    let invalid = |expected: String| InvalidSetting::new(setting, url.to_string(), expected);
    let expected = "expected an http:// or https:// URL of ClickHouse's HTTP interface \
                    (http://localhost:8123)";
    let parsed = reqwest::Url::parse(url.expose_secret().trim())
        .map_err(|e| invalid(format!("{expected}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(expected.to_owned()));
    }
    Ok(parsed)
}

impl fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
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
            .field("cluster_nodes", &self.cluster_nodes)
            .field("recent_ids_capacity", &self.recent_ids_capacity)
            .field("max_rows_per_insert", &self.max_rows_per_insert)
            .field("range_scan_limit", &self.range_scan_limit)
            .field("race_check_delay", &self.race_check_delay)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_every_problem_by_its_variable() {
        assert_eq!(ClickHouseConfig::default().validate(), Ok(()));
        let mut config = ClickHouseConfig::new("tcp://reader:s3cret@db:9000")
            .with_database("1db")
            .with_replication(true)
            .with_request_timeout(Duration::ZERO);
        config.cluster_nodes = vec!["http://ok:8123".into(), "db2:8123".into()];
        let problems = config.validate().unwrap_err();
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let settings: Vec<&str> = problems.iter().map(|p| p.setting).collect();
        assert_eq!(
            settings,
            [
                "CLICKHOUSE_URL",
                "CLICKHOUSE_DATABASE",
                "CLICKHOUSE_REPLICATED",
                "CLICKHOUSE_CLUSTER_NODES entry",
                "REQUEST_TIMEOUT_SECS"
            ],
            "{lines:#?}"
        );
        assert!(
            lines[0].starts_with("invalid CLICKHOUSE_URL 'tcp://<redacted>@db:9000', expected"),
            "{}",
            lines[0]
        );
        assert!(lines.iter().all(|l| !l.contains("s3cret")), "{lines:#?}");
        assert!(
            lines[1].starts_with("invalid CLICKHOUSE_DATABASE '1db', expected ASCII letters"),
            "{}",
            lines[1]
        );
        let cluster = ClickHouseConfig::default().with_cluster("two shards", ["http://a:1"]);
        assert_eq!(
            cluster.validate().unwrap_err()[0].setting,
            "CLICKHOUSE_CLUSTER"
        );
    }

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
