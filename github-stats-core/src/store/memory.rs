//! The in-memory store: the embedded default.
//!
//! It keeps indexes, not events: a set of stored ids (deduplication), one sorted vector of
//! creation times per event type (window counts and timelines by binary search), and per
//! repository its counts by type and its opened pull requests' count, first and last time
//! (names interned once in an arena, shared by the lookup table and the ranking). The ranking
//! is kept in answer order (most events first, ties by name), so `top_repositories(limit)`
//! reads `limit` entries however many repositories tie. No query scans the events; each costs
//! O(log n), the ranking O(log n + limit). At most 100 bytes per event, all indexes included,
//! in the worst case of a new repository for almost every event; 20-30 with real data (see
//! `benches/README.md`).
//!
//! With a data directory, every stored event is also appended to `events.log` (see
//! `memory/log.rs` for its format) before [`EventStore::insert_events`] returns, and replayed at
//! open, so a restart loses nothing. A lock file keeps a second process out of the same directory. A failed
//! append (a full disk) fails the insert and is cut back out of the file, and `/health` says
//! `degraded` with the error until an append succeeds again; a torn or zeroed tail is cut at
//! the next open, damage before the tail skipped; `memory/log.rs` describes every case.
//!
//! The async methods never block the runtime's workers: inserts and flushes (file writes,
//! `fsync`, index updates) run on tokio's blocking pool, as do long rankings and timelines
//! (more than 128 entries); the other queries run in place when the index is free and wait on
//! the blocking pool when an insert holds it. [`MemoryStore::insert_blocking`] is the
//! synchronous insert, for callers on their own threads.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, TryLockError};

use async_trait::async_trait;

use crate::answers::{
    EventCounts, InsertOutcome, PrAverage, RepoEventCount, RepoEventCounts, StoreHealth,
    TimeWindow, Timeline, TypeCounts, timeline_buckets,
};
use crate::coverage::{ArchiveHour, CompleteRun};
use crate::event::{Event, EventType, RepoName, utc_from_timestamp};
use crate::id_set::IdHasher;
use crate::store::{EventStore, MetricsQuery, StoreError};

mod archive;
mod fields;
mod log;
mod ranking;

use fields::EventFields;
pub use log::ReplayReport;
use ranking::{Ranking, Slot};

/// Name of the event file inside the data directory.
pub const EVENT_FILE: &str = "events.log";
/// Name of the file of archive-hour records inside the data directory.
pub const ARCHIVE_FILE: &str = "archive-hours.jsonl";
/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "lock";

/// Options of [`MemoryStore::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryStoreOptions {
    /// `fsync` after every insert (default `true`). Without it a power cut may lose the last
    /// inserts; a process crash still loses nothing.
    pub sync_writes: bool,
}

impl Default for MemoryStoreOptions {
    fn default() -> Self {
        MemoryStoreOptions { sync_writes: true }
    }
}

/// Entries (buckets, ranked repositories) a query may read in place on an async worker: a few
/// microseconds. Larger ones run on the blocking pool, whose hand-over costs about as much.
const INLINE_ENTRIES: usize = 128;
/// Event ids an insert or `count_stored` may look up in place (a poll's 300 events, a thousand
/// at most: tens of microseconds).
const INLINE_IDS: usize = 1_024;

/// The in-memory store; see the [module documentation](self). Cloning is cheap, and clones
/// share the store.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<StoreState>,
}

/// Why one of the store's own files could not be opened: a symbolic link (refused), or an I/O
/// error to be put in context.
pub(super) enum OwnFileError {
    /// The path is a symbolic link: the error says so, naming it.
    Link(StoreError),
    /// Opening failed.
    Io(std::io::Error),
}

impl OwnFileError {
    /// The store error: a link's refusal as it is, an I/O error under `context`.
    pub(super) fn context(self, context: String) -> StoreError {
        match self {
            OwnFileError::Link(refused) => refused,
            OwnFileError::Io(source) => StoreError::io(context, source),
        }
    }
}

/// Opens one of the store's own files, never through a symbolic link: a link there (to a file
/// outside the data directory, or dangling) would send the store's records to, or create, a
/// file somewhere else. `O_NOFOLLOW` makes the check and the opening one step, so nothing can
/// swap a link in between.
pub(super) fn open_own_file(path: &Path, options: &mut OpenOptions) -> Result<File, OwnFileError> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, libc::O_NOFOLLOW);
    #[cfg(not(unix))]
    if path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(OwnFileError::Link(refused_link(path)));
    }
    match options.open(path) {
        Ok(file) => Ok(file),
        Err(e) if is_link_refusal(&e) || path.symlink_metadata().is_ok_and(|m| m.is_symlink()) => {
            Err(OwnFileError::Link(refused_link(path)))
        }
        Err(e) => Err(OwnFileError::Io(e)),
    }
}

fn is_link_refusal(error: &std::io::Error) -> bool {
    #[cfg(unix)]
    return error.raw_os_error() == Some(libc::ELOOP);
    #[cfg(not(unix))]
    return false;
}

fn refused_link(path: &Path) -> StoreError {
    StoreError::io(
        format!("{} is a symbolic link", path.display()),
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the store never opens its own files through a link (it could lead out of the data \
             directory): replace it with the file itself, or remove it",
        ),
    )
}

/// The store's state, shared with the blocking tasks that work on it.
struct StoreState {
    index: RwLock<Index>,
    /// Serialises writers, and holds the event file when persistent.
    writer: Mutex<Option<log::EventLog>>,
    /// The error of the last append or flush, until one succeeds. Its own lock, never held
    /// across I/O, so that `health` never waits for a slow disk.
    write_error: Mutex<Option<String>>,
    data_dir: Option<PathBuf>,
    replay: ReplayReport,
    /// Archive-hour records (and their file, when persistent).
    archive: archive::ArchiveLedger,
    _lock: Option<File>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("data_dir", &self.shared.data_dir)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// A purely in-memory store (library use, tests): nothing is written anywhere.
    pub fn new() -> MemoryStore {
        MemoryStore::from_shared(StoreState {
            index: RwLock::new(Index::default()),
            writer: Mutex::new(None),
            write_error: Mutex::new(None),
            data_dir: None,
            replay: ReplayReport::default(),
            archive: archive::ArchiveLedger::default(),
            _lock: None,
        })
    }

    fn from_shared(shared: StoreState) -> MemoryStore {
        MemoryStore {
            shared: Arc::new(shared),
        }
    }

    /// A persistent store in `dir` (created if missing): locks it, replays its event file. Its
    /// files (`events.log`, `archive-hours.jsonl`, `lock`) are never opened through a symbolic
    /// link: a link is refused with an error naming it.
    /// Blocks while replaying (millions of events a second): call it off the async workers.
    pub fn open(dir: impl AsRef<Path>) -> Result<MemoryStore, StoreError> {
        MemoryStore::open_with(dir, MemoryStoreOptions::default())
    }

    /// [`MemoryStore::open`] with options.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: MemoryStoreOptions,
    ) -> Result<MemoryStore, StoreError> {
        MemoryStore::open_with_file(dir.as_ref(), options, |file| Box::new(file))
    }

    /// [`MemoryStore::open_with`], the event file wrapped by `wrap` (fault injection in tests).
    fn open_with_file(
        dir: &Path,
        options: MemoryStoreOptions,
        wrap: impl FnOnce(File) -> Box<dyn log::LogFile>,
    ) -> Result<MemoryStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::io(format!("cannot create data directory {}", dir.display()), e)
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = open_own_file(
            &lock_path,
            File::options().create(true).truncate(false).write(true),
        )
        .map_err(|e| e.context(format!("cannot open {}", lock_path.display())))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    lock: lock_path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::io(
                    format!("cannot lock {}", lock_path.display()),
                    e,
                ));
            }
        }
        let mut index = Index::default();
        // Replay deduplicates exactly as inserts do: a record written twice counts once.
        let (event_log, replay) = log::EventLog::open_with(
            &dir.join(EVENT_FILE),
            options.sync_writes,
            |batch| {
                let fresh = index.fresh(&batch);
                let n = fresh.len() as u64;
                index.apply(Delta::new(&fresh));
                n
            },
            wrap,
        )?;
        if replay.duplicate_records > 0 {
            tracing::info!(
                duplicate_records = replay.duplicate_records,
                file = %event_log.path().display(),
                "data file holds records written twice; each counted once"
            );
        }
        let archive = archive::ArchiveLedger::open(&dir.join(ARCHIVE_FILE))?;
        Ok(MemoryStore::from_shared(StoreState {
            index: RwLock::new(index),
            writer: Mutex::new(Some(event_log)),
            write_error: Mutex::new(None),
            data_dir: Some(dir.to_path_buf()),
            replay,
            archive,
            _lock: Some(lock),
        }))
    }

    /// What replaying the event file found at open (all zero without a data directory).
    pub fn replay_report(&self) -> &ReplayReport {
        &self.shared.replay
    }

    /// The data directory, when persistent.
    pub fn data_dir(&self) -> Option<&Path> {
        self.shared.data_dir.as_deref()
    }

    /// Approximate heap bytes held by the indexes (capacity, not length): what
    /// `benches/README.md` divides by the event count.
    pub fn heap_bytes(&self) -> usize {
        self.shared.read().heap_bytes()
    }

    /// Stores `events` synchronously, blocking on file I/O when persistent: for callers on
    /// their own threads. [`EventStore::insert_events`] does the same on the blocking pool.
    pub fn insert_blocking(&self, events: &[Event]) -> Result<InsertOutcome, StoreError> {
        self.shared.insert(events)
    }

    /// The outcome of inserting `events` when it is known in place: an empty batch, or a poll's
    /// few hundred events all stored already (checked without the blocking pool).
    fn nothing_new(&self, events: &[Event]) -> Option<InsertOutcome> {
        if events.is_empty() {
            return Some(InsertOutcome::default());
        }
        if events.len() > INLINE_IDS {
            return None;
        }
        let index = self.shared.index.try_read().ok()?;
        let (fresh, stored_before) = index.fresh_and_stored(events);
        fresh.is_empty().then_some(InsertOutcome {
            inserted: 0,
            duplicates: events.len() as u64,
            stored_before,
        })
    }

    /// Runs `query` on the index: in place when the index is free (a query of a few
    /// microseconds), on the blocking pool when an insert holds it, so that no async worker
    /// ever waits for a lock.
    async fn query<R: Send + 'static>(
        &self,
        query: impl FnOnce(&Index) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        match self.shared.index.try_read() {
            Ok(index) => return Ok(query(&index)),
            Err(TryLockError::Poisoned(poisoned)) => return Ok(query(&poisoned.into_inner())),
            Err(TryLockError::WouldBlock) => {}
        }
        self.blocking(move |shared| query(&shared.read())).await
    }

    /// [`MemoryStore::query`] for a query reading about `entries` entries of the index: in
    /// place when that is a few microseconds of work, on the blocking pool otherwise.
    async fn query_sized<R: Send + 'static>(
        &self,
        entries: usize,
        query: impl FnOnce(&Index) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        if entries <= INLINE_ENTRIES {
            self.query(query).await
        } else {
            self.blocking(move |shared| query(&shared.read())).await
        }
    }

    /// Runs `work` on the blocking pool. It runs to the end even if the caller goes away, so an
    /// insert is never left half done.
    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&StoreState) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || work(&shared))
            .await
            .map_err(|e| StoreError::Backend(format!("memory store task failed: {e}")))
    }
}

impl StoreState {
    fn insert<E: EventFields>(&self, events: &[E]) -> Result<InsertOutcome, StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Writers are serialised by `writer`: what is fresh now is fresh until applied.
        let (fresh, stored_before) = self.read().fresh_and_stored(events);
        // Nothing the log would cut (a name over 65,535 bytes, an action over 255) or the index
        // would wrap (a time outside `u32` seconds) gets in: `Event::check_storable`.
        for e in &fresh {
            e.check_storable()
                .map_err(|reason| StoreError::InvalidEvent {
                    id: e.id(),
                    reason: reason.to_string(),
                })?;
        }
        // Aggregated before taking the index, so that readers wait for the merge only.
        let delta = Delta::new(&fresh);
        // Durable first, visible second: a reader never sees what a crash could lose.
        if let Some(event_log) = writer.as_mut().filter(|_| !fresh.is_empty()) {
            let appended = event_log.append(fresh.iter().copied());
            self.note_write(&appended);
            appended?;
        }
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply(delta);
        Ok(InsertOutcome {
            inserted: fresh.len() as u64,
            duplicates: (events.len() - fresh.len()) as u64,
            stored_before,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(event_log) = writer.as_mut() else {
            return Ok(());
        };
        let synced = event_log.sync();
        self.note_write(&synced);
        synced
    }

    /// Keeps the error of a failed write for `health`, or clears it after a success.
    fn note_write(&self, result: &Result<(), StoreError>) {
        *self.write_error.lock().unwrap_or_else(|e| e.into_inner()) =
            result.as_ref().err().map(|e| e.to_string());
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn insert_batch(&self, events: Arc<[Event]>) -> Result<InsertOutcome, StoreError> {
        if let Some(outcome) = self.nothing_new(&events) {
            return Ok(outcome);
        }
        // The batch is shared with the blocking pool as it is: no copy.
        self.blocking(move |shared| shared.insert(&events)).await?
    }

    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome, StoreError> {
        if let Some(outcome) = self.nothing_new(events) {
            return Ok(outcome);
        }
        // The blocking pool needs owned events.
        self.insert_batch(Arc::from(events)).await
    }

    async fn count_stored(&self, events: &[Event]) -> Result<u64, StoreError> {
        let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
        self.query_sized(ids.len() * INLINE_ENTRIES / INLINE_IDS, move |index| {
            let mut seen: HashSet<u64, IdHasher> = HashSet::default();
            ids.iter()
                .filter(|&&id| seen.insert(id) && index.ids.contains(&id))
                .count() as u64
        })
        .await
    }

    async fn health(&self) -> StoreHealth {
        let (total, last) = match self
            .query(|index| (index.ids.len() as u64, index.last_event_ts))
            .await
        {
            Ok(answer) => answer,
            Err(e) => return StoreHealth::unreachable(self.backend_name(), e.to_string()),
        };
        let mut health = StoreHealth::new(
            self.backend_name(),
            true,
            total,
            last.and_then(utc_from_timestamp),
        );
        let shared = &self.shared;
        health.details.insert(
            "persistent".into(),
            serde_json::Value::Bool(shared.data_dir.is_some()),
        );
        if let Some(dir) = &shared.data_dir {
            let replay = &shared.replay;
            health.details.insert(
                "data_file".into(),
                dir.join(EVENT_FILE).display().to_string().into(),
            );
            for (key, value) in [
                ("replayed_records", replay.records),
                ("duplicate_records_replayed", replay.duplicate_records),
                ("torn_bytes_dropped", replay.torn_bytes),
                ("damaged_bytes_skipped", replay.damaged_bytes),
                ("damaged_ranges_skipped", replay.damaged_ranges),
            ] {
                health.details.insert(key.into(), value.into());
            }
            let write_error = shared
                .write_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(error) = write_error {
                // Answers, but cannot store: inserts wait in the ingest buffer.
                health.degraded = true;
                health.error = Some(format!("the last write failed: {error}"));
            }
        }
        health
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }

    async fn record_archive_hour(&self, record: &ArchiveHour) -> Result<(), StoreError> {
        // Appended and synced: file I/O, on the blocking pool.
        let record = record.clone();
        self.blocking(move |shared| shared.archive.record(record))
            .await?
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.blocking(|shared| shared.flush()).await?
    }
}

#[async_trait]
impl MetricsQuery for MemoryStore {
    async fn pr_average(&self, repo: &RepoName) -> Result<PrAverage, StoreError> {
        let repo = repo.as_str().to_owned();
        self.query(move |index| match index.repos.get(&repo) {
            Some(stats) if stats.opened > 0 => PrAverage::from_extremes(
                &repo,
                u64::from(stats.opened),
                utc_from_timestamp(i64::from(stats.first_opened)),
                utc_from_timestamp(i64::from(stats.last_opened)),
            ),
            _ => PrAverage::from_extremes(&repo, 0, None, None),
        })
        .await
    }

    async fn pr_average_in(
        &self,
        repo: &RepoName,
        window: TimeWindow,
    ) -> Result<PrAverage, StoreError> {
        let repo = repo.as_str().to_owned();
        self.query(move |index| {
            let times = index
                .repos
                .find(&repo)
                .and_then(|i| index.opened_times.get(&i))
                .map(|times| {
                    let (lower, upper) = (
                        position(times, window.since_ts()),
                        position(times, window.until_ts()),
                    );
                    &times[lower..upper]
                })
                .unwrap_or_default();
            PrAverage::from_extremes(
                &repo,
                times.len() as u64,
                times
                    .first()
                    .and_then(|&t| utc_from_timestamp(i64::from(t))),
                times.last().and_then(|&t| utc_from_timestamp(i64::from(t))),
            )
        })
        .await
    }

    async fn event_counts(&self, window: TimeWindow) -> Result<EventCounts, StoreError> {
        self.query(move |index| {
            let mut counts = TypeCounts::default();
            for t in EventType::ALL {
                counts[t] = index.count_between(t, window.since_ts(), window.until_ts());
            }
            EventCounts { window, counts }
        })
        .await
    }

    async fn timeline(
        &self,
        window: TimeWindow,
        bucket_seconds: i64,
    ) -> Result<Timeline, StoreError> {
        let starts = timeline_buckets(&window, bucket_seconds)?;
        // Up to 10,000 buckets of O(log n) each.
        self.query_sized(starts.len(), move |index| {
            let mut counts: [Vec<u64>; 3] = Default::default();
            for t in EventType::ALL {
                let times = &index.times[t.index()];
                // One binary search per boundary: O(buckets · log n).
                let mut lower = position(times, window.since_ts());
                counts[t.index()] = starts
                    .iter()
                    .map(|&start| {
                        let end = (start + bucket_seconds).min(window.until_ts());
                        let upper = position(times, end);
                        let n = (upper - lower) as u64;
                        lower = upper;
                        n
                    })
                    .collect();
            }
            Timeline {
                window,
                bucket_seconds,
                bucket_starts: starts.into_iter().filter_map(utc_from_timestamp).collect(),
                counts,
            }
        })
        .await
    }

    async fn repo_event_counts(&self, repo: &RepoName) -> Result<RepoEventCounts, StoreError> {
        let repo = repo.as_str().to_owned();
        self.query(move |index| {
            let counts = index
                .repos
                .get(&repo)
                .map(|s| TypeCounts(s.counts.map(u64::from)))
                .unwrap_or_default();
            RepoEventCounts {
                repository: repo,
                counts,
            }
        })
        .await
    }

    async fn total_events(&self) -> Result<u64, StoreError> {
        self.query(|index| index.ids.len() as u64).await
    }

    async fn top_repositories(&self, limit: usize) -> Result<Vec<RepoEventCount>, StoreError> {
        // O(log n + limit), whatever the ties.
        self.query_sized(limit, move |index| index.repos.top(limit))
            .await
    }

    async fn archive_hours(&self, window: TimeWindow) -> Result<Vec<ArchiveHour>, StoreError> {
        // The ledger's readers never wait for its file: a day's records are read in place, a
        // long span's (up to a year of hours) on the blocking pool.
        let (since, until) = (window.since_ts(), window.until_ts());
        let hours = (until - since).div_euclid(crate::coverage::HOUR_SECONDS) + 2;
        if hours <= INLINE_ENTRIES as i64 {
            Ok(self.shared.archive.between(since, until))
        } else {
            self.blocking(move |shared| shared.archive.between(since, until))
                .await
        }
    }

    async fn complete_run(&self) -> Result<Option<CompleteRun>, StoreError> {
        Ok(self.shared.archive.complete_run())
    }
}

/// Index of the first time `>= ts` (clamped to the `u32` range the times are kept in).
fn position(times: &[u32], ts: i64) -> usize {
    if ts <= 0 {
        return 0;
    }
    if ts > i64::from(u32::MAX) {
        return times.len();
    }
    let ts = ts as u32;
    times.partition_point(|&t| t < ts)
}

#[derive(Default, Debug, Clone, Copy)]
struct RepoStats {
    counts: [u32; 3],
    opened: u32,
    first_opened: u32,
    last_opened: u32,
}

impl RepoStats {
    fn total(&self) -> u32 {
        self.counts.iter().sum()
    }

    fn add(&mut self, delta: &RepoStats) {
        for i in 0..3 {
            self.counts[i] += delta.counts[i];
        }
        if delta.opened > 0 {
            if self.opened == 0 {
                self.first_opened = delta.first_opened;
                self.last_opened = delta.last_opened;
            } else {
                self.first_opened = self.first_opened.min(delta.first_opened);
                self.last_opened = self.last_opened.max(delta.last_opened);
            }
            self.opened += delta.opened;
        }
    }

    fn add_event(&mut self, event_type: EventType, opened_at: Option<u32>) {
        self.counts[event_type.index()] += 1;
        if let Some(ts) = opened_at {
            self.add(&RepoStats {
                counts: [0; 3],
                opened: 1,
                first_opened: ts,
                last_opened: ts,
            });
        }
    }
}

/// One repository: where its name sits in the arena, and its statistics. 28 bytes.
#[derive(Debug, Clone, Copy)]
struct RepoEntry {
    name_start: u32,
    stats: RepoStats,
}

/// The name stored at `start` of the arena: a `u16` length, then the bytes.
fn name_at(names: &[u8], start: u32) -> &[u8] {
    let start = start as usize;
    let len = u16::from_le_bytes([names[start], names[start + 1]]) as usize;
    &names[start + 2..start + 2 + len]
}

/// Interned repositories. Names live once, back to back and length-prefixed, in one arena; the
/// hash table holds entry numbers; the ranking holds totals and arena offsets in answer order
/// (see [`ranking`]), so that comparing names there reads the arena alone. About 70-100 bytes
/// per repository in all, against 150-180 with a map of owned names and a ranking of names.
#[derive(Default)]
struct RepoTable {
    /// Names as a `u16` length and UTF-8 bytes (cut at 65,535 bytes, like the event file).
    names: Vec<u8>,
    entries: Vec<RepoEntry>,
    lookup: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
    ranking: Ranking,
}

impl RepoTable {
    fn name(&self, entry: &RepoEntry) -> &[u8] {
        name_at(&self.names, entry.name_start)
    }

    fn find(&self, name: &str) -> Option<u32> {
        let name = stored_name(name).as_bytes();
        let hash = self.hasher.hash_one(name);
        self.lookup
            .find(hash, |&i| self.name(&self.entries[i as usize]) == name)
            .copied()
    }

    fn get(&self, name: &str) -> Option<&RepoStats> {
        self.find(name).map(|i| &self.entries[i as usize].stats)
    }

    /// Adds `delta` to `name`'s statistics, interning the name on first sight; returns its
    /// entry number.
    fn add(&mut self, name: &str, delta: &RepoStats) -> u32 {
        let index = match self.find(name) {
            Some(i) => i,
            None => {
                let name = stored_name(name).as_bytes();
                let i = self.entries.len() as u32;
                self.entries.push(RepoEntry {
                    name_start: self.names.len() as u32,
                    stats: RepoStats::default(),
                });
                self.names
                    .extend_from_slice(&(name.len() as u16).to_le_bytes());
                self.names.extend_from_slice(name);
                let hash = self.hasher.hash_one(name);
                let (entries, names, hasher) = (&self.entries, &self.names, &self.hasher);
                self.lookup.insert_unique(hash, i, |&j| {
                    hasher.hash_one(name_at(names, entries[j as usize].name_start))
                });
                i
            }
        };
        let entry = &mut self.entries[index as usize];
        let old_total = entry.stats.total();
        entry.stats.add(delta);
        let new_total = entry.stats.total();
        let start = entry.name_start;
        if old_total != new_total {
            let names = &self.names;
            let name_of = |start: u32| name_at(names, start);
            let name = name_of(start);
            if old_total > 0 {
                let removed = self
                    .ranking
                    .remove(Slot::new(old_total, name, start), &name_of);
                debug_assert!(removed, "entry {index} was not ranked");
            }
            self.ranking
                .insert(Slot::new(new_total, name, start), &name_of);
        }
        index
    }

    /// The `limit` most active repositories, ties by name: the ranking's first `limit`.
    fn top(&self, limit: usize) -> Vec<RepoEventCount> {
        self.ranking
            .iter()
            .take(limit)
            .map(|slot| RepoEventCount {
                repository: String::from_utf8_lossy(name_at(&self.names, slot.name)).into_owned(),
                event_count: u64::from(slot.total),
            })
            .collect()
    }

    fn heap_bytes(&self) -> usize {
        let lookup = buckets(self.lookup.capacity()) * (4 + 1);
        self.names.capacity()
            + self.entries.capacity() * std::mem::size_of::<RepoEntry>()
            + lookup
            + self.ranking.heap_bytes()
    }
}

/// `name` as the arena keeps it: cut at a character boundary to 65,535 bytes.
fn stored_name(name: &str) -> &str {
    let mut end = name.len().min(u16::MAX as usize);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// hashbrown's bucket count for a capacity: one control byte per bucket plus the value.
fn buckets(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        (capacity * 8 / 7).next_power_of_two()
    }
}

#[derive(Default)]
struct Index {
    ids: HashSet<u64, IdHasher>,
    /// Creation times (seconds since the epoch), sorted, one vector per type.
    times: [Vec<u32>; 3],
    repos: RepoTable,
    /// Per repository entry with opened pull requests, their opening times, sorted: the PR
    /// average over a window by binary search.
    opened_times: HashMap<u32, Vec<u32>>,
    last_event_ts: Option<i64>,
}

/// What a batch of fresh events adds to the index, prepared without holding it.
struct Delta<'a> {
    ids: Vec<u64>,
    /// Sorted.
    times: [Vec<u32>; 3],
    /// Aggregated per repository, so that the ranking moves once per repository and batch;
    /// with the repository's opened pull requests' times, sorted.
    repos: Vec<(&'a str, RepoStats, Vec<u32>)>,
    last_event_ts: Option<i64>,
}

impl<'a> Delta<'a> {
    /// `events` must be fresh (see [`Index::fresh`]) with times in the `u32` range.
    fn new<E: EventFields>(events: &[&'a E]) -> Delta<'a> {
        let mut times: [Vec<u32>; 3] = Default::default();
        let mut repos: HashMap<&str, (RepoStats, Vec<u32>)> = HashMap::new();
        for e in events {
            let ts = e.timestamp() as u32;
            times[e.event_type().index()].push(ts);
            let opened_at = e.is_pull_request_opened().then_some(ts);
            let (stats, opened) = repos.entry(e.repo_name()).or_default();
            stats.add_event(e.event_type(), opened_at);
            opened.extend(opened_at);
        }
        for t in &mut times {
            t.sort_unstable();
        }
        let mut repos: Vec<_> = repos
            .into_iter()
            .map(|(name, (stats, mut opened))| {
                opened.sort_unstable();
                (name, stats, opened)
            })
            .collect();
        // In name order, consecutive ranking updates of a tie group land next to each other:
        // their searches run through blocks and names just read.
        repos.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Delta {
            ids: events.iter().map(|e| e.id()).collect(),
            times,
            repos,
            last_event_ts: events.iter().map(|e| e.timestamp()).max(),
        }
    }
}

impl Index {
    /// The events of `events` to store: ids not stored yet, each id once (its first event).
    /// Inserts and replay both go through here, so a repeated id never counts twice.
    fn fresh<'a, E: EventFields>(&self, events: &'a [E]) -> Vec<&'a E> {
        self.fresh_and_stored(events).0
    }

    /// The events of `events` not stored yet (each id once), and the distinct ids stored
    /// already.
    fn fresh_and_stored<'a, E: EventFields>(&self, events: &'a [E]) -> (Vec<&'a E>, Vec<u64>) {
        let mut in_batch: HashSet<u64, IdHasher> = HashSet::default();
        let mut fresh = Vec::with_capacity(events.len());
        let mut stored = Vec::new();
        for e in events {
            if !in_batch.insert(e.id()) {
                continue;
            }
            if self.ids.contains(&e.id()) {
                stored.push(e.id());
            } else {
                fresh.push(e);
            }
        }
        (fresh, stored)
    }

    /// Adds a delta of [`Index::fresh`] events.
    fn apply(&mut self, delta: Delta<'_>) {
        if delta.ids.is_empty() {
            return;
        }
        self.ids.reserve(delta.ids.len());
        for id in delta.ids {
            let new = self.ids.insert(id);
            debug_assert!(new, "event {id} applied twice");
        }
        for (times, new) in self.times.iter_mut().zip(delta.times) {
            merge_sorted(times, new);
        }
        for (name, stats, opened) in delta.repos {
            let entry = self.repos.add(name, &stats);
            if !opened.is_empty() {
                merge_sorted(self.opened_times.entry(entry).or_default(), opened);
            }
        }
        self.last_event_ts = self.last_event_ts.max(delta.last_event_ts);
    }

    fn count_between(&self, t: EventType, since: i64, until: i64) -> u64 {
        let times = &self.times[t.index()];
        position(times, until).saturating_sub(position(times, since)) as u64
    }

    fn heap_bytes(&self) -> usize {
        let ids = buckets(self.ids.capacity()) * (8 + 1);
        let times: usize = self.times.iter().map(|v| v.capacity() * 4).sum();
        // A map entry (key, vector header, control byte) per repository with opened pull
        // requests, and their times.
        let opened = buckets(self.opened_times.capacity()) * (4 + 24 + 1)
            + self
                .opened_times
                .values()
                .map(|v| v.capacity() * 4)
                .sum::<usize>();
        ids + times + opened + self.repos.heap_bytes()
    }
}

/// Merges the sorted `new` into the sorted `times`, in O(new + tail), where `tail` is the
/// number of existing times greater than the smallest new one: mostly zero, since events
/// arrive roughly in time order.
fn merge_sorted(times: &mut Vec<u32>, new: Vec<u32>) {
    if new.is_empty() {
        return;
    }
    if times.last().is_none_or(|&last| last <= new[0]) {
        times.extend_from_slice(&new);
        return;
    }
    let old_len = times.len();
    times.resize(old_len + new.len(), 0);
    let (mut i, mut j, mut k) = (old_len, new.len(), old_len + new.len());
    while j > 0 {
        if i > 0 && times[i - 1] > new[j - 1] {
            times[k - 1] = times[i - 1];
            i -= 1;
        } else {
            times[k - 1] = new[j - 1];
            j -= 1;
        }
        k -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::ops::RangeInclusive;
    use std::time::Duration;

    use super::log::faults::{Faults, FaultyFile, Gate};
    use super::*;
    use crate::conformance::event;

    fn watch(ids: RangeInclusive<u64>) -> Vec<Event> {
        ids.map(|i| {
            event(
                i,
                EventType::WatchEvent,
                &format!("o/r{}", i % 3),
                1_700_000_000 + i as i64,
                "started",
            )
        })
        .collect()
    }

    fn everything() -> TimeWindow {
        TimeWindow::new(
            utc_from_timestamp(0).unwrap(),
            utc_from_timestamp(2_000_000_000).unwrap(),
        )
        .unwrap()
    }

    /// One thread for every task: anything blocking it stalls them all.
    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn open_faulty(dir: &Path) -> (MemoryStore, Arc<Mutex<Faults>>) {
        let faults = Arc::new(Mutex::new(Faults::default()));
        let shared = Arc::clone(&faults);
        let store = MemoryStore::open_with_file(dir, MemoryStoreOptions::default(), move |file| {
            Box::new(FaultyFile {
                file,
                faults: shared,
            })
        })
        .unwrap();
        (store, faults)
    }

    #[test]
    fn a_full_disk_fails_inserts_until_space_returns_and_every_acknowledged_event_survives() {
        let dir = tempfile::tempdir().unwrap();
        let rt = current_thread();
        {
            let (store, faults) = open_faulty(dir.path());
            rt.block_on(async {
                store.insert_events(&watch(1..=10)).await.unwrap();
                // The disk fills in the middle of the batch.
                faults.lock().unwrap().fail_append_after = Some(100);
                let err = store.insert_events(&watch(11..=20)).await.unwrap_err();
                assert!(err.to_string().contains("os error 28"), "{err}");
                assert_eq!(store.total_events().await.unwrap(), 10);
                let health = store.health().await;
                assert!(health.connected);
                assert!(health.degraded);
                let error = health.error.as_deref().unwrap();
                assert!(error.contains("cannot append to"), "{error}");
                // A batch with nothing new writes nothing: the error stays until a write works.
                store.insert_blocking(&watch(1..=10)).unwrap();
                assert!(store.health().await.degraded);
                // Then the data is written but its fsync fails: not stored either.
                faults.lock().unwrap().failing_syncs = 1;
                store.insert_events(&watch(11..=20)).await.unwrap_err();
                assert_eq!(store.total_events().await.unwrap(), 10);
                // Space is back: the ingest loop's retry stores the batch, once.
                let outcome = store.insert_events(&watch(11..=20)).await.unwrap();
                assert_eq!(outcome.inserted, 10);
                let health = store.health().await;
                assert!(!health.degraded && health.error.is_none(), "{health:?}");
            });
        }
        let store = MemoryStore::open(dir.path()).unwrap();
        let report = store.replay_report().clone();
        assert_eq!(report.records, 20);
        assert_eq!(
            (
                report.torn_bytes,
                report.damaged_bytes,
                report.duplicate_records
            ),
            (0, 0, 0)
        );
        rt.block_on(async {
            assert_eq!(store.total_events().await.unwrap(), 20);
            let counts = store.event_counts(everything()).await.unwrap().counts;
            assert_eq!(counts[EventType::WatchEvent], 20);
            let ranked: u64 = store
                .top_repositories(10)
                .await
                .unwrap()
                .iter()
                .map(|r| r.event_count)
                .sum();
            assert_eq!(ranked, 20);
        });
    }

    #[test]
    fn queries_answer_while_an_append_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let (store, faults) = open_faulty(dir.path());
        store.insert_blocking(&watch(1..=5)).unwrap();
        let gate = Arc::new(Gate::default());
        faults.lock().unwrap().gate = Some(Arc::clone(&gate));
        current_thread().block_on(async {
            let insert = tokio::spawn({
                let store = store.clone();
                async move { store.insert_events(&watch(6..=9)).await }
            });
            gate.reached.notified().await;
            let health = store.health().await;
            let total = store.total_events().await.unwrap();
            let counts = store.event_counts(everything()).await.unwrap().counts;
            let top = store.top_repositories(10).await.unwrap();
            let timeline = store.timeline(everything(), 86_400 * 365).await.unwrap();
            // Long ones, on the blocking pool.
            let all_ranked = store.top_repositories(1_000).await.unwrap();
            let weekly = store.timeline(everything(), 7 * 86_400).await.unwrap();
            assert!(
                gate.holds_an_append() && !gate.gave_up(),
                "the queries waited for the append"
            );
            assert_eq!((health.total_events, total), (5, 5));
            assert_eq!(counts.total(), 5);
            assert_eq!((top.len(), all_ranked.len()), (3, 3));
            assert_eq!(timeline.counts[0].iter().sum::<u64>(), 5);
            assert_eq!(weekly.counts[0].iter().sum::<u64>(), 5);
            gate.open();
            assert_eq!(insert.await.unwrap().unwrap().inserted, 4);
            assert_eq!(store.total_events().await.unwrap(), 9);
        });
    }

    #[test]
    fn a_query_waiting_for_the_index_leaves_the_runtime_thread_free() {
        let store = MemoryStore::new();
        store.insert_blocking(&watch(1..=5)).unwrap();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        // What a long insert does: hold the index.
        let holder = std::thread::spawn({
            let store = store.clone();
            move || {
                let _index = store.shared.index.write().unwrap();
                locked_tx.send(()).unwrap();
                // Not a timing assertion: the bound only turns a deadlock into a failure.
                release_rx.recv_timeout(Duration::from_secs(10)).is_ok()
            }
        });
        locked_rx.recv().unwrap();
        current_thread().block_on(async {
            let query = tokio::spawn({
                let store = store.clone();
                async move { store.total_events().await }
            });
            let other = tokio::spawn(async { 42 });
            assert_eq!(other.await.unwrap(), 42);
            assert!(!query.is_finished());
            release_tx.send(()).unwrap();
            assert_eq!(query.await.unwrap().unwrap(), 5);
        });
        assert!(
            holder.join().unwrap(),
            "the test released the index, not the timeout"
        );
    }

    #[test]
    fn replay_and_inserts_share_the_deduplication() {
        let mut index = Index::default();
        let batch = [watch(1..=3), watch(2..=4)].concat();
        let fresh = index.fresh(&batch);
        assert_eq!(fresh.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3, 4]);
        index.apply(Delta::new(&fresh));
        assert!(index.fresh(&watch(1..=4)).is_empty());
        assert_eq!(index.ids.len(), 4);
        let timed: usize = index.times.iter().map(Vec::len).sum();
        let ranked: u32 = index.repos.ranking.iter().map(|s| s.total).sum();
        assert_eq!((timed, ranked), (4, 4));
    }

    #[test]
    fn merge_keeps_times_sorted() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut times = Vec::new();
        let mut all = Vec::new();
        for _ in 0..50 {
            let mut batch: Vec<u32> = (0..rng.usize(0..40)).map(|_| rng.u32(0..1000)).collect();
            batch.sort_unstable();
            all.extend_from_slice(&batch);
            merge_sorted(&mut times, batch);
        }
        all.sort_unstable();
        assert_eq!(times, all);
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = MemoryStore::open(dir.path()).unwrap();
        let err = MemoryStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another process"));
    }
}
