//! The command line (a contract, documented in `docs/backfill.md`): flags with environment
//! fallbacks, and the dotenv file that feeds those fallbacks. The store, GH Archive and logging
//! settings are the server's too ([`github_stats_cli`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use github_stats_cli::{ArchiveArgs, Backend, ConfigError, DotenvArgs, LogArgs, StoreArgs};
use github_stats_core::coverage::hour_floor;
use github_stats_core::source::file::DEFAULT_CHUNK_BYTES;
use github_stats_core::source::gharchive::HourRange;

use crate::{ArchiveImport, Config, ProgressMode};

/// The dotenv file read when `--dotenv` is not given; it may be missing.
pub const DEFAULT_DOTENV: &str = "gh.env";

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
        (Ctrl-C), re-run to complete.",
    mut_arg("dotenv", |arg| arg.help(
        "Dotenv file whose variables serve as fallbacks (variables already set win) \
         [default: gh.env]. A missing default file is fine; a missing file named here is an \
         error"
    ))
)]
pub struct Args {
    /// `--dotenv PATH`.
    #[command(flatten)]
    pub dotenv: DotenvArgs,

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

    /// Where events go, and how to reach the store.
    #[command(flatten)]
    pub store: StoreArgs,

    /// `LOG_LEVEL` and `LOG_FORMAT`.
    #[command(flatten)]
    pub log: LogArgs,

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

    /// `GHARCHIVE_URL` and `GHARCHIVE_MISSING_AFTER`.
    #[command(flatten)]
    pub archive: ArchiveArgs,

    /// Event files and directories to import (directories are walked recursively).
    #[arg(value_name = "FILES")]
    pub files: Vec<PathBuf>,
}

fn parse_gharchive_range(text: &str) -> Result<HourRange, String> {
    HourRange::parse(text, Utc::now()).map_err(|e| e.to_string())
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
    /// Loads the dotenv file (`--dotenv`, or [`DEFAULT_DOTENV`] when it exists), parses `argv`
    /// (program name first) and checks every value, each problem on a line of its own: the
    /// [`ConfigError`] for exit code 2. Returns the dotenv file loaded too. Call it before any
    /// thread starts (the dotenv file sets variables).
    pub fn load<I, T>(argv: I) -> Result<(Parsed, Option<PathBuf>), ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        let dotenv = github_stats_cli::load_dotenv(&argv, Some(Path::new(DEFAULT_DOTENV)))?;
        let parsed = Parsed::try_parse_from(argv)?;
        parsed.validate()?;
        Ok((parsed, dotenv))
    }

    /// Parses `argv` (program name first); clap's error carries exit code 2. Nothing is checked
    /// beyond what clap checks: see [`Parsed::validate`].
    pub fn try_parse_from<I, T>(argv: I) -> Result<Parsed, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
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

    /// Checks the values (the store's, GH Archive's, logging's, `--recount` with the memory
    /// store), every problem on a line of its own.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let args = &self.args;
        let mut problems = Vec::new();
        if let Err(e) = args.store.store_config() {
            problems.extend(e);
        }
        if args.recount && args.store.backend() == Ok(Backend::Memory) {
            problems.push(
                "--recount corrects ClickHouse tables: it needs --backend clickhouse (or \
                 DATABASE_BACKEND=clickhouse)"
                    .to_owned(),
            );
        }
        problems.extend(args.log.problems());
        problems.extend(args.archive.problems());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
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
                import.base_url = args.archive.url().map_err(anyhow::Error::msg)?;
                import.missing_after = args.archive.missing_after().map_err(anyhow::Error::msg)?;
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
        let store = args
            .store
            .store_config()
            .map_err(|problems| anyhow::anyhow!(problems.join("; ")))?;
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
