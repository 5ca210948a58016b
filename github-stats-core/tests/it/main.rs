//! Integration tests of github-stats-core: one binary, a module per area.

#[cfg(feature = "clickhouse")]
mod clickhouse;
mod fake_github;
mod ingest;
mod memory;
mod parse_real_data;
mod poller;
