//! Integration tests of github-stats-core: one binary, a module per area.

#[cfg(feature = "clickhouse")]
mod clickhouse;
#[cfg(feature = "clickhouse")]
mod clickhouse_process;
#[cfg(feature = "clickhouse")]
mod cluster;
#[cfg(unix)]
mod damaged_files;
mod fake_github;
mod gharchive;
mod ingest;
mod memory;
mod merged;
mod parse_real_data;
mod poller;
mod properties;
#[cfg(feature = "clickhouse")]
mod races;
#[cfg(feature = "clickhouse")]
mod replicated;
