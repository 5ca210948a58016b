//! The GH Archive follower: an [`EventSource`] over GH Archive's hourly files, hour by hour from
//! a first hour, that says what each hour's import found (see [`coverage`](crate::coverage)).
//!
//! ```no_run
//! # async fn demo(store: github_stats_core::SharedStore) -> Result<(), github_stats_core::SourceError> {
//! use std::sync::Arc;
//! use github_stats_core::source::gharchive::{GhArchiveConfig, GhArchiveSource, parse_hour};
//! let mut config = GhArchiveConfig::new(parse_hour("24h", chrono::Utc::now()).unwrap());
//! config.state_file = Some("state/gharchive-state.json".into());
//! // Reads the store's archive records once, to skip the hours it holds.
//! let follower = Arc::new(GhArchiveSource::open(config, &*store).await?);
//! let status = follower.status(); // for /health: status.snapshot()
//! # Ok(()) }
//! ```
//!
//! - Hours are fetched by tasks of their own, [`parallel`](GhArchiveConfig::parallel) at once
//!   (the hour being imported and the next ones), each streaming its file (download, gunzip,
//!   parse) into a bounded channel; batches are yielded strictly in hour order.
//! - Each batch holds the kept events not seen before in its hour, with a checkpoint (the hour
//!   and how far into it). The follower never touches the store: the ingest loop stores each
//!   batch and hands its checkpoint back with how many of its events the store held before
//!   (those the poller, or another mirror, stored first).
//! - An hour's end is a batch of its own, yielded once every earlier batch is stored (so its
//!   count of events stored first is whole), carrying the hour's [`ArchiveHour`] as a record:
//!   the ingest loop writes it after the batch, then hands back the checkpoint, and the state
//!   file moves past the hour. Hours that end otherwise (missing, damaged, already recorded,
//!   pending) end the same way.
//! - The store's records are the truth: hours it records are not fetched again, and a state
//!   file that claims hours the store has no record of (another store, a wiped one) is not
//!   trusted for them.
//!
//! See `docs/gharchive.md`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::RandomState;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::state_file::StateFile;
use super::{Checkpoint, EventBatch, EventSource, SourceError, SourceRecord, StoredBatch};
use crate::answers::TimeWindow;
use crate::backoff::Backoff;
use crate::coverage::{ArchiveHour, ArchiveStatus, HOUR_SECONDS, hour_floor};
use crate::event::Event;
use crate::parse::ParseStats;
use crate::store::MetricsQuery;

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

use fetch::{Fetcher, HourEnd, HourItem, hour_name};

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
    status: ArchiveFollowerStatus,
    /// The consuming side; held for a whole `next_batch`.
    follow: tokio::sync::Mutex<Follow>,
    /// What the state file holds; never held across an await.
    shared: Mutex<FollowerState>,
    /// The sequence number of the last batch whose checkpoint came back.
    acked: watch::Sender<u64>,
    /// Checkpoints one at a time, so state files are written in order.
    checkpoint_lock: tokio::sync::Mutex<()>,
    state_file: Option<StateFile<ArchiveState>>,
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
    front: Option<HourReading>,
    /// A batch taken from its hour and not yet returned (a `next_batch` dropped while an hour's
    /// end waits for its batches to be stored returns it on the next call).
    ready: Option<Ready>,
    /// The state file's progress in the first hour, used once.
    resume: Option<HourProgress>,
    /// Whether the records the state file holds unwritten were handed on.
    backlog_tried: bool,
    /// Batches returned so far (the sequence number of the last one).
    yielded: u64,
}

struct InFlight {
    hour: DateTime<Utc>,
    rx: mpsc::Receiver<HourItem>,
    task: JoinHandle<()>,
}

/// What was read of the hour being imported.
struct HourReading {
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
    /// A batch of new events, ending at this position of the hour.
    Events { position: u64 },
    /// The hour's end: its record is made once every earlier batch is stored.
    End {
        hour: DateTime<Utc>,
        archive_events: u64,
        end: HourEnd,
    },
}

/// The follower's position after a batch ([`Checkpoint`]).
struct FollowCheckpoint {
    /// The batch's sequence number.
    seq: u64,
    mark: Reached,
}

enum Reached {
    /// Events of `hour` up to `kept_read` are stored.
    Progress { hour: DateTime<Utc>, kept_read: u64 },
    /// `hour` ended so (its record, if any, is stored).
    End { hour: DateTime<Utc>, end: HourEnd },
    /// The records a previous version left unwritten in the state file are stored.
    Backlog,
}

struct FollowerState {
    persisted: ArchiveState,
    /// The first hour given up as pending: the state's `next_hour` stays there.
    first_pending: Option<DateTime<Utc>>,
    /// The hour being imported and how many of its distinct events the store held before the
    /// archive's copy came, from the checkpoints handed back so far.
    polled: Option<(DateTime<Utc>, u64)>,
}

impl GhArchiveSource {
    /// A follower with `config`, after reading the store's archive records for its hours (an
    /// unreachable store is waited for, with backoff): hours the store records are not fetched
    /// again, and a state file is trusted only as far as the store records its hours.
    pub async fn open(
        config: GhArchiveConfig,
        store: &dyn MetricsQuery,
    ) -> Result<GhArchiveSource, SourceError> {
        let from = hour_floor(config.from);
        let until = config
            .until
            .map(hour_floor)
            .unwrap_or_else(|| hour_floor(Utc::now()) + one_hour() * 2);
        let recorded = if until > from {
            let window = TimeWindow::new(from, until).expect("a non-empty window");
            let backoff = Backoff::new(config.min_retry, config.max_retry);
            let mut failures = 0;
            loop {
                match store.archive_hours(window).await {
                    Ok(records) => break records,
                    Err(e) => {
                        failures += 1;
                        let wait = backoff.wait(failures);
                        warn!(
                            error = %e,
                            retry_in_s = wait.as_secs(),
                            "cannot read the store's archive records, retrying"
                        );
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        } else {
            Vec::new()
        };
        GhArchiveSource::new(config, recorded)
    }

    /// A follower with `config`, given what the store records of its hours (`recorded`, as
    /// [`MetricsQuery::archive_hours`] answers). Reads the state file (a corrupt one is reported
    /// and replaced). Fails only on a configuration that cannot work: a base URL that is not
    /// http, https or an existing local directory.
    pub fn new(
        config: GhArchiveConfig,
        recorded: Vec<ArchiveHour>,
    ) -> Result<GhArchiveSource, SourceError> {
        let status = ArchiveFollowerStatus::default();
        let from = hour_floor(config.from);
        let until = config.until.map(hour_floor);
        let mut config = config;
        config.from = from;
        config.until = until;
        let recorded: HashMap<DateTime<Utc>, ArchiveStatus> =
            recorded.into_iter().map(|r| (r.hour, r.status)).collect();

        let mut startup_error = None;
        let state_file = config
            .state_file
            .clone()
            .map(|path| StateFile::<ArchiveState>::new(path, "archive follower state"));
        let loaded = match &state_file {
            None => None,
            Some(file) => match file.load_blocking() {
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
        let mut start = match (persisted.from, persisted.next_hour) {
            (Some(started), Some(next)) if from >= started && from <= next => next,
            _ => {
                persisted.from = Some(from);
                persisted.in_progress = None;
                from
            }
        };
        // The state file says every hour before `start` is recorded; the store must agree (a
        // state file left from another store, or from a wiped one, would skip them for good).
        let mut hour = from;
        while hour < start {
            if !recorded.contains_key(&hour) {
                warn!(
                    state_next_hour = %hour_name(start),
                    first_unrecorded = %hour_name(hour),
                    "archive follower state file claims hours the store has no record of, importing them again"
                );
                start = hour;
                persisted.in_progress = None;
                persisted.from = Some(from);
                break;
            }
            hour += one_hour();
        }
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
        let fetcher = Fetcher::new(config.clone(), recorded, status.clone())?;
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
            status,
            follow: tokio::sync::Mutex::new(Follow {
                next_spawn: start,
                inflight: VecDeque::new(),
                front: None,
                ready: None,
                resume,
                backlog_tried: false,
                yielded: 0,
            }),
            shared: Mutex::new(FollowerState {
                persisted,
                first_pending: None,
                polled: None,
            }),
            acked: watch::Sender::new(0),
            checkpoint_lock: tokio::sync::Mutex::new(()),
            state_file,
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

    fn lock_shared(&self) -> std::sync::MutexGuard<'_, FollowerState> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save_state_blocking(&self) -> Result<(), SourceError> {
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        Ok(file.save_blocking(&self.lock_shared().persisted.clone())?)
    }

    /// Writes the state file off the async workers (it is synced).
    async fn save_state(&self) -> Result<(), SourceError> {
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        let snapshot = self.lock_shared().persisted.clone();
        Ok(file.save(snapshot).await?)
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
        let (hour, archive_events, bytes) = (front.hour, front.seen.len() as u64, front.bytes);
        let polled = self.polled_in(hour);
        self.status.update(|s| {
            s.current_hour = Some(CurrentHour {
                hour,
                archive_events,
                polled_before_archive: polled,
                bytes,
            });
        });
        if new.is_empty() {
            return;
        }
        let front = follow.front.as_mut().expect("a front hour");
        let mut batch = EventBatch::new(
            new,
            std::mem::take(&mut front.carry_stats),
            format!("gharchive {}", hour_name(front.hour)),
        );
        batch.bytes = std::mem::take(&mut front.carry_bytes);
        batch.completes_origin = false;
        follow.ready = Some(Ready {
            batch,
            kind: ReadyKind::Events { position: end },
        });
    }

    /// Of `hour`'s distinct events, those the store held before the archive's copy came, as
    /// far as the checkpoints handed back tell.
    fn polled_in(&self, hour: DateTime<Utc>) -> u64 {
        match self.lock_shared().polled {
            Some((h, polled)) if h == hour => polled,
            _ => 0,
        }
    }

    /// The hour being imported ended: the batch marking its end.
    fn end_hour(&self, follow: &mut Follow, end: HourEnd) {
        let flight = follow.inflight.pop_front().expect("an hour in flight");
        self.status.fetched(flight.hour);
        let mut front = follow.front.take().expect("a front hour");
        let hour = front.hour;
        let archive_events = front.seen.len() as u64;
        let label = match &end {
            HourEnd::Complete => "imported",
            HourEnd::Missing => "missing",
            HourEnd::Damaged { .. } => "damaged",
            HourEnd::Recorded(_) => "already recorded",
            HourEnd::Pending { .. } => "pending",
        };
        if let HourEnd::Pending { reason, .. } = &end {
            info!(
                hour = %hour_name(hour),
                reason = %reason,
                "gh archive hour not available yet, left for a later run"
            );
        }
        let mut batch = EventBatch::new(
            Vec::new(),
            std::mem::take(&mut front.carry_stats),
            format!("gharchive {} ({label})", hour_name(hour)),
        );
        batch.bytes = std::mem::take(&mut front.carry_bytes);
        self.status.update(|s| s.current_hour = None);
        follow.ready = Some(Ready {
            batch,
            kind: ReadyKind::End {
                hour,
                archive_events,
                end,
            },
        });
    }

    /// The record of an hour that ended so, once every batch of it is stored.
    fn hour_record(
        &self,
        hour: DateTime<Utc>,
        archive_events: u64,
        end: &HourEnd,
    ) -> Option<ArchiveHour> {
        let polled = self.polled_in(hour);
        let now = Utc::now();
        match end {
            HourEnd::Complete => {
                info!(
                    hour = %hour_name(hour),
                    archive_events,
                    polled_before_archive = polled,
                    "gh archive hour read"
                );
                Some(ArchiveHour::new(
                    hour,
                    ArchiveStatus::Imported,
                    archive_events,
                    polled,
                    now,
                ))
            }
            HourEnd::Missing => Some(ArchiveHour::new(hour, ArchiveStatus::Missing, 0, 0, now)),
            HourEnd::Damaged { .. } => Some(ArchiveHour::new(
                hour,
                ArchiveStatus::Damaged,
                archive_events,
                polled,
                now,
            )),
            HourEnd::Recorded(_) | HourEnd::Pending { .. } => None,
        }
    }

    /// Returns `ready`'s batch with its checkpoint (and, at an hour's end, its record).
    fn hand_on(&self, follow: &mut Follow, ready: Ready) -> EventBatch {
        follow.yielded += 1;
        let seq = follow.yielded;
        let mut batch = ready.batch;
        let mark = match ready.kind {
            ReadyKind::Events { position } => Reached::Progress {
                hour: follow.front.as_ref().expect("a front hour").hour,
                kept_read: position,
            },
            ReadyKind::End {
                hour,
                archive_events,
                end,
            } => {
                if let Some(record) = self.hour_record(hour, archive_events, &end) {
                    batch.records.push(SourceRecord::ArchiveHour(record));
                }
                Reached::End { hour, end }
            }
        };
        batch.checkpoint = Checkpoint::new(FollowCheckpoint { seq, mark });
        batch
    }

    /// Starts reading the hour of `flight` unless it is the one being read.
    fn read_front(&self, follow: &mut Follow) {
        let Some(flight) = follow.inflight.front() else {
            return;
        };
        if follow.front.as_ref().map(|f| f.hour) == Some(flight.hour) {
            return;
        }
        let hour = flight.hour;
        let resume = follow.resume.take().filter(|p| p.hour == hour);
        self.lock_shared().polled = Some((hour, resume.map_or(0, |p| p.polled_before_archive)));
        follow.front = Some(HourReading {
            hour,
            seen: HashSet::default(),
            position: 0,
            max_position: 0,
            resume_skip: resume.map_or(0, |p| p.kept_read),
            bytes: 0,
            carry_stats: ParseStats::default(),
            carry_bytes: 0,
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
    /// The next batch of the hour being imported, or the end of an hour (an empty batch with the
    /// hour's record, once the hour's earlier batches are stored); `Ok(None)` past a backfill's
    /// last hour. Waits while the hour is not published yet. Cancel-safe: a batch taken from its
    /// hour stays until returned.
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        let mut guard = self.follow.lock().await;
        let follow = &mut *guard;
        if !follow.backlog_tried {
            follow.backlog_tried = true;
            // Records an earlier version failed to write: the ingest loop writes them now.
            let backlog = self.lock_shared().persisted.unrecorded.clone();
            if !backlog.is_empty() {
                follow.yielded += 1;
                let mut batch =
                    EventBatch::new(Vec::new(), ParseStats::default(), "gharchive records");
                batch.records = backlog.into_iter().map(SourceRecord::ArchiveHour).collect();
                batch.checkpoint = Checkpoint::new(FollowCheckpoint {
                    seq: follow.yielded,
                    mark: Reached::Backlog,
                });
                return Ok(Some(batch));
            }
        }
        loop {
            if let Some(ready) = &follow.ready {
                if matches!(ready.kind, ReadyKind::End { .. }) {
                    // The hour's record counts what the store held of its events before: every
                    // earlier batch must be stored first.
                    let target = follow.yielded;
                    let mut acked = self.acked.subscribe();
                    let _ = acked.wait_for(|&a| a >= target).await;
                }
                let ready = follow.ready.take().expect("a ready batch");
                return Ok(Some(self.hand_on(follow, ready)));
            }

            self.spawn_hours(follow);
            if follow.inflight.is_empty() {
                self.status.update(|s| {
                    s.finished = true;
                    s.current_hour = None;
                });
                return Ok(None);
            }
            self.read_front(follow);
            let flight = follow.inflight.front_mut().expect("an hour in flight");
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

    /// A batch is stored: the hour's progress (and what the store held of it before) goes to
    /// the state file; at the end of an hour (its record stored by the ingest loop), the state
    /// file moves past it.
    async fn checkpoint(
        &self,
        checkpoint: Checkpoint,
        stored: StoredBatch,
    ) -> Result<(), SourceError> {
        let Some(FollowCheckpoint { seq, mark }) = checkpoint.into_inner::<FollowCheckpoint>()
        else {
            return Ok(());
        };
        let _serial = self.checkpoint_lock.lock().await;
        match mark {
            Reached::Progress { hour, kept_read } => self.progressed(hour, kept_read, stored),
            Reached::End { hour, end } => self.ended(hour, end),
            Reached::Backlog => self.lock_shared().persisted.unrecorded.clear(),
        }
        let saved = self.save_state().await;
        self.acked.send_modify(|a| *a = (*a).max(seq));
        saved
    }
}

impl GhArchiveSource {
    fn progressed(&self, hour: DateTime<Utc>, kept_read: u64, stored: StoredBatch) {
        let mut shared = self.lock_shared();
        let polled = match &mut shared.polled {
            Some((h, polled)) if *h == hour => {
                *polled += stored.seen_before;
                *polled
            }
            other => {
                *other = Some((hour, stored.seen_before));
                stored.seen_before
            }
        };
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
        drop(shared);
        self.status.update(|s| {
            if let Some(current) = &mut s.current_hour
                && current.hour == hour
            {
                current.polled_before_archive = polled;
            }
        });
    }

    fn ended(&self, hour: DateTime<Utc>, end: HourEnd) {
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
