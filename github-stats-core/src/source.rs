//! Where events come from: the [`EventSource`] trait, saved files ([`mod@file`]), the GitHub
//! Events API ([`github`]), GH Archive's hourly files ([`gharchive`]), and several sources as
//! one ([`merged`]).

use std::io::Write;
use std::path::Path;

use async_trait::async_trait;

use crate::event::Event;
use crate::parse::ParseStats;

pub mod file;
pub mod gharchive;
pub mod github;
pub mod merged;

/// A batch of kept events and the counts of what was read to produce it.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EventBatch {
    /// Kept events, in the order read. May contain repeats; stores deduplicate.
    pub events: Vec<Event>,
    /// What was read: kept, dropped, malformed, unsupported.
    pub stats: ParseStats,
    /// Where the batch came from: a file path, `GET /events`, …
    pub origin: String,
    /// Input bytes consumed (uncompressed) for this batch.
    pub bytes: u64,
    /// Whether this batch finishes its origin (the last batch of a file, the last page of a poll).
    pub completes_origin: bool,
}

impl EventBatch {
    /// A batch of `events` from `origin`, with their stats.
    pub fn new(events: Vec<Event>, stats: ParseStats, origin: impl Into<String>) -> EventBatch {
        EventBatch {
            events,
            stats,
            origin: origin.into(),
            bytes: 0,
            completes_origin: true,
        }
    }
}

/// Errors of sources. A source stays usable after an error: the next call moves on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A file could not be opened, read or decompressed; it is skipped.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A remote source failed; it will be retried. The source logs it (the ingest loop only
    /// records it in its report and status).
    #[error("{0}")]
    Remote(String),
    /// The source is misconfigured and will not recover.
    #[error("invalid source configuration: {0}")]
    Config(String),
}

/// Yields batches of kept GitHub events.
#[async_trait]
pub trait EventSource: Send + Sync {
    /// The next batch; `Ok(None)` once the source is exhausted (files). A live source waits
    /// for the next batch; callers cancel by dropping the future, which every implementation
    /// tolerates at any await point.
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError>;

    /// Called by the ingest loop once a batch from this source is stored, so a source that keeps
    /// a position (the poller's state file) can persist it. The default does nothing.
    async fn commit(&self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically and durably: a temporary file next to it, synced, renamed
/// over `path`, then the directory synced, so a crash leaves either the old file or the new one,
/// never a torn one, and a rename that returned is not undone by a power cut.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable once the directory is; some filesystems cannot sync a directory
    // (the file itself is whole either way).
    if let Ok(dir) = std::fs::File::open(dir.unwrap_or(Path::new("."))) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Follows redirects only within the host (and port) first asked, at most 5: a server may move a
/// path, but nothing sends our requests (and their credentials) elsewhere or has us store another
/// host's answer. A redirect not followed is returned as the 3xx answer it is.
pub(crate) fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first();
        let same = first.is_some_and(|first| {
            first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if same && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}
