//! Every request to ClickHouse goes through [`ClickHouseStore::run`] (or `run_at`, `run_within`):
//! bounded by a timeout, its error mapped to a [`StoreError`] that tells outages
//! ([`StoreError::Unavailable`], retried by callers, HTTP 503) from the rest. A database or
//! table that is missing (dropped while the store runs) is an outage too: the request that meets
//! it marks the schema lost, and the store's next request creates it again
//! ([`ClickHouseStore::restore_schema_if_lost`]).

use std::future::Future;
use std::time::Duration;

use super::ClickHouseStore;
use crate::store::StoreError;

impl ClickHouseStore {
    /// Awaits a request to the main server with the configured timeout, mapping errors.
    pub(super) async fn run<T>(
        &self,
        request: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, StoreError> {
        self.run_at(&self.origin, request).await
    }

    /// Awaits a request to the server at `origin` with the configured timeout, mapping errors.
    pub(super) async fn run_at<T>(
        &self,
        origin: &str,
        request: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, StoreError> {
        self.run_within(origin, self.timeout, request).await
    }

    /// Awaits a request to the server at `origin` for at most `timeout`, mapping errors; in
    /// cluster mode an error saying a shard could not be reached names the shard.
    pub(super) async fn run_within<T>(
        &self,
        origin: &str,
        timeout: Duration,
        request: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, StoreError> {
        match request_within(origin, timeout, self.native_port_hint, request).await {
            Err(e) if is_missing_schema(&e) => {
                self.schema_lost
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Err(e)
            }
            Err(StoreError::Unavailable(message)) if !self.nodes.is_empty() => Err(
                StoreError::Unavailable(match self.unreachable_shards(&message) {
                    Some(shards) => format!("{shards}: {message}"),
                    None => message,
                }),
            ),
            other => other,
        }
    }
}

/// Awaits a request to the server at `origin` for at most `timeout`, mapping errors;
/// `native_port_hint` when the configured URL has the native protocol's port (the message
/// then says so).
pub(super) async fn request_within<T>(
    origin: &str,
    timeout: Duration,
    native_port_hint: bool,
    request: impl Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(map_error(origin, native_port_hint, e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "clickhouse at {origin} did not answer within {timeout:?}"
        ))),
    }
}

fn map_error(origin: &str, native_port_hint: bool, e: clickhouse::error::Error) -> StoreError {
    use clickhouse::error::Error;
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    if message.contains("is for clickhouse-client") {
        return native_port_error(origin, &message);
    }
    if let Some(code) = server_error_code(&message) {
        if MISSING_SCHEMA_CODES.contains(&code) {
            // The server's text (with the SQL) goes to the log; callers get plain words.
            tracing::warn!(origin, code, error = %message, "clickhouse says a database or table of the store is missing");
            return StoreError::Unavailable(format!("clickhouse at {origin}{MISSING_SCHEMA}"));
        }
        if UNAVAILABLE_CODES.contains(&code) {
            return StoreError::Unavailable(format!(
                "clickhouse at {origin} could not reach part of the cluster: {message}"
            ));
        }
        if COORDINATION_CODES.contains(&code) {
            return StoreError::Unavailable(format!(
                "clickhouse at {origin} cannot write replicated tables without ZooKeeper \
                 (or ClickHouse Keeper) right now: {message}"
            ));
        }
    }
    match e {
        Error::Network(_) | Error::TimedOut => {
            let hint = if native_port_hint {
                " (port 9000 is ClickHouse's native protocol; this store speaks HTTP, \
                 which listens on port 8123 by default: set CLICKHOUSE_URL=http://HOST:8123)"
            } else {
                ""
            };
            StoreError::Unavailable(format!(
                "clickhouse at {origin} unreachable: {message}{hint}"
            ))
        }
        _ => StoreError::Backend(message),
    }
}

/// Server error codes that mean the store's database or one of its tables is gone (dropped
/// while the store runs): `UNKNOWN_TABLE` (60) and `UNKNOWN_DATABASE` (81), the same in 18.16
/// and current releases.
const MISSING_SCHEMA_CODES: [u32; 2] = [60, 81];

/// The end of the message of [`StoreError::Unavailable`] for a missing database or table.
const MISSING_SCHEMA: &str = " is missing the store's database or one of its tables (dropped?); creating them again, retry shortly";

/// Whether `e` says the store's database or one of its tables is missing.
pub(super) fn is_missing_schema(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(message) if message.ends_with(MISSING_SCHEMA))
}

/// Server error codes that mean another server (a shard of the cluster) could not be reached,
/// not that the query is wrong: `NETWORK_ERROR` (210), `SOCKET_TIMEOUT` (209),
/// `ALL_CONNECTION_TRIES_FAILED` (279) and `ALL_REPLICAS_ARE_STALE` (369); the same codes in
/// 18.16 and current releases.
const UNAVAILABLE_CODES: [u32; 4] = [209, 210, 279, 369];

/// Server error codes that mean the coordination service of replicated tables (ZooKeeper or
/// ClickHouse Keeper) cannot be reached, so replicated tables refuse writes for now:
/// `NO_ZOOKEEPER` (225, also "session has been expired"), `TABLE_IS_READ_ONLY` (242),
/// `UNKNOWN_STATUS_OF_INSERT` (319: the connection was lost while an insert was committed) and
/// `KEEPER_EXCEPTION` (999, "connection loss"). The same in 18.16 and current releases. The
/// ingest loop keeps the events and retries, which the deduplication makes safe.
const COORDINATION_CODES: [u32; 4] = [225, 242, 319, 999];

/// The `Code: N` of a server's error message (`Code: 279, e.displayText() = …` in 18.16,
/// `Code: 279. DB::NetException: …` in current releases).
fn server_error_code(message: &str) -> Option<u32> {
    let at = message.find("Code: ")? + "Code: ".len();
    let digits: String = message[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub(super) fn native_port_error(origin: &str, answer: &str) -> StoreError {
    StoreError::Config(format!(
        "{origin} is ClickHouse's native protocol port (9000 by default), not its HTTP interface \
         (8123 by default), which this store uses: point CLICKHOUSE_URL at the HTTP port (the \
         server said: {:?})",
        answer.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}
