//! Where events come from: the [`EventSource`] trait, saved files ([`mod@file`]), the GitHub
//! Events API ([`github`]), GH Archive's hourly files ([`gharchive`]), and several sources as
//! one ([`merged`]).

use std::any::Any;
use std::io::Write;
use std::path::Path;

use async_trait::async_trait;

use crate::coverage::ArchiveHour;
use crate::event::Event;
use crate::parse::ParseStats;

pub mod file;
pub mod gharchive;
pub mod github;
pub mod merged;
mod state_file;

pub use state_file::StateFileError;

/// A batch of kept events and the counts of what was read to produce it, with the source's
/// position after it ([`Checkpoint`]) and the records of its progress to store beside it.
#[derive(Debug, Default)]
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
    /// The source's position once this batch is stored: handed back to the source
    /// ([`EventSource::checkpoint`]) by the ingest loop after the batch's events and
    /// [`records`](EventBatch::records) are stored, never before.
    pub checkpoint: Checkpoint,
    /// What the source's progress means for the store (an archive hour read to its end): written
    /// by the ingest loop once the batch's events are stored, before the checkpoint goes back.
    pub records: Vec<SourceRecord>,
}

impl EventBatch {
    /// A batch of `events` from `origin`, with their stats, no checkpoint and no records.
    pub fn new(events: Vec<Event>, stats: ParseStats, origin: impl Into<String>) -> EventBatch {
        EventBatch {
            events,
            stats,
            origin: origin.into(),
            bytes: 0,
            completes_origin: true,
            checkpoint: Checkpoint::none(),
            records: Vec::new(),
        }
    }

    /// This batch with `checkpoint`.
    pub fn with_checkpoint(mut self, checkpoint: Checkpoint) -> EventBatch {
        self.checkpoint = checkpoint;
        self
    }
}

/// A source's position after one of its batches, opaque to everyone but the source (the poller:
/// the poll's ETag and event ids; the archive follower: the hour and how far into it; a file: how
/// far into it). It travels with its batch through the ingest loop and comes back to the source
/// once the batch is stored, so a source persists only positions whose data is stored, however
/// long the store is away and however many batches wait (Quickwit's `checkpoint_delta`).
#[derive(Default)]
pub struct Checkpoint(Option<Box<dyn Any + Send + Sync>>);

impl Checkpoint {
    /// No position to keep (a source that keeps none, a batch of a library user).
    pub fn none() -> Checkpoint {
        Checkpoint(None)
    }

    /// A position of the source's own type.
    pub fn new<T: Any + Send + Sync>(position: T) -> Checkpoint {
        Checkpoint(Some(Box::new(position)))
    }

    /// Whether there is a position.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// The position, if it is a `T`.
    pub fn into_inner<T: Any>(self) -> Option<T> {
        self.0?.downcast::<T>().ok().map(|b| *b)
    }
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Checkpoint(..)"
        } else {
            "Checkpoint(none)"
        })
    }
}

/// A record of a source's progress that the ingest loop stores beside a batch's events.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceRecord {
    /// What importing an archive hour found
    /// ([`EventStore::record_archive_hour`](crate::store::EventStore::record_archive_hour)).
    ArchiveHour(ArchiveHour),
}

/// What storing a batch did, handed back to its source with its [`Checkpoint`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredBatch {
    /// The batch's events.
    pub events: u64,
    /// Events the store did not hold before (new ids).
    pub inserted: u64,
    /// Distinct events the store held before this batch came, by id: seen first by another
    /// source (or an earlier run). Repeats within the batch are not counted.
    pub seen_before: u64,
}

impl StoredBatch {
    /// What storing a batch of `events` did: `inserted` new, `seen_before` held already. For
    /// whoever stores batches without the ingest loop (tests, tools).
    pub fn new(events: u64, inserted: u64, seen_before: u64) -> StoredBatch {
        StoredBatch {
            events,
            inserted,
            seen_before,
        }
    }

    /// What `outcome` says of a batch of `events` inserted alone.
    pub fn from_outcome(events: u64, outcome: &crate::answers::InsertOutcome) -> StoredBatch {
        StoredBatch::new(events, outcome.inserted, outcome.stored_before.len() as u64)
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

    /// Called by the ingest loop once a batch of this source is stored (its events, then its
    /// records), with the batch's checkpoint and what storing it did, in the order the batches
    /// were returned. A source that keeps a position (the poller's state file) persists this one
    /// now. The default does nothing.
    async fn checkpoint(
        &self,
        checkpoint: Checkpoint,
        stored: StoredBatch,
    ) -> Result<(), SourceError> {
        let _ = (checkpoint, stored);
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

/// Redirects followed within a host before it is called a loop.
const MAX_REDIRECTS: usize = 5;

/// Follows redirects only within the host (and port) first asked, at most [`MAX_REDIRECTS`]: a
/// server may move a path, but nothing sends our requests (and their credentials) elsewhere or
/// has us store another host's answer. A redirect to another host is returned as the 3xx answer
/// it is; one more within the host is an error naming the loop ([`describe_http_error`]).
pub(crate) fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first();
        let same = first.is_some_and(|first| {
            first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if !same {
            attempt.stop()
        } else if attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.error(RedirectLoop)
        }
    })
}

/// More than [`MAX_REDIRECTS`] redirects within one host.
#[derive(Debug)]
struct RedirectLoop;

impl std::fmt::Display for RedirectLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "redirect loop: more than {MAX_REDIRECTS} redirects within the host, not followed"
        )
    }
}

impl std::error::Error for RedirectLoop {}

/// A transport error of a request to `peer` (`"GitHub"`, `"GH Archive"`) in words, without the
/// URL (which never holds a token, but may hold other details better kept out of logs); a
/// timeout names `timeout` when given.
pub(crate) fn describe_http_error(
    error: &reqwest::Error,
    peer: &str,
    timeout: Option<std::time::Duration>,
) -> String {
    let mut text = if error.is_timeout() {
        match timeout {
            Some(t) => format!("request timed out after {:.1} s", t.as_secs_f64()),
            None => "request timed out".to_owned(),
        }
    } else if error.is_redirect() {
        // The cause says it: the loop.
        String::from("redirect refused")
    } else if error.is_connect() {
        format!("cannot connect to {peer}")
    } else if error.is_body() || error.is_decode() {
        format!("answer of {peer} cut")
    } else {
        format!("request to {peer} failed")
    };
    if error.is_timeout() {
        return text;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
