#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod conformance;
pub mod coverage;
pub mod event;
#[cfg(feature = "testsuite")]
pub mod fake_gharchive;
mod id_set;
pub mod ingest;
pub mod metrics;
pub mod parse;
pub mod source;
pub mod store;

pub use coverage::{ArchiveHour, ArchiveStatus, CompleteRun, WindowCoverage};
pub use event::{Event, EventType, RepoName, RepoNameError};
pub use ingest::{
    Ingest, IngestConfig, IngestError, IngestHandle, IngestReport, IngestSnapshot, IngestStatus,
};
pub use metrics::{
    EventCounts, InsertOutcome, MAX_TIMELINE_BUCKETS, MAX_WINDOW_MINUTES, PrAverage,
    RepoEventCount, RepoEventCounts, StoreHealth, TimeWindow, Timeline, TypeCounts, WindowError,
    timeline_buckets,
};
pub use parse::ParseStats;
pub use source::gharchive::{
    ArchiveFollowerSnapshot, ArchiveFollowerStatus, GhArchiveConfig, GhArchiveSource, HourRange,
};
pub use source::github::{GitHubConfig, GitHubPoller, PollerSnapshot, PollerStatus};
pub use source::merged::MergedSource;
pub use source::{EventBatch, EventSource, SourceError};
pub use store::memory::MemoryStore;
pub use store::{EventStore, MetricsQuery, SharedStore, Store, StoreError};
