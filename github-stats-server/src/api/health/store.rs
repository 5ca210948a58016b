//! The `store` object of `/health`: typed here, from core's [`StoreHealth`] and the untyped
//! `details` map each store fills, so that the spec describes every field and a key renamed in
//! core disappears from [`StoreDetails::unknown_keys`]'s empty list (a test) instead of changing
//! the answer silently.

use github_stats_core::StoreHealth;
use poem_openapi::Object;
use serde::Deserialize;

use crate::api::time::UtcTime;
use crate::store_monitor::StoreReading;

/// The store: whether part of it is down, whether it is slow, when it was checked, and what the
/// backend says about itself (the memory store its data file, ClickHouse its server and, in
/// cluster mode, every node).
#[derive(Debug, Clone, Object)]
pub struct StoreStatus {
    /// The store answers, but part of it does not (a ClickHouse cluster node down: queries
    /// needing it get 503), or the memory store's last write to its data file failed.
    pub degraded: bool,
    /// The store's health check has not answered within its timeout (10 s): `status` is
    /// `unavailable` and the figures are those of the last check that answered.
    pub slow: bool,
    /// When the store last answered a health check; `null` before the first.
    pub checked_at: Option<UtcTime>,
    /// Seconds since then (since the server started when it has not answered yet).
    pub check_age_seconds: f64,
    /// What is wrong, in the store's words (or "store health check has not answered for N s"),
    /// when anything is.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// What the backend says about itself.
    #[oai(flatten)]
    pub details: StoreDetails,
}

/// What the backend says about itself: the memory store's fields, or ClickHouse's; each is
/// absent when the backend does not give it.
#[derive(Debug, Clone, Default, Object, Deserialize)]
#[serde(default)]
pub struct StoreDetails {
    /// Memory: whether events are kept in a data file (`DATA_DIR`).
    #[oai(skip_serializing_if_is_none)]
    pub persistent: Option<bool>,
    /// Memory: the data file, `DATA_DIR/events.log`.
    #[oai(skip_serializing_if_is_none)]
    pub data_file: Option<String>,
    /// Memory: records read back from the data file at start.
    #[oai(skip_serializing_if_is_none)]
    pub replayed_records: Option<u64>,
    /// Memory: records found twice in the data file at start, each counted once.
    #[oai(skip_serializing_if_is_none)]
    pub duplicate_records_replayed: Option<u64>,
    /// Memory: bytes of a torn last record cut off at start.
    #[oai(skip_serializing_if_is_none)]
    pub torn_bytes_dropped: Option<u64>,
    /// Memory: damaged bytes skipped at start (before the end of the file).
    #[oai(skip_serializing_if_is_none)]
    pub damaged_bytes_skipped: Option<u64>,
    /// Memory: damaged ranges skipped at start.
    #[oai(skip_serializing_if_is_none)]
    pub damaged_ranges_skipped: Option<u64>,
    /// ClickHouse: the server's version.
    #[oai(skip_serializing_if_is_none)]
    pub server_version: Option<String>,
    /// ClickHouse: the server's HTTP interface (no credentials).
    #[oai(skip_serializing_if_is_none)]
    pub url: Option<String>,
    /// ClickHouse: the database.
    #[oai(skip_serializing_if_is_none)]
    pub database: Option<String>,
    /// ClickHouse cluster mode: the cluster's name.
    #[oai(skip_serializing_if_is_none)]
    pub cluster: Option<String>,
    /// ClickHouse cluster mode: whether shards have replicas (`CLICKHOUSE_REPLICATED`).
    #[oai(skip_serializing_if_is_none)]
    pub replicated: Option<bool>,
    /// ClickHouse cluster mode: nodes that answer.
    #[oai(skip_serializing_if_is_none)]
    pub nodes_up: Option<u64>,
    /// ClickHouse cluster mode: nodes.
    #[oai(skip_serializing_if_is_none)]
    pub nodes_total: Option<u64>,
    /// ClickHouse cluster mode: every node, and whether it answers.
    #[oai(skip_serializing_if_is_none)]
    pub nodes: Option<Vec<ClusterNode>>,
    /// ClickHouse: the checks of events two writers stored at the same moment (each writer takes
    /// its losing copies back from the counts).
    #[oai(skip_serializing_if_is_none)]
    pub race_checks: Option<RaceChecks>,
    /// ClickHouse: events of inserts found stored in part (in `events` and only some of the
    /// tables its views feed) on their retry.
    #[oai(skip_serializing_if_is_none)]
    pub partly_stored_events: Option<u64>,
    /// ClickHouse: recounts run to repair inserts stored in part.
    #[oai(skip_serializing_if_is_none)]
    pub partly_stored_repairs: Option<u64>,
    /// ClickHouse: inserts stored in part whose repair is still to run.
    #[oai(skip_serializing_if_is_none)]
    pub partly_stored_waiting: Option<u64>,
    /// Keys of the backend's details this server does not know, never answered: a test keeps
    /// this empty for both stores.
    #[oai(skip)]
    #[serde(flatten)]
    unknown: serde_json::Map<String, serde_json::Value>,
}

/// A node of a ClickHouse cluster.
#[derive(Debug, Clone, Object, Deserialize)]
pub struct ClusterNode {
    /// Its shard, from 1.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub shard: Option<u64>,
    /// Its replica in the shard, from 1.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub replica: Option<u64>,
    /// Its host.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub host: Option<String>,
    /// Its HTTP port.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub port: Option<u16>,
    /// Its HTTP interface (no credentials).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub url: Option<String>,
    /// Whether it answered its ping.
    pub up: bool,
    /// Why not, when it did not.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub error: Option<String>,
}

/// The checks of events two writers stored at the same moment.
#[derive(Debug, Clone, Object, Deserialize)]
pub struct RaceChecks {
    /// This writer's id, in `events.writer`.
    pub writer: String,
    /// How long after an insert its events are checked, in milliseconds.
    pub check_delay_ms: u64,
    /// Events waiting for their check.
    pub pending_events: u64,
    /// Events checked.
    pub checked_events: u64,
    /// Losing copies taken back from the counts.
    pub copies_taken_back: u64,
    /// Checks that failed (each retried).
    pub check_failures: u64,
    /// Checks given up after their retries.
    pub checks_given_up: u64,
    /// The last failure, when any.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub last_error: Option<String>,
}

impl StoreDetails {
    /// The typed view of `health.details`. A value of the wrong type leaves the view empty,
    /// logged (not expected: the stores write these keys).
    pub fn from_health(health: &StoreHealth) -> StoreDetails {
        serde_json::from_value(serde_json::Value::Object(health.details.clone())).unwrap_or_else(
            |e| {
                tracing::error!(error = %e, "cannot read the store's health details");
                StoreDetails::default()
            },
        )
    }

    /// Keys of the details this view does not know (left out of the answer).
    pub fn unknown_keys(&self) -> Vec<&str> {
        self.unknown.keys().map(String::as_str).collect()
    }
}

impl StoreStatus {
    /// The `store` object from the kept health check and the health it gives.
    pub fn new(reading: &StoreReading, health: &StoreHealth) -> StoreStatus {
        StoreStatus {
            degraded: health.degraded,
            slow: reading.is_slow(),
            checked_at: reading.last.as_ref().map(|c| UtcTime(c.at)),
            check_age_seconds: reading.age().as_secs_f64(),
            error: health.error.clone(),
            details: StoreDetails::from_health(health),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use github_stats_core::{EventStore, MemoryStore};

    use super::*;

    #[tokio::test]
    async fn the_memory_stores_details_are_all_typed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::open(dir.path()).unwrap());
        let health = store.health().await;
        let details = StoreDetails::from_health(&health);
        assert!(details.unknown_keys().is_empty(), "{:?}", health.details);
        assert_eq!(details.persistent, Some(true));
        assert!(details.data_file.unwrap().ends_with("events.log"));
        assert_eq!(details.replayed_records, Some(0));
    }
}
