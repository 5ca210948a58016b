//! Integration tests of github-stats-core: one binary, a module per area.

#[cfg(feature = "clickhouse")]
mod clickhouse;
mod memory;
mod parse_real_data;
