#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod answers;
pub mod backoff;
#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
pub mod coverage;
mod event;
#[cfg(feature = "testsuite")]
pub mod fake_gharchive;
#[cfg(feature = "testsuite")]
pub mod fake_github;
mod id_set;
pub mod ingest;
pub mod parse;
mod secret_url;
pub mod source;
pub mod status;
pub mod store;

pub use answers::{
    EventCounts, InsertOutcome, MAX_TIMELINE_BUCKETS, MAX_WINDOW_MINUTES, PrAverage,
    RepoEventCount, RepoEventCounts, StoreHealth, TimeWindow, Timeline, TypeCounts, WindowError,
    timeline_buckets,
};
pub use backoff::Backoff;
pub use coverage::{ArchiveHour, ArchiveStatus, CompleteRun, WindowCoverage};
pub use event::{
    Event, EventType, InvalidEvent, MAX_ACTION_LEN, MAX_REPO_NAME_LEN, MAX_STORABLE_SECONDS,
    MAX_STORED_ACTION_BYTES, MAX_STORED_NAME_BYTES, MIN_STORABLE_SECONDS, RepoName, RepoNameError,
};
pub use ingest::{
    DurationHistogram, Ingest, IngestConfig, IngestError, IngestHandle, IngestReport,
    IngestSnapshot, IngestStatus,
};
pub use parse::ParseStats;
pub use secret_url::SecretUrl;
pub use source::file::FileSource;
pub use source::gharchive::{
    ArchiveFollowerSnapshot, ArchiveFollowerStatus, GhArchiveConfig, GhArchiveSource, HourRange,
};
pub use source::github::{GitHubConfig, GitHubPoller, PollCounters, PollerSnapshot, PollerStatus};
pub use source::merged::MergedSource;
pub use source::{Checkpoint, EventBatch, EventSource, SourceError, SourceRecord, StoredBatch};
pub use status::{ComponentSnapshot, StatusCell};
#[cfg(feature = "clickhouse")]
pub use store::clickhouse::{ClickHouseConfig, ClickHouseStore};
pub use store::memory::{MemoryStore, MemoryStoreOptions, ReplayReport};
pub use store::{
    EventStore, InvalidSetting, MetricsQuery, OpenedStore, SharedStore, Store, StoreConfig,
    StoreError,
};
