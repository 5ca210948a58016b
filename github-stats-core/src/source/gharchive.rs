//! The GH Archive follower: an [`EventSource`] over GH Archive's hourly files, hour by hour from
//! a first hour, that records what each hour's import found (see [`coverage`](crate::coverage)).
//!
//! ```no_run
//! # async fn demo(store: github_stats_core::SharedStore) -> Result<(), github_stats_core::SourceError> {
//! use std::sync::Arc;
//! use github_stats_core::source::gharchive::{GhArchiveConfig, GhArchiveSource, parse_hour};
//! let mut config = GhArchiveConfig::new(parse_hour("24h", chrono::Utc::now()).unwrap());
//! config.state_file = Some("state/gharchive-state.json".into());
//! let follower = Arc::new(GhArchiveSource::new(config, store)?);
//! let status = follower.status(); // for /health: status.snapshot()
//! # Ok(()) }
//! ```
//!
//! - Hours are fetched by tasks of their own, [`parallel`](GhArchiveConfig::parallel) at once
//!   (the hour being imported and the next ones), each streaming its file (download, gunzip,
//!   parse) into a bounded channel; batches are yielded strictly in hour order.
//! - Each batch holds the kept events not seen before in its hour. Just before yielding it, the
//!   source asks the store how many of them it holds already ([`EventStore::count_stored`]):
//!   those the poller stored first. When the last batch of an hour is committed (stored), the
//!   hour's [`ArchiveHour`] is recorded in the store and the state file moves past it.
//! - Hours that end otherwise (missing, damaged, already recorded, pending) yield an empty batch
//!   marking their end, so that they too are committed in hour order.
//!
//! See `docs/gharchive.md`.
//!
//! [`EventStore::count_stored`]: crate::store::EventStore::count_stored

use std::collections::{HashSet, VecDeque};
use std::hash::RandomState;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{EventBatch, EventSource, SourceError};
use crate::coverage::{ArchiveHour, ArchiveStatus, HOUR_SECONDS, hour_floor};
use crate::event::Event;
use crate::parse::ParseStats;
use crate::store::SharedStore;

mod config;
mod fetch;
mod hours;
mod state;
mod status;

pub use config::{
    DEFAULT_GHARCHIVE_URL, DEFAULT_MISSING_AFTER, DEFAULT_USER_AGENT, GhArchiveConfig,
};
pub use hours::{HourRange, HourSpecError, archive_file_name, parse_duration, parse_hour};
pub use state::{ARCHIVE_STATE_VERSION, ArchiveState, HourProgress};
pub use status::{
    ArchiveCounters, ArchiveFollowerSnapshot, ArchiveFollowerStatus, CurrentHour, FetchState,
    HourFetch, PendingHour,
};

use fetch::{Fetcher, HourEnd, HourItem, backoff, hour_name};

/// Hours given up as pending listed in the status (a backfill's range; live following never
/// gives up an hour).
const MAX_PENDING_LISTED: usize = 10_000;

fn one_hour() -> chrono::Duration {
    chrono::Duration::seconds(HOUR_SECONDS)
}

/// Follows GH Archive. Implements [`EventSource`]; share it as `Arc<GhArchiveSource>` and read
/// its [`status`](GhArchiveSource::status) for `/health`. Dropping it stops its downloads.
pub struct GhArchiveSource {
    fetcher: Arc<Fetcher>,
    store: SharedStore,
    status: ArchiveFollowerStatus,
    /// The consuming side; held for a whole `next_batch`.
    follow: tokio::sync::Mutex<Follow>,
    /// What the state file holds and the batches yielded but not committed; never held across
    /// an await.
    shared: Mutex<Shared>,
    /// Commits one at a time, so state files are written in order.
    commit_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GhArchiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhArchiveSource")
            .field("base_url", &self.fetcher.config.base_url)
            .finish_non_exhaustive()
    }
}

struct Follow {
    /// The next hour to start a task for.
    next_spawn: DateTime<Utc>,
    /// Hours being fetched, in hour order; the first is the one being imported.
    inflight: VecDeque<InFlight>,
    /// The hour being imported: what was seen of it.
    front: Option<FrontHour>,
    /// A batch taken from its hour and not yet returned (a `next_batch` dropped while measuring
    /// it returns it on the next call).
    ready: Option<Ready>,
    /// The state file's progress in the first hour, used once.
    resume: Option<HourProgress>,
    /// When measuring may be tried again after the store failed.
    retry_at: Option<Instant>,
    measure_failures: u32,
    /// Whether the records the state file holds unwritten were tried at start.
    backlog_tried: bool,
}

struct InFlight {
    hour: DateTime<Utc>,
    rx: mpsc::Receiver<HourItem>,
    task: JoinHandle<()>,
}

struct FrontHour {
    hour: DateTime<Utc>,
    /// Distinct kept event ids read in this hour (any attempt). Ids are chosen by whoever
    /// writes the file: the hasher is seeded.
    seen: HashSet<u64, RandomState>,
    /// Kept events read in the current attempt, in file order.
    position: u64,
    /// The furthest position any attempt reached: what lies before it was counted already.
    max_position: u64,
    /// Events before this position were stored before a restart: read, not handed on.
    resume_skip: u64,
    /// Distinct events of the hour the store held before the archive's copy arrived.
    polled: u64,
    /// Uncompressed bytes parsed.
    bytes: u64,
    /// Counts of what was read and not yet handed on with a batch.
    carry_stats: ParseStats,
    carry_bytes: u64,
}

struct Ready {
    batch: EventBatch,
    kind: ReadyKind,
}

enum ReadyKind {
    /// A batch of new events; `polled` once measured.
    Events { position: u64, polled: Option<u64> },
    /// The hour's end.
    End(Mark),
}

/// What committing a yielded batch does.
enum Mark {
    Progress {
        hour: DateTime<Utc>,
        kept_read: u64,
        polled: u64,
    },
    End {
        hour: DateTime<Utc>,
        record: Option<ArchiveHour>,
        end: HourEnd,
    },
}

struct Shared {
    persisted: ArchiveState,
    uncommitted: VecDeque<Mark>,
    /// The first hour given up as pending: the state's `next_hour` stays there.
    first_pending: Option<DateTime<Utc>>,
}

impl GhArchiveSource {
    /// A follower with `config`, recording into `store`. Reads the state file (a corrupt one is
    /// reported and replaced). Fails only on a configuration that cannot work: a base URL that
    /// is not http, https or an existing local directory.
    pub fn new(
        config: GhArchiveConfig,
        store: SharedStore,
    ) -> Result<GhArchiveSource, SourceError> {
        let status = ArchiveFollowerStatus::default();
        let from = hour_floor(config.from);
        let until = config.until.map(hour_floor);
        let mut config = config;
        config.from = from;
        config.until = until;
        let fetcher = Fetcher::new(config.clone(), Arc::clone(&store), status.clone())?;

        let mut startup_error = None;
        let loaded = match &config.state_file {
            None => None,
            Some(path) => match state::load(path) {
                Ok(state) => state,
                Err(e) => {
                    warn!(error = %e, "archive follower state file unusable, starting afresh and replacing it");
                    startup_error = Some(e.to_string());
                    None
                }
            },
        };
        let mut persisted = loaded.unwrap_or_default();
        // Resume where the last run stopped, unless this run starts before that run did (more
        // history wanted) or after where it got to (less wanted).
        let start = match (persisted.from, persisted.next_hour) {
            (Some(started), Some(next)) if from >= started && from <= next => next,
            _ => {
                persisted.from = Some(from);
                persisted.in_progress = None;
                from
            }
        };
        persisted.version = ARCHIVE_STATE_VERSION;
        persisted.next_hour = Some(start);
        let resume = persisted.in_progress.filter(|p| p.hour == start);
        if start != from {
            info!(
                next_hour = %hour_name(start),
                resumed_events = resume.map_or(0, |p| p.kept_read),
                "archive follower resuming from its state file"
            );
        }
        status.update(|s| {
            s.base_url = config.base_url.to_string();
            s.from = Some(from);
            s.until = until;
            s.next_hour = Some(start);
            s.counters = persisted.counters;
            s.last_imported_hour = persisted.last_imported_hour;
            s.finished = until.is_some_and(|u| start >= u);
            if let Some(e) = &startup_error {
                s.last_error = Some(e.clone());
                s.last_error_at = Some(Utc::now());
            }
        });
        let source = GhArchiveSource {
            fetcher: Arc::new(fetcher),
            store,
            status,
            follow: tokio::sync::Mutex::new(Follow {
                next_spawn: start,
                inflight: VecDeque::new(),
                front: None,
                ready: None,
                resume,
                retry_at: None,
                measure_failures: 0,
                backlog_tried: false,
            }),
            shared: Mutex::new(Shared {
                persisted,
                uncommitted: VecDeque::new(),
                first_pending: None,
            }),
            commit_lock: tokio::sync::Mutex::new(()),
        };
        if startup_error.is_some()
            && let Err(e) = source.save_state_blocking()
        {
            warn!(error = %e, "cannot replace the archive follower state file");
        }
        Ok(source)
    }

    /// A handle on the follower's status, for `/health`.
    pub fn status(&self) -> ArchiveFollowerStatus {
        self.status.clone()
    }

    /// The configuration in use (hours truncated to whole hours).
    pub fn config(&self) -> &GhArchiveConfig {
        &self.fetcher.config
    }

    fn lock_shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save_state_blocking(&self) -> Result<(), SourceError> {
        let Some(path) = &self.fetcher.config.state_file else {
            return Ok(());
        };
        let snapshot = self.lock_shared().persisted.clone();
        state::save(path, &snapshot).map_err(|source| SourceError::File {
            path: path.clone(),
            source,
        })
    }

    /// Writes the state file off the async workers (it is synced).
    async fn save_state(&self) -> Result<(), SourceError> {
        let Some(path) = self.fetcher.config.state_file.clone() else {
            return Ok(());
        };
        let snapshot = self.lock_shared().persisted.clone();
        tokio::task::spawn_blocking(move || {
            state::save(&path, &snapshot).map_err(|source| SourceError::File { path, source })
        })
        .await
        .map_err(|e| SourceError::Remote(format!("state file task failed: {e}")))?
    }

    /// Writes the records whose write failed before; those that fail again stay for later.
    async fn write_backlog(&self) -> bool {
        let backlog = std::mem::take(&mut self.lock_shared().persisted.unrecorded);
        if backlog.is_empty() {
            return false;
        }
        let mut left = Vec::new();
        for record in backlog {
            if !left.is_empty() {
                left.push(record);
                continue;
            }
            if let Err(e) = self.store.record_archive_hour(&record).await {
                warn!(hour = %hour_name(record.hour), error = %e, "cannot record an archive hour, will retry");
                left.push(record);
            }
        }
        self.lock_shared().persisted.unrecorded = left;
        true
    }

    /// Starts tasks for the next hours, up to `parallel` in flight and not past `until`.
    fn spawn_hours(&self, follow: &mut Follow) {
        let config = &self.fetcher.config;
        while follow.inflight.len() < config.parallel.max(1) {
            let hour = follow.next_spawn;
            if config.until.is_some_and(|until| hour >= until) {
                break;
            }
            follow.next_spawn = hour + one_hour();
            follow.inflight.push_back(self.spawn_hour(hour));
        }
    }

    fn spawn_hour(&self, hour: DateTime<Utc>) -> InFlight {
        let (tx, rx) = mpsc::channel(self.fetcher.config.prefetch_batches.max(1));
        self.status.fetch(hour, |_| {});
        let task = tokio::spawn(Arc::clone(&self.fetcher).run_hour(hour, tx));
        InFlight { hour, rx, task }
    }

    /// Takes a batch of the hour being imported: the events not seen before in the hour.
    fn take_events(&self, follow: &mut Follow, events: Vec<Event>, stats: ParseStats, bytes: u64) {
        let front = follow.front.as_mut().expect("a front hour");
        let start = front.position;
        let end = start + events.len() as u64;
        front.position = end;
        if end > front.max_position || front.max_position == 0 {
            // Not a re-read of an earlier attempt: counted once.
            front.carry_stats.merge(&stats);
            front.carry_bytes += bytes;
            front.bytes += bytes;
        }
        front.max_position = front.max_position.max(end);
        let mut new = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let fresh = front.seen.insert(event.id);
            if start + (i as u64) >= front.resume_skip && fresh {
                new.push(event);
            }
        }
        self.status.update(|s| {
            s.current_hour = Some(CurrentHour {
                hour: front.hour,
                archive_events: front.seen.len() as u64,
                polled_before_archive: front.polled,
                bytes: front.bytes,
            });
        });
        if new.is_empty() {
            return;
        }
        let batch = EventBatch {
            events: new,
            stats: std::mem::take(&mut front.carry_stats),
            origin: format!("gharchive {}", hour_name(front.hour)),
            bytes: std::mem::take(&mut front.carry_bytes),
            completes_origin: false,
        };
        follow.ready = Some(Ready {
            batch,
            kind: ReadyKind::Events {
                position: end,
                polled: None,
            },
        });
    }

    /// The hour being imported ended: the batch marking its end, and what commit records.
    fn end_hour(&self, follow: &mut Follow, end: HourEnd) {
        let flight = follow.inflight.pop_front().expect("an hour in flight");
        self.status.fetched(flight.hour);
        let mut front = follow.front.take().expect("a front hour");
        let hour = front.hour;
        let archive_events = front.seen.len() as u64;
        let now = Utc::now();
        let (record, label) = match &end {
            HourEnd::Complete => (
                Some(ArchiveHour::new(
                    hour,
                    ArchiveStatus::Imported,
                    archive_events,
                    front.polled,
                    now,
                )),
                "imported",
            ),
            HourEnd::Missing => (
                Some(ArchiveHour::new(hour, ArchiveStatus::Missing, 0, 0, now)),
                "missing",
            ),
            HourEnd::Damaged { .. } => (
                Some(ArchiveHour::new(
                    hour,
                    ArchiveStatus::Damaged,
                    archive_events,
                    front.polled,
                    now,
                )),
                "damaged",
            ),
            HourEnd::Recorded(_) => (None, "already recorded"),
            HourEnd::Pending { .. } => (None, "pending"),
        };
        match &end {
            HourEnd::Complete => info!(
                hour = %hour_name(hour),
                archive_events,
                polled_before_archive = front.polled,
                "gh archive hour read"
            ),
            HourEnd::Pending { reason, .. } => info!(
                hour = %hour_name(hour),
                reason = %reason,
                "gh archive hour not available yet, left for a later run"
            ),
            _ => {}
        }
        let batch = EventBatch {
            events: Vec::new(),
            stats: std::mem::take(&mut front.carry_stats),
            origin: format!("gharchive {} ({label})", hour_name(hour)),
            bytes: std::mem::take(&mut front.carry_bytes),
            completes_origin: true,
        };
        self.status.update(|s| s.current_hour = None);
        follow.ready = Some(Ready {
            batch,
            kind: ReadyKind::End(Mark::End { hour, record, end }),
        });
    }
}

impl Drop for GhArchiveSource {
    fn drop(&mut self) {
        for flight in &self.follow.get_mut().inflight {
            flight.task.abort();
        }
    }
}

#[async_trait]
impl EventSource for GhArchiveSource {
    /// The next batch of the hour being imported, or the end of an hour (an empty batch
    /// completing its origin); `Ok(None)` past a backfill's last hour. Waits while the hour is
    /// not published yet. Cancel-safe: a batch taken from its hour stays until returned.
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        let mut guard = self.follow.lock().await;
        let follow = &mut *guard;
        if !follow.backlog_tried {
            follow.backlog_tried = true;
            if self.write_backlog().await {
                self.save_state().await?;
            }
        }
        loop {
            if let Some(at) = follow.retry_at {
                tokio::time::sleep_until(at).await;
                follow.retry_at = None;
            }
            if let Some(ready) = &mut follow.ready {
                if let ReadyKind::Events { polled: None, .. } = ready.kind {
                    match self.store.count_stored(&ready.batch.events).await {
                        Ok(n) => {
                            if let ReadyKind::Events { polled, .. } = &mut ready.kind {
                                *polled = Some(n);
                            }
                        }
                        Err(e) => {
                            follow.measure_failures += 1;
                            let wait = backoff(
                                self.fetcher.config.min_retry,
                                self.fetcher.config.max_retry,
                                follow.measure_failures,
                            );
                            follow.retry_at = Some(Instant::now() + wait);
                            let message = format!("cannot ask the store what it holds: {e}");
                            warn!(error = %e, retry_in_s = wait.as_secs(), "cannot measure an archive batch, retrying");
                            self.status.error(message.clone());
                            return Err(SourceError::Remote(message));
                        }
                    }
                }
                follow.measure_failures = 0;
                let ready = follow.ready.take().expect("a ready batch");
                let mark = match ready.kind {
                    ReadyKind::Events { position, polled } => {
                        let front = follow.front.as_mut().expect("a front hour");
                        front.polled += polled.unwrap_or(0);
                        self.status.update(|s| {
                            if let Some(current) = &mut s.current_hour {
                                current.polled_before_archive = front.polled;
                            }
                        });
                        Mark::Progress {
                            hour: front.hour,
                            kept_read: position,
                            polled: front.polled,
                        }
                    }
                    ReadyKind::End(mark) => mark,
                };
                // Nothing awaits from here: the batch and its mark go out together.
                self.lock_shared().uncommitted.push_back(mark);
                return Ok(Some(ready.batch));
            }

            self.spawn_hours(follow);
            let Some(flight) = follow.inflight.front_mut() else {
                self.status.update(|s| {
                    s.finished = true;
                    s.current_hour = None;
                });
                return Ok(None);
            };
            if follow.front.as_ref().map(|f| f.hour) != Some(flight.hour) {
                let resume = follow.resume.take().filter(|p| p.hour == flight.hour);
                follow.front = Some(FrontHour {
                    hour: flight.hour,
                    seen: HashSet::default(),
                    position: 0,
                    max_position: 0,
                    resume_skip: resume.map_or(0, |p| p.kept_read),
                    polled: resume.map_or(0, |p| p.polled_before_archive),
                    bytes: 0,
                    carry_stats: ParseStats::default(),
                    carry_bytes: 0,
                });
            }
            match flight.rx.recv().await {
                Some(HourItem::Events {
                    events,
                    stats,
                    bytes,
                }) => self.take_events(follow, events, stats, bytes),
                Some(HourItem::Restart) => {
                    if let Some(front) = &mut follow.front {
                        front.position = 0;
                    }
                }
                Some(HourItem::Done(end)) => self.end_hour(follow, end),
                None => {
                    // The task ended without saying how the hour ended: it panicked. Start
                    // the hour again; what was seen of it stays seen.
                    let hour = flight.hour;
                    warn!(hour = %hour_name(hour), "gh archive hour task failed, starting it again");
                    *flight = self.spawn_hour(hour);
                    if let Some(front) = &mut follow.front {
                        front.position = 0;
                    }
                }
            }
        }
    }

    /// Marks the oldest yielded batch as stored: the hour's progress goes to the state file;
    /// at the end of an hour, its record goes to the store and the state file moves past it.
    async fn commit(&self) -> Result<(), SourceError> {
        let _serial = self.commit_lock.lock().await;
        let mark = self.lock_shared().uncommitted.pop_front();
        let Some(mark) = mark else {
            return Ok(());
        };
        self.write_backlog().await;
        let mut record_error = None;
        match mark {
            Mark::Progress {
                hour,
                kept_read,
                polled,
            } => {
                let mut shared = self.lock_shared();
                let progress = &mut shared.persisted.in_progress;
                let kept_read = match progress {
                    Some(p) if p.hour == hour => p.kept_read.max(kept_read),
                    _ => kept_read,
                };
                *progress = Some(HourProgress {
                    hour,
                    kept_read,
                    polled_before_archive: polled,
                });
            }
            Mark::End { hour, record, end } => {
                if let Some(record) = record
                    && let Err(e) = self.store.record_archive_hour(&record).await
                {
                    warn!(hour = %hour_name(hour), error = %e, "cannot record an archive hour, will retry");
                    record_error = Some(format!(
                        "cannot record archive hour {}: {e}",
                        hour_name(hour)
                    ));
                    self.lock_shared().persisted.unrecorded.push(record);
                }
                let mut shared = self.lock_shared();
                if matches!(end, HourEnd::Pending { .. }) && shared.first_pending.is_none() {
                    shared.first_pending = Some(hour);
                }
                let next = shared.first_pending.unwrap_or(hour + one_hour());
                let state = &mut shared.persisted;
                state.next_hour = Some(next);
                state.in_progress = None;
                let c = &mut state.counters;
                match &end {
                    HourEnd::Complete => {
                        c.imported += 1;
                        state.last_imported_hour = Some(hour);
                    }
                    HourEnd::Missing => c.missing += 1,
                    HourEnd::Damaged { .. } => c.damaged += 1,
                    HourEnd::Recorded(_) => c.skipped += 1,
                    HourEnd::Pending { .. } => c.pending += 1,
                }
                let (counters, last) = (state.counters, state.last_imported_hour);
                drop(shared);
                self.status.update(|s| {
                    s.next_hour = Some(next);
                    s.counters = counters;
                    s.last_imported_hour = last;
                    if let HourEnd::Pending { reason, failed } = end
                        && s.pending_hours.len() < MAX_PENDING_LISTED
                    {
                        s.pending_hours.push(PendingHour {
                            hour,
                            reason,
                            failed,
                        });
                    }
                });
            }
        }
        self.save_state().await?;
        match record_error {
            Some(message) => {
                self.status.error(message.clone());
                Err(SourceError::Remote(message))
            }
            None => Ok(()),
        }
    }
}
