//! The store traits: where events go ([`EventStore`]) and the questions asked of them
//! ([`MetricsQuery`]). One module per implementation; the conformance suite (`conformance`,
//! cargo feature `testsuite`) runs every implementation through the same cases. Which store to
//! open, and opening it: [`StoreConfig`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::answers::{
    EventCounts, InsertOutcome, PrAverage, RepoEventCount, RepoEventCounts, StoreHealth,
    TimeWindow, Timeline, WindowError,
};
use crate::coverage::{ArchiveHour, CompleteRun};
use crate::event::{Event, RepoName};

#[cfg(feature = "clickhouse")]
pub mod clickhouse;
mod config;
pub mod memory;

pub use config::{InvalidSetting, OpenedStore, StoreConfig};

/// Errors of stores. [`StoreError::is_unavailable`] tells outages (retry later, HTTP 503) from
/// everything else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached right now (server down, timeout). Retrying may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the data directory.
    #[error(
        "data directory {dir} is in use by another process (lock {lock}): stop it, or use another DATA_DIR"
    )]
    Locked {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The lock file.
        lock: std::path::PathBuf,
    },
    /// The store's file cannot be read as one of its own (for example, it is not an event file
    /// at all). A torn tail or damaged records are not this: they are cut or skipped, and
    /// reported (see `store/memory/log.rs`).
    #[error("data file {path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: std::path::PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An event the store cannot represent (for example a time before 1970).
    #[error("invalid event {id}: {reason}")]
    InvalidEvent {
        /// The event id.
        id: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A query the store refused (empty window, too many buckets…).
    #[error("invalid query: {0}")]
    InvalidQuery(#[from] WindowError),
    /// Bad store configuration (names, URLs).
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The backend answered with an error that retrying will not fix.
    #[error("store query failed: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether the error is an outage: the caller may retry later, the API answers 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// The error in words an API client or a status page may be shown: the text of
    /// [`StoreError::Backend`] is the backend's own (a ClickHouse exception, with the SQL it
    /// refused), for the log only; the other variants' messages are this crate's.
    pub fn public_message(&self) -> String {
        match self {
            StoreError::Backend(_) => {
                "store query failed: the store answered with an error (details in the server log)"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Where events are stored. Inserting is idempotent: an event id stored twice counts once.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores `events`, skipping ids already stored (and repeats within the batch). When this
    /// returns `Ok`, the events are durable as far as the backend promises.
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome, StoreError>;

    /// [`insert_events`](EventStore::insert_events) of a batch the store may keep a share of
    /// (the ingest loop's path: a store that works on another thread takes the batch as it is,
    /// without copying it). The default borrows it.
    async fn insert_batch(&self, events: Arc<[Event]>) -> Result<InsertOutcome, StoreError> {
        self.insert_events(&events).await
    }

    /// How many distinct events of `events` (by id) are stored already. The archive follower
    /// asks before handing on a batch of an hour: those the poller stored first.
    async fn count_stored(&self, events: &[Event]) -> Result<u64, StoreError>;

    /// Whether the store answers, and what it holds.
    async fn health(&self) -> StoreHealth;

    /// `memory`, `clickhouse`, …
    fn backend_name(&self) -> &'static str;

    /// Records what importing a GH Archive hour found (see [`coverage`](crate::coverage)); a
    /// record of an hour already recorded replaces it. Durable when this returns `Ok`.
    async fn record_archive_hour(&self, record: &ArchiveHour) -> Result<(), StoreError>;

    /// Makes everything inserted so far durable; called at shutdown.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The metric queries behind the API, with the definitions every store implements exactly:
///
/// - every count is over distinct event ids (an event stored twice counts once);
/// - windows are half-open, `since <= created_at < until`, at second precision;
/// - the PR average is over the distinct `PullRequestEvent`s with action `opened`, sorted by
///   `created_at`: `(last - first) / (n - 1)` seconds, none below two ([`PrAverage`]).
#[async_trait]
pub trait MetricsQuery: Send + Sync {
    /// Average time between the opened pull requests of `repo`.
    async fn pr_average(&self, repo: &RepoName) -> Result<PrAverage, StoreError>;

    /// [`pr_average`](MetricsQuery::pr_average) over the openings with
    /// `since <= created_at < until` only.
    async fn pr_average_in(
        &self,
        repo: &RepoName,
        window: TimeWindow,
    ) -> Result<PrAverage, StoreError>;

    /// Events of each kept type with `since <= created_at < until`.
    async fn event_counts(&self, window: TimeWindow) -> Result<EventCounts, StoreError>;

    /// Counts per type per bucket (see [`Timeline`]); buckets from
    /// [`timeline_buckets`](crate::answers::timeline_buckets).
    async fn timeline(
        &self,
        window: TimeWindow,
        bucket_seconds: i64,
    ) -> Result<Timeline, StoreError>;

    /// Stored events of `repo`, by type, every action.
    async fn repo_event_counts(&self, repo: &RepoName) -> Result<RepoEventCounts, StoreError>;

    /// Distinct stored events.
    async fn total_events(&self) -> Result<u64, StoreError>;

    /// The `limit` repositories with the most stored events, most first (ties by name).
    async fn top_repositories(&self, limit: usize) -> Result<Vec<RepoEventCount>, StoreError>;

    /// The archive hours recorded with `since <= hour < until`, by hour, the latest record of
    /// each.
    async fn archive_hours(&self, window: TimeWindow) -> Result<Vec<ArchiveHour>, StoreError>;

    /// The latest unbroken run of imported archive hours, if any.
    async fn complete_run(&self) -> Result<Option<CompleteRun>, StoreError>;
}

/// A store that takes events and answers metrics: what the server and backfill work with.
pub trait Store: EventStore + MetricsQuery {}

impl<T: EventStore + MetricsQuery + ?Sized> Store for T {}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;
