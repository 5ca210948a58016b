//! The ClickHouse store: the production backend, over ClickHouse's HTTP interface with the
//! official `clickhouse` crate (one pooled client, RowBinary inserts, client-side bound
//! parameters). Its guide is `docs/clickhouse.md`: the schema and its versions, where each
//! metric reads, deduplication and two writers racing, the cluster mode, what ClickHouse 18.16
//! needs.
//!
//! One module per job: `config.rs` (how to reach the server), `connect.rs` (connecting,
//! migrating, maintenance), `cluster.rs` (the nodes of a cluster), `errors.rs` (requests with a
//! timeout, and their errors as [`StoreError`](crate::StoreError)s), `write.rs` (inserts and their
//! deduplication), `race_check.rs` (racing writers' copies taken back from the counts),
//! `queries.rs` (the metrics), `health.rs`, and `schema/` (every SQL statement: the names, the
//! migrations, and each query next to the function that binds its values).

mod cluster;
mod config;
mod connect;
mod errors;
mod health;
mod queries;
mod race_check;
pub(crate) mod schema;
mod write;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;

use crate::id_set::RecentIds;

use cluster::Node;
pub use config::{ClickHouseConfig, DEFAULT_DATABASE, DEFAULT_URL};
use schema::Schema;

/// The ClickHouse store; see the [module documentation](self).
pub struct ClickHouseStore {
    client: Client,
    schema: Schema,
    /// Cluster mode: every node of the cluster, in `system.clusters` order; empty otherwise.
    nodes: Vec<Node>,
    origin: String,
    native_port_hint: bool,
    timeout: Duration,
    max_rows_per_insert: usize,
    range_scan_limit: usize,
    /// Serialises inserts and holds the recent-ids cache.
    writer: tokio::sync::Mutex<RecentIds>,
    /// The version of the last archive-hour record written: milliseconds since the epoch, made
    /// strictly increasing so two records of one hour in the same millisecond keep their order.
    archive_version: std::sync::atomic::AtomicU64,
    /// This writer's id and the checks it owes for racing copies (`race_check.rs`).
    race_checks: Arc<race_check::RaceChecks>,
    /// Inserts that failed but may have been stored in part (`write.rs`).
    partial: write::PartialInserts,
    /// A request found the database or a table missing: the next request creates the schema
    /// again first (`connect.rs`).
    schema_lost: std::sync::atomic::AtomicBool,
    /// Held while the schema is created again, so that one request does it.
    schema_restore: tokio::sync::Mutex<()>,
    /// Tests only: a barrier every insert waits at between its existence check and its
    /// `INSERT`, to force two writers to race.
    #[cfg(feature = "testsuite")]
    insert_gate: std::sync::Mutex<Option<Arc<tokio::sync::Barrier>>>,
}

impl Drop for ClickHouseStore {
    fn drop(&mut self) {
        self.race_checks.stop();
    }
}

impl fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("origin", &self.origin)
            .field("database", &self.schema.database())
            .finish_non_exhaustive()
    }
}

impl ClickHouseStore {
    /// The database the store's tables are in.
    pub fn database(&self) -> &str {
        self.schema.database()
    }

    /// Tests only (feature `testsuite`): makes every insert of this store wait at `gate` after
    /// its existence check and before its `INSERT`. Two stores sharing a barrier of two are
    /// both past the check before either inserts: the race of two writers, forced.
    #[cfg(feature = "testsuite")]
    pub fn set_insert_gate(&self, gate: Option<Arc<tokio::sync::Barrier>>) {
        *self.insert_gate.lock().unwrap_or_else(|e| e.into_inner()) = gate;
    }
}

/// Seconds since the epoch clamped to what `DateTime` holds, for query bounds.
fn clamp_ts(ts: i64) -> u32 {
    ts.clamp(0, i64::from(u32::MAX)) as u32
}
