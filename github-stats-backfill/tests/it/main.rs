//! Integration tests of github-stats-backfill: in process through `run`, and the real binary.

mod binary;
mod clickhouse;
mod cluster;
mod common;
mod formats;
mod gharchive;
mod real_data;
