//! The command line (a contract, documented in `docs/backfill.md`): flags with environment
//! fallbacks, and the dotenv file that feeds those fallbacks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use github_stats_core::coverage::hour_floor;
use github_stats_core::source::file::DEFAULT_CHUNK_BYTES;
use github_stats_core::source::gharchive::{DEFAULT_GHARCHIVE_URL, HourRange, parse_duration};

use crate::{ArchiveImport, ClickHouseConfig, Config, ProgressMode, StoreConfig};

/// The dotenv file read when `--dotenv` is not given; it may be missing.
pub const DEFAULT_DOTENV: &str = "gh.env";

/// Where events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The embedded store, persisted in `DATA_DIR` (which the server loads).
    Memory,
    /// ClickHouse over HTTP.
    Clickhouse,
}

/// The shape of log lines (the server's `LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people (and a progress bar on a terminal).
    Text,
    /// One JSON object per line (time, level, target, message, fields), for log shippers;
    /// progress as log lines, never a bar.
    Json,
}

/// `github-stats-backfill`: imports saved poll files and GH Archive hours into a store.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "github-stats-backfill",
    version,
    about = "Import saved GitHub event files (poll files, GH Archive hours) into a github-stats store",
    long_about = "Import saved GitHub event files into a github-stats store.\n\n\
        Reads JSON arrays (the poller's poll files), JSON lines (GH Archive), and gzip of either, \
        from FILES and directories (walked recursively), in chronological order. Keeps \
        WatchEvent, PullRequestEvent and IssuesEvent; re-running an import adds nothing.\n\n\
        With --gharchive FROM..UNTIL, downloads GH Archive's hours instead (--jobs at once), \
        records what each hour held, and skips on a re-run the hours already imported.\n\n\
        Exit codes: 0 every file (hour) was read; 1 some file could not be read, or some hour \
        was damaged (listed at the end), or the store failed; 2 bad usage; 130 interrupted \
        (Ctrl-C), re-run to complete."
)]
pub struct Args {
    /// Dotenv file whose variables serve as fallbacks [default: gh.env]. A missing default file
    /// is fine; a missing file named here is an error.
    #[arg(long, value_name = "PATH")]
    pub dotenv: Option<PathBuf>,

    /// Directory of saved event files, walked recursively. Read when no FILES are named, or
    /// when given on the command line alongside FILES.
    #[arg(
        long,
        env = "EVENTS_DIRECTORY",
        default_value = "downloaded-events",
        value_name = "DIR"
    )]
    pub events_dir: PathBuf,

    /// Parse, filter, deduplicate and report, but write nothing (duplicates are counted within
    /// the input only).
    #[arg(long)]
    pub dry_run: bool,

    /// ClickHouse: after the import (or alone, when no FILES or --events-dir are given),
    /// correct the count tables to the counts of the merged events. Needed only after two writers inserted
    /// the same events at the same moment (docs/clickhouse.md, "Two writers racing"); run it
    /// while nothing else writes.
    #[arg(long)]
    pub recount: bool,

    /// Where events go.
    #[arg(long, env = "DATABASE_BACKEND", value_enum, ignore_case = true, default_value_t = Backend::Memory)]
    pub backend: Backend,

    /// Directory of the memory store (the server loads the same directory).
    #[arg(long, env = "DATA_DIR", default_value = "data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Kept events per insert.
    #[arg(long, default_value_t = 100_000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,

    /// Parallel parsers [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,

    /// Bytes of JSON lines parsed per chunk (the unit of parallel parsing).
    #[arg(long, default_value_t = DEFAULT_CHUNK_BYTES as u64, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(4096..=(1 << 30)))]
    pub chunk_bytes: u64,

    /// Seconds between progress log lines when stderr is not a terminal.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub progress_interval: u64,

    /// Log lines: `text`, or `json` (one object per line, for log shippers).
    #[arg(long, env = "LOG_FORMAT", value_enum, ignore_case = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// ClickHouse HTTP interface [default: http://localhost:8123, or CLICKHOUSE_HOST and
    /// CLICKHOUSE_PORT].
    #[arg(
        long,
        env = "CLICKHOUSE_URL",
        value_name = "URL",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_url: Option<String>,

    /// ClickHouse host, when CLICKHOUSE_URL is not set.
    #[arg(
        long,
        env = "CLICKHOUSE_HOST",
        value_name = "HOST",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_host: Option<String>,

    /// ClickHouse HTTP port, when CLICKHOUSE_URL is not set.
    #[arg(
        long,
        env = "CLICKHOUSE_PORT",
        value_name = "PORT",
        help_heading = "ClickHouse"
    )]
    pub clickhouse_port: Option<u16>,

    /// ClickHouse database, created if missing.
    #[arg(
        long,
        env = "CLICKHOUSE_DATABASE",
        default_value = "github_stats",
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

    /// ClickHouse password (prefer the environment: command lines are visible to other users).
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

    /// ClickHouse cluster mode: the cluster's name in the servers' remote_servers (see
    /// docs/operations.md, "Running on a cluster").
    #[arg(long, env = "CLICKHOUSE_CLUSTER", help_heading = "ClickHouse")]
    pub clickhouse_cluster: Option<String>,

    /// Cluster mode: the nodes' HTTP URLs, comma-separated, in system.clusters order
    /// [default: http://HOST:8123 for each host of system.clusters].
    #[arg(
        long,
        env = "CLICKHOUSE_CLUSTER_NODES",
        value_delimiter = ',',
        help_heading = "ClickHouse"
    )]
    pub clickhouse_cluster_nodes: Vec<String>,

    /// Cluster mode: replicated local tables (ReplicatedMergeTree; needs ZooKeeper or Keeper).
    #[arg(
        long,
        env = "CLICKHOUSE_REPLICATED",
        default_value_t = false,
        action = clap::ArgAction::Set,
        help_heading = "ClickHouse"
    )]
    pub clickhouse_replicated: bool,

    /// Download and import GH Archive's hours FROM..UNTIL (UNTIL exclusive; FROM.. up to the
    /// current hour) instead of files. Each side: YYYY-MM-DDTHH (UTC), an RFC 3339 hour
    /// (2026-11-30T00:00:00Z), or a duration back from now (30d, 48h).
    #[arg(
        long,
        value_name = "FROM..UNTIL",
        value_parser = parse_gharchive_range,
        conflicts_with = "files",
        help_heading = "GH Archive"
    )]
    pub gharchive: Option<HourRange>,

    /// Where GH Archive's hour files are: its server, a mirror, or file:///a/local/dir.
    #[arg(
        long,
        env = "GHARCHIVE_URL",
        default_value = DEFAULT_GHARCHIVE_URL,
        value_name = "URL",
        value_parser = parse_gharchive_url,
        help_heading = "GH Archive"
    )]
    pub gharchive_url: String,

    /// An hour still not published this long after its end is a hole in the archive
    /// (recorded as missing); sooner, it is pending (a later run takes it).
    #[arg(
        long,
        env = "GHARCHIVE_MISSING_AFTER",
        default_value = "24h",
        value_name = "DURATION",
        value_parser = parse_gharchive_duration,
        help_heading = "GH Archive"
    )]
    pub gharchive_missing_after: Duration,

    /// Event files and directories to import (directories are walked recursively).
    #[arg(value_name = "FILES")]
    pub files: Vec<PathBuf>,
}

fn parse_gharchive_range(text: &str) -> Result<HourRange, String> {
    HourRange::parse(text, Utc::now()).map_err(|e| e.to_string())
}

fn parse_gharchive_url(text: &str) -> Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    if ["http://", "https://", "file://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
    {
        Ok(text.trim().to_owned())
    } else {
        Err(format!(
            "{text:?} is not an http, https or file URL (https://data.gharchive.org, file:///srv/gharchive)"
        ))
    }
}

fn parse_gharchive_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// Parsed arguments and whether `--events-dir` was given on the command line.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The arguments.
    pub args: Args,
    /// Whether `--events-dir` came from the command line (not the environment or the default).
    pub events_dir_on_command_line: bool,
}

impl Parsed {
    /// Parses `argv` (program name first); clap's error carries exit code 2.
    pub fn try_parse_from<I, T>(argv: I) -> Result<Parsed, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Args::command().try_get_matches_from(argv)?;
        Parsed::from_matches(&matches)
    }

    fn from_matches(matches: &ArgMatches) -> Result<Parsed, clap::Error> {
        Ok(Parsed {
            args: Args::from_arg_matches(matches)?,
            events_dir_on_command_line: matches.value_source("events_dir")
                == Some(ValueSource::CommandLine),
        })
    }

    /// What to import and where: the [`Config`] for [`run`](crate::run).
    pub fn into_config(self, progress: ProgressMode) -> anyhow::Result<Config> {
        let Parsed {
            args,
            events_dir_on_command_line,
        } = self;
        let mut inputs = args.files;
        let gharchive = match args.gharchive {
            None => None,
            Some(range) => {
                let until = range.until.unwrap_or_else(|| hour_floor(Utc::now()));
                if until <= range.from {
                    bail!("nothing to import: {range} holds no hour before the current one");
                }
                let mut import = ArchiveImport::new(range.from, until);
                import.base_url = args.gharchive_url;
                import.missing_after = args.gharchive_missing_after;
                Some(import)
            }
        };
        let recount_only = args.recount && inputs.is_empty() && !events_dir_on_command_line;
        if gharchive.is_none() && !recount_only && (inputs.is_empty() || events_dir_on_command_line)
        {
            if inputs.is_empty() && !args.events_dir.exists() {
                bail!(
                    "nothing to import: the events directory {} does not exist (name FILES, or set --events-dir / EVENTS_DIRECTORY)",
                    args.events_dir.display()
                );
            }
            inputs.insert(0, args.events_dir);
        }
        let store = match args.backend {
            Backend::Memory => StoreConfig::Memory {
                data_dir: args.data_dir,
            },
            Backend::Clickhouse => {
                let url = match (args.clickhouse_url, args.clickhouse_host) {
                    (Some(url), _) if !url.trim().is_empty() => url,
                    (_, Some(host)) if !host.trim().is_empty() => {
                        format!("http://{}:{}", host, args.clickhouse_port.unwrap_or(8123))
                    }
                    _ => format!("http://localhost:{}", args.clickhouse_port.unwrap_or(8123)),
                };
                StoreConfig::ClickHouse(ClickHouseConfig {
                    url,
                    database: args.clickhouse_database,
                    user: args.clickhouse_user,
                    password: args.clickhouse_password,
                    cluster: args.clickhouse_cluster.filter(|c| !c.trim().is_empty()),
                    cluster_nodes: args
                        .clickhouse_cluster_nodes
                        .into_iter()
                        .map(|u| u.trim().to_owned())
                        .filter(|u| !u.is_empty())
                        .collect(),
                    replicated: args.clickhouse_replicated,
                })
            }
        };
        let jobs = match args.jobs {
            Some(jobs) => usize::from(jobs),
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let progress = match progress {
            ProgressMode::Log { .. } => ProgressMode::Log {
                every: Duration::from_secs(args.progress_interval.max(1)),
            },
            other => other,
        };
        Ok(Config {
            inputs,
            dry_run: args.dry_run,
            recount: args.recount,
            store,
            batch_size: args.batch_size as usize,
            jobs,
            chunk_bytes: usize::try_from(args.chunk_bytes).context("--chunk-bytes too large")?,
            progress,
            gharchive,
        })
    }
}

/// What [`load_dotenv`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotenvOutcome {
    /// The file was read.
    Loaded(PathBuf),
    /// The default file does not exist, which is fine.
    DefaultMissing,
}

/// Loads the dotenv file named by `--dotenv` (or [`DEFAULT_DOTENV`]) into the process
/// environment, without overriding variables already set. Call it before any thread starts:
/// it writes the environment.
pub fn load_dotenv(named: Option<&Path>) -> anyhow::Result<DotenvOutcome> {
    let path = named.unwrap_or(Path::new(DEFAULT_DOTENV));
    match dotenvy::from_path(path) {
        Ok(()) => Ok(DotenvOutcome::Loaded(path.to_path_buf())),
        Err(e) if named.is_none() && e.not_found() => Ok(DotenvOutcome::DefaultMissing),
        Err(e) => Err(anyhow::Error::new(e))
            .with_context(|| format!("cannot read dotenv file {}", path.display())),
    }
}
