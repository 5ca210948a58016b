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
use github_stats_cli::{ArchiveArgs, DotenvArgs, LogArgs, StoreArgs};
use github_stats_core::SecretUrl;
use github_stats_core::source::github::{DEFAULT_API_URL, PollMode, SaveFormat};

/// The shortest `POLL_MIN_INTERVAL_MS` accepted: a poller must not turn into a tight loop.
pub const MIN_POLL_INTERVAL_MS: u64 = 100;

pub use github_stats_cli::ConfigError;
use github_stats_core::source::gharchive::parse_hour;

use crate::api::CorsPolicy;
use crate::listener::ConnectionLimits;

/// The server's configuration. Every flag falls back to the environment variable named in its
/// help, then to its default (README's configuration table). The store, GH Archive and logging
/// settings are the ones `github-stats-backfill` has too ([`github_stats_cli`]).
#[derive(Clone, Parser)]
#[command(
    name = "github-stats-server",
    version,
    about = "Polls GitHub's public events, stores them, and serves metrics over a REST API"
)]
pub struct Config {
    /// `--dotenv PATH`.
    #[command(flatten)]
    pub dotenv: DotenvArgs,

    /// Where events are stored, and how to reach the store.
    #[command(flatten)]
    pub store: StoreArgs,

    /// GitHub token, optional (alias GITHUB_READ_TOKEN; never shown).
    #[arg(
        long,
        env = "GITHUB_TOKEN",
        hide_env_values = true,
        help_heading = "GitHub"
    )]
    pub github_token: Option<String>,

    /// GitHub REST API base URL (GitHub Enterprise, or a local fake in tests). Credentials in it
    /// are never shown.
    #[arg(
        long,
        env = "GITHUB_API_URL",
        hide_env_values = true,
        default_value = DEFAULT_API_URL,
        value_name = "URL",
        help_heading = "GitHub"
    )]
    pub github_api_url: SecretUrl,

    /// Save what the poller receives to EVENTS_DIRECTORY, in SAVE_EVENTS_FORMAT.
    #[arg(long, env = "SAVE_EVENTS_TO_FILES", help_heading = "GitHub")]
    pub save_events_to_files: bool,

    /// `poll`: each answer as `YYYY-MM-DDTHH-MM-SS.json`; `gharchive`: every event received,
    /// once, in GH Archive's hour files `YYYY-MM-DD-H.json.gz` (by receive hour, UTC) that the
    /// follower and the backfill read [default: poll].
    #[arg(
        long,
        env = "SAVE_EVENTS_FORMAT",
        value_name = "FORMAT",
        help_heading = "GitHub"
    )]
    pub save_events_format: Option<String>,

    /// `interval`: wait GitHub's X-Poll-Interval (60 s) between polls, a few percent of the
    /// public stream; `adaptive`: poll as often as the rate limit allows, which reads nearly
    /// all of it on one token.
    #[arg(
        long,
        env = "POLL_MODE",
        default_value = "interval",
        value_name = "MODE",
        help_heading = "GitHub"
    )]
    pub poll_mode: String,

    /// Adaptive mode: requests of the rate limit left for other uses of the token
    /// [default: 10% of X-RateLimit-Limit].
    #[arg(
        long,
        env = "POLL_RESERVE",
        value_name = "REQUESTS",
        help_heading = "GitHub"
    )]
    pub poll_reserve: Option<u64>,

    /// Adaptive mode: the shortest wait between two polls, in milliseconds (at least 100).
    #[arg(
        long,
        env = "POLL_MIN_INTERVAL_MS",
        default_value_t = 500,
        value_name = "MS",
        help_heading = "GitHub"
    )]
    pub poll_min_interval_ms: u64,

    /// Where raw poll files go when SAVE_EVENTS_TO_FILES is on.
    #[arg(
        long,
        env = "EVENTS_DIRECTORY",
        default_value = "downloaded-events",
        value_name = "DIR",
        help_heading = "GitHub"
    )]
    pub events_directory: PathBuf,

    /// The poller's state across restarts (ETag, next poll time, counters) [default:
    /// DATA_DIR/client-state.json, beside the store's data it describes].
    #[arg(
        long,
        env = "CLIENT_STATE_FILE",
        value_name = "PATH",
        help_heading = "GitHub"
    )]
    pub client_state_file: Option<PathBuf>,

    /// Serve the API only: do not poll GitHub.
    #[arg(long, env = "NO_POLL", help_heading = "GitHub")]
    pub no_poll: bool,

    /// Where the API listens (`host:port`; port 0 picks a free port, logged at start).
    #[arg(long, env = "BIND_ADDRESS", default_value = "127.0.0.1:8000")]
    pub bind_address: String,

    /// Origins whose pages may call the API from a browser (CORS), comma-separated, such as
    /// `https://dashboard.example.com`, or `*` for any [default: none].
    #[arg(long, env = "CORS_ALLOW_ORIGINS", value_delimiter = ',')]
    pub cors_allow_origins: Vec<String>,

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

    /// Seconds an answer may stay unsent because the client reads nothing (nginx's
    /// `send_timeout`, counted from the last write that went on); the connection is then closed.
    #[arg(long, env = "WRITE_TIMEOUT_SECS", default_value_t = 60)]
    pub write_timeout_secs: u64,

    /// `LOG_LEVEL` and `LOG_FORMAT`.
    #[command(flatten)]
    pub log: LogArgs,

    /// Follow GH Archive from this hour beside the poller (unset: off): an RFC 3339 hour
    /// (2026-11-01T00:00:00Z), YYYY-MM-DDTHH (UTC), or a duration back from now (24h, 7d).
    #[arg(
        long,
        env = "GHARCHIVE_FROM",
        value_name = "HOUR",
        help_heading = "GH Archive"
    )]
    pub gharchive_from: Option<String>,

    /// `GHARCHIVE_URL` and `GHARCHIVE_MISSING_AFTER`.
    #[command(flatten)]
    pub archive: ArchiveArgs,

    /// The archive follower's position across restarts (the next hour, the hour in progress)
    /// [default: DATA_DIR/gharchive-state.json].
    #[arg(
        long,
        env = "GHARCHIVE_STATE_FILE",
        value_name = "PATH",
        help_heading = "GH Archive"
    )]
    pub gharchive_state_file: Option<PathBuf>,
}

impl Config {
    /// The poller's state file: `CLIENT_STATE_FILE`, else beside the store's data.
    pub fn client_state_path(&self) -> PathBuf {
        state_path(
            self.client_state_file.as_ref(),
            &self.store.data_dir,
            "client-state.json",
        )
    }

    /// The archive follower's state file: `GHARCHIVE_STATE_FILE`, else beside the store's data.
    pub fn gharchive_state_path(&self) -> PathBuf {
        state_path(
            self.gharchive_state_file.as_ref(),
            &self.store.data_dir,
            "gharchive-state.json",
        )
    }
}

/// `configured`, else `data_dir/name`; a state file left at the working directory's
/// `state/name` (the default before 0.1) is used where it is, with a warning, until moved.
fn state_path(configured: Option<&PathBuf>, data_dir: &std::path::Path, name: &str) -> PathBuf {
    state_path_in(configured, data_dir, std::path::Path::new("state"), name)
}

fn state_path_in(
    configured: Option<&PathBuf>,
    data_dir: &std::path::Path,
    legacy_dir: &std::path::Path,
    name: &str,
) -> PathBuf {
    if let Some(path) = configured {
        return path.clone();
    }
    let beside_data = data_dir.join(name);
    let legacy = legacy_dir.join(name);
    if !beside_data.exists() && legacy.is_file() {
        tracing::warn!(
            state_file = %legacy.display(),
            default = %beside_data.display(),
            "using a state file at its old default place; move it beside the store's data"
        );
        return legacy;
    }
    beside_data
}

/// The largest `MAX_CONNECTIONS` accepted.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;

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
        let (mut config, _) = github_stats_cli::parse::<Config>(args, None)?;
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
        if let Err(e) = self.store.store_config() {
            problems.extend(e);
        }
        if let Err(e) = self.bind_socket_address() {
            problems.push(e);
        }
        problems.extend(self.log.problems());
        if let Err(e) = self.cors_policy() {
            problems.extend(e);
        }
        if !is_http_url(self.github_api_url.expose_secret()) {
            problems.push(format!(
                "invalid GITHUB_API_URL '{}', expected an http:// or https:// URL",
                self.github_api_url
            ));
        }
        if !(1..=MAX_MAX_CONNECTIONS).contains(&self.max_connections) {
            problems.push(format!(
                "invalid MAX_CONNECTIONS {}, expected 1 to {MAX_MAX_CONNECTIONS}",
                self.max_connections
            ));
        }
        if let Err(e) = self.poll_mode() {
            problems.push(e);
        }
        if let Err(e) = self.save_format() {
            problems.push(e);
        }
        if self.save_events_format.is_some() && !self.save_events_to_files {
            problems.push(
                "SAVE_EVENTS_FORMAT is set but SAVE_EVENTS_TO_FILES is not: nothing would be saved, set SAVE_EVENTS_TO_FILES=true"
                    .to_owned(),
            );
        }
        if self.poll_min_interval_ms < MIN_POLL_INTERVAL_MS {
            problems.push(format!(
                "invalid POLL_MIN_INTERVAL_MS {}, expected at least {MIN_POLL_INTERVAL_MS}",
                self.poll_min_interval_ms
            ));
        }
        if self.header_read_timeout_secs == 0 {
            problems.push("invalid HEADER_READ_TIMEOUT_SECS 0, expected at least 1".to_owned());
        }
        if self.idle_timeout_secs == 0 {
            problems.push("invalid IDLE_TIMEOUT_SECS 0, expected at least 1".to_owned());
        }
        if self.write_timeout_secs == 0 {
            problems.push("invalid WRITE_TIMEOUT_SECS 0, expected at least 1".to_owned());
        }
        if let Some(from) = &self.gharchive_from
            && let Err(e) = parse_hour(from, Utc::now())
        {
            problems.push(format!("invalid GHARCHIVE_FROM: {e}"));
        }
        problems.extend(self.archive.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// `POLL_MODE`.
    pub fn poll_mode(&self) -> Result<PollMode, String> {
        match self.poll_mode.trim().to_ascii_lowercase().as_str() {
            "interval" => Ok(PollMode::Interval),
            "adaptive" => Ok(PollMode::Adaptive),
            other => Err(format!(
                "invalid POLL_MODE '{other}', expected interval or adaptive"
            )),
        }
    }

    /// `SAVE_EVENTS_FORMAT`.
    pub fn save_format(&self) -> Result<SaveFormat, String> {
        match self
            .save_events_format
            .as_deref()
            .map(|f| f.trim().to_ascii_lowercase())
        {
            None => Ok(SaveFormat::Poll),
            Some(f) if f == "poll" => Ok(SaveFormat::Poll),
            Some(f) if f == "gharchive" => Ok(SaveFormat::GhArchive),
            Some(other) => Err(format!(
                "invalid SAVE_EVENTS_FORMAT '{other}', expected poll or gharchive"
            )),
        }
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

    /// The per-request timeout (`REQUEST_TIMEOUT_SECS`: the API's and the store's).
    pub fn request_timeout(&self) -> std::time::Duration {
        self.store.request_timeout()
    }

    /// The connection cap and timeouts of the HTTP server.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
            write_timeout: std::time::Duration::from_secs(self.write_timeout_secs),
        }
    }
}

/// Secrets are redacted: `Debug` of a configuration is safe to log.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("dotenv", &self.dotenv.dotenv)
            .field("store", &self.store)
            .field(
                "github_token",
                &match self.github_token.as_deref() {
                    None => "<none>",
                    Some("") => "",
                    Some(_) => "<redacted>",
                },
            )
            .field("github_api_url", &self.github_api_url)
            .field("save_events_to_files", &self.save_events_to_files)
            .field("save_events_format", &self.save_events_format)
            .field("poll_mode", &self.poll_mode)
            .field("poll_reserve", &self.poll_reserve)
            .field("poll_min_interval_ms", &self.poll_min_interval_ms)
            .field("events_directory", &self.events_directory)
            .field("client_state_file", &self.client_state_file)
            .field("no_poll", &self.no_poll)
            .field("bind_address", &self.bind_address)
            .field("cors_allow_origins", &self.cors_allow_origins)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .field("write_timeout_secs", &self.write_timeout_secs)
            .field("log", &self.log)
            .field("gharchive_from", &self.gharchive_from)
            .field("archive", &self.archive)
            .field("gharchive_state_file", &self.gharchive_state_file)
            .finish()
    }
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use github_stats_cli::LogFormat;

    use super::*;

    #[test]
    fn state_files_default_beside_the_store_and_an_old_one_is_kept_until_moved() {
        let dir = tempfile::tempdir().unwrap();
        let (data, legacy) = (dir.path().join("data"), dir.path().join("state"));
        let configured = dir.path().join("elsewhere.json");
        assert_eq!(
            state_path_in(Some(&configured), &data, &legacy, "client-state.json"),
            configured
        );
        assert_eq!(
            state_path_in(None, &data, &legacy, "client-state.json"),
            data.join("client-state.json")
        );
        // A state file at the old default, none beside the data: used where it is.
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("client-state.json"), b"{}").unwrap();
        assert_eq!(
            state_path_in(None, &data, &legacy, "client-state.json"),
            legacy.join("client-state.json")
        );
        // Once one is beside the data, that one wins.
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("client-state.json"), b"{}").unwrap();
        assert_eq!(
            state_path_in(None, &data, &legacy, "client-state.json"),
            data.join("client-state.json")
        );
    }

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
        assert_eq!(config.store.clickhouse_cluster.as_deref(), Some("two"));
        assert_eq!(
            config.store.clickhouse_cluster_nodes,
            [SecretUrl::from("http://a:8123"), "http://b:8124".into()]
        );
        assert!(config.store.clickhouse_replicated);
        let single = parse(&[]);
        if std::env::var_os("CLICKHOUSE_CLUSTER").is_none() {
            assert_eq!(single.store.clickhouse_cluster, None);
            assert!(single.store.clickhouse_cluster_nodes.is_empty());
            assert!(!single.store.clickhouse_replicated);
        }
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
        assert_eq!(
            off.archive.gharchive_url.expose_secret(),
            "https://data.gharchive.org"
        );
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
        assert_eq!(config.log.format(), Ok(LogFormat::Json));
        assert_eq!(config.cors_policy(), Ok(CorsPolicy::AnyOrigin));
        let defaults = parse(&[]);
        if std::env::var_os("LOG_FORMAT").is_none() {
            assert_eq!(defaults.log.format(), Ok(LogFormat::Text));
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
        assert_eq!(config.request_timeout(), std::time::Duration::from_secs(30));
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
            "--write-timeout-secs",
            "0",
        ]);
        let err = config.validate().unwrap_err().to_string();
        for name in [
            "MAX_CONNECTIONS",
            "HEADER_READ_TIMEOUT_SECS",
            "IDLE_TIMEOUT_SECS",
            "WRITE_TIMEOUT_SECS",
        ] {
            assert!(err.lines().any(|l| l.contains(name)), "{name}: {err}");
        }
    }

    #[test]
    fn poll_settings_parse_and_bad_ones_are_refused() {
        let config = parse(&[
            "--poll-mode",
            "Adaptive",
            "--poll-reserve",
            "0",
            "--save-events-to-files",
            "--save-events-format",
            "gharchive",
        ]);
        assert_eq!(config.poll_mode(), Ok(PollMode::Adaptive));
        assert_eq!(config.save_format(), Ok(SaveFormat::GhArchive));
        assert_eq!(config.poll_reserve, Some(0));
        let github = crate::startup::github_config(&config);
        assert_eq!(github.mode, PollMode::Adaptive);
        assert_eq!(github.save_format, SaveFormat::GhArchive);
        assert_eq!(
            github.min_poll_interval,
            std::time::Duration::from_millis(500)
        );
        assert!(github.events_dir.is_some());

        let config = parse(&[
            "--poll-mode",
            "fast",
            "--save-events-format",
            "gharchive",
            "--poll-min-interval-ms",
            "10",
        ]);
        let err = config.validate().unwrap_err().to_string();
        for needle in [
            "POLL_MODE 'fast'",
            "SAVE_EVENTS_TO_FILES=true",
            "POLL_MIN_INTERVAL_MS 10",
        ] {
            assert!(err.lines().any(|l| l.contains(needle)), "{needle}: {err}");
        }
        let config = parse(&["--save-events-to-files", "--save-events-format", "csv"]);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("SAVE_EVENTS_FORMAT 'csv'"), "{err}");
    }

    #[test]
    fn a_missing_dotenv_file_is_an_error() {
        let err = Config::load_from(["x", "--dotenv", "/nonexistent/gh.env"]).unwrap_err();
        assert!(matches!(err, ConfigError::Dotenv { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/gh.env"), "{err}");
    }
}
