//! The store's settings: which backend, and how to reach it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use github_stats_core::store::clickhouse::{DEFAULT_DATABASE, DEFAULT_URL};
use github_stats_core::{ClickHouseConfig, MemoryStoreOptions, SecretUrl, StoreConfig};

/// `CLICKHOUSE_HOST` when only `CLICKHOUSE_PORT` is set.
pub const DEFAULT_CLICKHOUSE_HOST: &str = "localhost";

/// `CLICKHOUSE_PORT` when only `CLICKHOUSE_HOST` is set: ClickHouse's HTTP port.
pub const DEFAULT_CLICKHOUSE_PORT: u16 = 8123;

/// Where events are stored (`DATABASE_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The memory store, persisted in `DATA_DIR`.
    Memory,
    /// ClickHouse over HTTP.
    ClickHouse,
}

impl Backend {
    /// `memory` or `clickhouse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::ClickHouse => "clickhouse",
        }
    }
}

/// The store's settings (README's configuration table, docs/operations.md): flags with
/// environment fallbacks.
#[derive(Clone, Args)]
pub struct StoreArgs {
    /// Where events are stored: `memory` or `clickhouse`.
    #[arg(
        long = "database-backend",
        visible_alias = "backend",
        env = "DATABASE_BACKEND",
        default_value = "memory",
        value_name = "BACKEND",
        help_heading = "Store"
    )]
    pub database_backend: String,

    /// Directory of the memory store's event file, so that a restart loses nothing (the server
    /// and the backfill use the same).
    #[arg(
        long,
        env = "DATA_DIR",
        default_value = "data",
        value_name = "DIR",
        help_heading = "Store"
    )]
    pub data_dir: PathBuf,

    /// Seconds a request may take: a request to ClickHouse fails past it (and is retried); the
    /// server answers an API request that takes longer with 503.
    #[arg(
        long,
        env = "REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        value_name = "SECONDS",
        help_heading = "Store"
    )]
    pub request_timeout_secs: u64,

    /// ClickHouse HTTP interface [default: http://localhost:8123, or CLICKHOUSE_HOST and
    /// CLICKHOUSE_PORT when either is set]. Credentials in it are never shown.
    #[arg(
        long,
        env = "CLICKHOUSE_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_url: Option<SecretUrl>,

    /// ClickHouse host, when CLICKHOUSE_URL is not set [default: localhost].
    #[arg(
        long,
        env = "CLICKHOUSE_HOST",
        value_name = "HOST",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_host: Option<String>,

    /// ClickHouse HTTP port, when CLICKHOUSE_URL is not set [default: 8123].
    #[arg(
        long,
        env = "CLICKHOUSE_PORT",
        value_name = "PORT",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_port: Option<u16>,

    /// ClickHouse database, created if missing with its tables.
    #[arg(
        long,
        env = "CLICKHOUSE_DATABASE",
        default_value = DEFAULT_DATABASE,
        value_name = "NAME",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_database: String,

    /// ClickHouse user.
    #[arg(
        long,
        env = "CLICKHOUSE_USER",
        default_value = "default",
        value_name = "USER",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_user: String,

    /// ClickHouse password (never shown; prefer the environment: command lines are visible to
    /// other users).
    #[arg(
        long,
        env = "CLICKHOUSE_PASSWORD",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true,
        value_name = "PASSWORD",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_password: String,

    /// Cluster mode: a cluster of the servers' remote_servers; local tables on every node with
    /// Distributed tables over them (docs/operations.md, "Running on a cluster").
    #[arg(
        long,
        env = "CLICKHOUSE_CLUSTER",
        value_name = "NAME",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_cluster: Option<String>,

    /// Cluster mode: the nodes' HTTP URLs, comma-separated, in system.clusters order
    /// [default: http://HOST:8123 for each host of system.clusters].
    #[arg(
        long,
        env = "CLICKHOUSE_CLUSTER_NODES",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "URLS",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_cluster_nodes: Vec<SecretUrl>,

    /// Cluster mode: replicated local tables (needs ZooKeeper or ClickHouse Keeper). A switch;
    /// `--clickhouse-replicated=false` turns off what the environment turned on.
    #[arg(
        long,
        env = "CLICKHOUSE_REPLICATED",
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new(),
        help_heading = "ClickHouse"
    )]
    pub clickhouse_replicated: bool,
}

impl StoreArgs {
    /// The backend, or the line explaining why the name is unknown.
    pub fn backend(&self) -> Result<Backend, String> {
        match self.database_backend.trim().to_ascii_lowercase().as_str() {
            "memory" => Ok(Backend::Memory),
            "clickhouse" => Ok(Backend::ClickHouse),
            _ => Err(format!(
                "unknown backend '{}', expected memory or clickhouse",
                self.database_backend
            )),
        }
    }

    /// The ClickHouse HTTP URL: `CLICKHOUSE_URL`, else `http://CLICKHOUSE_HOST:CLICKHOUSE_PORT`
    /// with `localhost` and `8123` for the one not set.
    pub fn clickhouse_url(&self) -> SecretUrl {
        if let Some(url) = self.clickhouse_url.as_ref().filter(|u| !u.is_empty()) {
            return url.trimmed();
        }
        let host = self
            .clickhouse_host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty());
        match (host, self.clickhouse_port) {
            (None, None) => SecretUrl::from(DEFAULT_URL),
            (host, port) => SecretUrl::from(format!(
                "http://{}:{}",
                host.unwrap_or(DEFAULT_CLICKHOUSE_HOST),
                port.unwrap_or(DEFAULT_CLICKHOUSE_PORT)
            )),
        }
    }

    /// The request timeout (`REQUEST_TIMEOUT_SECS`).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// What to open, or every problem with the settings (one line each): an unknown backend, a
    /// zero timeout, and for ClickHouse what core's
    /// [`ClickHouseConfig::validate`] refuses (URLs, names, replication without a cluster).
    pub fn store_config(&self) -> Result<StoreConfig, Vec<String>> {
        let mut problems = Vec::new();
        let backend = self.backend().map_err(|e| problems.push(e)).ok();
        if self.request_timeout_secs == 0 {
            problems.push("invalid REQUEST_TIMEOUT_SECS 0, expected at least 1".to_owned());
        }
        if self.clickhouse_port == Some(0) {
            problems.push("invalid CLICKHOUSE_PORT 0, expected 1 to 65535".to_owned());
        }
        let config = match backend {
            None => None,
            Some(Backend::Memory) => Some(StoreConfig::Memory {
                data_dir: Some(self.data_dir.clone()),
                options: MemoryStoreOptions::default(),
            }),
            Some(Backend::ClickHouse) => {
                let clickhouse = self.clickhouse_config();
                if let Err(invalid) = clickhouse.validate() {
                    problems.extend(
                        invalid
                            .iter()
                            // Reported above, by the name the user set.
                            .filter(|p| p.setting != "REQUEST_TIMEOUT_SECS")
                            .map(ToString::to_string),
                    );
                }
                Some(StoreConfig::ClickHouse(clickhouse))
            }
        };
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(problems),
        }
    }

    /// The ClickHouse settings, whatever the backend (not validated).
    pub fn clickhouse_config(&self) -> ClickHouseConfig {
        let mut config = ClickHouseConfig::new(self.clickhouse_url())
            .with_database(self.clickhouse_database.trim())
            .with_credentials(
                self.clickhouse_user.clone(),
                self.clickhouse_password.clone(),
            )
            .with_replication(self.clickhouse_replicated)
            .with_request_timeout(self.request_timeout());
        if let Some(cluster) = self
            .clickhouse_cluster
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            config = config.with_cluster(
                cluster,
                self.clickhouse_cluster_nodes
                    .iter()
                    .map(SecretUrl::trimmed)
                    .filter(|u| !u.is_empty()),
            );
        }
        config
    }
}

/// The password is redacted, and the URLs are shown without their credentials.
impl fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreArgs")
            .field("database_backend", &self.database_backend)
            .field("data_dir", &self.data_dir)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("clickhouse_url", &self.clickhouse_url())
            .field("clickhouse_database", &self.clickhouse_database)
            .field("clickhouse_user", &self.clickhouse_user)
            .field(
                "clickhouse_password",
                &if self.clickhouse_password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("clickhouse_cluster", &self.clickhouse_cluster)
            .field("clickhouse_cluster_nodes", &self.clickhouse_cluster_nodes)
            .field("clickhouse_replicated", &self.clickhouse_replicated)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        store: StoreArgs,
        files: Vec<String>,
    }

    /// Parses `args` with `env` as the only environment variables set: the test process's own
    /// environment must not leak in, so each argument's variable is replaced by a default of
    /// the value given here.
    fn cli(args: &[&str], env: &[(&str, &'static str)]) -> Result<Cli, clap::Error> {
        let command = <Cli as clap::CommandFactory>::command().mut_args(|arg| {
            let Some(name) = arg.get_env().map(|n| n.to_string_lossy().into_owned()) else {
                return arg;
            };
            let arg = arg.env(None::<&'static str>);
            match env.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => arg.default_value(*value),
                None => arg,
            }
        });
        let matches =
            command.try_get_matches_from(std::iter::once("x").chain(args.iter().copied()))?;
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
    }

    fn parse(args: &[&str], env: &[(&str, &'static str)]) -> Result<StoreArgs, clap::Error> {
        cli(args, env).map(|cli| cli.store)
    }

    fn url(args: &[&str], env: &[(&str, &'static str)]) -> String {
        parse(args, env)
            .unwrap()
            .clickhouse_url()
            .expose_secret()
            .to_owned()
    }

    #[test]
    fn the_url_comes_from_the_url_or_host_and_port_with_defaults_for_either() {
        assert_eq!(url(&[], &[]), "http://localhost:8123");
        assert_eq!(
            url(&["--clickhouse-url", "http://u:p@db:9123/"], &[]),
            "http://u:p@db:9123"
        );
        assert_eq!(
            url(&[], &[("CLICKHOUSE_HOST", "db.internal")]),
            "http://db.internal:8123"
        );
        // Issue #13: a port alone used to be ignored by the server (it connected to 8123) and
        // honoured by the backfill; both honour it now, on localhost.
        assert_eq!(
            url(&[], &[("CLICKHOUSE_PORT", "9123")]),
            "http://localhost:9123"
        );
        assert_eq!(
            url(
                &["--clickhouse-port", "18123"],
                &[("CLICKHOUSE_HOST", "db"), ("CLICKHOUSE_URL", "")]
            ),
            "http://db:18123"
        );
        assert_eq!(
            url(
                &[],
                &[("CLICKHOUSE_URL", "http://a:1"), ("CLICKHOUSE_HOST", "b")]
            ),
            "http://a:1",
            "the URL wins"
        );
    }

    #[test]
    fn replicated_is_a_switch_that_takes_an_explicit_value_only_after_equals() {
        let parsed = |args: &[&str], env: &[(&str, &'static str)]| {
            let mut args = args.to_vec();
            args.push("a-file.json");
            let cli = cli(&args, env).unwrap();
            (cli.store.clickhouse_replicated, cli.files)
        };
        let file = vec!["a-file.json".to_owned()];
        assert_eq!(parsed(&[], &[]), (false, file.clone()));
        // The switch does not swallow the next argument.
        assert_eq!(
            parsed(&["--clickhouse-replicated"], &[]),
            (true, file.clone())
        );
        assert_eq!(
            parsed(
                &["--clickhouse-replicated=false"],
                &[("CLICKHOUSE_REPLICATED", "true")]
            ),
            (false, file.clone())
        );
        for value in ["true", "1", "yes", "on"] {
            assert_eq!(
                parsed(&[], &[("CLICKHOUSE_REPLICATED", value)]),
                (true, file.clone()),
                "{value}"
            );
        }
        assert_eq!(
            parsed(&[], &[("CLICKHOUSE_REPLICATED", "false")]),
            (false, file)
        );
    }

    #[test]
    fn bad_settings_are_one_line_each_and_show_no_secret() {
        let args = parse(
            &["--backend", "clickhouse", "--clickhouse-replicated"],
            &[
                ("CLICKHOUSE_DATABASE", "1db"),
                ("CLICKHOUSE_URL", "tcp://reader:s3cret@db:9000"),
                ("REQUEST_TIMEOUT_SECS", "0"),
            ],
        )
        .unwrap();
        let problems = args.store_config().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].starts_with("invalid REQUEST_TIMEOUT_SECS 0"),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("invalid CLICKHOUSE_DATABASE '1db'")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("invalid CLICKHOUSE_URL 'tcp://<redacted>@db:9000'")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("invalid CLICKHOUSE_REPLICATED")),
            "{problems:#?}"
        );
        assert!(problems.iter().all(|p| !p.contains("s3cret")));
        assert!(!format!("{args:?}").contains("s3cret"));

        let unknown = parse(&["--database-backend", "postgres"], &[]).unwrap();
        assert_eq!(
            unknown.store_config().unwrap_err(),
            ["unknown backend 'postgres', expected memory or clickhouse"]
        );
        // The memory store does not care about ClickHouse's settings.
        let memory = parse(&[], &[("CLICKHOUSE_DATABASE", "1db")]).unwrap();
        assert!(matches!(
            memory.store_config(),
            Ok(StoreConfig::Memory {
                data_dir: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn cluster_settings_reach_the_clickhouse_config() {
        let args = parse(
            &[
                "--backend",
                "ClickHouse",
                "--clickhouse-cluster",
                "two",
                "--clickhouse-cluster-nodes",
                "http://a:8123, http://b:8124/",
                "--clickhouse-replicated",
                "--request-timeout-secs",
                "7",
            ],
            &[("CLICKHOUSE_PASSWORD", "pw")],
        )
        .unwrap();
        let Ok(StoreConfig::ClickHouse(config)) = args.store_config() else {
            panic!("a ClickHouse configuration")
        };
        assert_eq!(config.cluster.as_deref(), Some("two"));
        let nodes: Vec<&str> = config
            .cluster_nodes
            .iter()
            .map(SecretUrl::expose_secret)
            .collect();
        assert_eq!(nodes, ["http://a:8123", "http://b:8124"]);
        assert!(config.replicated);
        assert_eq!(config.password, "pw");
        assert_eq!(config.request_timeout, Duration::from_secs(7));
    }
}
