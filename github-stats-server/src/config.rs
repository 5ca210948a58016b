//! Configuration (a contract, documented in README's table): flags with environment fallbacks, and an optional
//! dotenv file given by `--dotenv PATH`, loaded before the environment is read.
//!
//! [`Config::load`] parses and validates; every problem is reported on a line of its own, and
//! `main` exits with code 2 on any of them (as clap does for bad usage).

use std::ffi::OsString;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use chrono::Utc;
use clap::Parser;
use github_stats_core::source::gharchive::{DEFAULT_GHARCHIVE_URL, parse_duration, parse_hour};

use crate::api::CorsPolicy;
use crate::listener::ConnectionLimits;
use crate::telemetry::{LogFormat, redact_url};

/// Default ClickHouse HTTP port.
pub const DEFAULT_CLICKHOUSE_PORT: u16 = 8123;

/// The server's configuration. Every flag falls back to the environment variable named in its
/// help, then to its default (README's configuration table).
#[derive(Clone, Parser)]
#[command(
    name = "github-stats-server",
    version,
    about = "Polls GitHub's public events, stores them, and serves metrics over a REST API"
)]
pub struct Config {
    /// Load environment variables from this dotenv file first (variables already set win).
    #[arg(long, value_name = "PATH")]
    pub dotenv: Option<PathBuf>,

    /// Where events are stored: `memory` or `clickhouse`.
    #[arg(long, env = "DATABASE_BACKEND", default_value = "memory")]
    pub database_backend: String,

    /// Directory of the memory store's event file, so that a restart loses nothing.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// ClickHouse HTTP interface [default: http://localhost:8123, or CLICKHOUSE_HOST and
    /// CLICKHOUSE_PORT when set].
    #[arg(long, env = "CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,

    /// ClickHouse host, used when CLICKHOUSE_URL is not set.
    #[arg(long, env = "CLICKHOUSE_HOST")]
    pub clickhouse_host: Option<String>,

    /// ClickHouse HTTP port, used with CLICKHOUSE_HOST.
    #[arg(long, env = "CLICKHOUSE_PORT", default_value_t = DEFAULT_CLICKHOUSE_PORT)]
    pub clickhouse_port: u16,

    /// ClickHouse database, created if missing with its tables.
    #[arg(long, env = "CLICKHOUSE_DATABASE", default_value = "github_stats")]
    pub clickhouse_database: String,

    /// ClickHouse user.
    #[arg(long, env = "CLICKHOUSE_USER", default_value = "default")]
    pub clickhouse_user: String,

    /// ClickHouse password (never logged).
    #[arg(
        long,
        env = "CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub clickhouse_password: String,

    /// ClickHouse cluster mode: a cluster of the servers' remote_servers; local tables on every
    /// node with Distributed tables over them (docs/operations.md, "Running on a cluster").
    #[arg(long, env = "CLICKHOUSE_CLUSTER")]
    pub clickhouse_cluster: Option<String>,

    /// Cluster mode: the nodes' HTTP URLs, comma-separated, in system.clusters order
    /// [default: http://HOST:8123 for each host of system.clusters].
    #[arg(long, env = "CLICKHOUSE_CLUSTER_NODES", value_delimiter = ',')]
    pub clickhouse_cluster_nodes: Vec<String>,

    /// Cluster mode: replicated local tables (needs ZooKeeper or ClickHouse Keeper).
    #[arg(long, env = "CLICKHOUSE_REPLICATED")]
    pub clickhouse_replicated: bool,

    /// GitHub token, optional (alias GITHUB_READ_TOKEN; never logged).
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,

    /// GitHub REST API base URL (GitHub Enterprise, or a local fake in tests).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,

    /// Save every polled answer to EVENTS_DIRECTORY as `YYYY-MM-DDTHH-MM-SS.json`.
    #[arg(long, env = "SAVE_EVENTS_TO_FILES")]
    pub save_events_to_files: bool,

    /// Where raw poll files go when SAVE_EVENTS_TO_FILES is on.
    #[arg(long, env = "EVENTS_DIRECTORY", default_value = "downloaded-events")]
    pub events_directory: PathBuf,

    /// The poller's state across restarts (ETag, next poll time, counters).
    #[arg(
        long,
        env = "CLIENT_STATE_FILE",
        default_value = "state/client-state.json"
    )]
    pub client_state_file: PathBuf,

    /// Where the API listens (`host:port`; port 0 picks a free port, logged at start).
    #[arg(long, env = "BIND_ADDRESS", default_value = "127.0.0.1:8000")]
    pub bind_address: String,

    /// Log level or tracing directives; RUST_LOG wins when set.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log lines: `text` for people, or `json` (one object per line, for log shippers).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// Origins whose pages may call the API from a browser (CORS), comma-separated, such as
    /// `https://dashboard.example.com`, or `*` for any [default: none].
    #[arg(long, env = "CORS_ALLOW_ORIGINS", value_delimiter = ',')]
    pub cors_allow_origins: Vec<String>,

    /// Serve the API only: do not poll GitHub.
    #[arg(long, env = "NO_POLL")]
    pub no_poll: bool,

    /// Seconds a request may take before it is answered with 503.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Most HTTP connections open at once; more wait in the listen backlog until one closes.
    /// Keep it well under the open-file limit (`ulimit -n`).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's whole head (request line and headers), from
    /// connecting or from the request's first byte; a slower one is disconnected.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds a connection may stay open without traffic (between keep-alive requests).
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Follow GH Archive from this hour beside the poller (unset: off): an RFC 3339 hour
    /// (2026-11-01T00:00:00Z), YYYY-MM-DDTHH (UTC), or a duration back from now (24h, 7d).
    #[arg(
        long,
        env = "GHARCHIVE_FROM",
        value_name = "HOUR",
        help_heading = "GH Archive"
    )]
    pub gharchive_from: Option<String>,

    /// Where GH Archive's hour files are: its server, a mirror, or file:///a/local/dir.
    #[arg(
        long,
        env = "GHARCHIVE_URL",
        default_value = DEFAULT_GHARCHIVE_URL,
        value_name = "URL",
        help_heading = "GH Archive"
    )]
    pub gharchive_url: String,

    /// An hour still not published this long after its end is a hole in the archive,
    /// recorded as missing (90m, 24h, 7d).
    #[arg(
        long,
        env = "GHARCHIVE_MISSING_AFTER",
        default_value = "24h",
        value_name = "DURATION",
        help_heading = "GH Archive"
    )]
    pub gharchive_missing_after: String,

    /// The archive follower's position across restarts (the next hour, the hour in progress).
    #[arg(
        long,
        env = "GHARCHIVE_STATE_FILE",
        default_value = "state/gharchive-state.json",
        help_heading = "GH Archive"
    )]
    pub gharchive_state_file: PathBuf,
}

/// The largest `MAX_CONNECTIONS` accepted.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;

/// Where events are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded memory store, persisted in `DATA_DIR`.
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

/// Why the configuration was refused: one line per problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad flags or values that clap rejected (its own message, with usage).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// The dotenv file named by `--dotenv` could not be loaded.
    #[error("cannot load dotenv file {path}: {reason}")]
    Dotenv {
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// Values that parse but make no sense, one line each.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// Whether this is clap's `--help` or `--version` (printed, exit code 0).
    pub fn is_help_or_version(&self) -> bool {
        matches!(self, ConfigError::Usage(e) if matches!(
            e.kind(),
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
        ))
    }
}

impl Config {
    /// Loads the configuration of this process: `--dotenv` first, then flags and environment,
    /// then validation. Call before any thread is started (the dotenv file sets variables).
    pub fn load() -> Result<Config, ConfigError> {
        Config::load_from(std::env::args_os())
    }

    /// [`Config::load`] with explicit arguments (the first is the program name).
    pub fn load_from<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        if let Some(path) = dotenv_argument(&args) {
            dotenvy::from_path(&path).map_err(|e| ConfigError::Dotenv {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        let mut config = Config::try_parse_from(args)?;
        config.apply_aliases(|name| std::env::var(name).ok());
        config.validate()?;
        Ok(config)
    }

    /// Fills values given under their second name (`GITHUB_READ_TOKEN` for `GITHUB_TOKEN`).
    pub fn apply_aliases(&mut self, env: impl Fn(&str) -> Option<String>) {
        if self.github_token.as_deref().is_none_or(str::is_empty) {
            self.github_token = env("GITHUB_READ_TOKEN").filter(|t| !t.is_empty());
        }
    }

    /// Checks the values, reporting every problem (one line each).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = self.backend() {
            problems.push(e);
        }
        if let Err(e) = self.bind_socket_address() {
            problems.push(e);
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            problems.push(format!(
                "invalid LOG_LEVEL '{}', expected error, warn, info, debug, trace or tracing directives",
                self.log_level
            ));
        }
        if let Err(e) = self.log_format() {
            problems.push(e);
        }
        if let Err(e) = self.cors_policy() {
            problems.extend(e);
        }
        if !is_http_url(&self.github_api_url) {
            problems.push(format!(
                "invalid GITHUB_API_URL '{}', expected an http:// or https:// URL",
                redact_url(&self.github_api_url)
            ));
        }
        if self.backend() == Ok(Backend::ClickHouse) {
            let url = self.clickhouse_url();
            if !is_http_url(&url) {
                problems.push(format!(
                    "invalid CLICKHOUSE_URL '{}', expected an http:// or https:// URL",
                    redact_url(&url)
                ));
            }
            if self.clickhouse_database.is_empty()
                || !self
                    .clickhouse_database
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                problems.push(format!(
                    "invalid CLICKHOUSE_DATABASE '{}', expected letters, digits and _",
                    self.clickhouse_database
                ));
            }
        }
        if self.request_timeout_secs == 0 {
            problems.push("invalid REQUEST_TIMEOUT_SECS 0, expected at least 1".to_owned());
        }
        if !(1..=MAX_MAX_CONNECTIONS).contains(&self.max_connections) {
            problems.push(format!(
                "invalid MAX_CONNECTIONS {}, expected 1 to {MAX_MAX_CONNECTIONS}",
                self.max_connections
            ));
        }
        if self.header_read_timeout_secs == 0 {
            problems.push("invalid HEADER_READ_TIMEOUT_SECS 0, expected at least 1".to_owned());
        }
        if self.idle_timeout_secs == 0 {
            problems.push("invalid IDLE_TIMEOUT_SECS 0, expected at least 1".to_owned());
        }
        if let Some(from) = &self.gharchive_from
            && let Err(e) = parse_hour(from, Utc::now())
        {
            problems.push(format!("invalid GHARCHIVE_FROM: {e}"));
        }
        if !is_archive_url(&self.gharchive_url) {
            problems.push(format!(
                "invalid GHARCHIVE_URL '{}', expected an http://, https:// or file:// URL \
                 (https://data.gharchive.org, file:///srv/gharchive)",
                redact_url(&self.gharchive_url)
            ));
        }
        if let Err(e) = parse_duration(&self.gharchive_missing_after) {
            problems.push(format!("invalid GHARCHIVE_MISSING_AFTER: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The storage backend, or the line explaining why the name is unknown.
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

    /// The ClickHouse HTTP URL: `CLICKHOUSE_URL`, else `http://CLICKHOUSE_HOST:CLICKHOUSE_PORT`,
    /// else `http://localhost:8123`.
    pub fn clickhouse_url(&self) -> String {
        match (&self.clickhouse_url, &self.clickhouse_host) {
            (Some(url), _) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
            (_, Some(host)) if !host.is_empty() => {
                format!("http://{host}:{}", self.clickhouse_port)
            }
            _ => format!("http://localhost:{DEFAULT_CLICKHOUSE_PORT}"),
        }
    }

    /// The log format, or the line explaining why the name is unknown.
    pub fn log_format(&self) -> Result<LogFormat, String> {
        LogFormat::parse(&self.log_format).ok_or_else(|| {
            format!(
                "invalid LOG_FORMAT '{}', expected text or json",
                self.log_format
            )
        })
    }

    /// Which origins may call the API from a browser, or one line per bad entry.
    pub fn cors_policy(&self) -> Result<CorsPolicy, Vec<String>> {
        CorsPolicy::from_entries(&self.cors_allow_origins)
    }

    /// `BIND_ADDRESS` resolved to a socket address.
    pub fn bind_socket_address(&self) -> Result<SocketAddr, String> {
        let invalid = || {
            format!(
                "invalid BIND_ADDRESS '{}', expected host:port such as 127.0.0.1:8000",
                self.bind_address
            )
        };
        if let Ok(addr) = self.bind_address.parse::<SocketAddr>() {
            return Ok(addr);
        }
        self.bind_address
            .to_socket_addrs()
            .map_err(|_| invalid())?
            .next()
            .ok_or_else(invalid)
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_timeout_secs)
    }

    /// The connection cap and timeouts of the HTTP server.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

/// Secrets are redacted: `Debug` of a configuration is safe to log.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redact(secret: &str) -> &'static str {
            if secret.is_empty() { "" } else { "<redacted>" }
        }
        f.debug_struct("Config")
            .field("dotenv", &self.dotenv)
            .field("database_backend", &self.database_backend)
            .field("data_dir", &self.data_dir)
            .field("clickhouse_url", &redact_url(&self.clickhouse_url()))
            .field("clickhouse_database", &self.clickhouse_database)
            .field("clickhouse_user", &self.clickhouse_user)
            .field("clickhouse_password", &redact(&self.clickhouse_password))
            .field("clickhouse_cluster", &self.clickhouse_cluster)
            .field(
                "clickhouse_cluster_nodes",
                &self.clickhouse_cluster_nodes.len(),
            )
            .field("clickhouse_replicated", &self.clickhouse_replicated)
            .field(
                "github_token",
                &self.github_token.as_deref().map(redact).unwrap_or("<none>"),
            )
            .field("github_api_url", &redact_url(&self.github_api_url))
            .field("save_events_to_files", &self.save_events_to_files)
            .field("events_directory", &self.events_directory)
            .field("client_state_file", &self.client_state_file)
            .field("bind_address", &self.bind_address)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("cors_allow_origins", &self.cors_allow_origins)
            .field("no_poll", &self.no_poll)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("gharchive_from", &self.gharchive_from)
            .field("gharchive_url", &redact_url(&self.gharchive_url))
            .field("gharchive_missing_after", &self.gharchive_missing_after)
            .field("gharchive_state_file", &self.gharchive_state_file)
            .finish()
    }
}

fn is_archive_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    is_http_url(url.trim()) || lower.starts_with("file:///")
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

/// The path given to `--dotenv PATH` or `--dotenv=PATH`, found before clap parses anything (the
/// file must be loaded before clap reads the environment).
fn dotenv_argument(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_str()?;
        if arg == "--" {
            return None;
        }
        if arg == "--dotenv" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--dotenv=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["github-stats-server"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).expect("arguments parse")
    }

    #[test]
    fn cluster_settings_parse() {
        let config = parse(&[
            "--clickhouse-cluster",
            "two",
            "--clickhouse-cluster-nodes",
            "http://a:8123,http://b:8124",
            "--clickhouse-replicated",
        ]);
        assert_eq!(config.clickhouse_cluster.as_deref(), Some("two"));
        assert_eq!(
            config.clickhouse_cluster_nodes,
            ["http://a:8123", "http://b:8124"]
        );
        assert!(config.clickhouse_replicated);
        let single = parse(&[]);
        assert_eq!(single.clickhouse_cluster, None);
        assert!(single.clickhouse_cluster_nodes.is_empty());
        assert!(!single.clickhouse_replicated);
    }

    #[test]
    fn unknown_backend_is_one_clear_line() {
        let config = parse(&["--database-backend", "postgres"]);
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.lines()
                .any(|l| l == "unknown backend 'postgres', expected memory or clickhouse"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_gets_its_own_line() {
        let config = parse(&[
            "--database-backend",
            "postgres",
            "--bind-address",
            "nowhere",
            "--github-api-url",
            "ftp://x",
            "--log-level",
            "info,=[",
        ]);
        let err = config.validate().unwrap_err().to_string();
        assert_eq!(err.lines().count(), 4, "{err}");
        assert!(err.contains("BIND_ADDRESS 'nowhere'"), "{err}");
        assert!(err.contains("GITHUB_API_URL 'ftp://x'"), "{err}");
        assert!(err.contains("LOG_LEVEL"), "{err}");
    }

    #[test]
    fn archive_settings_are_checked_and_their_secrets_hidden() {
        let config = parse(&[
            "--gharchive-from",
            "yesterday",
            "--gharchive-url",
            "ftp://alice:s3cret@mirror.example/gh",
            "--gharchive-missing-after",
            "24",
        ]);
        let err = config.validate().unwrap_err().to_string();
        assert_eq!(err.lines().count(), 3, "{err}");
        assert!(err.contains("invalid GHARCHIVE_FROM"), "{err}");
        assert!(err.contains("invalid GHARCHIVE_URL"), "{err}");
        assert!(err.contains("invalid GHARCHIVE_MISSING_AFTER"), "{err}");
        assert!(!err.contains("s3cret") && !format!("{config:?}").contains("s3cret"));
        for good in ["2026-11-01T00:00:00Z", "2026-11-01T00", "24h", "7d"] {
            let config = parse(&[
                "--gharchive-from",
                good,
                "--gharchive-url",
                "file:///srv/gh",
            ]);
            assert!(config.validate().is_ok(), "{good}");
        }
        let off = parse(&[]);
        assert_eq!(
            off.gharchive_from, None,
            "following GH Archive is off by default"
        );
        assert_eq!(off.gharchive_url, "https://data.gharchive.org");
    }

    #[test]
    fn clickhouse_url_from_host_and_port() {
        let mut config = parse(&[
            "--clickhouse-host",
            "db.internal",
            "--clickhouse-port",
            "8124",
        ]);
        config.clickhouse_url = None;
        assert_eq!(config.clickhouse_url(), "http://db.internal:8124");
        config.clickhouse_url = Some("http://127.0.0.1:18123/".into());
        assert_eq!(config.clickhouse_url(), "http://127.0.0.1:18123");
        config.clickhouse_url = None;
        config.clickhouse_host = None;
        assert_eq!(config.clickhouse_url(), "http://localhost:8123");
    }

    #[test]
    fn github_read_token_is_an_alias() {
        let mut config = parse(&[]);
        config.github_token = None;
        config.apply_aliases(|name| (name == "GITHUB_READ_TOKEN").then(|| "ghp_alias".into()));
        assert_eq!(config.github_token.as_deref(), Some("ghp_alias"));
        config.apply_aliases(|_| Some("other".into()));
        assert_eq!(config.github_token.as_deref(), Some("ghp_alias"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut config = parse(&[
            "--clickhouse-password",
            "hunter2",
            "--clickhouse-url",
            "http://reader:chpass@db:8123",
            "--github-api-url",
            "https://bot:ghpass@github.example/api/v3",
        ]);
        config.github_token = Some("ghp_secret".into());
        let shown = format!("{config:?}");
        for secret in [
            "hunter2",
            "ghp_secret",
            "chpass",
            "ghpass",
            "reader",
            "bot:",
        ] {
            assert!(!shown.contains(secret), "{secret}: {shown}");
        }
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("http://<redacted>@db:8123"), "{shown}");
        assert!(
            shown.contains("https://<redacted>@github.example/api/v3"),
            "{shown}"
        );
    }

    #[test]
    fn a_refused_url_is_quoted_without_its_credentials() {
        let config = parse(&[
            "--github-api-url",
            "ftp://bot:ghpass@github.example",
            "--database-backend",
            "clickhouse",
            "--clickhouse-url",
            "tcp://reader:chpass@db:9000",
        ]);
        let err = config.validate().unwrap_err().to_string();
        assert_eq!(err.lines().count(), 2, "{err}");
        assert!(err.contains("'ftp://<redacted>@github.example'"), "{err}");
        assert!(!err.contains("ghpass") && !err.contains("chpass"), "{err}");
    }

    #[test]
    fn log_format_and_cors_origins_are_checked() {
        let config = parse(&["--log-format", "json", "--cors-allow-origins", "*"]);
        assert_eq!(config.log_format(), Ok(LogFormat::Json));
        assert_eq!(config.cors_policy(), Ok(CorsPolicy::AnyOrigin));
        let defaults = parse(&[]);
        if std::env::var_os("LOG_FORMAT").is_none() {
            assert_eq!(defaults.log_format(), Ok(LogFormat::Text));
        }
        if std::env::var_os("CORS_ALLOW_ORIGINS").is_none() {
            assert_eq!(defaults.cors_policy(), Ok(CorsPolicy::Disabled));
        }
        let config = parse(&[
            "--log-format",
            "yaml",
            "--cors-allow-origins",
            "https://ok.example,not-an-origin,https://a.example/path",
        ]);
        let err = config.validate().unwrap_err().to_string();
        assert_eq!(err.lines().count(), 3, "{err}");
        assert!(
            err.lines()
                .any(|l| l == "invalid LOG_FORMAT 'yaml', expected text or json"),
            "{err}"
        );
        assert!(err.contains("'not-an-origin'"), "{err}");
        assert!(err.contains("'https://a.example/path'"), "{err}");
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = parse(&[]);
        // Only the values no test environment overrides (scripts/test.sh sets CLICKHOUSE_URL).
        assert_eq!(config.clickhouse_port, 8123);
        assert_eq!(config.request_timeout_secs, 30);
        assert_eq!(config.connection_limits(), ConnectionLimits::default());
        assert!(!config.no_poll || std::env::var_os("NO_POLL").is_some());
        assert!(parse(&["--no-poll"]).no_poll);
    }

    #[test]
    fn zero_connection_limits_are_refused() {
        let config = parse(&[
            "--max-connections",
            "0",
            "--header-read-timeout-secs",
            "0",
            "--idle-timeout-secs",
            "0",
        ]);
        let err = config.validate().unwrap_err().to_string();
        for name in [
            "MAX_CONNECTIONS",
            "HEADER_READ_TIMEOUT_SECS",
            "IDLE_TIMEOUT_SECS",
        ] {
            assert!(err.lines().any(|l| l.contains(name)), "{name}: {err}");
        }
    }

    #[test]
    fn dotenv_argument_is_found_in_both_forms() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            dotenv_argument(&args(&["x", "--no-poll", "--dotenv", "gh.env"])),
            Some(PathBuf::from("gh.env"))
        );
        assert_eq!(
            dotenv_argument(&args(&["x", "--dotenv=a.env"])),
            Some(PathBuf::from("a.env"))
        );
        assert_eq!(dotenv_argument(&args(&["x", "--no-poll"])), None);
    }

    #[test]
    fn a_missing_dotenv_file_is_an_error() {
        let err = Config::load_from(["x", "--dotenv", "/nonexistent/gh.env"]).unwrap_err();
        assert!(matches!(err, ConfigError::Dotenv { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/gh.env"), "{err}");
    }
}
