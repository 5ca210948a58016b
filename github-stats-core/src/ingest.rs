//! The ingest loop: batches from any [`EventSource`] into any [`EventStore`], through a bounded
//! buffer.
//!
//! ```no_run
//! # async fn demo() -> Result<(), github_stats_core::SourceError> {
//! use std::sync::Arc;
//! use github_stats_core::{GitHubConfig, GitHubPoller, Ingest, IngestConfig, MemoryStore, SharedStore};
//! use tokio_util::sync::CancellationToken;
//!
//! let store: SharedStore = Arc::new(MemoryStore::new());
//! let poller = Arc::new(GitHubPoller::new(GitHubConfig::default())?);
//! let poller_status = poller.status(); // for /health: poller_status.snapshot()
//! let cancel = CancellationToken::new();
//! let handle = Ingest::spawn(poller, store.clone(), IngestConfig::default(), cancel.clone());
//! let ingest_status = handle.status(); // for /health: ingest_status.snapshot()
//! // … on SIGTERM:
//! cancel.cancel();
//! let report = handle.join().await.expect("not aborted"); // within 10 s
//! # Ok(()) }
//! ```
//!
//! - The source is pulled while the buffer holds fewer than
//!   [`buffer_capacity`](IngestConfig::buffer_capacity) events; when it is full, pulling pauses
//!   (nothing is dropped) and the status says so. A batch arriving just before the buffer fills
//!   is kept whole, so the buffer may exceed its capacity by one batch.
//! - Inserts take buffered batches in order. A failed insert leaves its events in the buffer and
//!   is retried with exponential backoff while the source keeps being pulled; the status turns
//!   `degraded`. An event the store refuses as invalid is the only one ever dropped (counted in
//!   `rejected`).
//! - Each source batch carries its source's [`Checkpoint`] and the records of its progress
//!   ([`SourceRecord`]). Once the batch's events are stored, the loop writes its records, then
//!   hands the checkpoint back ([`EventSource::checkpoint`]) with what storing the batch did
//!   ([`StoredBatch`]: how many of its events the store held before), batch by batch in the
//!   order received. Nothing else acknowledges a batch, so however long the store is away, a
//!   source only ever persists positions whose events are stored. A record that cannot be
//!   written is retried like an insert, before anything later is inserted.
//! - The buffer is bounded in batches too ([`max_buffered_batches`](IngestConfig::max_buffered_batches)):
//!   a source handing on empty batches (polls with nothing new) pauses there, nothing dropped.
//! - A finite source (files) ends the loop once it answers `Ok(None)` and the buffer is flushed.
//! - Cancelling the token stops pulling, finishes the insert in flight, flushes the buffer for
//!   at most [`shutdown_timeout`](IngestConfig::shutdown_timeout), flushes the store, and returns.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::answers::InsertOutcome;
use crate::backoff::Backoff;
use crate::event::Event;
use crate::parse::ParseStats;
use crate::source::{Checkpoint, EventBatch, EventSource, SourceError, SourceRecord, StoredBatch};
use crate::status::{ComponentSnapshot, StatusCell};
use crate::store::{EventStore, StoreError};

/// Source errors kept in the [`IngestReport`] (the rest are only counted).
const MAX_REPORTED_ERRORS: usize = 1000;

/// Settings of the ingest loop.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IngestConfig {
    /// Events buffered before pulling pauses (100,000).
    pub buffer_capacity: usize,
    /// Source batches buffered before pulling pauses (10,000), however few events they hold:
    /// each keeps its checkpoint until stored.
    pub max_buffered_batches: usize,
    /// Most events per insert (10,000); a bigger source batch is inserted in parts.
    pub max_insert_events: usize,
    /// First wait after a failed insert (500 ms); doubles with each failure in a row.
    pub min_retry: Duration,
    /// Longest wait between insert retries (30 s).
    pub max_retry: Duration,
    /// Wait after a remote source error before pulling again (100 ms): a guard against a source
    /// that fails instantly. The poller schedules its own backoff on top.
    pub source_error_pause: Duration,
    /// After cancellation, how long the buffer may take to flush (8 s).
    pub shutdown_timeout: Duration,
    /// How long [`EventStore::flush`] may take at the end (1.5 s).
    pub store_flush_timeout: Duration,
    /// Whether a full buffer (the source paused) is a warning (`true`, the default: a live
    /// source outpacing the store), or expected and logged at debug level (`false`: a bulk
    /// import, which always reads faster than the store writes).
    pub warn_when_paused: bool,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig {
            buffer_capacity: 100_000,
            max_buffered_batches: 10_000,
            max_insert_events: 10_000,
            min_retry: Duration::from_millis(500),
            max_retry: Duration::from_secs(30),
            source_error_pause: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(8),
            store_flush_timeout: Duration::from_millis(1500),
            warn_when_paused: true,
        }
    }
}

/// A point-in-time view of the ingest loop, for `/health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct IngestSnapshot {
    /// Whether the loop is running.
    pub running: bool,
    /// Events waiting to be stored (the insert in flight included).
    pub buffered: u64,
    /// [`IngestConfig::buffer_capacity`].
    pub capacity: u64,
    /// Whether pulling is paused because the buffer is full.
    pub paused: bool,
    /// Whether the store is failing or the buffer is full: events are waiting.
    pub degraded: bool,
    /// Batches received from the source.
    pub batches: u64,
    /// Kept events received from the source.
    pub received: u64,
    /// Events of the kept types the source's parser refused as invalid, never stored: a
    /// repository name GitHub does not allow, a time outside 1970-2105, …
    /// ([`ParseStats::invalid`]).
    pub invalid: u64,
    /// Input bytes the source read.
    pub bytes: u64,
    /// Events the store inserted (new ids).
    pub inserted: u64,
    /// Events the store already had.
    pub duplicates: u64,
    /// Events the store refused as invalid, dropped.
    pub rejected: u64,
    /// Failed inserts (each retried).
    pub store_failures: u64,
    /// Failed inserts in a row (0 after a success).
    pub consecutive_store_failures: u32,
    /// The last store error.
    pub last_store_error: Option<String>,
    /// When the last insert succeeded.
    pub last_insert_at: Option<DateTime<Utc>>,
    /// Errors of the source (failed polls, unreadable files).
    pub source_errors: u64,
    /// The last source error.
    pub last_source_error: Option<String>,
    /// Whether the source is exhausted (finite sources only).
    pub source_exhausted: bool,
    /// How long the store took to answer each insert, failed ones included.
    pub insert_duration: DurationHistogram,
}

/// Durations in fixed buckets, the shape of a Prometheus histogram: how many took at most each
/// bound of [`DurationHistogram::BOUNDS_SECONDS`], their count and their sum. `/health` shows the
/// count and the sum; `/metrics` the buckets too.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DurationHistogram {
    /// Durations recorded.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
    /// Per bucket, the durations above the previous bound and at most this bucket's bound of
    /// [`BOUNDS_SECONDS`](DurationHistogram::BOUNDS_SECONDS); the last entry counts those above
    /// the last bound.
    #[serde(skip)]
    pub buckets: [u64; DURATION_BUCKETS],
}

/// Buckets of a [`DurationHistogram`]: one per bound, and one above the last.
const DURATION_BUCKETS: usize = 15;

impl DurationHistogram {
    /// Bucket upper bounds, in seconds: 1 ms (a memory-store insert) to 30 s (a ClickHouse
    /// timeout).
    pub const BOUNDS_SECONDS: [f64; DURATION_BUCKETS - 1] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];

    /// Adds one duration.
    pub fn record(&mut self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = Self::BOUNDS_SECONDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(Self::BOUNDS_SECONDS.len());
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum_seconds += seconds;
    }

    /// `(upper bound, count in that bucket)` for every bucket, the last bound infinite.
    pub fn bucket_counts(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        Self::BOUNDS_SECONDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().copied())
    }
}

/// A cheaply cloneable handle on the ingest loop's status.
pub type IngestStatus = StatusCell<IngestSnapshot>;

impl ComponentSnapshot for IngestSnapshot {
    fn is_degraded(&self) -> bool {
        self.degraded
    }
}

/// What an ingest run did, returned when it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct IngestReport {
    /// `true` when the source was exhausted and everything was stored; `false` when the run was
    /// cancelled or the source stopped on a configuration error.
    pub completed: bool,
    /// Batches received.
    pub batches: u64,
    /// What the source read, merged over every batch.
    pub stats: ParseStats,
    /// Input bytes the source read.
    pub bytes: u64,
    /// Events inserted (new ids).
    pub inserted: u64,
    /// Events the store already had.
    pub duplicates: u64,
    /// Events the store refused as invalid, dropped.
    pub rejected: u64,
    /// Failed inserts (each retried).
    pub store_failures: u64,
    /// Source errors.
    pub source_errors: u64,
    /// The first source errors, in words (an unreadable file names its path).
    pub source_error_messages: Vec<String>,
    /// Events still buffered when the shutdown timeout ran out: not stored.
    pub unflushed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// A running ingest loop.
#[derive(Debug)]
pub struct IngestHandle {
    status: IngestStatus,
    task: JoinHandle<IngestReport>,
}

impl IngestHandle {
    /// A handle on the loop's status, for `/health`.
    pub fn status(&self) -> IngestStatus {
        self.status.clone()
    }

    /// Whether the loop has returned.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the loop to end (the source exhausted, or the token cancelled) and returns its
    /// report. A panic of the loop is propagated; a loop whose task was aborted before it
    /// returned (its runtime shut down) has no report: [`IngestError::Aborted`].
    pub async fn join(self) -> Result<IngestReport, IngestError> {
        match self.task.await {
            Ok(report) => Ok(report),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(IngestError::Aborted),
        }
    }
}

/// Why [`IngestHandle::join`] has no report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The loop's task was cancelled before it returned (its runtime shut down): what it had
    /// buffered may not be stored, and nothing counted it.
    #[error("the ingest loop was aborted before it finished")]
    Aborted,
}

/// The ingest loop.
#[derive(Debug)]
#[non_exhaustive]
pub struct Ingest;

impl Ingest {
    /// Runs the loop on a new task.
    pub fn spawn(
        source: Arc<dyn EventSource>,
        store: Arc<dyn EventStore>,
        config: IngestConfig,
        cancel: CancellationToken,
    ) -> IngestHandle {
        let status = IngestStatus::default();
        let task = tokio::spawn(Ingest::run_with_status(
            source,
            store,
            config,
            cancel,
            status.clone(),
        ));
        IngestHandle { status, task }
    }

    /// Runs the loop on the current task until the source is exhausted or `cancel` fires.
    pub async fn run(
        source: Arc<dyn EventSource>,
        store: Arc<dyn EventStore>,
        config: IngestConfig,
        cancel: CancellationToken,
    ) -> IngestReport {
        Ingest::run_with_status(source, store, config, cancel, IngestStatus::default()).await
    }

    /// [`Ingest::run`], reporting into `status`.
    pub async fn run_with_status(
        source: Arc<dyn EventSource>,
        store: Arc<dyn EventStore>,
        config: IngestConfig,
        cancel: CancellationToken,
        status: IngestStatus,
    ) -> IngestReport {
        IngestLoop {
            source,
            store,
            config,
            cancel,
            status,
            buffer: VecDeque::new(),
            buffered: 0,
            buffered_batches: 0,
            unrecorded: VecDeque::new(),
            partial: StoredBatch::default(),
            retry: None,
            report: IngestReport::default(),
            consecutive_failures: 0,
        }
        .run()
        .await
    }
}

type PullFuture = Pin<Box<dyn Future<Output = Result<Option<EventBatch>, SourceError>> + Send>>;
type InsertFuture = Pin<Box<dyn Future<Output = InsertDone> + Send>>;

/// Buffered events of one source batch (or a part of one).
struct Entry {
    events: Vec<Event>,
    /// Set on the last part of a source batch: what storing it completes.
    end: Option<BatchEnd>,
}

/// What a source batch hands on once its events are stored.
struct BatchEnd {
    checkpoint: Checkpoint,
    records: Vec<SourceRecord>,
}

/// A source batch whose events are stored: its records to write (from `next_record`), then its
/// checkpoint to hand back.
struct Stored {
    end: BatchEnd,
    stored: StoredBatch,
    /// Records of `end` already written.
    next_record: usize,
}

/// A part of an insert: `len` events of one entry.
struct Part {
    len: usize,
    end: Option<BatchEnd>,
}

struct InsertDone {
    result: Result<InsertOutcome, StoreError>,
    /// How long the store took.
    duration: Duration,
    insert: PendingInsert,
}

/// An insert's events, shared with the store as they are, and the entries they came from.
struct PendingInsert {
    events: Arc<[Event]>,
    parts: Vec<Part>,
}

/// What a records write did: the batches whose records are all written, in order, then those
/// left (the first of them failed).
struct RecordsDone {
    written: Vec<Stored>,
    left: VecDeque<Stored>,
    error: Option<StoreError>,
}

/// The store work in flight: one at a time, in order.
enum StoreWork {
    Insert(InsertFuture),
    Records(Pin<Box<dyn Future<Output = RecordsDone> + Send>>),
}

enum WorkDone {
    Insert(InsertDone),
    Records(RecordsDone),
}

impl StoreWork {
    async fn run(&mut self) -> WorkDone {
        match self {
            StoreWork::Insert(f) => WorkDone::Insert(f.await),
            StoreWork::Records(f) => WorkDone::Records(f.await),
        }
    }
}

struct IngestLoop {
    source: Arc<dyn EventSource>,
    store: Arc<dyn EventStore>,
    config: IngestConfig,
    cancel: CancellationToken,
    status: IngestStatus,
    buffer: VecDeque<Entry>,
    /// Events in the buffer and in flight.
    buffered: usize,
    /// Source batches in the buffer, in flight and waiting for their records.
    buffered_batches: usize,
    /// Stored batches whose records are not all written yet, oldest first: written before
    /// anything else is inserted, so checkpoints go back in order.
    unrecorded: VecDeque<Stored>,
    /// What the parts stored so far of the batch being stored did.
    partial: StoredBatch,
    /// A failed insert, retried as it is before anything else is inserted.
    retry: Option<PendingInsert>,
    report: IngestReport,
    consecutive_failures: u32,
}

/// Awaits the future if there is one; never resolves otherwise.
async fn maybe<F: Future + Unpin>(future: &mut Option<F>) -> F::Output {
    match future {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn maybe_work(work: &mut Option<StoreWork>) -> WorkDone {
    match work {
        Some(w) => w.run().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the loop is doing besides storing, kept across its turns.
#[derive(Default)]
struct Turn {
    pull: Option<PullFuture>,
    work: Option<StoreWork>,
    retry_at: Option<Instant>,
    pull_pause: Option<Instant>,
    source_done: bool,
    /// The source gave up (a configuration error): the run cannot be complete.
    source_failed: bool,
    shutdown_deadline: Option<Instant>,
    was_paused: bool,
}

impl IngestLoop {
    async fn run(mut self) -> IngestReport {
        let started = Instant::now();
        let capacity = self.config.buffer_capacity.max(1);
        self.status.update(|s| {
            s.running = true;
            s.capacity = capacity as u64;
        });
        let mut turn = Turn::default();
        loop {
            let paused = self.start_work(&mut turn, capacity);
            self.publish(paused, turn.source_done);
            let cancelled = turn.shutdown_deadline.is_some();
            if turn.work.is_none()
                && self.buffer.is_empty()
                && self.retry.is_none()
                && self.unrecorded.is_empty()
                && (turn.source_done || cancelled)
            {
                self.report.completed = turn.source_done && !cancelled && !turn.source_failed;
                break;
            }
            if !self.step(&mut turn).await {
                break;
            }
        }
        let source_done = turn.source_done;
        drop(turn);
        self.finish(started, source_done).await
    }

    /// Starts pulling and storing where they can start; whether pulling is paused by a full
    /// buffer.
    fn start_work(&mut self, turn: &mut Turn, capacity: usize) -> bool {
        let cancelled = turn.shutdown_deadline.is_some();
        let full = self.buffered >= capacity
            || self.buffered_batches >= self.config.max_buffered_batches.max(1);
        if turn.pull.is_none()
            && !turn.source_done
            && !cancelled
            && !full
            && turn.pull_pause.is_none()
        {
            let source = Arc::clone(&self.source);
            turn.pull = Some(Box::pin(async move { source.next_batch().await }));
        }
        let paused = full && !turn.source_done && !cancelled;
        if paused != turn.was_paused {
            self.log_pause(paused);
            turn.was_paused = paused;
        }
        if turn.work.is_none() && turn.retry_at.is_none() {
            turn.work = self.start_store_work();
        }
        paused
    }

    fn log_pause(&self, paused: bool) {
        let (buffered, capacity) = (self.buffered, self.config.buffer_capacity);
        let batches = self.buffered_batches;
        match (paused, self.config.warn_when_paused) {
            (true, true) => {
                warn!(
                    buffered,
                    batches, capacity, "ingest buffer full, pausing the source"
                )
            }
            (true, false) => {
                debug!(
                    buffered,
                    batches, capacity, "ingest buffer full, pausing the source"
                )
            }
            (false, true) => info!(buffered, "ingest buffer has room, resuming"),
            (false, false) => debug!(buffered, "ingest buffer has room, resuming"),
        }
    }

    /// Waits for the next thing to happen and handles it; `false` when the loop must end now
    /// (the shutdown timeout ran out).
    async fn step(&mut self, turn: &mut Turn) -> bool {
        let cancelled = turn.shutdown_deadline.is_some();
        tokio::select! {
            biased;
            _ = self.cancel.cancelled(), if !cancelled => {
                info!(buffered = self.buffered, "ingest stopping, flushing the buffer");
                turn.pull = None;
                turn.pull_pause = None;
                turn.shutdown_deadline = Some(Instant::now() + self.config.shutdown_timeout);
            }
            _ = sleep_until_opt(turn.shutdown_deadline) => {
                warn!(
                    unflushed = self.buffered,
                    "ingest shutdown timeout: buffered events not stored"
                );
                return false;
            }
            done = maybe_work(&mut turn.work) => {
                turn.work = None;
                let retry = match done {
                    WorkDone::Insert(done) => self.finish_insert(done).await,
                    WorkDone::Records(done) => self.finish_records(done).await,
                };
                if let Some(wait) = retry {
                    turn.retry_at = Some(Instant::now() + wait);
                }
            }
            _ = sleep_until_opt(turn.retry_at) => {
                turn.retry_at = None;
            }
            _ = sleep_until_opt(turn.pull_pause) => {
                turn.pull_pause = None;
            }
            pulled = maybe(&mut turn.pull) => {
                turn.pull = None;
                self.pulled(turn, pulled);
            }
        }
        true
    }

    fn pulled(&mut self, turn: &mut Turn, pulled: Result<Option<EventBatch>, SourceError>) {
        match pulled {
            Ok(Some(batch)) => self.accept(batch),
            Ok(None) => {
                debug!("source exhausted");
                turn.source_done = true;
            }
            Err(e) => {
                let stop = matches!(e, SourceError::Config(_));
                if matches!(e, SourceError::Remote(_)) {
                    turn.pull_pause = Some(Instant::now() + self.config.source_error_pause);
                }
                self.source_error(e);
                if stop {
                    warn!("source cannot recover, no longer pulling it");
                    turn.source_done = true;
                    turn.source_failed = true;
                }
            }
        }
    }

    async fn finish(mut self, started: Instant, source_done: bool) -> IngestReport {
        match tokio::time::timeout(self.config.store_flush_timeout, self.store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "store flush failed"),
            Err(_) => warn!("store flush timed out"),
        }
        self.report.unflushed = self.buffered as u64;
        self.report.elapsed = started.elapsed();
        self.publish(false, source_done);
        self.status.update(|s| s.running = false);
        info!(
            completed = self.report.completed,
            inserted = self.report.inserted,
            duplicates = self.report.duplicates,
            unflushed = self.report.unflushed,
            elapsed_ms = self.report.elapsed.as_millis() as u64,
            "ingest finished"
        );
        self.report
    }

    fn publish(&self, paused: bool, source_done: bool) {
        let r = &self.report;
        let failures = self.consecutive_failures;
        self.status.update(|s| {
            s.buffered = self.buffered as u64;
            s.paused = paused;
            s.degraded = paused || failures > 0;
            s.batches = r.batches;
            s.received = r.stats.kept_total();
            s.invalid = r.stats.invalid;
            s.bytes = r.bytes;
            s.inserted = r.inserted;
            s.duplicates = r.duplicates;
            s.rejected = r.rejected;
            s.store_failures = r.store_failures;
            s.consecutive_store_failures = failures;
            s.source_errors = r.source_errors;
            s.source_exhausted = source_done;
        });
    }

    fn accept(&mut self, batch: EventBatch) {
        self.report.batches += 1;
        self.report.stats.merge(&batch.stats);
        self.report.bytes += batch.bytes;
        debug!(
            origin = %batch.origin,
            events = batch.events.len(),
            "batch received"
        );
        let EventBatch {
            mut events,
            checkpoint,
            records,
            ..
        } = batch;
        self.buffered += events.len();
        self.buffered_batches += 1;
        let chunk = self.config.max_insert_events.max(1);
        // Split big batches so that one insert stays bounded (each event moved once); the last
        // part ends the batch.
        if events.len() > chunk {
            let mut rest = std::mem::take(&mut events).into_iter();
            while rest.len() > chunk {
                self.buffer.push_back(Entry {
                    events: rest.by_ref().take(chunk).collect(),
                    end: None,
                });
            }
            events = rest.collect();
        }
        self.buffer.push_back(Entry {
            events,
            end: Some(BatchEnd {
                checkpoint,
                records,
            }),
        });
    }

    fn source_error(&mut self, error: SourceError) {
        let message = error.to_string();
        if matches!(error, SourceError::Remote(_)) {
            // The source logged it, with what only it knows (the poller: failures in a row,
            // backoff): once is enough.
            debug!(error = %message, "source error");
        } else {
            warn!(error = %message, "source error");
        }
        self.report.source_errors += 1;
        if self.report.source_error_messages.len() < MAX_REPORTED_ERRORS {
            self.report.source_error_messages.push(message.clone());
        }
        self.status.update(|s| s.last_source_error = Some(message));
    }

    /// The next store work: the records left from the last insert, else an insert of buffered
    /// entries (up to `max_insert_events` events, at least one entry).
    fn start_store_work(&mut self) -> Option<StoreWork> {
        if !self.unrecorded.is_empty() {
            let batches = std::mem::take(&mut self.unrecorded);
            let store = Arc::clone(&self.store);
            return Some(StoreWork::Records(Box::pin(write_records(store, batches))));
        }
        if let Some(insert) = self.retry.take() {
            return Some(self.insert(insert));
        }
        if self.buffer.is_empty() {
            return None;
        }
        let limit = self.config.max_insert_events.max(1);
        let mut events = Vec::new();
        let mut parts: Vec<Part> = Vec::new();
        while let Some(front) = self.buffer.front() {
            if !parts.is_empty() && events.len() + front.events.len() > limit {
                break;
            }
            let entry = self.buffer.pop_front().expect("front exists");
            parts.push(Part {
                len: entry.events.len(),
                end: entry.end,
            });
            if events.is_empty() {
                events = entry.events;
            } else {
                events.extend(entry.events);
            }
        }
        Some(self.insert(PendingInsert {
            events: Arc::from(events),
            parts,
        }))
    }

    fn insert(&self, insert: PendingInsert) -> StoreWork {
        let store = Arc::clone(&self.store);
        StoreWork::Insert(Box::pin(async move {
            let started = Instant::now();
            let result = if insert.events.is_empty() {
                Ok(InsertOutcome::default())
            } else {
                store.insert_batch(Arc::clone(&insert.events)).await
            };
            InsertDone {
                result,
                duration: started.elapsed(),
                insert,
            }
        }))
    }

    /// Accounts for a finished insert; the wait before retrying when it failed.
    async fn finish_insert(&mut self, done: InsertDone) -> Option<Duration> {
        let InsertDone {
            result,
            duration,
            insert: PendingInsert { events, parts },
        } = done;
        if !events.is_empty() {
            self.status.update(|s| s.insert_duration.record(duration));
        }
        match result {
            Ok(outcome) => {
                debug!(
                    events = events.len(),
                    inserted = outcome.inserted,
                    duplicates = outcome.duplicates,
                    duration_ms = duration.as_millis() as u64,
                    "batch stored"
                );
                self.buffered -= events.len();
                self.report.inserted += outcome.inserted;
                self.report.duplicates += outcome.duplicates;
                self.store_succeeded();
                self.status.update(|s| s.last_insert_at = Some(Utc::now()));
                let stored = self.attribute(&events, parts, &outcome);
                self.unrecorded.extend(stored);
                // Batches without records are handed back now; the others once written.
                self.checkpoint_recorded().await;
                None
            }
            Err(error) => {
                self.status
                    .update(|s| s.last_store_error = Some(error.public_message()));
                if let StoreError::InvalidEvent { id, reason } = &error {
                    // Retrying cannot fix this event: drop it alone and retry the rest now.
                    let id = *id;
                    let before = events.len();
                    let mut kept_parts = Vec::with_capacity(parts.len());
                    let mut kept = Vec::with_capacity(before);
                    let mut offset = 0;
                    for part in parts {
                        let part_start = kept.len();
                        kept.extend(
                            events[offset..offset + part.len]
                                .iter()
                                .filter(|e| e.id != id)
                                .cloned(),
                        );
                        offset += part.len;
                        kept_parts.push(Part {
                            len: kept.len() - part_start,
                            end: part.end,
                        });
                    }
                    let dropped = before - kept.len();
                    self.retry = Some(PendingInsert {
                        events: Arc::from(kept),
                        parts: kept_parts,
                    });
                    if dropped > 0 {
                        warn!(id, reason = %reason, "store refused an event, dropping it");
                        self.report.rejected += dropped as u64;
                        self.buffered -= dropped;
                        return None;
                    }
                    // The store named an event we do not have: back off like any failure.
                    return Some(
                        self.store_failed(
                            &error,
                            "store insert failed, keeping the events buffered",
                        ),
                    );
                }
                let wait =
                    self.store_failed(&error, "store insert failed, keeping the events buffered");
                self.retry = Some(PendingInsert { events, parts });
                Some(wait)
            }
        }
    }

    /// What storing each part did, from the insert's outcome: a source batch learns how many of
    /// its events the store held before (or an earlier batch of the same insert brought).
    fn attribute(
        &mut self,
        events: &[Event],
        parts: Vec<Part>,
        outcome: &InsertOutcome,
    ) -> Vec<Stored> {
        let mut done = Vec::new();
        if let [part] = parts.as_slice()
            && part.len == events.len()
        {
            // The common case: one batch, one insert; the outcome is the batch's.
            let part = parts.into_iter().next().expect("one part");
            self.partial.events += part.len as u64;
            self.partial.inserted += outcome.inserted;
            self.partial.seen_before += outcome.stored_before.len() as u64;
            if let Some(end) = part.end {
                done.push(self.end_batch(end));
            }
            return done;
        }
        let before: crate::id_set::IdSet = outcome.stored_before.iter().copied().collect();
        let mut earlier = crate::id_set::IdSet::default();
        let mut offset = 0;
        for part in parts {
            let mut own = crate::id_set::IdSet::default();
            for event in &events[offset..offset + part.len] {
                if !own.insert(event.id) {
                    continue;
                }
                if before.contains(&event.id) || earlier.contains(&event.id) {
                    self.partial.seen_before += 1;
                } else {
                    self.partial.inserted += 1;
                }
            }
            earlier.extend(own);
            self.partial.events += part.len as u64;
            offset += part.len;
            if let Some(end) = part.end {
                done.push(self.end_batch(end));
            }
        }
        done
    }

    fn end_batch(&mut self, end: BatchEnd) -> Stored {
        Stored {
            end,
            stored: std::mem::take(&mut self.partial),
            next_record: 0,
        }
    }

    /// Hands back the checkpoints of the stored batches at the front that have no record left
    /// to write.
    async fn checkpoint_recorded(&mut self) {
        while self
            .unrecorded
            .front()
            .is_some_and(|s| s.next_record >= s.end.records.len())
        {
            let stored = self.unrecorded.pop_front().expect("front exists");
            self.hand_back(stored).await;
        }
    }

    async fn hand_back(&mut self, stored: Stored) {
        self.buffered_batches -= 1;
        if let Err(e) = self
            .source
            .checkpoint(stored.end.checkpoint, stored.stored)
            .await
        {
            warn!(error = %e, "source checkpoint failed");
            self.status
                .update(|s| s.last_source_error = Some(e.to_string()));
        }
    }

    /// Accounts for a records write; the wait before retrying when one failed.
    async fn finish_records(&mut self, done: RecordsDone) -> Option<Duration> {
        let RecordsDone {
            written,
            left,
            error,
        } = done;
        for stored in written {
            self.hand_back(stored).await;
        }
        self.unrecorded = left;
        match error {
            None => {
                self.store_succeeded();
                self.checkpoint_recorded().await;
                None
            }
            Some(error) => {
                self.status
                    .update(|s| s.last_store_error = Some(error.to_string()));
                Some(self.store_failed(&error, "cannot store a source's record, retrying"))
            }
        }
    }

    fn store_succeeded(&mut self) {
        if self.consecutive_failures > 0 {
            info!(
                failures = self.consecutive_failures,
                "store is back, inserting the buffer"
            );
        }
        self.consecutive_failures = 0;
    }

    fn store_failed(&mut self, error: &StoreError, message: &'static str) -> Duration {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.report.store_failures += 1;
        let wait = Backoff::new(self.config.min_retry, self.config.max_retry)
            .wait(self.consecutive_failures);
        warn!(
            error = %error,
            failures = self.consecutive_failures,
            buffered = self.buffered,
            retry_in_ms = wait.as_millis() as u64,
            "{message}"
        );
        wait
    }
}

/// Writes the records of `batches` in order, stopping at the first failure.
async fn write_records(store: Arc<dyn EventStore>, mut batches: VecDeque<Stored>) -> RecordsDone {
    let mut written = Vec::with_capacity(batches.len());
    while let Some(mut stored) = batches.pop_front() {
        while let Some(record) = stored.end.records.get(stored.next_record) {
            let result = match record {
                SourceRecord::ArchiveHour(hour) => store.record_archive_hour(hour).await,
            };
            if let Err(error) = result {
                batches.push_front(stored);
                return RecordsDone {
                    written,
                    left: batches,
                    error: Some(error),
                };
            }
            stored.next_record += 1;
        }
        written.push(stored);
    }
    RecordsDone {
        written,
        left: batches,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_the_bucket_of_their_first_bound_not_below() {
        let mut histogram = DurationHistogram::default();
        histogram.record(Duration::from_micros(500));
        histogram.record(Duration::from_millis(1));
        histogram.record(Duration::from_millis(30));
        histogram.record(Duration::from_secs(60));
        let buckets: Vec<(f64, u64)> = histogram.bucket_counts().collect();
        assert_eq!(buckets.len(), DurationHistogram::BOUNDS_SECONDS.len() + 1);
        assert_eq!(buckets[0], (0.001, 2));
        assert_eq!(buckets[5], (0.05, 1));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 4);
        assert_eq!(histogram.count, 4);
        assert!((histogram.sum_seconds - 60.0315).abs() < 1e-9);
    }

    #[test]
    fn status_starts_idle() {
        let status = IngestStatus::default();
        let s = status.snapshot();
        assert!(!s.running && !s.degraded && s.buffered == 0);
    }
}
