//! The settings `github-stats-server` and `github-stats-backfill` share, defined once: each
//! binary flattens these argument groups into its own clap structure
//! (`#[command(flatten)]`), so that a flag, its environment variable, its default and its
//! validation cannot drift apart between the two.
//!
//! - [`StoreArgs`]: `DATABASE_BACKEND`, `DATA_DIR`, the `CLICKHOUSE_*` settings (cluster mode
//!   included) and `REQUEST_TIMEOUT_SECS`, turned into core's
//!   [`StoreConfig`](github_stats_core::StoreConfig);
//! - [`ArchiveArgs`]: `GHARCHIVE_URL` and `GHARCHIVE_MISSING_AFTER`;
//! - [`LogArgs`]: `LOG_LEVEL` and `LOG_FORMAT`, and the tracing subscriber they describe;
//! - [`DotenvArgs`], [`load_dotenv`] and [`parse`]: `--dotenv PATH`, loaded before the
//!   environment is read.
//!
//! Every value is checked once parsed and every problem reported on a line of its own
//! ([`ConfigError`], exit code 2). Settings that may carry secrets (`CLICKHOUSE_PASSWORD`, the
//! URLs) are never shown: the URLs are [`SecretUrl`](github_stats_core::SecretUrl)s, and
//! `--help` hides their environment values.

mod archive;
mod dotenv;
mod logging;
mod store;

pub use archive::ArchiveArgs;
pub use dotenv::{ConfigError, DotenvArgs, load_dotenv, parse};
pub use logging::{EscapedFields, LogArgs, LogFormat, escape_control};
pub use store::{Backend, DEFAULT_CLICKHOUSE_HOST, DEFAULT_CLICKHOUSE_PORT, StoreArgs};
